"""Git run without obeying what a repository's own configuration would make it execute.

A repository's ``.git/config`` (and the files it includes) can name programs that git runs
on its own: ``core.fsmonitor`` on every ``git status``, hooks, clean and smudge filters,
textconv and external diffs, pagers, aliases, credential helpers, ssh commands. Whoever
could write that file (an agent run in the folder, a planted repository) would then run
code through cc-executor's own ``git status`` or a server's pinned ``--allow-exec 'git
status'``. :func:`git_overrides` lists config entries that neutralise those programs; they
are passed in ``GIT_CONFIG_COUNT``/``KEY``/``VALUE`` (and :data:`ALWAYS` also as ``-c`` on
our own calls), which git reads after every configuration file, so they win.

Reading the configuration (``git config --list``) runs no program. Only the repository's
own scopes (``local``, ``worktree``) are emptied: the user's global and system
configuration is theirs. What this cannot stop: a hook or program named outside git's
configuration (a ``.gitattributes`` driver that no configuration defines runs nothing).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Mapping

#: Set whatever the configuration says: fsmonitor runs on every status, hooks on commits
#: and checkouts, and the ``ext::`` transport runs any command it is given.
ALWAYS = (
    ("core.fsmonitor", "false"),
    ("core.hooksPath", "/dev/null"),
    ("protocol.ext.allow", "never"),
)

# Configuration keys naming a program git runs (section and key in git's lower case; the
# subsection as written). Each one the repository sets is emptied: git then runs nothing
# (a filter, textconv, pager or helper) or fails (an external diff, an alias, an editor).
_PROGRAM_KEY = re.compile(
    r"""
      core\.(?:pager|editor|sshcommand|askpass|gitproxy|alternaterefscommand)
    | sequence\.editor | diff\.external | diff\.tool | merge\.tool | web\.browser
    | credential\.(?:.+\.)?helper | gpg\.(?:.+\.)?program | ssh\.variant
    | (?:filter|diff|merge)\..+\.(?:clean|smudge|process|textconv|command|driver)
    | remote\..+\.(?:uploadpack|receivepack|vcs|proxy)
    | (?:difftool|mergetool|browser|man)\..+\.(?:cmd|path)
    | pager\..+ | alias\..+ | uploadpack\.packobjectshook | interactive\.difffilter
    | sendemail\..+ | receive\.procreceiverefs | receive\.fsck\..+
    """,
    re.VERBOSE | re.DOTALL,
)
_REPOSITORY_SCOPES = frozenset({"local", "worktree"})
#: Seconds reading the configuration may take.
_TIMEOUT_S = 10.0


def git_overrides(
    cwd: str, *, env: Mapping[str, str] | None = None, git: str | None = None
) -> list[tuple[str, str]]:
    """The ``(key, value)`` entries that keep git in ``cwd`` from running a program the
    repository's configuration names: :data:`ALWAYS`, plus an empty value for every
    program-naming key set in the repository's own scopes. Without git, or when git
    cannot read a configuration there, :data:`ALWAYS` only."""
    overrides = list(ALWAYS)
    base = dict(os.environ if env is None else env)
    if not base.get("GIT_DIR") and not in_git_tree(cwd):
        return overrides  # no repository configuration to read: no git process for nothing
    executable = git or shutil.which("git", path=base.get("PATH", os.defpath))
    if executable is None:
        return overrides
    try:
        done = subprocess.run(
            [executable, "-C", cwd, "config", "-z", "--show-scope", "--name-only", "--list"],
            capture_output=True,
            stdin=subprocess.DEVNULL,
            env=base,
            timeout=_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return overrides
    fields = done.stdout.split(b"\0")
    seen = {key for key, _ in overrides}
    for scope, name in zip(fields[0::2], fields[1::2], strict=False):  # a last "" is no pair
        key = os.fsdecode(name)
        if scope.decode("ascii", "replace") not in _REPOSITORY_SCOPES or key in seen:
            continue
        if _PROGRAM_KEY.fullmatch(key):
            overrides.append((key, ""))
            seen.add(key)
    return overrides


def git_c_args(overrides: list[tuple[str, str]]) -> list[str]:
    """``overrides`` as git's ``-c key=value`` arguments (to put before the command). Only
    for keys without ``=`` (:data:`ALWAYS`): a subsection holding one would be split there;
    :func:`git_env` has no such limit."""
    return [arg for key, value in overrides for arg in ("-c", f"{key}={value}")]


def git_env(overrides: list[tuple[str, str]], base: Mapping[str, str]) -> dict[str, str]:
    """The variables that give a process with environment ``base`` the ``overrides``,
    after any ``GIT_CONFIG_COUNT`` entries ``base`` already has (so that ours win)."""
    count = base.get("GIT_CONFIG_COUNT", "")
    start = int(count) if count.isascii() and count.isdigit() and len(count) < 6 else 0
    env = {"GIT_CONFIG_COUNT": str(start + len(overrides))}
    for n, (key, value) in enumerate(overrides, start):
        env[f"GIT_CONFIG_KEY_{n}"] = key
        env[f"GIT_CONFIG_VALUE_{n}"] = value
    return env


def in_git_tree(cwd: str) -> bool:
    """Whether ``cwd`` or a folder above it has a ``.git`` (a folder holding ``HEAD``, or a
    worktree's file); no git process is started. An empty ``.git`` folder is no repository
    (Codex CLI's sandbox leaves one in each writable root, /tmp included, as a mount point):
    git looks further up, and so does this."""
    folder = os.path.abspath(cwd)
    while True:
        dot_git = os.path.join(folder, ".git")
        if os.path.isfile(dot_git) or os.path.isfile(os.path.join(dot_git, "HEAD")):
            return True
        parent = os.path.dirname(folder)
        if parent == folder:
            return False
        folder = parent
