"""A run's input as a git URL and ref (``repo``/``ref``): cloned into the run folder, the run
runs in the clone; with ``workspace="worktree"`` its branch is pushed back to the URL when
the run ends. What a fleet of many machines needs when there is no shared storage. A fleet
worker also names the branch (``repo_branch``, the fleet run's) and has the run push
checkpoints while it runs (:class:`Checkpoints`), so that an attempt on another worker can
go on from them (``repo_continue``: :func:`fetch_continuation`).

The URL is data from whoever submitted the run, so it is checked before git sees it: only
``https://``, ``ssh://`` (and scp-like ``user@host:path``) and ``file://``; never git's
``ext::``/``fd::`` transports (they run commands), nothing that reads as an option, no
password in the URL (credentials come from the machine: its ssh keys or credential
store), no ``..`` segment (which would slip past an ``--allow-repo`` pattern). Every git
call is :class:`~cc_executor._run._workspace._Git`'s (no hook, fsmonitor, filter or
helper named by a repository's configuration; ``GIT_*`` of the environment dropped; no
terminal prompt), with the transports limited by ``protocol.allow`` too and ssh in batch
mode (a password prompt fails instead of hanging).
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import logging
import os
import re
import shutil
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cc_executor._errors import WorkspaceError

if TYPE_CHECKING:
    from cc_executor._run._workspace import Workspace, _Git

log = logging.getLogger("cc_executor.run")

#: The URL schemes a run's ``repo`` may use (``file`` serves tests and shared storage).
SCHEMES = ("https", "ssh", "file")
#: The folder of the clone in the run folder.
CLONE_NAME = "repo"
#: Given to every git call that talks to a remote: only our transports, no submodules,
#: ssh that fails rather than asks.
_REMOTE_CONFIG = (
    ("protocol.allow", "never"),
    *((f"protocol.{scheme}.allow", "always") for scheme in SCHEMES),
    ("submodule.recurse", "false"),
    ("core.askPass", ""),
    ("credential.interactive", "false"),
)
_SSH = "ssh -o BatchMode=yes"
#: The least seconds between two checkpoint pushes of a run (see :class:`Checkpoints`).
CHECKPOINT_INTERVAL_S = 10.0
#: The line of a checkpoint commit's message naming the base of the run's change receipt.
BASE_TRAILER = "cc-executor-base: "
_SCP_LIKE = re.compile(r"[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^:]")
_REDIRECTS = re.compile(r"(?i)(?:url|http)\..*")
_REF = re.compile(r"[A-Za-z0-9._/@+-]+")


def check_repo_url(url: Any) -> str:
    """``url`` when a run may clone it, else ``ValueError`` saying why."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"repo must be a git URL, got {url!r}")
    if any(c.isspace() or ord(c) < 32 or c == "\x7f" for c in url):
        raise ValueError("repo: a git URL has no spaces or control characters")
    if url.startswith("-"):
        raise ValueError(f"repo: {url!r} reads as an option, not a URL")
    scheme, sep, rest = url.partition("://")
    if "::" in url.split("/", 1)[0] or (not sep and "::" in url):
        raise ValueError(
            f"repo: {url!r} names a git transport helper (ext::, fd::...), which runs "
            f"commands: only {', '.join(s + '://' for s in SCHEMES)} URLs are cloned"
        )
    if not sep:
        if _SCP_LIKE.match(url):
            scheme, rest = "ssh", url
        else:
            raise ValueError(
                f"repo: {url!r} is not a URL ({', '.join(s + '://' for s in SCHEMES)} or "
                "user@host:path)"
            )
    if scheme.lower() not in SCHEMES:
        raise ValueError(
            f"repo: the scheme {scheme}:// is not allowed (only "
            f"{', '.join(s + '://' for s in SCHEMES)})"
        )
    authority = rest.split("/", 1)[0]
    if scheme.lower() != "file" and ":" in authority.rpartition("@")[0]:
        raise ValueError(
            "repo: the URL holds a password: credentials come from the worker's machine "
            "(ssh keys, git's credential store), never from a run"
        )
    if any(part in ("..", ".") for part in re.split(r"[/:]", rest)):
        raise ValueError(f"repo: {url!r} has a '.' or '..' path segment")
    return url


def check_ref(ref: Any) -> str:
    """``ref`` (a branch, tag or commit) when it is safe to pass to git, else ``ValueError``."""
    if (
        not isinstance(ref, str)
        or not _REF.fullmatch(ref)
        or ref.startswith(("-", "/"))
        or ".." in ref
        or ref.endswith((".lock", "/", "."))
    ):
        raise ValueError(f"ref must be a git branch, tag or commit, got {ref!r}")
    return ref


