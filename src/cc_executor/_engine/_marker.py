"""The spawn marker: a file in the run folder saying that a child is being started, written
before the spawn, so that a supervisor killed before the history holds the run's start
still leaves a trace the history can turn into a row (see ``_store.adopt_markers``).

Writing it costs a few system calls (no import beyond ``os``): the console writes it just
before it starts the agent CLI. The marker holds NUL-separated ``key``/``value`` pairs (no
argument, path or value may hold a NUL), the command's ``argv`` as one ``argv`` pair per
argument; the child's PID and start time are appended once it exists. A link named after
the run in the data folder's ``pending`` folder points at the run folder, so that finding
the markers costs one listing of a folder that is nearly always empty.

Whoever records the run's start in the history removes both (:func:`clear`).
"""

from __future__ import annotations

import os

from cc_executor._engine import _tree
from cc_executor._paths import pending_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

NAME = "spawn-marker"
#: A marker is a handful of fields and a command line: more than this is damage.
MAX_BYTES = 1 << 20
#: Longer arguments are cut in the marker (the history keeps previews, not whole argvs).
_MAX_ARG = 4096


def _pair(key: str, value: str) -> bytes:
    return os.fsencode(key) + b"\0" + os.fsencode(value) + b"\0"


def write(
    run_dir: str,
    run_id: str,
    *,
    argv: Sequence[str],
    cwd: str,
    token: str,
    started_at: float,
    fields: Mapping[str, str],
) -> bool:
    """Write the marker of run ``run_id`` in ``run_dir`` and link it from the pending
    folder. Best effort: False (and nothing left half-linked) if it cannot be written."""
    parts = [
        _pair("id", run_id),
        _pair("cwd", cwd),
        _pair("tree_token", token),
        _pair("started_at", repr(started_at)),
        _pair("host", os.uname().nodename),
        _pair("supervisor_pid", str(os.getpid())),
        _pair("supervisor_started", str(_tree.start_ticks(os.getpid()) or "")),
    ]
    parts += [_pair(k, v) for k, v in fields.items()]
    parts += [_pair("argv", a[:_MAX_ARG]) for a in argv]
    data = b"".join(parts)[:MAX_BYTES]
    path = os.path.join(run_dir, NAME)
    try:
        fd = os.open(
            path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600
        )
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        link = os.path.join(pending_path(), run_id)
        try:
            os.symlink(os.path.abspath(run_dir), link)
        except FileNotFoundError:
            os.mkdir(pending_path(), 0o700)
            os.symlink(os.path.abspath(run_dir), link)
    except OSError:
        return False
    return True


def add_child(run_dir: str, pid: int, ticks: int | None) -> None:
    """Append the child's PID and start time to the marker (best effort)."""
    try:
        fd = os.open(
            os.path.join(run_dir, NAME), os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW
        )
    except OSError:
        return
    try:
        os.write(fd, _pair("pid", str(pid)) + _pair("pid_started", str(ticks or "")))
    except OSError:
        pass
    finally:
        os.close(fd)


def read(run_dir: str) -> dict[str, str | list[str]] | None:
    """The fields of the marker in ``run_dir`` (``argv``: a list), or None if there is no
    readable marker. A marker cut short (its writer killed) keeps its complete pairs."""
    try:
        fd = os.open(os.path.join(run_dir, NAME), os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        data = os.read(fd, MAX_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    items = data.split(b"\0")[:-1]  # whatever follows the last NUL is incomplete
    out: dict[str, str | list[str]] = {"argv": []}
    for key, value in zip(items[::2], items[1::2], strict=False):
        name, text = os.fsdecode(key), os.fsdecode(value)
        if name == "argv":
            argv = out["argv"]
            assert isinstance(argv, list)
            argv.append(text)
        else:
            out[name] = text
    return out


def pending() -> list[tuple[str, str]]:
    """``(run_id, run_dir)`` of every run in the pending folder."""
    folder = pending_path()
    try:
        names = os.listdir(folder)
    except OSError:
        return []
    found = []
    for name in names:
        try:
            found.append((name, os.readlink(os.path.join(folder, name))))
        except OSError:
            continue
    return found


def clear(run_id: str, run_dir: str | None) -> None:
    """Remove the marker of ``run_id`` and its pending link (each only if there)."""
    paths = [os.path.join(pending_path(), run_id)]
    if run_dir:
        paths.append(os.path.join(run_dir, NAME))
    for path in paths:
        try:  # noqa: SIM105 - contextlib is not loaded this early
            os.unlink(path)
        except OSError:
            pass
