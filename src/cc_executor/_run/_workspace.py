"""Isolated workspaces: a run in a git worktree (or a copy) of its own, and its change receipt.

With ``workspace="worktree"`` a run whose cwd is in a git repository runs in a fresh
``git worktree`` on the branch ``cc-executor/<run-id>``, made from the repository's HEAD
(or ``workspace_base``), in the run folder (``runs/<id>/workspace/<repo name>``). The
user's own tree is never written. When the run ends, whatever its status, everything the
agent left in the worktree (tool writes and Bash side effects alike: ``git add -A``) is
committed on that branch, and the run's result carries the *change receipt*: branch,
commit, base, the patch file (``workspace.patch`` in the run folder, receipted in the
history) and the changed files as git sees them.

``workspace="copy"`` does the same for a folder outside git: the folder is copied (refused
above :data:`COPY_MAX_BYTES`) and made a repository of its own, whose first commit is the
base.

Every git call goes through :class:`_Git`, which applies :mod:`cc_executor._run._git`'s
overrides (no hooks, fsmonitor, filters, textconv or helpers named by the repository's
configuration). The run's commit is made with ``git commit-tree`` on the tree ``git add
-A`` wrote (no hook can run: what ``--no-verify`` asks of ``git commit``, which the copy's
first commit uses), never signed (``commit.gpgsign=false``), with the fixed identity
``cc-executor <cc-executor@localhost>`` unless git already has one.

The operations on a finished workspace (:func:`workspace_list`, :func:`workspace_diff`,
:func:`workspace_merge`, :func:`workspace_discard`, :func:`workspace_prune`) find it by
run id through ``workspace.json`` in the run's folder.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cc_executor._errors import WorkspaceConflict, WorkspaceError
from cc_executor._run._git import ALWAYS, git_c_args, git_env, git_overrides, in_git_tree

if TYPE_CHECKING:
    from cc_executor._store import HistoryStore, RunRecord

#: The modes of the ``workspace`` option.
MODES = ("worktree", "copy")
#: Branches of workspaces are ``cc-executor/<run id>``.
BRANCH_PREFIX = "cc-executor/"
#: A copy workspace is refused above this many bytes (apparent sizes of the files).
COPY_MAX_BYTES = 1 << 30
#: The identity of cc-executor's commits when git has none configured.
IDENTITY = ("cc-executor", "cc-executor@localhost")
#: Seconds any one git call may take (a 10,000-file checkout under load takes seconds).
GIT_TIMEOUT_S = 300.0
#: The receipt file in the run folder, and the patch beside it.
RECEIPT_NAME = "workspace.json"
PATCH_NAME = "workspace.patch"

_KINDS = {
    "A": "added",
    "C": "added",
    "M": "modified",
    "D": "deleted",
    "R": "renamed",
    "T": "type_changed",
}


class _Git:
    """git in one repository, without obeying what its configuration would make git run."""

    def __init__(
        self, cwd: str, executable: str | None = None, *, git_dir: str | None = None
    ) -> None:
        found = executable or shutil.which("git")
        if found is None:
            raise WorkspaceError("git is not installed (needed for a workspace)")
        self.git = found
        self.cwd = cwd
        base = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
        base["GIT_TERMINAL_PROMPT"] = "0"
        if git_dir is not None:
            # The repository and work tree named, not found: the agent could rewrite the
            # work tree's .git (a file naming a git folder of its own, with a filter) and
            # the configuration (core.worktree), but not these.
            base["GIT_DIR"] = git_dir
            base["GIT_WORK_TREE"] = cwd
        self.env = {**base, **git_env(git_overrides(cwd, env=base, git=found), base)}
        self._identity: dict[str, str] | None = None

    def run(
        self,
        *args: str,
        cwd: str | None = None,
        check: bool = True,
        env: Mapping[str, str] | None = None,
        stdout: Any = subprocess.PIPE,
        input: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        argv = [self.git, *git_c_args(list(ALWAYS)), "-c", "commit.gpgsign=false", *args]
        try:
            done = subprocess.run(
                argv,
                cwd=cwd or self.cwd,
                stdout=stdout,
                stderr=subprocess.PIPE,
                input=input,
                stdin=None if input is not None else subprocess.DEVNULL,
                env={**self.env, **(env or {})},
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise WorkspaceError(f"git {args[0]} took over {GIT_TIMEOUT_S:g} s") from None
        except OSError as exc:
            raise WorkspaceError(f"git {args[0]} could not run: {exc.strerror}") from None
        if check and done.returncode != 0:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()
            raise WorkspaceError(f"git {args[0]} failed: {said[-1] if said else done.returncode}")
        return done

    def out(self, *args: str, cwd: str | None = None, env: Mapping[str, str] | None = None) -> str:
        return os.fsdecode(self.run(*args, cwd=cwd, env=env).stdout).strip()

    def identity(self) -> dict[str, str]:
        """The variables giving commits the fixed identity when git has none for them."""
        if self._identity is None:
            found = self.run(
                "config", "--get-regexp", r"^user\.(name|email)$", check=False
            ).stdout.split(b"\n")
            keys = {line.split(b" ", 1)[0] for line in found if b" " in line.strip()}
            identity: dict[str, str] = {}
            if not {b"user.name", b"user.email"} <= keys:
                identity = {
                    "GIT_AUTHOR_NAME": IDENTITY[0],
                    "GIT_AUTHOR_EMAIL": IDENTITY[1],
                    "GIT_COMMITTER_NAME": IDENTITY[0],
                    "GIT_COMMITTER_EMAIL": IDENTITY[1],
                }
            self._identity = identity  # set once: another thread may be reading it
        return self._identity


@dataclass
class Workspace:
    """A workspace made for a run (see the module docstring). ``repo``: the user's work tree
    (worktree mode) or folder (copy mode); ``path``: the workspace's top; ``cwd``: the run's
    cwd inside it; ``start``: the commit the branch started from (the receipt's ``base``);
    ``left_behind``: the user's uncommitted files not carried; ``carried``: those carried."""

    run_id: str
    mode: str
    repo: str
    path: str
    cwd: str
    branch: str
    start: str
    run_dir: str
    left_behind: list[str] = field(default_factory=list)
    carried: list[str] = field(default_factory=list)
    git: _Git | None = field(default=None, repr=False)
    #: The workspace's git folder, read before the agent started (see finish_workspace).
    git_dir: str | None = None
    receipt: dict[str, Any] | None = None
    #: The status of the user's tree, read beside the run's start (see create_workspace).
    pending: concurrent.futures.Future[list[tuple[str, str]]] | None = field(
        default=None, repr=False
    )

    #: Why the status of the user's tree could not be read (the list is then unknown).
    status_problem: str | None = None

    def settle(self) -> None:
        """Wait for the status of the user's tree, read in the background, and keep its
        files as ``left_behind``; a git failure there is noted, never raised (the commit
        does not depend on it)."""
        pending, self.pending = self.pending, None
        if pending is None:
            return
        try:
            self.left_behind = [p for _, p in pending.result()]
        except WorkspaceError as exc:
            self.status_problem = str(exc)

    def warnings(self) -> list[str]:
        """What the run's result should say about the user's uncommitted changes."""
        self.settle()
        if self.status_problem is not None:
            return [
                f"the uncommitted changes of {self.repo} that were not carried into the "
                f"workspace are unknown: {self.status_problem}"
            ]
        if not self.left_behind:
            return []
        shown = ", ".join(self.left_behind[:20])
        more = f" and {len(self.left_behind) - 20} more" if len(self.left_behind) > 20 else ""
        return [
            f"uncommitted changes of {self.repo} were not carried into the workspace "
            f"(pass carry_changes, --carry-changes, to carry them): {shown}{more}"
        ]


def check_workspace_options(o: Any) -> None:
    """``ValueError`` for workspace options that cannot work, before anything runs (no git
    process: the console's early start checks options too)."""
    mode = getattr(o, "workspace", None)
    base = getattr(o, "workspace_base", None)
    carry = getattr(o, "carry_changes", False)
    if mode is None:
        if base is not None or carry:
            which = "workspace_base" if base is not None else "carry_changes"
            raise ValueError(f"{which} needs workspace='worktree' (--workspace worktree)")
        return
    if mode not in MODES:
        raise ValueError(f"workspace must be one of {', '.join(MODES)}, got {mode!r}")
    if base is not None and (not base or base.startswith("-")):
        # Passed to git as a revision: one that reads as an option is refused.
        raise ValueError(f"workspace_base must be a git revision, got {base!r}")
    if mode == "copy" and (base is not None or carry):
        raise ValueError("workspace_base and carry_changes need workspace='worktree'")
    if base is not None and carry:
        raise ValueError(
            "carry_changes carries the changes made on HEAD: it cannot be combined with "
            "workspace_base"
        )
    cwd = getattr(o, "cwd", None)
    folder = os.path.abspath(os.fspath(cwd) if cwd else os.getcwd())
    # With a repo, the run's cwd is its clone, made when it starts.
    in_clone = getattr(o, "repo", None) is not None
    if mode == "worktree" and not in_clone and os.path.isdir(folder) and not in_git_tree(folder):
        raise ValueError(
            f"workspace worktree: {folder} is not in a git repository "
            "(use workspace='copy', --workspace copy, for a plain folder)"
        )


# -- making a workspace ------------------------------------------------------------------


def _status_paths(git: _Git, top: str) -> list[tuple[str, str]]:
    """``(code, path)`` of every changed or untracked file of the work tree at ``top``."""
    listing = git.run("status", "--porcelain=v1", "-z", "--untracked-files=all", cwd=top).stdout
    entries: list[tuple[str, str]] = []
    records = iter(listing.split(b"\0"))
    for entry in records:
        if len(entry) < 4:
            continue
        code = entry[:2].decode("ascii", "replace")
        entries.append((code, os.fsdecode(entry[3:])))
        if "R" in code or "C" in code:
            next(records, None)
    return entries


def _status_and_identity(git: _Git, top: str) -> list[tuple[str, str]]:
    """:func:`_status_paths`, and the identity of the commit at the end looked up already."""
    git.identity()
    return _status_paths(git, top)


def _carry(git: _Git, top: str, head: str, dirty: list[tuple[str, str]], run_dir: str) -> str:
    """A commit on ``head`` holding the work tree's uncommitted changes (tracked ones through
    ``git stash create``, untracked ones added to a private index): the user's index and
    files are left as they are."""
    stash = git.out("stash", "create", cwd=top)
    index = os.path.join(run_dir, "carry.index")
    env = {"GIT_INDEX_FILE": index}
    try:
        git.run("read-tree", f"{stash or head}^{{tree}}", cwd=top, env=env)
        untracked = [path for code, path in dirty if code == "??"]
        if untracked:
            listing = b"".join(os.fsencode(p) + b"\0" for p in untracked)
            git.run("update-index", "--add", "-z", "--stdin", cwd=top, env=env, input=listing)
        tree = git.out("write-tree", cwd=top, env=env)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(index)
    message = "cc-executor: uncommitted changes carried into the workspace"
    done = git.run("commit-tree", tree, "-p", head, "-m", message, cwd=top, env=git.identity())
    return os.fsdecode(done.stdout).strip()


def create_workspace(
    mode: str,
    cwd: str,
    run_id: str,
    run_dir: str,
    *,
    base: str | None = None,
    carry: bool = False,
    branch: str | None = None,
    continue_from: str | None = None,
) -> Workspace:
    """Make the workspace of run ``run_id`` (see the module docstring); ``WorkspaceError``
    saying why when it cannot be made. ``branch``: its name (default
    ``cc-executor/<run_id>``); ``continue_from``: a commit after ``base`` (an earlier
    attempt's work) that the worktree starts on, the receipt's base staying ``base``."""
    if mode == "copy":
        return _create_copy(cwd, run_id, run_dir)
    git = _Git(cwd)
    ref = base or "HEAD"
    # One git process for both (each costs milliseconds on a loaded machine).
    found = git.run("rev-parse", "--show-toplevel", f"{ref}^{{commit}}", "--", check=False)
    lines = os.fsdecode(found.stdout).splitlines()
    if not lines:
        git.out("rev-parse", "--show-toplevel")  # says why (not a repository, ...)
    top = lines[0]
    if found.returncode != 0 or len(lines) < 2:
        if base is None:
            raise WorkspaceError(f"{top} has no commit yet: a worktree needs one to start from")
        raise WorkspaceError(f"workspace_base: {base!r} is not a commit of {top}")
    start = lines[1]
    sub = os.path.relpath(os.path.realpath(cwd), os.path.realpath(top))
    path = os.path.join(run_dir, "workspace", os.path.basename(top) or "repo")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    branch = branch or BRANCH_PREFIX + run_id
    carried: list[str] = []
    pending = None
    if carry:
        dirty = _status_paths(git, top)
        if dirty:
            start = _carry(git, top, start, dirty, run_dir)
            carried = [p for _, p in dirty]
    git.run("worktree", "add", "-q", "-b", branch, path, continue_from or start, cwd=top)
    git_dir = git.out("rev-parse", "--absolute-git-dir", cwd=path)
    if not carry:
        # The status of the user's tree (only for the list of what is left out: nothing
        # depends on it) is read beside the agent's start, as the runner's own snapshot
        # is; on a large repository it takes a while. finish_workspace collects it.
        pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="workspace")
        pending = pool.submit(_status_and_identity, git, top)
        pool.shutdown(wait=False)
    return Workspace(
        run_id=run_id,
        mode="worktree",
        repo=top,
        path=path,
        cwd=os.path.normpath(os.path.join(path, sub)),
        branch=branch,
        start=start,
        run_dir=run_dir,
        carried=carried,
        git=git,
        pending=pending,
        git_dir=git_dir,
    )