def repo_allowed(url: str, patterns: Sequence[str]) -> bool:
    """Whether ``url`` matches one of ``patterns`` (shell-style, ``*`` matching ``/`` too:
    ``https://git.example.com/team/*``)."""
    return any(fnmatch.fnmatchcase(url, pattern) for pattern in patterns)


def _remote_git(cwd: str) -> Any:
    """A hardened git (see the module docstring) for calls that reach a remote."""
    from cc_executor._run._git import git_env
    from cc_executor._run._workspace import _Git

    git = _Git(cwd)
    git.env = {**git.env, **git_env(list(_REMOTE_CONFIG), git.env), "GIT_SSH_COMMAND": _SSH}
    return git


def clone_repo(url: str, ref: str | None, dest: str) -> str:
    """Clone ``url`` at ``ref`` (None: its default branch) into ``dest`` (made here): a
    shallow fetch of the ref, a full one when the server cannot give it shallow (a commit
    it does not advertise); no submodules. The commit checked out; ``WorkspaceError``
    saying why when it cannot be had."""
    check_repo_url(url)
    want = "HEAD" if ref is None else check_ref(ref)
    os.makedirs(dest)
    git = _remote_git(dest)
    git.run("init", "-q", dest)
    git.run("remote", "add", "origin", "--", url)
    shallow = git.run(
        "fetch", "-q", "--depth", "1", "--no-tags", "--no-recurse-submodules", "origin",
        "--", want, check=False,
    )  # fmt: skip
    if shallow.returncode != 0:
        git.run(
            "fetch", "-q", "--no-recurse-submodules", "origin",
            "+refs/heads/*:refs/remotes/origin/*", "+refs/tags/*:refs/tags/*",
        )  # fmt: skip
        for name in (f"refs/remotes/origin/{want}", f"refs/tags/{want}", want):
            found = git.run("rev-parse", "-q", "--verify", f"{name}^{{commit}}", check=False)
            if found.returncode == 0:
                break
        else:
            raise WorkspaceError(f"ref {want!r} is not in {url}")
        commit = os.fsdecode(found.stdout).strip()
    else:
        commit = git.out("rev-parse", "FETCH_HEAD^{commit}")
    git.run("checkout", "-q", "--no-recurse-submodules", "--detach", commit)
    return str(commit)


def push_branch(clone: str, url: str, branch: str, *, commit: str | None = None) -> None:
    """Push ``branch`` of the clone at ``clone`` (or ``commit``, to that branch's name) to
    ``url``, forced: the branch is the run's own, named by its id; ``WorkspaceError`` saying
    why it could not be. The agent ran beside the clone's ``.git/config``: a URL rewrite
    (``url.*.insteadOf``) or an ``http.*`` setting (a proxy, no TLS check) it added there
    would send the push, with the worker's credentials, elsewhere, so any such key stops
    the push."""
    git = _remote_git(clone)
    listing = git.run("config", "-z", "--show-scope", "--name-only", "--list", check=False)
    fields = listing.stdout.split(b"\0")
    for scope, name in zip(fields[0::2], fields[1::2], strict=False):
        key = os.fsdecode(name)
        if scope in (b"local", b"worktree") and _REDIRECTS.match(key):
            raise WorkspaceError(
                f"the clone's git configuration gained {key} during the run: not pushed "
                "(it could send the branch and the machine's credentials elsewhere)"
            )
    refspec = f"{commit or f'refs/heads/{branch}'}:refs/heads/{branch}"
    git.run("push", "-q", "--no-verify", "--force", "--", url, refspec)


def push_checkpoint(ws: Workspace, url: str, pushed_tree: str | None) -> tuple[str, str] | None:
    """Commit what the worktree of ``ws`` holds now and push that commit to its branch on
    ``url`` (forced), leaving the worktree, its index, HEAD and the local branch as they
    are (a private index, ``commit-tree``): the agent goes on undisturbed. The commit names
    the workspace's base (the change receipt's) for an attempt that goes on from it. The
    commit and its tree; None when the tree is the one pushed last or the branch's own."""
    from cc_executor._run._workspace import _Git

    git = _Git(ws.path, git_dir=ws.git_dir)
    ref = f"refs/heads/{ws.branch}"
    tip, tip_tree = git.out("rev-parse", ref, f"{ref}^{{tree}}").splitlines()
    index = os.path.join(ws.run_dir, "checkpoint.index")
    env = {"GIT_INDEX_FILE": index}
    try:
        try:
            # The worktree's index holds each file's stat: only the files changed are hashed.
            shutil.copyfile(os.path.join(str(ws.git_dir), "index"), index)
        except OSError:
            git.run("read-tree", tip, env=env)
        git.run("add", "-A", env=env)
        tree = git.out("write-tree", env=env)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(index)
    if tree in (pushed_tree, tip_tree):
        return None
    message = f"cc-executor checkpoint of run {ws.run_id}\n\n{BASE_TRAILER}{ws.start}"
    commit = git.out(
        "commit-tree", "--no-gpg-sign", tree, "-p", tip, "-m", message, env=git.identity()
    )
    push_branch(ws.repo, url, ws.branch, commit=commit)
    return commit, tree


