"""Checking and preparing a spawn, so a failure is a specific message and never a traceback."""

from __future__ import annotations

import os
import stat
import sys

from cc_executor._errors import SpawnError as SpawnError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

#: Pipes are enlarged to this (``F_SETPIPE_SZ``).
PIPE_SIZE = 1024 * 1024


def check_cwd(cwd: str) -> None:
    """Raise SpawnError unless ``cwd`` is an existing, enterable directory."""
    try:
        st = os.stat(cwd)
    except FileNotFoundError:
        raise SpawnError(f"working directory does not exist: {cwd}") from None
    except OSError as exc:
        raise SpawnError(f"working directory {cwd} cannot be used: {exc.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise SpawnError(f"working directory is not a directory: {cwd}")
    if not os.access(cwd, os.X_OK):
        raise SpawnError(f"working directory is not accessible (permission denied): {cwd}")


def resolve_executable(name: str, *, cwd: str, env: Mapping[str, str]) -> str:
    """The absolute path that ``execve`` will run for ``argv[0] == name``.

    Names with a slash are taken relative to ``cwd`` (as ``subprocess`` does); bare names are
    searched on the child's ``PATH``. Raises SpawnError saying whether the program is
    missing, not a regular file, or not executable.
    """
    if not name:
        raise SpawnError("the program name is empty")
    if "/" in name:
        path = os.path.normpath(os.path.join(cwd, name))
        if not os.path.exists(path):
            raise SpawnError(f"executable not found: {name}")
        if os.path.isdir(path):
            raise SpawnError(f"not an executable file (it is a directory): {name}")
        if not os.access(path, os.X_OK):
            raise SpawnError(f"permission denied: {name} is not executable")
        return path
    import shutil

    search = env.get("PATH", os.defpath)
    found = shutil.which(name, path=search)
    if found is not None:
        return os.path.abspath(os.path.join(cwd, found))
    for folder in search.split(os.pathsep):
        candidate = os.path.join(folder or ".", name)
        if os.path.isfile(candidate):
            raise SpawnError(f"permission denied: {candidate} is not executable")
    raise SpawnError(f"executable not found on PATH: {name} (PATH={search})")


def _find_setpriv() -> str | None:
    for folder in ("/usr/bin", "/bin", "/usr/sbin", "/sbin"):
        path = os.path.join(folder, "setpriv")
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


_SETPRIV = _find_setpriv()


def _safe_to_wrap(path: str) -> bool:
    # setpriv uses execvp, which runs a file with an unknown format through /bin/sh. Only
    # hand it ELF binaries and #! scripts, so nothing is ever interpreted by a shell that
    # execve itself would have refused.
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        return False
    return head == b"\x7fELF" or head[:2] == b"#!"


def wrap_with_parent_death_signal(argv: Sequence[str], executable: str) -> list[str]:
    """``argv`` prefixed so the child gets SIGKILL when its parent thread dies (Linux).

    ``setpriv --pdeathsig`` sets the signal and then execs the program in place: same PID,
    no extra process, about 0.8 ms per spawn (a ``preexec_fn`` costs more and is not safe
    with threads). Where setpriv is missing the argv is returned unchanged; the watchdog
    still covers the supervisor's death.
    """
    if _SETPRIV is None or not sys.platform.startswith("linux") or not _safe_to_wrap(executable):
        return [executable, *argv[1:]]
    return [_SETPRIV, "--pdeathsig", "KILL", "--", executable, *argv[1:]]


def stdin_file(path: str | Path) -> int:
    """Open ``path`` read-only for a child's stdin; SpawnError with the reason if it can't."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError as exc:
        raise SpawnError(f"cannot open stdin file {path}: {exc.strerror}") from None
    if stat.S_ISDIR(os.fstat(fd).st_mode):
        os.close(fd)
        raise SpawnError(f"stdin file is a directory: {path}")
    return fd


def set_pipe_size(fd: int) -> None:
    """Enlarge the pipe ``fd`` to :data:`PIPE_SIZE`: 16x fewer wake-ups for a fast writer,
    and room for output while nobody reads yet. Refusals (per-user pipe quota) are
    harmless: the default 64 KiB still works."""
    import fcntl

    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:  # noqa: SIM105 - contextlib would cost the console's early start 2 ms
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
        except OSError:
            pass