def _tree_size(folder: str, limit: int) -> int:
    """The apparent size of the files under ``folder``, counting stops past ``limit``."""
    total = 0
    for root, dirs, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
        if total > limit:
            return total
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(root, d))]
    return total


def _copy_regular(src: str, dst: str) -> object:
    """Copy a regular file; refuse anything else (a device such as a root file system's
    ``dev/zero`` would be read without end, past the size guard, which saw 0 bytes)."""
    if not stat.S_ISREG(os.lstat(src).st_mode):
        raise OSError(errno.EINVAL, f"{src} is not a regular file (a device, FIFO or socket)")
    return shutil.copy2(src, dst)


def _create_copy(cwd: str, run_id: str, run_dir: str) -> Workspace:
    folder = os.path.abspath(cwd)
    size = _tree_size(folder, COPY_MAX_BYTES)
    if size > COPY_MAX_BYTES:
        raise WorkspaceError(
            f"workspace copy: {folder} holds more than {COPY_MAX_BYTES >> 20} MiB "
            f"(at least {size >> 20} MiB): too large to copy for a run; make it a git "
            "repository and use workspace='worktree'"
        )
    path = os.path.join(run_dir, "workspace", os.path.basename(folder) or "folder")
    try:
        shutil.copytree(folder, path, symlinks=True, copy_function=_copy_regular)
    except (OSError, shutil.Error) as exc:
        raise WorkspaceError(f"workspace copy: could not copy {folder}: {exc}") from None
    git = _Git(path)
    git.run("init", "-q", path)
    git.run("add", "-A", cwd=path)
    git.run(
        "commit", "-q", "--no-verify", "--allow-empty", "-m", f"cc-executor: copy of {folder}",
        cwd=path, env=git.identity(),
    )  # fmt: skip
    branch = BRANCH_PREFIX + run_id
    git.run("checkout", "-q", "-b", branch, cwd=path)
    start = git.out("rev-parse", "HEAD", cwd=path)
    return Workspace(
        run_id=run_id,
        mode="copy",
        repo=folder,
        path=path,
        cwd=path,
        branch=branch,
        start=start,
        run_dir=run_dir,
        git=git,
        git_dir=os.path.join(path, ".git"),
    )