def fetch_continuation(clone: str, branch: str) -> tuple[str, str] | None:
    """Fetch ``branch`` from the clone's ``origin`` (an earlier attempt's pushed work): its
    tip and the base its checkpoint names (the clone's HEAD when it names none that is
    here); None when the remote has no such branch."""
    check_ref(branch)
    git = _remote_git(clone)
    fetched = git.run(
        "fetch", "-q", "--no-tags", "--no-recurse-submodules", "origin", "--",
        f"+refs/heads/{branch}:refs/remotes/origin/{branch}", check=False,
    )  # fmt: skip
    if fetched.returncode != 0:
        return None
    tip = git.out("rev-parse", f"refs/remotes/origin/{branch}^{{commit}}")
    body = git.out("log", "-1", "--format=%B", tip)
    named = [line[len(BASE_TRAILER) :].strip() for line in body.splitlines()]
    named = [n for n in named if re.fullmatch(r"[0-9a-f]{40,64}", n)]
    base = named[-1] if named else ""
    if not base or git.run("cat-file", "-e", f"{base}^{{commit}}", check=False).returncode:
        base = git.out("rev-parse", "HEAD^{commit}")
    return tip, base


class Checkpoints:
    """The pushes of a run's workspace while it runs, so that another worker can go on from
    its work if this one is lost: :meth:`poke` after each tool result (one that changed
    nothing pushes nothing); the first push is at once, the next at least ``interval_s``
    later (what changed meanwhile goes in one). ``on_pushed(commit)`` after each push.
    :meth:`stop` before the final commit and push, which it never overtakes."""

    def __init__(
        self,
        ws: Workspace,
        url: str,
        on_pushed: Callable[[str], Awaitable[None]],
        interval_s: float = CHECKPOINT_INTERVAL_S,
    ) -> None:
        self.ws, self.url, self.interval_s = ws, url, interval_s
        self.on_pushed = on_pushed
        self.problem: str | None = None
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._push: asyncio.Future[tuple[str, str] | None] | None = None
        self._tree: str | None = None

    def poke(self) -> None:
        self._wanted.set()
        if self._task is None:
            self._task = asyncio.ensure_future(self._pushes())

    async def _pushes(self) -> None:
        while True:
            await self._wanted.wait()
            self._wanted.clear()
            self._push = asyncio.ensure_future(
                asyncio.to_thread(push_checkpoint, self.ws, self.url, self._tree)
            )
            try:
                done = await asyncio.shield(self._push)
            except (WorkspaceError, OSError, ValueError) as exc:
                # Not fatal: the run goes on, its end is pushed as ever.
                self.problem = str(exc)
                log.warning("run %s: checkpoint not pushed: %s", self.ws.run_id, exc)
                done = None
            if done is not None:
                self._tree = done[1]
                await self.on_pushed(done[0])
            await asyncio.sleep(self.interval_s)

    async def stop(self) -> None:
        """No more pushes; returns once one under way has ended (the final push must
        come after it)."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # best effort: the run's own end is pushed anyway
                self.problem = f"{type(exc).__name__}: {exc}"
                log.exception("run %s: checkpoints", self.ws.run_id)
        if self._push is not None:
            await asyncio.wait([self._push])
            if not self._push.cancelled() and self._push.exception() is not None:
                self.problem = str(self._push.exception())  # seen: not logged as lost


def fetch_receipt(run_id: str, cwd: str) -> dict[str, Any]:
    """For ``workspace diff|merge`` on a machine without the run's folder: fetch the branch
    ``cc-executor/<run_id>`` from the remotes of the repository holding ``cwd`` (the
    first one that has it) and return a receipt for it (``base``: where it leaves the
    current HEAD's history). ``WorkspaceError`` when no remote has it."""
    from cc_executor._run._workspace import BRANCH_PREFIX, _branch_exists, _Git

    try:
        check_ref(BRANCH_PREFIX + run_id)
    except ValueError:
        raise WorkspaceError(f"run {run_id!r} has no workspace (not a run id)") from None
    local = _Git(cwd)
    top = local.out("rev-parse", "--show-toplevel")
    branch = BRANCH_PREFIX + run_id
    remotes = local.out("remote", cwd=top).split()
    # Your own remotes, whatever their transport; ssh still fails rather than asks.
    git = _Git(top)
    git.env = {**git.env, "GIT_SSH_COMMAND": _SSH}
    for remote in remotes:
        done = git.run(
            "fetch", "-q", "--no-tags", "--no-recurse-submodules", "--", remote,
            f"+refs/heads/{branch}:refs/heads/{branch}", cwd=top, check=False,
        )  # fmt: skip
        if done.returncode == 0:
            base = git.out("merge-base", "HEAD", branch, cwd=top)
            return {
                "run_id": run_id,
                "mode": "worktree",
                "branch": branch,
                "commit": git.out("rev-parse", branch, cwd=top),
                "base": base,
                "repo": top,
                "remote": remote,
                "fetched": True,
            }
    if _branch_exists(git, top, branch):
        # A shared repository (a fleet run on a cwd every machine mounts): the run's
        # worktree and branch were made in it, and no history here holds its receipt.
        return {
            "run_id": run_id,
            "mode": "worktree",
            "branch": branch,
            "commit": git.out("rev-parse", branch, cwd=top),
            "base": git.out("merge-base", "HEAD", branch, cwd=top),
            "repo": top,
        }
    said = f"its remotes ({', '.join(remotes)})" if remotes else "it has no remote"
    raise WorkspaceError(
        f"run {run_id} has no workspace on this machine, and no branch {branch} was found "
        f"in {top} or from {said}"
    )


def delete_pushed(git: _Git, where: str, remote: str, branch: str) -> bool:
    """Delete ``branch`` from ``remote`` (a remote's name or URL) with the repository at
    ``where``; False when it is not there (nothing to do). ``WorkspaceError`` when it is
    there and the remote refuses."""
    ref = f"refs/heads/{branch}"
    there = git.run(
        "ls-remote", "--exit-code", "--heads", "--", remote, ref, cwd=where, check=False
    )
    if there.returncode == 2:
        return False
    done = git.run("push", "-q", "--no-verify", "--", remote, f":{ref}", cwd=where, check=False)
    if done.returncode != 0:
        said = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise WorkspaceError(
            f"cannot delete {branch} from {remote}: {said[-1] if said else done.returncode}"
        )
    return True


def discard_fetched(run_id: str, cwd: str, *, remote: bool) -> dict[str, Any]:
    """For ``workspace discard`` on a machine without the run's folder: delete the branch
    ``cc-executor/<run_id>`` that ``diff`` or ``merge`` fetched into the repository holding
    ``cwd`` and, with ``remote``, the pushed branch on each of its remotes that has it (the
    default keeps it: another clone may still want it). ``WorkspaceError`` when there was
    nothing to delete."""
    from cc_executor._run._workspace import BRANCH_PREFIX, _branch_exists, _Git

    try:
        check_ref(BRANCH_PREFIX + run_id)
    except ValueError:
        raise WorkspaceError(f"run {run_id!r} has no workspace (not a run id)") from None
    top = _Git(cwd).out("rev-parse", "--show-toplevel")
    branch = BRANCH_PREFIX + run_id
    git = _Git(top)
    git.env = {**git.env, "GIT_SSH_COMMAND": _SSH}
    deleted: list[str] = []
    remotes = git.out("remote").split() if remote else []
    for name in remotes:
        if delete_pushed(git, top, name, branch):
            deleted.append(name)
    local = _branch_exists(git, top, branch)
    if local:
        # A shared repository's branch is still checked out in the run's worktree (its
        # folder on the worker's machine): that worktree goes first, as git requires.
        shared = _worktrees_of(git, top, branch)
        for path in shared:
            git.run("worktree", "remove", "--force", "--force", path, check=False)
        git.run("branch", "-D", "-q", branch)
    if not local and not deleted:
        where = f"in {top} or its remotes" if remote else f"in {top}"
        raise WorkspaceError(
            f"run {run_id} has no workspace on this machine, and no branch {branch} {where}"
        )
    done: dict[str, Any] = {
        "run_id": run_id,
        "discarded": True,
        "branch_deleted": local,
        "remote_deleted": deleted,
    }
    if local and shared:
        done["worktree_removed"] = shared
    return done


def _worktrees_of(git: _Git, top: str, branch: str) -> list[str]:
    """The worktrees of the repository at ``top`` that have ``branch`` checked out."""
    found, path = [], None
    for line in git.out("worktree", "list", "--porcelain", cwd=top).splitlines():
        if line.startswith("worktree "):
            path = line.removeprefix("worktree ")
        elif line == f"branch refs/heads/{branch}" and path is not None:
            found.append(path)
    return found


def push_receipt(receipt: Mapping[str, Any], url: str, problem: str | None) -> dict[str, Any]:
    """``receipt`` with what the push did: ``pushed``, ``remote``, and ``push_error``."""
    done = {**receipt, "pushed": problem is None, "remote": url}
    if problem is not None:
        done["push_error"] = problem
    return done
