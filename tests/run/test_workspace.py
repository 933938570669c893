"""Workspaces: a run in a git worktree (or a copy) of its own, its change receipt, and the
operations on it (list, diff, merge, discard, prune), with real git.

The tests of the module's functions make and finish workspaces directly (no agent); those
marked ``cli`` run the real Claude Code CLI against the scripted model server."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor._agents._types import RunStatus
from cc_executor._errors import WorkspaceConflict, WorkspaceError
from cc_executor._run._runner import run, start_run
from cc_executor._run._workspace import (
    COPY_MAX_BYTES,
    create_workspace,
    finish_workspace,
    workspace_diff,
    workspace_discard,
    workspace_list,
    workspace_merge,
    workspace_prune,
)
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._wait import await_for, await_with_room


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def make_repo(path: Path) -> Path:
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.name", "Tester")
    git(path, "config", "user.email", "tester@example.com")
    (path / "shared.txt").write_text("original\n")
    (path / "keep.txt").write_text("keep\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "-m", "first")
    return path


def tree_state(repo: Path) -> tuple[str, str, str, dict[str, bytes]]:
    """HEAD, the index's tree, git status and every file's bytes: the user's tree, exactly."""
    files = {
        str(p.relative_to(repo)): p.read_bytes()
        for p in repo.rglob("*")
        if p.is_file() and ".git" not in p.relative_to(repo).parts
    }
    return (
        git(repo, "rev-parse", "HEAD"),
        git(repo, "write-tree"),
        git(repo, "status", "--porcelain=v1", "--untracked-files=all"),
        files,
    )


def finished(repo: Path, run_id: str, tmp_path: Path, writes: dict[str, str], **kw: Any) -> Any:
    """A worktree workspace made for ``run_id``, ``writes`` done in it, then finished."""
    run_dir = tmp_path / "runs" / run_id
    run_dir.mkdir(parents=True, exist_ok=True)
    ws = create_workspace("worktree", str(repo), run_id, str(run_dir), **kw)
    for name, text in writes.items():
        (Path(ws.path) / name).write_text(text)
    finish_workspace(ws, "ok")
    return ws


