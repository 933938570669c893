"""A run's input as a git URL + ref (``repo``/``ref``): the URL checks, the clone into the run
folder, the workspace branch pushed back, and ``workspace merge`` from a machine that has
only the remote. Real git on local bare repositories (``file://`` URLs) and the command
agent as a real child process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._errors import Forbidden, InvalidRequest, WorkspaceError
from cc_executor._run._repo import check_ref, check_repo_url, clone_repo, repo_allowed
from cc_executor._run._runner import run
from cc_executor._run._workspace import workspace_diff, workspace_discard
from cc_executor._service._policy import RunPolicy

CLI = str(Path(sys.executable).parent / "cc-executor")


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture(scope="module")
def remote(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A bare repository with ``main`` (two commits, the first tagged ``v1``) and a branch
    ``other``; its folder and its ``file://`` URL (made once: runs only add branches)."""
    tmp_path = tmp_path_factory.mktemp("remote")
    bare = tmp_path / "remote.git"
    git(tmp_path, "init", "-q", "--bare", "-b", "main", str(bare))
    src = tmp_path / "src"
    git(tmp_path, "clone", "-q", str(bare), str(src))
    git(src, "config", "user.name", "Tester")
    git(src, "config", "user.email", "tester@example.com")
    (src / "readme.txt").write_text("first\n")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "first")
    git(src, "tag", "v1")
    (src / "readme.txt").write_text("second\n")
    git(src, "commit", "-q", "-am", "second")
    git(src, "push", "-q", "origin", "main", "v1")
    git(src, "checkout", "-q", "-b", "other", "v1")
    (src / "other.txt").write_text("other\n")
    git(src, "add", "-A")
    git(src, "commit", "-q", "-m", "other")
    git(src, "push", "-q", "origin", "other")
    return bare, f"file://{bare}"


