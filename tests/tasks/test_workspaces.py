"""Task lists in workspaces: each task in its own worktree, dependents starting from their
dependencies' changes, conflicts said before a task starts (real git, the real CLI)."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor._cli._tasks import _print_summary
from cc_executor.tasks import ListStatus, TaskStatus, get_task_list, run_tasks
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.tasks.conftest import Served

Serve = Callable[[Script], Served]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def steps(match: str, *calls: ToolUse) -> Rule:
    return Rule(match=match, answers=[*(Reply([c]) for c in calls), Reply([Text("Done.")])])


async def test_parallel_tasks_keep_their_versions_and_dependents_start_from_them(
    serve: Serve,
) -> None:
    served = serve(
        Script(
            [
                steps(
                    "alpha",
                    ToolUse("Write", {"file_path": "shared.txt", "content": "alpha\n"}),
                    ToolUse("Bash", {"command": "echo from-alpha > a.txt"}),
                ),
                steps("beta", ToolUse("Write", {"file_path": "shared.txt", "content": "beta\n"})),
                steps("gamma", ToolUse("Bash", {"command": "cat a.txt shared.txt > seen.txt"})),
                steps("delta", ToolUse("Bash", {"command": "true"})),
            ]
        )
    )
    repo = served.work / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "shared.txt").write_text("original\n")
    git(repo, "add", "-A")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "-m", "first")
    spec = {
        "tasks": [
            {"id": "alpha", "prompt": "alpha", "depends_on": []},
            {"id": "beta", "prompt": "beta", "depends_on": []},
            {"id": "gamma", "prompt": "gamma", "depends_on": ["alpha"]},
            {"id": "delta", "prompt": "delta", "depends_on": ["alpha", "beta"]},
        ]
    }
    options = served.options(cwd=str(repo), workspace="worktree", allowed_tools=["Bash", "Write"])
    result = await run_tasks(spec, max_parallel=2, **options)
    tasks = result.tasks
    assert tasks["alpha"].status is TaskStatus.OK, tasks["alpha"].error
    # Both parallel tasks keep their own version, and their receipts list exactly their files.
    for tid, files in (("alpha", ["a.txt", "shared.txt"]), ("beta", ["shared.txt"])):
        receipt = tasks[tid].workspace
        assert receipt is not None
        assert sorted(c["path"] for c in receipt["changes"]) == files
        assert git(repo, "show", f"{receipt['branch']}:shared.txt") == f"{tid}\n"
    # gamma started from alpha's changes: its Bash command read them.
    gamma = tasks["gamma"].workspace
    assert gamma is not None
    assert gamma["changes"] == [{"path": "seen.txt", "kind": "added"}]
    assert git(repo, "show", f"{gamma['branch']}:seen.txt") == "from-alpha\nalpha\n"
    # delta's dependencies conflict: said before it started (no run).
    assert tasks["delta"].status is TaskStatus.FAILED
    assert tasks["delta"].runs == []
    assert "conflict in: shared.txt" in (tasks["delta"].error or "")
    assert result.status is ListStatus.FAILED
    # No branch can hold alpha's and beta's shared.txt: the list says so.
    assert result.workspace_branch is None
    assert any("shared.txt" in w for w in result.warnings)
    assert (repo / "shared.txt").read_text() == "original\n"


async def test_the_list_names_the_branch_holding_its_final_state(serve: Serve) -> None:
    served = serve(
        Script(
            [
                steps("first", ToolUse("Bash", {"command": "echo 1 > one.txt"})),
                steps("second", ToolUse("Bash", {"command": "cat one.txt > two.txt"})),
            ]
        )
    )
    repo = served.work / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty",
        "-m", "first")  # fmt: skip
    spec = {"tasks": [{"id": "a", "prompt": "first"}, {"id": "b", "prompt": "second"}]}
    options = served.options(cwd=str(repo), workspace="worktree", allowed_tools=["Bash"])
    result = await run_tasks(spec, **options)
    assert result.status is ListStatus.OK, result.to_dict()
    assert result.workspace_branch == f"cc-executor/{result.list_id}"
    assert result.to_dict()["workspace_branch"] == result.workspace_branch
    assert git(repo, "show", f"{result.workspace_branch}:two.txt") == "1\n"
    assert not (repo / "one.txt").exists()
    # `tasks show` knows it too, and the summary names it (only the JSON did).
    shown = get_task_list(result.list_id)
    assert shown.workspace_branch == result.workspace_branch
    for listed in (result, shown):
        summary = io.StringIO()
        _print_summary(listed, summary)
        assert f"workspace branch: {result.workspace_branch} " in summary.getvalue()


@pytest.mark.slow  # over 0.3 s: a git repository and cc-executor child processes
def test_workspace_commands_take_a_task_lists_id_for_its_branch(tmp_path: Path) -> None:
    # From another repository (the list's own folder, its cwd elsewhere): "no branch
    # cc-executor/<list id> was found in ... or from ... it has no remote", with that
    # branch in the list's repository: the list had no receipt of its own.
    import json
    import sys

    cli = str(Path(sys.executable).parent / "cc-executor")
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "-c", "user.name=t", "-c", "user.email=t@e", "commit", "-q", "--allow-empty",
        "-m", "first")  # fmt: skip
    code = "import sys, pathlib; pathlib.Path(sys.stdin.read().strip()).write_text('x')"
    agent = tmp_path / "agent.toml"
    agent.write_text(f"command = [\"{sys.executable}\", \"-c\", '''{code}''']\n")
    options = {"agent": "command", "agent_spec": str(agent), "workspace": "worktree"}
    options["cwd"] = str(repo)
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    spec = {"tasks": [{"id": t, "prompt": f"{t}.txt", **options} for t in ("a", "b")]}
    (tmp_path / "list.json").write_text(json.dumps(spec))

    def cc(*args: str) -> str:
        done = subprocess.run([cli, *args], cwd=other, capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr
        return done.stdout

    list_id = json.loads(cc("tasks", "run", str(tmp_path / "list.json"), "--json", "--quiet"))[
        "list_id"
    ]
    patch = cc("workspace", "diff", list_id)
    assert "+++ b/a.txt" in patch
    assert "+++ b/b.txt" in patch
    cc("workspace", "merge", list_id)
    assert (repo / "a.txt").read_text() == (repo / "b.txt").read_text() == "x"
    cc("workspace", "discard", list_id)
    assert git(repo, "branch", "--list", f"cc-executor/{list_id}") == ""