@pytest.fixture
def runs_home(cc_home: Path) -> Path:
    """The data folder's runs, where ``load_receipt`` looks for a run not in the history."""
    runs = cc_home / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    return runs


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_receipt_kinds_renames_and_patch(tmp_path: Path, runs_home: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    run_dir = runs_home / "r1"
    run_dir.mkdir()
    ws = create_workspace("worktree", str(repo), "r1", str(run_dir))
    top = Path(ws.path)
    (top / "new.txt").write_text("new\n")
    (top / "shared.txt").write_text("changed\n")
    os.rename(top / "keep.txt", top / "kept.txt")
    # A commit the agent made itself is kept, and its changes are in the receipt too.
    (top / "own.txt").write_text("committed by the agent\n")
    git(top, "add", "own.txt")
    git(top, "commit", "-q", "-m", "the agent's own commit")
    receipt = finish_workspace(ws, "ok")
    assert git(repo, "log", "--format=%s", "-2", "cc-executor/r1").splitlines() == [
        "cc-executor run r1 (ok)",
        "the agent's own commit",
    ]
    assert receipt["branch"] == "cc-executor/r1"
    assert receipt["base"] == git(repo, "rev-parse", "HEAD").strip()
    assert sorted(receipt["changes"], key=lambda c: c["path"]) == [
        {"path": "kept.txt", "kind": "renamed", "old_path": "keep.txt"},
        {"path": "new.txt", "kind": "added"},
        {"path": "own.txt", "kind": "added"},
        {"path": "shared.txt", "kind": "modified"},
    ]
    # The fixed identity is not used when the repository has one.
    assert git(repo, "log", "-1", "--format=%an", "cc-executor/r1").strip() == "Tester"
    subprocess.run(["git", "-C", str(repo), "apply", "--check", receipt["patch_path"]], check=True)
    assert json.loads((run_dir / "workspace.json").read_text())["commit"] == receipt["commit"]
    assert "+changed" in workspace_diff("r1")


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_uncommitted_changes_are_left_out_and_listed_or_carried(
    tmp_path: Path, runs_home: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    (repo / "shared.txt").write_text("dirty\n")
    (repo / "untracked.txt").write_text("u\n")
    before = tree_state(repo)
    left = finished(repo, "left", runs_home.parent, {})
    assert sorted(left.left_behind) == ["shared.txt", "untracked.txt"]
    assert "shared.txt, untracked.txt" in left.warnings()[0]
    assert (Path(left.path) / "shared.txt").read_text() == "original\n"
    assert not (Path(left.path) / "untracked.txt").exists()
    carried = finished(repo, "carried", runs_home.parent, {"more.txt": "m\n"}, carry=True)
    assert (Path(carried.path) / "shared.txt").read_text() == "dirty\n"
    assert (Path(carried.path) / "untracked.txt").read_text() == "u\n"
    assert carried.warnings() == []
    # The receipt's base holds the carried changes: the changes are the run's own.
    assert carried.receipt["changes"] == [{"path": "more.txt", "kind": "added"}]
    assert tree_state(repo) == before  # nothing of the user's tree was touched


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_a_conflicting_merge_leaves_the_tree_as_it_was(tmp_path: Path, runs_home: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    finished(repo, "c1", runs_home.parent, {"shared.txt": "from the run\n"})
    (repo / "shared.txt").write_text("from the user\n")
    git(repo, "commit", "-q", "-am", "user's own")
    (repo / "keep.txt").write_text("uncommitted edit\n")  # a dirty tree stays dirty
    before = tree_state(repo)
    with pytest.raises(WorkspaceConflict) as info:
        workspace_merge("c1")
    assert info.value.files == ["shared.txt"]
    assert "shared.txt" in str(info.value)
    assert tree_state(repo) == before
    assert not (repo / ".git" / "MERGE_HEAD").exists()


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_merge_fast_forward_then_merge_commit_and_discard(tmp_path: Path, runs_home: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    first = finished(repo, "m1", runs_home.parent, {"a.txt": "a\n"})
    second = finished(repo, "m2", runs_home.parent, {"b.txt": "b\n"})
    assert {w["run_id"] for w in workspace_list(repo)} == {"m1", "m2"}
    assert workspace_merge("m1")["merged"] == "fast-forward"
    assert workspace_merge("m2")["merged"] == "merge commit"
    assert workspace_merge("m2")["merged"] == "already"
    assert (repo / "a.txt").read_text() == "a\n"
    assert (repo / "b.txt").read_text() == "b\n"
    for ws in (first, second):
        workspace_discard(ws.run_id)
        assert not Path(ws.path).exists()
    assert "cc-executor/" not in git(repo, "branch", "--list")
    assert git(repo, "worktree", "list").count("\n") == 1
    assert workspace_list(repo) == []
    with pytest.raises(WorkspaceError, match="no longer exists"):
        workspace_merge("m1")


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_prune_discards_workspaces_of_runs_not_in_the_history(
    tmp_path: Path, runs_home: Path
) -> None:
    repo = make_repo(tmp_path / "repo")
    ws = finished(repo, "p1", runs_home.parent, {"a.txt": "a\n"})
    assert workspace_prune(7 * 86400, repo, dry_run=True) == ["p1"]
    assert Path(ws.path).exists()
    assert workspace_prune(7 * 86400, repo) == ["p1"]
    assert not Path(ws.path).exists()
    assert workspace_list(repo) == []


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_copy_workspace_and_its_size_guard(
    tmp_path: Path, runs_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No identity anywhere: cc-executor's fixed one is used.
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "doc.txt").write_text("one\n")
    run_dir = runs_home / "k1"
    run_dir.mkdir()
    ws = create_workspace("copy", str(folder), "k1", str(run_dir))
    (Path(ws.path) / "doc.txt").write_text("two\n")
    (Path(ws.path) / "extra.txt").write_text("x\n")
    receipt = finish_workspace(ws, "ok")
    assert sorted(c["path"] for c in receipt["changes"]) == ["doc.txt", "extra.txt"]
    author = git(Path(ws.path), "log", "-1", "--format=%an <%ae>")
    assert author.strip() == "cc-executor <cc-executor@localhost>"
    assert (folder / "doc.txt").read_text() == "one\n"
    assert workspace_merge("k1")["merged"] == "patch applied"
    assert (folder / "doc.txt").read_text() == "two\n"
    assert (folder / "extra.txt").exists()
    workspace_discard("k1")
    assert not Path(ws.path).exists()
    # Above the guard (a sparse file: its apparent size counts), nothing is copied.
    big = tmp_path / "big"
    big.mkdir()
    with open(big / "sparse.bin", "wb") as sparse:
        sparse.truncate(COPY_MAX_BYTES + 1)
    with pytest.raises(WorkspaceError, match="too large to copy"):
        create_workspace("copy", str(big), "k2", str(runs_home / "k2"))
    assert not (runs_home / "k2" / "workspace").exists()


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_workspace_options_are_checked_before_anything_runs(tmp_path: Path) -> None:
    from cc_executor._run._options import RunOptions

    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(ValueError, match="not in a git repository"):
        RunOptions(workspace="worktree", cwd=str(plain))
    # An empty .git above (what Codex's sandbox leaves in /tmp) is no repository to git.
    (tmp_path / ".git").mkdir()
    with pytest.raises(ValueError, match="not in a git repository"):
        RunOptions(workspace="worktree", cwd=str(plain))
    with pytest.raises(ValueError, match="workspace must be one of"):
        RunOptions(workspace="container", cwd=str(plain))
    with pytest.raises(ValueError, match="workspace_base needs"):
        RunOptions(workspace_base="main", cwd=str(plain))
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(ValueError, match="workspace_base must be a git revision"):
        RunOptions(workspace="worktree", workspace_base="--output=/tmp/x", cwd=str(repo))
    with pytest.raises(ValueError, match="carry_changes needs"):
        RunOptions(carry_changes=True, cwd=str(plain))


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_a_bad_base_is_a_clear_error(tmp_path: Path) -> None:
    repo = make_repo(tmp_path / "repo")
    with pytest.raises(WorkspaceError, match="'nope' is not a commit"):
        create_workspace("worktree", str(repo), "b1", str(tmp_path / "b1"), base="nope")


@pytest.mark.slow  # eight console processes
def test_the_commands(tmp_path: Path, runs_home: Path) -> None:
    """``cc-executor workspace list|diff|merge|discard|prune`` (the console, no agent)."""
    repo = make_repo(tmp_path / "repo")
    finished(repo, "w1", runs_home.parent, {"a.txt": "a\n"})
    finished(repo, "w2", runs_home.parent, {"shared.txt": "run\n"})
    (repo / "shared.txt").write_text("user\n")
    git(repo, "commit", "-q", "-am", "user")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(Path(sys.executable).parent / "cc-executor"), "workspace", *args],
            cwd=repo,
            capture_output=True,
            text=True,
            check=False,
        )

    listed = cli("list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert {w["run_id"] for w in json.loads(listed.stdout)["workspaces"]} == {"w1", "w2"}
    assert "+a" in cli("diff", "w1").stdout
    merged = cli("merge", "w1")
    assert merged.returncode == 0
    assert "merged" in merged.stdout
    conflict = cli("merge", "w2")
    assert conflict.returncode == 1
    assert "shared.txt" in conflict.stderr
    assert cli("discard", "w2").returncode == 0
    missing = cli("diff", "nope")
    assert missing.returncode == 2
    assert "no workspace" in missing.stderr
    assert "Traceback" not in missing.stderr
    assert cli("prune", "--older-than", "1d").returncode == 0


# -- runs of the real CLI --------------------------------------------------------------


def tools(*replies: Reply) -> Script:
    return Script([Rule(answers=[*replies, Reply([Text("Done.")])])])


async def test_a_worktree_run_lists_tool_and_bash_changes_and_merges(
    bed: Any, cc_home: Path
) -> None:
    from cc_executor._store import open_store, verify

    script = tools(
        Reply([ToolUse("Write", {"file_path": "written.txt", "content": "by Write\n"})]),
        Reply([ToolUse("Bash", {"command": "mkdir -p gen && echo by-bash > gen/made.txt"})]),
    )
    async with bed(script) as b:
        repo = b.workdir
        make_repo(repo / "repo")
        repo = repo / "repo"
        (repo / "keep.txt").write_text("left out\n")
        before = tree_state(repo)
        result = await run(
            "make files",
            allowed_tools=["Bash", "Write"],
            workspace="worktree",
            **{**b.options(), "cwd": str(repo)},
        )
    assert result.status is RunStatus.OK, result.error
    receipt = result.workspace
    assert receipt is not None
    assert sorted(receipt["changes"], key=lambda c: c["path"]) == [
        {"path": "gen/made.txt", "kind": "added"},
        {"path": "written.txt", "kind": "added"},
    ]
    assert any("keep.txt" in w for w in result.warnings)
    assert tree_state(repo) == before  # the run never wrote the user's tree
    subprocess.run(["git", "-C", str(repo), "apply", "--check", receipt["patch_path"]], check=True)
    assert result.to_dict()["workspace"]["branch"] == f"cc-executor/{result.run_id}"
    store = open_store()
    record = store.get(result.run_id)
    store.close()
    assert record is not None
    assert {"workspace patch", "workspace"} <= {a.name for a in record.artifacts}
    assert verify(record, record.id).ok
    git(repo, "checkout", "-q", "--", "keep.txt")
    assert workspace_merge(result.run_id)["merged"] == "fast-forward"
    assert (repo / "written.txt").read_text() == "by Write\n"
    assert (repo / "gen" / "made.txt").read_text() == "by-bash\n"
    workspace_discard(result.run_id)
    assert git(repo, "worktree", "list").count("\n") == 1
    assert "cc-executor/" not in git(repo, "branch", "--list")


async def test_a_timed_out_run_is_still_committed(bed: Any, cc_home: Path) -> None:
    slow = Reply([Text("word " * 400)], chunk_size=10, delay=0.25)
    script = tools(Reply([ToolUse("Bash", {"command": "echo partial > half.txt"})]), slow)
    async with bed(script) as b:

        async def attempt(timeout: float) -> Any:
            return await run(
                "slow",
                allowed_tools=["Bash"],
                workspace="worktree",
                timeout=timeout,
                grace=1,
                **{**b.options(), "cwd": str(make_repo(b.workdir / f"repo-{timeout:g}"))},
            )

        # The timeout must fall after the Bash call: more room if the CLI's start took it all.
        result, timeout = await await_with_room(
            attempt, 8, lambda r: r.workspace and r.workspace["changes"]
        )
        repo = b.workdir / f"repo-{timeout:g}"
    assert result.status is RunStatus.TIMEOUT
    assert result.workspace is not None
    assert result.workspace["changes"] == [{"path": "half.txt", "kind": "added"}]
    assert git(repo, "show", f"{result.workspace['commit']}:half.txt") == "partial\n"
    assert "(timeout)" in git(repo, "log", "-1", "--format=%s", result.workspace["branch"])
    assert [w["run_id"] for w in workspace_list(repo)] == [result.run_id]


@pytest.mark.parametrize("how", ["handle", "task"])
async def test_a_run_cancelled_mid_tool_is_still_committed(
    bed: Any, cc_home: Path, tmp_path: Path, how: str
) -> None:
    """``handle``: ``RunHandle.cancel()`` (status ``cancelled``); ``task``: the caller's task
    cancelled, whose end-of-run commit is shielded from it."""
    started = tmp_path / "tool-started"
    command = f"echo partial > half.txt; touch {started}; sleep 600"
    async with bed(tools(Reply([ToolUse("Bash", {"command": command})]))) as b:
        repo = make_repo(b.workdir / "repo")
        options = {**b.options(), "cwd": str(repo)}
        if how == "handle":
            handle = start_run("work", allowed_tools=["Bash"], workspace="worktree", **options)
            await await_for(started.exists, what="the Bash call under way")
            handle.cancel()
            result = await handle.wait()
            assert result.status is RunStatus.CANCELLED, result.error
            assert result.workspace is not None
            assert result.workspace["changes"] == [{"path": "half.txt", "kind": "added"}]
        else:
            task = asyncio.ensure_future(
                run("work", allowed_tools=["Bash"], workspace="worktree", **options)
            )
            await await_for(started.exists, what="the Bash call under way")
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
    (listed,) = workspace_list(repo)
    assert listed["changes"] == [{"path": "half.txt", "kind": "added"}]
    assert git(repo, "show", f"{listed['commit']}:half.txt") == "partial\n"
    assert "(cancelled)" in git(repo, "log", "-1", "--format=%s", listed["branch"])
    assert not [
        p
        for p in psutil.process_iter(["cmdline"])
        if str(started) in " ".join(p.info["cmdline"] or [])
    ]


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_history_prune_removes_the_workspaces_of_the_runs_it_prunes(
    tmp_path: Path, runs_home: Path
) -> None:
    import time

    from cc_executor._store import RunRecord, open_store

    repo = make_repo(tmp_path / "repo")
    ws = finished(repo, "old1", runs_home.parent, {"a.txt": "a\n"})
    finished(repo, "new1", runs_home.parent, {"b.txt": "b\n"})
    store = open_store()
    for run_id, age in (("old1", 10 * 86400), ("new1", 0)):
        record = RunRecord(
            id=run_id, kind="run", started_at=time.time() - age, run_dir=str(runs_home / run_id)
        )
        store.start(record)
        record.status, record.ended_at = "ok", record.started_at + 1
        store.finish(record)
    store.close()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cc-executor"), "prune", "--older-than", "1d"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "1 workspace(s)" in done.stdout
    assert not Path(ws.path).exists()
    assert [w["run_id"] for w in workspace_list(repo)] == ["new1"]


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_the_end_of_run_commit_runs_nothing_the_agent_configured(
    tmp_path: Path, runs_home: Path
) -> None:
    # Fourth pass P11: the commit at the run's end used the overrides read at its start,
    # and git found its folder through the work tree's .git: an agent that could only
    # write files in its folder pointed .git at a git folder of its own, whose clean
    # filter cc-executor then ran (outside the run's tree, its limits and its policy).
    ran = tmp_path / "ran"
    program = tmp_path / "filter.sh"
    program.write_text(f"#!/bin/sh\necho >> {ran}\ncat\n")
    program.chmod(0o755)
    with_filter = f'[filter "x"]\n\tclean = {program}\n'
    repo = make_repo(tmp_path / "repo")
    (runs_home / "r1").mkdir()
    ws = create_workspace("worktree", str(repo), "r1", str(runs_home / "r1"))
    top = Path(ws.path)
    planted = top / "planted"  # a git folder, as files the agent writes
    git(tmp_path, "init", "-q", "--bare", str(planted))
    with open(planted / "config", "a") as f:
        f.write(f"[core]\n\tbare = false\n{with_filter}")
    (top / ".git").write_text(f"gitdir: {planted}\n")
    (top / ".gitattributes").write_text("* filter=x\n")
    (top / "new.txt").write_text("new\n")
    receipt = finish_workspace(ws, "ok")
    assert not ran.exists()
    assert "new.txt" in git(repo, "ls-tree", "-r", "--name-only", receipt["commit"])
    # A copy's own git folder is the agent's to write: its configuration is read again.
    folder = tmp_path / "plain"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    (runs_home / "r2").mkdir()
    ws = create_workspace("copy", str(folder), "r2", str(runs_home / "r2"))
    with open(Path(ws.path) / ".git" / "config", "a") as f:
        f.write(with_filter)
    (Path(ws.path) / ".gitattributes").write_text("* filter=x\n")
    (Path(ws.path) / "b.txt").write_text("b\n")
    finish_workspace(ws, "ok")
    assert not ran.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_copy_refuses_a_device_rather_than_read_it_without_end(
    tmp_path: Path, runs_home: Path
) -> None:
    # Fourth pass P12: a device node (a root file system's dev/zero) passed the size guard
    # (0 bytes) and was copied until the disk was full.
    folder = tmp_path / "rootfs"
    folder.mkdir()
    (folder / "a.txt").write_text("a\n")
    os.mknod(folder / "zero", 0o600 | stat.S_IFCHR, os.makedev(1, 5))
    (runs_home / "r1").mkdir()
    with pytest.raises(WorkspaceError, match="zero is not a regular file"):
        create_workspace("copy", str(folder), "r1", str(runs_home / "r1"))


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_an_empty_repository_the_agent_made_is_left_out_not_the_commit(
    tmp_path: Path, runs_home: Path
) -> None:
    # Fourth pass P15: `git init` (or `cargo new`) in the workspace made `git add -A` fail,
    # and with it the run's commit and receipt.
    repo = make_repo(tmp_path / "repo")
    (runs_home / "r1").mkdir()
    ws = create_workspace("worktree", str(repo), "r1", str(runs_home / "r1"))
    git(Path(ws.path), "init", "-q", "new crate")
    (Path(ws.path) / "new crate" / "lib.rs").write_text("fn main() {}\n")
    (Path(ws.path) / "work.txt").write_text("the agent's work\n")
    receipt = finish_workspace(ws, "ok")
    assert receipt["changes"] == [{"path": "work.txt", "kind": "added"}]
    assert receipt["skipped"] == ["new crate"]
