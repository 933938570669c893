"""Our own git calls obey no program a repository's configuration names (issue 18 F8.8)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._run._git import git_env, git_overrides, in_git_tree
from cc_executor._run._runner import git_snapshot
from cc_executor.notify._git import repo_state

#: Configuration entries that each make git run a program on `status` or `diff`.
HOSTILE = ("core.fsmonitor", "filter.ev.clean", "diff.ev.textconv", "core.pager")


def hostile_repo(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose .git/config makes git run a script (writing a marker) from every
    entry of HOSTILE, with a modified file that the clean filter would read."""
    repo, marker = tmp_path / "repo", tmp_path / "marker"
    script = tmp_path / "evil"
    script.write_text(f"#!{sys.executable}\nopen({str(marker)!r}, 'a').write('ran\\n')\n")
    script.chmod(0o755)

    def git(*args: str) -> None:
        subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)

    repo.mkdir()
    git("init", "-q")
    (repo / ".gitattributes").write_text("*.txt filter=ev diff=ev\n")
    (repo / "a.txt").write_text("one\n")
    git("add", ".")
    git("-c", "user.email=a@b", "-c", "user.name=a", "commit", "-qm", "first")
    for key in HOSTILE:
        git("config", key, str(script))
    git("config", "alias.st", f"!{script}")
    (repo / "a.txt").write_text("two\n")
    # An old mtime makes the index entry stale: git status must then read the content.
    os.utime(repo / "a.txt", (946684800, 946684800))
    return repo, marker


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_the_hostile_repository_does_run_programs_without_the_overrides(
    tmp_path: Path,
) -> None:
    """The reproduction: plain git runs the script (so the tests below test something)."""
    repo, marker = hostile_repo(tmp_path)
    subprocess.run(["git", "-C", str(repo), "status"], check=True, capture_output=True)
    assert marker.exists()


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_our_snapshot_runs_nothing_the_repository_names(tmp_path: Path) -> None:
    repo, marker = hostile_repo(tmp_path)
    snapshot = git_snapshot(str(repo))
    assert isinstance(snapshot, tuple), snapshot
    assert snapshot[1] == {str(repo / "a.txt"): " M"}
    state = repo_state(repo)
    assert state.dirty == ("a.txt",)
    assert not marker.exists()


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_the_overrides_reach_a_command_through_its_environment(tmp_path: Path) -> None:
    """What an exec run gets: status works; a diff through the repository's textconv, and
    its alias, fail instead of running the script (an emptied program is no program)."""
    repo, marker = hostile_repo(tmp_path)
    overrides = git_overrides(str(repo))
    keys = {key for key, _ in overrides}
    assert {*HOSTILE, "alias.st", "core.hooksPath"} <= keys
    env = {**os.environ, **git_env(overrides, os.environ)}

    def git(*args: str) -> subprocess.CompletedProcess[bytes]:
        command = ["git", "-C", str(repo), *args]
        return subprocess.run(command, env=env, capture_output=True, check=False)

    for args, works in ((["status"], True), (["diff", "--stat"], True), (["diff"], False)):
        done = git(*args)
        assert (done.returncode == 0) == works, (args, done.stderr)
    assert git("st").returncode != 0
    assert not marker.exists()


def test_the_environment_adds_after_the_callers_own_entries() -> None:
    env = git_env([("core.fsmonitor", "false")], {"GIT_CONFIG_COUNT": "2"})
    assert env == {
        "GIT_CONFIG_COUNT": "3",
        "GIT_CONFIG_KEY_2": "core.fsmonitor",
        "GIT_CONFIG_VALUE_2": "false",
    }


@pytest.mark.parametrize("count", ["", "x", "-1", "9" * 9])
def test_a_strange_count_is_started_over(count: str) -> None:
    assert git_env([("k.k", "v")], {"GIT_CONFIG_COUNT": count})["GIT_CONFIG_COUNT"] == "1"


def test_an_empty_dot_git_folder_is_no_repository(tmp_path: Path) -> None:
    # Codex CLI's sandbox leaves an empty /tmp/.git: every folder under /tmp looked like a
    # git work tree, and --workspace worktree there failed in git instead of saying so.
    inner = tmp_path / "outer" / "inner"
    inner.mkdir(parents=True)
    (tmp_path / "outer" / ".git").mkdir()
    above = subprocess.run(
        ["git", "-C", str(tmp_path), "rev-parse"], capture_output=True, check=False
    )
    if above.returncode == 0:
        pytest.skip(f"{tmp_path} is inside a real git repository")
    assert not in_git_tree(str(inner))  # as git says: "not a git repository"
    subprocess.run(["git", "init", "-q", str(tmp_path / "outer")], check=True)
    assert in_git_tree(str(inner))
    (inner / ".git").write_text("gitdir: /elsewhere\n")  # a worktree's .git file
    assert in_git_tree(str(inner))