@pytest.mark.parametrize(
    "url",
    [
        "https://git.example.com/team/app.git",
        "ssh://git@git.example.com/team/app.git",
        "git@git.example.com:team/app.git",
        "file:///srv/repos/app.git",
    ],
)
def test_allowed_urls(url: str) -> None:
    assert check_repo_url(url) == url


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("ext::sh -c touch% /tmp/pwned", "spaces"),
        ("ext::sh", "transport helper"),
        ("fd::3", "transport helper"),
        ("--upload-pack=touch /tmp/x", "spaces"),
        ("-uhttps://x", "reads as an option"),
        ("http://git.example.com/app.git", "scheme http:// is not allowed"),
        ("git://git.example.com/app.git", "scheme git:// is not allowed"),
        ("/srv/repos/app.git", "is not a URL"),
        ("https://user:secret@git.example.com/app.git", "holds a password"),
        ("https://git.example.com/team/../other/app.git", "'..' path segment"),
        ("", "must be a git URL"),
    ],
)
def test_refused_urls(url: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        check_repo_url(url)


def test_refs_and_patterns() -> None:
    assert check_ref("main") == "main"
    assert check_ref("release/1.2") == "release/1.2"
    for bad in ("-b", "a..b", "x y", "", "main.lock"):
        with pytest.raises(ValueError, match="ref must be"):
            check_ref(bad)
    assert repo_allowed("https://git.example.com/team/app.git", ["https://git.example.com/team/*"])
    assert not repo_allowed("https://git.example.com/other/app", ["https://git.example.com/team/*"])
    assert not repo_allowed("https://git.example.com/team/app", [])


def test_policy_refuses_a_repo_no_pattern_allows(tmp_path: Path) -> None:
    policy = RunPolicy([tmp_path], [], allow_repos=["file:///srv/*"])
    policy.check_agent_options({"repo": "file:///srv/app.git"}, "")
    with pytest.raises(Forbidden, match=r"repo 'file:///elsewhere/app.git' is not allowed here"):
        policy.check_agent_options({"repo": "file:///elsewhere/app.git"}, "")
    with pytest.raises(InvalidRequest, match="transport helper"):
        policy.check_agent_options({"repo": "ext::sh"}, "")
    with pytest.raises(Forbidden, match="it allows none"):
        RunPolicy([tmp_path], []).check_repo("https://git.example.com/app.git")


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_clone_takes_a_branch_a_tag_a_commit_or_the_default(
    tmp_path: Path, remote: tuple[Path, str]
) -> None:
    bare, url = remote
    main = git(bare, "rev-parse", "main")
    for ref, expected in (
        (None, main),
        ("main", main),
        ("v1", git(bare, "rev-parse", "v1^{commit}")),
        ("other", git(bare, "rev-parse", "other")),
        (git(bare, "rev-parse", "main~1"), git(bare, "rev-parse", "main~1")),
    ):
        dest = tmp_path / f"clone-{ref}"
        assert clone_repo(url, ref, str(dest)) == expected
        assert git(dest, "rev-parse", "HEAD") == expected
        assert git(dest, "remote", "get-url", "origin") == url
    with pytest.raises(WorkspaceError, match="'nope' is not in"):
        clone_repo(url, "nope", str(tmp_path / "clone-nope"))


def _writer(tmp_path: Path) -> Path:
    """A command agent that writes ``made.txt`` in its cwd and prints where it ran."""
    code = "import os; open('made.txt', 'w').write('made\\n'); print(os.getcwd())"
    spec = tmp_path / "writer.toml"
    spec.write_text(f"command = [\"{sys.executable}\", \"-c\", '''{code}''']\n")
    return spec


@pytest.mark.slow  # over 0.3 s: real git repositories
async def test_a_run_with_a_repo_runs_in_its_clone(
    tmp_path: Path, remote: tuple[Path, str]
) -> None:
    _, url = remote
    result = await run(
        "go", agent="command", agent_spec=_writer(tmp_path), repo=url, ref="other", heartbeat_s=0
    )
    assert result.ok, result.error
    clone = Path(result.run_dir or "") / "repo"
    assert result.result is not None
    assert result.result.strip() == str(clone)
    assert (clone / "other.txt").read_text() == "other\n"
    assert (clone / "made.txt").exists()
    missing = await run("go", agent="command", agent_spec=_writer(tmp_path), repo=url, ref="nope")
    assert missing.status.value == "spawn_failed"
    assert "'nope' is not in" in (missing.error or "")
    with pytest.raises(ValueError, match="transport helper"):
        await run("go", agent="command", agent_spec=_writer(tmp_path), repo="ext::sh")
    with pytest.raises(ValueError, match="give repo or cwd, not both"):
        await run("go", agent="command", agent_spec=_writer(tmp_path), repo=url, cwd=tmp_path)


@pytest.mark.slow  # three CLI processes
async def test_a_workspace_branch_is_pushed_and_merged_from_another_machine(
    tmp_path: Path, remote: tuple[Path, str]
) -> None:
    bare, url = remote
    result = await run(
        "go",
        agent="command",
        agent_spec=_writer(tmp_path),
        repo=url,
        ref="main",
        workspace="worktree",
        heartbeat_s=0,
    )
    assert result.ok, result.error
    receipt = result.workspace
    assert receipt is not None
    assert receipt["pushed"] is True
    assert receipt["remote"] == url
    branch = f"cc-executor/{result.run_id}"
    assert git(bare, "rev-parse", branch) == receipt["commit"]
    stored = json.loads((Path(result.run_dir or "") / "workspace.json").read_text())
    assert stored["pushed"] is True
    # Another machine: its own data folder (no run folder), a clone of the same remote.
    mine = tmp_path / "mine"
    git(tmp_path, "clone", "-q", url, str(mine))
    git(mine, "config", "user.name", "Me")
    git(mine, "config", "user.email", "me@example.com")
    env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path / "other-home")}

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "workspace", *args],
            cwd=mine,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    diff = cli("diff", result.run_id)
    assert diff.returncode == 0, diff.stderr
    assert "+made" in diff.stdout
    merged = cli("merge", result.run_id)
    assert merged.returncode == 0, merged.stderr
    assert (mine / "made.txt").read_text() == "made\n"
    discarded = cli("discard", result.run_id)
    assert discarded.returncode == 0, discarded.stderr
    assert "stays on the remote (--remote deletes it)" in discarded.stdout
    assert git(bare, "rev-parse", branch) == receipt["commit"]
    discarded = cli("discard", "--remote", result.run_id)
    assert discarded.returncode == 0, discarded.stderr
    assert "its branch deleted from origin" in discarded.stdout
    assert git(bare, "branch", "--list", branch) == ""
    gone = cli("merge", "01jd3k0000000000000000000z")
    assert gone.returncode == 2
    assert "no branch cc-executor/01jd3k0000000000000000000z was found" in gone.stderr
    assert "Traceback" not in gone.stderr


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_discard_of_a_run_of_another_machine(
    tmp_path: Path, remote: tuple[Path, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """No run folder here: discard deletes the branch diff fetched, and keeps the pushed
    one unless remote=True."""
    bare, url = remote
    run_id = "01jd3k0000000000000000001a"
    branch = f"cc-executor/{run_id}"
    worker = tmp_path / "worker"  # what a fleet worker pushed
    git(tmp_path, "clone", "-q", url, str(worker))
    git(worker, "checkout", "-q", "-b", branch)
    (worker / "made.txt").write_text("made\n")
    git(worker, "add", "-A")
    git(worker, "-c", "user.name=W", "-c", "user.email=w@example.com", "commit", "-q", "-m", "w")
    git(worker, "push", "-q", "origin", branch)
    mine = tmp_path / "mine"
    git(tmp_path, "clone", "-q", url, str(mine))
    monkeypatch.chdir(mine)
    assert "+made" in workspace_diff(run_id)
    assert git(mine, "branch", "--list", branch)  # fetched by the diff

    done = workspace_discard(run_id)
    assert done == {
        "run_id": run_id,
        "discarded": True,
        "branch_deleted": True,
        "remote_deleted": [],
    }
    assert git(mine, "branch", "--list", branch) == ""
    assert git(bare, "rev-parse", branch)  # the pushed branch stays by default

    done = workspace_discard(run_id, remote=True)
    assert done["branch_deleted"] is False
    assert done["remote_deleted"] == ["origin"]
    assert git(bare, "branch", "--list", branch) == ""
    with pytest.raises(WorkspaceError, match=f"no branch {branch} in .* or its remotes"):
        workspace_discard(run_id, remote=True)


@pytest.mark.slow  # over 0.3 s: real git repositories
async def test_discard_remote_of_a_run_of_this_machine(
    tmp_path: Path, remote: tuple[Path, str]
) -> None:
    """The run's own receipt: remote=True deletes the branch it pushed, from its clone."""
    bare, url = remote
    result = await run(
        "go", agent="command", agent_spec=_writer(tmp_path), repo=url, workspace="worktree",
        heartbeat_s=0,
    )  # fmt: skip
    assert result.ok, result.error
    assert result.workspace is not None
    branch = f"cc-executor/{result.run_id}"
    assert git(bare, "rev-parse", branch) == result.workspace["commit"]
    done = workspace_discard(result.run_id, remote=True)
    assert done == {"run_id": result.run_id, "discarded": True, "remote_deleted": [url]}
    assert git(bare, "branch", "--list", branch) == ""
    assert not Path(result.workspace["path"]).exists()


@pytest.mark.slow  # over 0.3 s: real git repositories
async def test_a_clone_whose_config_gained_a_redirect_is_not_pushed(
    tmp_path: Path, remote: tuple[Path, str]
) -> None:
    """An agent that adds ``url.*.insteadOf`` or ``http.*`` to the clone's configuration
    could send the push (and the machine's credentials) elsewhere: nothing is pushed."""
    bare, url = remote
    code = (
        "import subprocess; subprocess.run(['git', 'config', '--local', "
        "'url.file:///elsewhere/.insteadOf', 'file://'], check=True); print('ok')"
    )
    spec = tmp_path / "redirect.toml"
    spec.write_text(f"command = [\"{sys.executable}\", \"-c\", '''{code}''']\n")
    result = await run(
        "go", agent="command", agent_spec=spec, repo=url, workspace="worktree", heartbeat_s=0
    )
    assert result.ok, result.error
    assert result.workspace is not None
    assert result.workspace["pushed"] is False
    assert "gained url.file:///elsewhere/.insteadof" in result.workspace["push_error"]
    assert any("could not be pushed" in w for w in result.warnings)
    assert git(bare, "branch", "--list", f"cc-executor/{result.run_id}") == ""


@pytest.mark.slow  # over 0.3 s: real git repositories
async def test_a_task_of_a_list_clones_its_repo(tmp_path: Path, remote: tuple[Path, str]) -> None:
    from cc_executor.tasks import ListStatus, run_tasks

    _, url = remote
    spec = _writer(tmp_path)
    tasks = tmp_path / "tasks.md"
    tasks.write_text(
        "## Task 1: Clone\n```yaml\nagent: command\n"
        f"agent_spec: {spec}\nrepo: {url}\nref: other\n```\nGo\n"
    )
    done = await run_tasks(tasks)
    assert done.status is ListStatus.OK, done
    task = done.tasks["clone"]
    clone = Path(task.result.strip())  # the agent printed its cwd
    assert clone.parts[-2:] == (task.run_id, "repo")
    assert (clone / "other.txt").exists()


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_a_checkpoint_is_pushed_without_touching_the_worktree_and_another_clone_goes_on(
    tmp_path: Path, remote: tuple[Path, str]
) -> None:
    """The fleet's checkpoints (docs/fleet.md, Data movement): what the worktree holds is
    pushed to the run's branch while the agent's index, HEAD and branch stay as they are;
    a second clone goes on from that branch, its receipt keeping the first base."""
    from cc_executor._run._repo import fetch_continuation, push_checkpoint
    from cc_executor._run._workspace import create_workspace, finish_workspace

    bare, url = remote
    base = git(bare, "rev-parse", "other")
    branch = "cc-executor/ckpt"
    first = tmp_path / "first"
    clone_repo(url, "other", str(first / "repo"))
    ws = create_workspace("worktree", str(first / "repo"), "ckpt1", str(first), branch=branch)
    (Path(ws.path) / "work.txt").write_text("half done\n")
    pushed = push_checkpoint(ws, url, None)
    assert pushed is not None
    commit, tree = pushed
    assert git(bare, "rev-parse", branch) == commit
    assert git(bare, "show", f"{branch}:work.txt") == "half done"
    assert git(Path(ws.path), "status", "--porcelain") == "?? work.txt"  # untouched
    assert git(Path(ws.path), "rev-parse", "HEAD", branch).split() == [base, base]
    assert push_checkpoint(ws, url, tree) is None  # nothing new: no push
    assert sorted(os.listdir(first)) == ["repo", "workspace"]  # its private index is gone

    second = tmp_path / "second"
    clone_repo(url, "other", str(second / "repo"))
    assert fetch_continuation(str(second / "repo"), "cc-executor/none") is None
    found = fetch_continuation(str(second / "repo"), branch)
    assert found == (commit, base)
    again = create_workspace(
        "worktree", str(second / "repo"), "ckpt2", str(second),
        base=found[1], branch=branch, continue_from=found[0],
    )  # fmt: skip
    assert (Path(again.path) / "work.txt").read_text() == "half done\n"
    (Path(again.path) / "more.txt").write_text("the rest\n")
    receipt = finish_workspace(again, "ok")
    assert receipt["base"] == base
    assert receipt["branch"] == branch
    assert sorted(c["path"] for c in receipt["changes"]) == ["more.txt", "work.txt"]


@pytest.mark.parametrize(
    ("options", "said"),
    [
        ({"repo_branch": "cc-executor/x"}, "repo_branch needs repo"),
        ({"repo": "file:///a.git", "repo_branch": "cc-executor/x"}, "needs workspace="),
        ({"repo": "file:///a.git", "repo_continue": True}, "repo_continue needs repo_branch"),
        (
            {"repo": "file:///a.git", "workspace": "worktree", "repo_branch": "-x"},
            "ref must be",
        ),
    ],
)
def test_repo_branch_options_that_cannot_work_are_refused(
    options: dict[str, object], said: str
) -> None:
    from cc_executor._run._options import RunOptions

    with pytest.raises(ValueError, match=said):
        RunOptions.from_kwargs(options)