# -- finishing: the commit and the receipt -----------------------------------------------


def _changes(git: _Git, cwd: str, base: str, commit: str) -> list[dict[str, str]]:
    listing = git.run(
        "diff", "--name-status", "-z", "-M", "--no-ext-diff", "--no-textconv", base, commit,
        cwd=cwd,
    ).stdout  # fmt: skip
    fields = iter(listing.split(b"\0"))
    changes: list[dict[str, str]] = []
    for status in fields:
        if not status:
            continue
        letter = status[:1].decode("ascii", "replace")
        kind = _KINDS.get(letter, "modified")
        first = os.fsdecode(next(fields, b""))
        if letter in "RC":
            second = os.fsdecode(next(fields, b""))
            entry = {"path": second, "kind": kind}
            if letter == "R":
                entry["old_path"] = first
            changes.append(entry)
        else:
            changes.append({"path": first, "kind": kind})
    return changes


def finish_workspace(ws: Workspace, status: str) -> dict[str, Any]:
    """Commit whatever the run left in the workspace on its branch, write the patch and
    ``workspace.json`` in the run folder, and return the change receipt."""
    # A new _Git, not the one made at the start: the configuration is read again (the agent
    # may have added a filter to it) with the git folder pinned (see _Git).
    git = _Git(ws.path, git_dir=ws.git_dir)
    path = ws.path
    ref = f"refs/heads/{ws.branch}"
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        # The branch's tip (the agent may have committed on it itself), read meanwhile.
        tips = pool.submit(git.out, "rev-parse", ref, f"{ref}^{{tree}}", cwd=path)
        skipped = _add_all(git, path)
        tree = git.out("write-tree", cwd=path)
        tip, tip_tree = tips.result().splitlines()
    if tree != tip_tree:
        # The tree is written already: commit-tree makes the commit without reading the
        # work tree again (git commit would), and runs no hook at all (so, --no-verify).
        message = f"cc-executor run {ws.run_id} ({status})"
        commit = git.out(
            "commit-tree", "--no-gpg-sign", tree, "-p", tip, "-m", message,
            cwd=path, env=git.identity(),
        )  # fmt: skip
        git.run("update-ref", "-m", message, f"refs/heads/{ws.branch}", commit, tip, cwd=path)
    else:
        commit = tip
    patch_path = os.path.join(ws.run_dir, PATCH_NAME)
    with open(patch_path, "wb") as patch, concurrent.futures.ThreadPoolExecutor(1) as pool:
        changes = pool.submit(_changes, git, path, ws.start, commit)
        git.run(
            "diff", "--binary", "--full-index", "-M", "--no-color", "--no-ext-diff",
            "--no-textconv", ws.start, commit, cwd=path, stdout=patch,
        )  # fmt: skip
        changed = changes.result()
    receipt: dict[str, Any] = {
        "mode": ws.mode,
        "branch": ws.branch,
        "commit": commit,
        "base": ws.start,
        "patch_path": patch_path,
        "changes": changed,
        "path": path,
        "repo": ws.repo,
    }
    if ws.carried:
        receipt["carried"] = list(ws.carried)
    if skipped:
        receipt["skipped"] = skipped
    ws.settle()
    if ws.left_behind:
        receipt["left_behind"] = list(ws.left_behind)
    ws.receipt = receipt
    _write_json(os.path.join(ws.run_dir, RECEIPT_NAME), {"run_id": ws.run_id, **receipt})
    return receipt


