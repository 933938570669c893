"""What the sender's own repository says: its top level, HEAD, whether the work is
committed and pushed. Git runs with argv lists only, and only in the sender's repository:
another project's repository is never asked anything (its configuration can run commands,
e.g. ``core.fsmonitor`` on ``git status``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from cc_executor._run._git import ALWAYS, git_c_args, git_env, git_overrides
from cc_executor.notify._errors import GitStateError

# We address the repository by path; variables a git hook may have set must not redirect us.
_GIT_ENV_DROP = ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_PREFIX")
_GIT_TIMEOUT = 30.0


def _git(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in _GIT_ENV_DROP}
    env.update(LC_ALL="C", GIT_TERMINAL_PROMPT="0", GIT_OPTIONAL_LOCKS="0")
    git = shutil.which("git", path=env.get("PATH", os.defpath))
    if git is None:
        raise GitStateError("git is not installed (not found on PATH)")
    # Even the sender's own configuration must not make our status run a program.
    env.update(git_env(git_overrides(str(cwd), env=env, git=git), env))
    try:
        return subprocess.run(
            [git, *git_c_args(list(ALWAYS)), "-C", str(cwd), *args],
            capture_output=True,
            text=True,
            errors="replace",
            env=env,
            timeout=_GIT_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except OSError as exc:
        raise GitStateError(f"git cannot be started: {exc.strerror}") from None
    except subprocess.TimeoutExpired:
        raise GitStateError(f"git {args[0]} took longer than {_GIT_TIMEOUT:.0f}s") from None


def toplevel(path: Path) -> Path | None:
    """The top-level folder of the git work tree containing ``path``, or None when
    ``path`` is not inside one (or git is missing)."""
    try:
        done = _git(path, "rev-parse", "--show-toplevel")
    except GitStateError:
        return None
    if done.returncode != 0 or not done.stdout.strip():
        return None
    return Path(done.stdout.strip())


@dataclass(frozen=True, slots=True)
class RepoState:
    """The sender's repository as ``issue_fixed`` needs it.

    ``head`` is the full SHA of HEAD; ``dirty`` lists tracked paths with uncommitted
    changes (staged or not; untracked files do not count); ``remotes`` names the remotes;
    ``pushed`` is True when HEAD is contained in at least one remote-tracking branch (as
    of the last fetch or push: git is not asked to contact the remote).
    """

    root: Path
    head: str
    dirty: tuple[str, ...]
    remotes: tuple[str, ...]
    pushed: bool


def repo_state(root: Path) -> RepoState:
    """Read :class:`RepoState` of the repository at ``root``. Raises
    :class:`GitStateError` when ``root`` has no commit or git fails."""
    head = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if head.returncode != 0:
        raise GitStateError(f"{root} has no commit yet: commit the fix first")
    status = _git(root, "status", "--porcelain=v1", "-z", "--untracked-files=no")
    if status.returncode != 0:
        raise GitStateError(f"git status failed in {root}: {status.stderr.strip()}")
    dirty = _changed_paths(status.stdout)
    remotes = _git(root, "remote")
    containing = _git(
        root, "for-each-ref", "--contains", "HEAD", "--format=%(refname)", "refs/remotes"
    )
    return RepoState(
        root=root,
        head=head.stdout.strip(),
        dirty=dirty,
        remotes=tuple(remotes.stdout.split()),
        pushed=containing.returncode == 0 and bool(containing.stdout.strip()),
    )


def _changed_paths(porcelain_z: str) -> tuple[str, ...]:
    # "XY path" entries; a rename or copy is followed by an extra entry: its old path.
    paths: list[str] = []
    entries = iter(porcelain_z.split("\0"))
    for entry in entries:
        if len(entry) < 4:
            continue
        paths.append(entry[3:])
        if "R" in entry[:2] or "C" in entry[:2]:
            next(entries, None)
    return tuple(paths)


def require_committed_and_pushed(state: RepoState, *, allow_unpushed: bool) -> None:
    """Raise :class:`GitStateError` when ``state`` has uncommitted changes to tracked
    files, or when a remote exists but HEAD is on no remote-tracking branch and
    ``allow_unpushed`` is False. A repository without remotes passes the second check."""
    if state.dirty:
        shown = ", ".join(state.dirty[:5]) + (", ..." if len(state.dirty) > 5 else "")
        raise GitStateError(
            f"refusing to announce a fix: {len(state.dirty)} tracked file(s) in {state.root} "
            f"have uncommitted changes ({shown}); commit them (the notification names "
            f"HEAD {state.head[:12]}, which does not contain them)"
        )
    if state.remotes and not state.pushed and not allow_unpushed:
        raise GitStateError(
            f"refusing to announce a fix: HEAD {state.head[:12]} is not on any "
            f"remote-tracking branch of {', '.join(state.remotes)} (not pushed?); push it, "
            "or pass --allow-unpushed if the receiver reads this repository directly"
        )


def head_sha(root: Path) -> str | None:
    """The full SHA of HEAD in the repository at ``root``, or None when it has no commit."""
    try:
        done = _git(root, "rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    except GitStateError:
        return None
    if done.returncode != 0:
        return None
    return done.stdout.strip() or None
