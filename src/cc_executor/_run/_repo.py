"""A run's input as a git URL and ref (``repo``/``ref``): cloned into the run folder, the run
runs in the clone; with ``workspace="worktree"`` its branch is pushed back to the URL when
the run ends. What a fleet of many machines needs when there is no shared storage.

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

import fnmatch
import os
import re
from collections.abc import Mapping, Sequence
from typing import Any

from cc_executor._errors import WorkspaceError

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


def push_branch(clone: str, url: str, branch: str) -> None:
    """Push ``branch`` of the clone at ``clone`` to ``url`` (forced: the branch is the run's
    own, named by its id); ``WorkspaceError`` saying why it could not be. The agent ran
    beside the clone's ``.git/config``: a URL rewrite (``url.*.insteadOf``) or an
    ``http.*`` setting (a proxy, no TLS check) it added there would send the push, with the
    worker's credentials, elsewhere, so any such key stops the push."""
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
    refspec = f"refs/heads/{branch}:refs/heads/{branch}"
    git.run("push", "-q", "--no-verify", "--force", "--", url, refspec)


def fetch_receipt(run_id: str, cwd: str) -> dict[str, Any]:
    """For ``workspace diff|merge`` on a machine without the run's folder: fetch the branch
    ``cc-executor/<run_id>`` from the remotes of the repository holding ``cwd`` (the
    first one that has it) and return a receipt for it (``base``: where it leaves the
    current HEAD's history). ``WorkspaceError`` when no remote has it."""
    from cc_executor._run._workspace import BRANCH_PREFIX, _Git

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
    said = f"its remotes ({', '.join(remotes)})" if remotes else "it has no remote"
    raise WorkspaceError(
        f"run {run_id} has no workspace on this machine, and no branch {branch} was found "
        f"from {top}: {said}"
    )


def push_receipt(receipt: Mapping[str, Any], url: str, problem: str | None) -> dict[str, Any]:
    """``receipt`` with what the push did: ``pushed``, ``remote``, and ``push_error``."""
    done = {**receipt, "pushed": problem is None, "remote": url}
    if problem is not None:
        done["push_error"] = problem
    return done