def write_receipt(path: str, run_id: str, receipt: Mapping[str, Any]) -> None:
    """Write ``receipt`` as the run's ``workspace.json`` (again, once it changed)."""
    _write_json(path, {"run_id": run_id, **receipt})


def _add_all(git: _Git, path: str) -> list[str]:
    """``git add -A`` in the workspace; the git repositories without a commit that the
    agent made in it (``git init``, ``cargo new``), which git refuses to add, are left out
    rather than losing the whole commit. Returns those left out."""
    done = git.run("add", "-A", cwd=path, check=False)
    if done.returncode == 0:
        return []
    said = done.stderr.decode("utf-8", "replace")
    empty = re.findall(r"^error: '(.+)/' does not have a commit checked out$", said, re.M)
    if not empty:
        lines = said.strip().splitlines()
        raise WorkspaceError(f"git add failed: {lines[-1] if lines else done.returncode}")
    excluded = [f":(exclude,literal){p}" for p in empty]
    git.run("add", "-A", "--", ".", *excluded, cwd=path)
    return empty


def _write_json(path: str, data: Mapping[str, Any]) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as out:
        json.dump(data, out, indent=2)
        out.write("\n")
    os.replace(tmp, path)


def merge_commits(repo: str, commits: Sequence[str], message: str) -> str:
    """One commit holding ``commits`` merged in this order (the task lists' dependencies):
    one already contained is skipped, one containing the rest is taken as it is, others are
    merged with ``git merge-tree`` (no work tree touched) into a merge commit.
    :class:`~cc_executor.WorkspaceConflict` names the files of the first conflict."""
    if not commits:
        raise ValueError("merge_commits needs at least one commit")
    git = _Git(repo)

    def contains(ancestor: str, descendant: str) -> bool:
        done = git.run("merge-base", "--is-ancestor", ancestor, descendant, check=False)
        return done.returncode == 0

    current = commits[0]
    for commit in commits[1:]:
        if contains(commit, current):
            continue
        if contains(current, commit):
            current = commit
            continue
        trial = git.run("merge-tree", "--write-tree", "--name-only", "-z", current, commit,
                        check=False)  # fmt: skip
        parts = trial.stdout.split(b"\0\0", 1)[0].split(b"\0")
        if trial.returncode == 1:
            files = sorted({os.fsdecode(p) for p in parts[1:] if p})
            raise WorkspaceConflict(
                f"the changes of {current[:12]} and {commit[:12]} conflict in: {', '.join(files)}",
                files,
            )
        if trial.returncode != 0:
            raise WorkspaceError(f"git merge-tree failed: {trial.stderr.decode(errors='replace')}")
        tree = os.fsdecode(parts[0]).strip()
        current = git.out(
            "commit-tree", tree, "-p", current, "-p", commit, "-m", message, env=git.identity()
        )
    return current


def list_base(repo: str, bases: Sequence[str]) -> str:
    """Where a task list's branch starts from: the commit every task's base (``bases``)
    descends from, the HEAD its first tasks started at (a dependent task's base is its
    dependencies' changes merged)."""
    return _Git(repo).out("merge-base", "--octopus", *bases)


def set_branch(repo: str, branch: str, commit: str) -> None:
    """Point ``branch`` of ``repo`` at ``commit`` (made or moved)."""
    _Git(repo).run("branch", "-f", "-q", branch, commit)


# -- the operations on finished workspaces -----------------------------------------------

#: The history's artifacts of a workspace run: its receipt and its patch.
RECEIPT_ARTIFACT = "workspace"
PATCH_ARTIFACT = "workspace patch"


@dataclass
class _Found:
    """A run's receipt and where it came from. ``patch``: the patch as the history holds
    it, checked against its sha256 (a run whose folder is on another machine); ``host``:
    the machine the run was made on, when its folder is not on this one."""

    receipt: dict[str, Any]
    patch: bytes | None = None
    host: str | None = None


def _open_history() -> HistoryStore | None:
    """This machine's history (a shared PostgreSQL one when configured), or None."""
    from cc_executor._store import HistoryError, open_store

    try:
        return open_store()
    except (HistoryError, OSError):
        return None


def _find(run_id: str, store: HistoryStore | None) -> _Found | None:
    """Run ``run_id``'s receipt: the ``workspace.json`` of its run folder (the history's
    record of it names the folder, else the default place), else the history's copy of it
    (:func:`_history_copy`). None when neither exists; ``WorkspaceError`` when one exists
    but cannot be used."""
    from cc_executor._paths import runs_dir
    from cc_executor._store import HistoryError

    record = None
    if store is not None:
        with contextlib.suppress(HistoryError, OSError):
            record = store.get(run_id)
    run_dir = record.run_dir if record is not None and record.run_dir else runs_dir() / run_id
    path = os.path.join(run_dir, RECEIPT_NAME)
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except FileNotFoundError:
        return _history_copy(store, record) if record is not None else None
    except (OSError, ValueError) as exc:
        raise WorkspaceError(f"cannot read {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("branch"), str):
        raise WorkspaceError(f"{path} is not a workspace receipt")
    return _Found(data, host=_other_host(record))


def _other_host(record: RunRecord | None) -> str | None:
    """The machine ``record``'s run was made on, when it is not this one."""
    from cc_executor._store import HOST

    host = record.host if record is not None else None
    return host if host not in (None, HOST) else None


def _history_copy(store: HistoryStore | None, record: RunRecord) -> _Found | None:
    """The receipt of ``record``'s run from the history's copies of its files (a
    PostgreSQL history holds them for the runs of every machine, a fleet worker's
    included), each checked against the sha256 its record receipted. None when the run
    had no workspace, or is a run of this machine whose folder is gone and of which the
    history holds no copy."""
    from cc_executor._store import HistoryError

    artifacts = {a.name: a for a in record.artifacts}
    if RECEIPT_ARTIFACT not in artifacts:
        return None
    host = _other_host(record)

    def copy(name: str) -> bytes | None:
        if store is None:
            return None
        try:
            data = store.file_content(record.id, name)
        except (HistoryError, OSError) as exc:
            raise WorkspaceError(f"cannot read the history's copy of run {record.id}'s "
                                 f"{name}: {exc}") from None  # fmt: skip
        if data is not None and hashlib.sha256(data).hexdigest() != artifacts[name].sha256:
            raise WorkspaceError(
                f"the history's copy of run {record.id}'s {name} does not match its receipt "
                f"(altered?): see cc-executor verify {record.id}"
            )
        return data

    data = copy(RECEIPT_ARTIFACT)
    if data is None and host is None:
        return None
    if data is None:
        raise WorkspaceError(
            f"run {record.id} was made on {host}, and this history holds no copy of its "
            "workspace's receipt: give the fleet's PostgreSQL history (--history "
            f"postgresql://...), or run this on {host}"
        )
    try:
        receipt = json.loads(data)
    except ValueError:
        receipt = None
    if (
        not isinstance(receipt, dict)
        or receipt.get("run_id") != record.id
        or not str(receipt.get("branch")).startswith(BRANCH_PREFIX)
        or not isinstance(receipt.get("repo"), str)
    ):
        raise WorkspaceError(f"the history's copy of run {record.id}'s receipt is not its own")
    patch = copy(PATCH_ARTIFACT) if PATCH_ARTIFACT in artifacts else None
    return _Found(receipt, patch, host)


def _find_anywhere(run_id: str) -> _Found | None:
    """Run ``run_id``'s receipt from its run folder or the history (:func:`_find`), the
    history opened for this one look."""
    store = _open_history()
    try:
        return _find(run_id, store)
    finally:
        if store is not None:
            store.close()


def load_receipt(run_id: str) -> dict[str, Any]:
    """The ``workspace.json`` of run ``run_id``: from its run folder, or else the history's
    copy of it (a run of another machine on a shared PostgreSQL history), checked against
    its sha256; ``WorkspaceError`` when it has none."""
    found = _find_anywhere(run_id)
    if found is None:
        raise WorkspaceError(f"run {run_id} has no workspace (no receipt here or in the history)")
    return found.receipt


def _receipt_anywhere(run_id: str, *, fetch: bool = True) -> _Found:
    """The receipt of run ``run_id`` (see :func:`load_receipt`); for a run of another
    machine that pushed its branch, or one no history here knows, the branch
    ``cc-executor/<run_id>`` of the repository of the current folder (fetched from its
    remotes, or already there: a shared repository), and a receipt made for it (never
    with ``fetch=False``: no remote is reached)."""
    found = _find_anywhere(run_id)
    pushed = found is not None and found.host is not None and found.receipt.get("pushed")
    if fetch and (found is None or pushed) and in_git_tree(os.getcwd()):
        from cc_executor._run._repo import fetch_receipt

        try:
            return _Found(fetch_receipt(run_id, os.getcwd()))
        except WorkspaceError:
            # What the remotes said, unless the clone the run pushed from is here too.
            if found is None or not _reachable(_where(found.receipt)):
                raise
    if found is None:
        raise WorkspaceError(f"run {run_id} has no workspace (no receipt here or in the history)")
    return found


def _branch_exists(git: _Git, where: str, branch: str) -> bool:
    ref = f"refs/heads/{branch}"
    return git.run("rev-parse", "--verify", "--quiet", ref, cwd=where, check=False).returncode == 0


def _where(receipt: Mapping[str, Any]) -> str:
    """Where the workspace's branch lives: the user's repository, or the copy's own."""
    return str(receipt["repo"] if receipt.get("mode") == "worktree" else receipt["path"])


def _unreachable(run_id: str, found: _Found, where: str, *, diff: bool = True) -> WorkspaceError:
    """The error for a run whose repository (or folder) is not on this machine; ``diff``:
    say that ``workspace diff`` still shows its patch."""
    receipt = found.receipt
    if found.host and receipt.get("pushed"):
        return WorkspaceError(
            f"run {run_id}'s workspace is in a clone on {found.host}, and its branch "
            f"{receipt.get('branch')} was pushed to {receipt.get('remote')}: run this in a "
            "clone of that repository"
        )
    on = f" on {found.host}" if found.host else ""
    return WorkspaceError(
        f"run {run_id}'s workspace is in {where}{on}, which this machine cannot reach: run "
        f"this where {where} is mounted at that same path"
        + (f" (or on {found.host})" if found.host else "")
        + ("; workspace diff shows the patch the history holds" if diff else "")
    )


def _reachable(where: str) -> bool:
    """Whether the repository (or folder) ``where`` of a receipt is here: for a run of
    another machine, a folder on shared storage, seen at the same path."""
    return os.path.isdir(where)


def _patch_text(run_id: str, found: _Found, where: str) -> str:
    """The receipt's patch: the history's copy, else the patch file in the run folder."""
    if found.patch is not None:
        return found.patch.decode("utf-8", "replace")
    path = found.receipt.get("patch_path")
    if found.host is not None or not isinstance(path, str) or not os.path.isfile(path):
        raise _unreachable(run_id, found, where, diff=False)
    return Path(path).read_text(encoding="utf-8", errors="replace")


def workspace_list(repo: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """The workspaces of the git repository holding ``repo`` (default: the current folder)
    whose branch still exists: each run's receipt with ``run_id`` and ``worktree`` (whether
    its worktree is still checked out). A run of another machine in a shared repository
    shows the receipt the history holds for it."""
    folder = os.path.abspath(os.fspath(repo) if repo is not None else os.getcwd())
    git = _Git(folder)
    top = git.out("rev-parse", "--show-toplevel")
    refs = git.out("for-each-ref", "--format=%(refname:short)", f"refs/heads/{BRANCH_PREFIX}")
    worktrees: dict[str, str] = {}  # each worktree's branch ("": none)
    path = None
    for line in git.out("worktree", "list", "--porcelain").splitlines():
        if line.startswith("worktree "):
            path = line.removeprefix("worktree ")
            worktrees[path] = ""
        elif line.startswith("branch refs/heads/") and path is not None:
            worktrees[path] = line.removeprefix("branch refs/heads/")
    checked_out = {branch: path for path, branch in worktrees.items() if branch}
    found = []
    store = _open_history() if refs else None
    try:
        for branch in refs.splitlines():
            run_id = branch.removeprefix(BRANCH_PREFIX)
            try:
                known = _find(run_id, store)
            except WorkspaceError:
                known = None
            receipt: dict[str, Any] = (
                known.receipt if known is not None else {"run_id": run_id, "branch": branch,
                                                         "repo": top}
            )  # fmt: skip
            if known is None and branch in checked_out:
                receipt["path"] = checked_out[branch]  # a run no history here knows
            receipt["worktree"] = receipt.get("path") in worktrees
            found.append(receipt)
    finally:
        if store is not None:
            store.close()
    return found


def workspace_diff(run_id: str, *, fetch: bool = True) -> str:
    """The changes of run ``run_id``'s branch since its base, as a patch (git's own diff of
    the branch as it is now: a commit added on it later shows too). A run of another
    machine: its branch in the shared repository its receipt names (the history's copy of
    the receipt), or its pushed branch, fetched from the current repository's remotes
    (never with ``fetch=False``). Where the branch cannot be reached, the patch the receipt
    names (the history's copy of it for a run of another machine)."""
    found = _receipt_anywhere(run_id, fetch=fetch)
    receipt = found.receipt
    where = _where(receipt)
    if not _reachable(where):
        return _patch_text(run_id, found, where)
    git = _Git(where)
    if not _branch_exists(git, where, receipt["branch"]):
        return _patch_text(run_id, found, where)
    done = git.run(
        "diff", "--binary", "-M", "--no-color", "--no-ext-diff", "--no-textconv",
        receipt["base"], receipt["branch"], cwd=where,
    )  # fmt: skip
    return done.stdout.decode("utf-8", "replace")


def workspace_merge(run_id: str) -> dict[str, Any]:
    """Bring run ``run_id``'s branch into the user's tree: a fast-forward when the current
    branch has not moved, a merge commit otherwise. A conflict raises
    :class:`~cc_executor.WorkspaceConflict` naming the files, with the tree as it was
    (checked with ``git merge-tree`` before anything is written). A copy workspace's patch
    is applied to the folder (all or nothing). A run of another machine: its branch in the
    shared repository the history's receipt names, or its pushed branch, fetched from the
    current repository's remotes; ``WorkspaceError`` when neither is reachable from here."""
    found = _receipt_anywhere(run_id)
    receipt = found.receipt
    if receipt.get("mode") == "copy":
        return _merge_copy(run_id, found)
    repo = str(receipt["repo"])
    branch = receipt["branch"]
    if not _reachable(repo):
        raise _unreachable(run_id, found, repo)
    git = _Git(repo)
    if not _branch_exists(git, repo, branch):
        if found.host is not None:
            raise WorkspaceError(
                f"run {run_id}'s branch {branch} is not in {repo} on this machine: that folder "
                f"is not the repository the run used on {found.host} (not shared storage), or "
                "the workspace was discarded"
            )
        raise WorkspaceError(f"run {run_id}'s branch {branch} no longer exists (discarded?)")
    head = git.out("rev-parse", "HEAD")
    tip = git.out("rev-parse", branch)
    if git.run("merge-base", "--is-ancestor", tip, head, check=False).returncode == 0:
        return {"run_id": run_id, "merged": "already", "commit": head}
    trial = git.run("merge-tree", "--write-tree", "--name-only", "-z", head, tip, check=False)
    if trial.returncode == 1:
        parts = trial.stdout.split(b"\0\0", 1)[0].split(b"\0")[1:]
        files = sorted({os.fsdecode(p) for p in parts if p})
        raise WorkspaceConflict(
            f"merging {branch} into {repo} conflicts in: {', '.join(files)}; the tree is "
            "left as it was",
            files,
        )
    if trial.returncode != 0:
        said = trial.stderr.decode("utf-8", "replace").strip()
        raise WorkspaceError(f"git merge-tree failed: {said}")
    fast = git.run("merge-base", "--is-ancestor", head, tip, check=False).returncode == 0
    args = ["merge", "--ff-only"] if fast else ["merge", "--no-ff", "--no-verify", "--no-edit"]
    done = git.run(
        *args, "-q", "-m", f"Merge {branch} (cc-executor run {run_id})", branch,
        check=False, env=git.identity(),
    )  # fmt: skip
    if done.returncode != 0:
        lines = (done.stderr + done.stdout).decode("utf-8", "replace").split()
        # git refused before writing anything (local changes in the way): nothing to undo.
        raise WorkspaceError(f"git merge refused: {' '.join(lines)[:500]}")
    return {
        "run_id": run_id,
        "merged": "fast-forward" if fast else "merge commit",
        "commit": git.out("rev-parse", "HEAD"),
    }


def _merge_copy(run_id: str, found: _Found) -> dict[str, Any]:
    receipt = found.receipt
    folder = str(receipt["repo"])
    if not _reachable(folder):
        raise _unreachable(run_id, found, folder)
    patch = found.patch
    if patch is None:
        try:
            patch = Path(str(receipt["patch_path"])).read_bytes()
        except OSError as exc:
            raise WorkspaceError(f"cannot read the patch of run {run_id}: {exc}") from None
    git = _Git(folder)
    check = git.run("apply", "--check", "--binary", "-", cwd=folder, check=False, input=patch)
    if check.returncode != 0:
        said = check.stderr.decode("utf-8", "replace")
        files = sorted(
            {
                line.split(": ", 2)[1]
                for line in said.splitlines()
                if line.startswith("error: ") and line.count(": ") >= 2
            }
        )
        raise WorkspaceConflict(
            f"the patch of run {run_id} does not apply to {folder}: {said.strip()[:500]}", files
        )
    git.run("apply", "--binary", "-", cwd=folder, input=patch)
    return {"run_id": run_id, "merged": "patch applied", "commit": None}


def workspace_discard(run_id: str, *, remote: bool = False) -> dict[str, Any]:
    """Remove run ``run_id``'s worktree (or copy) and branch; the receipt and patch in the
    run folder stay (the history's receipts cover them). A run of another machine: its
    worktree and branch in the shared repository the history's receipt names, or the
    branch ``diff`` or ``merge`` fetched into the current repository. A branch pushed to a
    remote (a fleet or ``repo`` run's) stays there unless ``remote``; ``remote_deleted``
    names the remotes it was deleted from."""
    found = _find_anywhere(run_id)
    fetched = found is None or (found.host is not None and found.receipt.get("pushed"))
    if fetched and in_git_tree(os.getcwd()):
        from cc_executor._run._repo import discard_fetched

        return discard_fetched(run_id, os.getcwd(), remote=remote)
    if found is None:
        raise WorkspaceError(f"run {run_id} has no workspace (no receipt here or in the history)")
    receipt = found.receipt
    if found.host is not None and not _reachable(str(receipt["repo"])):
        raise _unreachable(run_id, found, str(receipt["repo"]))
    deleted: list[str] = []
    if remote and receipt.get("pushed") and os.path.isdir(str(receipt["repo"])):
        from cc_executor._run._repo import delete_pushed

        # From the clone the run pushed from, before it goes with the discard.
        where, url = str(receipt["repo"]), str(receipt["remote"])
        if delete_pushed(_Git(where), where, url, str(receipt["branch"])):
            deleted.append(url)
    _discard_receipt(receipt)
    return {"run_id": run_id, "discarded": True, "remote_deleted": deleted}


def workspace_prune(
    older_than_s: float, repo: str | os.PathLike[str] | None = None, *, dry_run: bool = False
) -> list[str]:
    """Discard the workspaces of the repository holding ``repo`` (default: the current
    folder) whose runs started more than ``older_than_s`` seconds ago (or are no longer in
    the history, unless their worktree is one this machine does not see: another
    machine's, in a shared repository); the ids of the runs whose workspaces went (or
    would go)."""
    from cc_executor._store import HistoryError, open_store

    cutoff = time.time() - older_than_s
    doomed = []
    try:
        store = open_store()
    except (HistoryError, OSError):
        store = None
    try:
        for item in workspace_list(repo):
            record = store.get(item["run_id"]) if store is not None else None
            if record is None and item["worktree"] and not os.path.exists(item["path"]):
                # A worktree this machine does not see, of a run no history here knows:
                # another machine's, in a shared repository, perhaps still in use.
                continue
            if record is None or record.started_at < cutoff:
                doomed.append(item["run_id"])
    finally:
        if store is not None:
            store.close()
    if not dry_run:
        for run_id in doomed:
            with contextlib.suppress(WorkspaceError):
                workspace_discard(run_id)
    return doomed


def discard_for_runs(run_dirs: Sequence[str]) -> int:
    """Discard the workspaces of the runs in ``run_dirs`` (the history's ``prune``); how many
    there were. Best effort: a repository gone is no reason to keep a run."""
    removed = 0
    for run_dir in run_dirs:
        path = os.path.join(run_dir, RECEIPT_NAME)
        if not os.path.isfile(path):
            continue
        with contextlib.suppress(WorkspaceError, OSError, ValueError):
            with open(path, encoding="utf-8") as file:
                data = json.load(file)
            receipt = {**data, "run_id": data.get("run_id", "")}
            _discard_receipt(receipt)
            removed += 1
    return removed


def _discard_receipt(receipt: Mapping[str, Any]) -> None:
    path = receipt.get("path")  # none for a task list's branch: it has no worktree
    if receipt.get("mode") == "copy" or not os.path.isdir(str(receipt["repo"])):
        if path is not None:
            shutil.rmtree(str(path), ignore_errors=True)
        return
    repo = str(receipt["repo"])
    git = _Git(repo)
    # This worktree only, even when its folder is gone: `git worktree prune` would also
    # drop the worktrees of a shared repository made on other machines, whose folders this
    # one does not see, while their runs still use them.
    if path is not None:
        git.run("worktree", "remove", "--force", "--force", str(path), check=False)
    if _branch_exists(git, repo, str(receipt["branch"])):
        git.run("branch", "-D", "-q", str(receipt["branch"]))
