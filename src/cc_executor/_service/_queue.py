"""The service's queue on disk: runs accepted (202) but not started yet survive the server.

Each queued run's request is a file ``queue/<run id>.json`` in the data folder (0600, in a
0700 folder: a request may carry environment variables and the prompt), written before the
run is answered 202 and removed just before the run starts. A file that is still there
when ``serve`` starts again belongs to a run that never started: that server queues it
again, under the same id. One server at a time takes them: whoever holds the lock
``queue/.lock`` (an ``flock`` held for the server's life; the kernel releases it when the
process dies, however it dies). A server that cannot take the lock leaves the queue to the
one holding it and keeps its own queue in memory, as before.

Every file is read as untrusted (it lives in the data folder): a damaged one is reported
with its reason and set aside (``*.json.bad``), never the server's failure.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cc_executor._paths import data_home, private_dir

#: A request file larger than this is damaged (requests are bounded by ``--max-body``).
MAX_REQUEST_FILE = 64 * 1024 * 1024
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


@dataclass(frozen=True, slots=True)
class QueuedRequest:
    """A run that was accepted and never started: its id, its request, when it came."""

    run_id: str
    spec: dict[str, Any]
    created_at: float


class RunQueue:
    """The folder of queued requests (default ``<data folder>/queue``)."""

    def __init__(self, folder: str | os.PathLike[str] | None = None) -> None:
        self.folder = Path(folder) if folder is not None else data_home() / "queue"
        self._lock_fd: int | None = None
        #: What taking the queue had to put right (permissions), for the server to say.
        self.warnings: list[str] = []

    @property
    def owned(self) -> bool:
        """True while this process holds the queue's lock."""
        return self._lock_fd is not None

    def acquire(self) -> bool:
        """Take the queue's lock without waiting; False if another server holds it.
        ``OSError`` if the folder cannot be made. A folder other accounts could read is
        made private, and :attr:`warnings` says so."""
        if self._lock_fd is not None:
            return True
        warning = private_dir(str(self.folder))
        if warning:
            self.warnings.append(warning)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(self.folder / ".lock", flags, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        self._lock_fd = fd
        return True

    def release(self) -> None:
        """Let another server take the queue (closing the descriptor drops the lock)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _path(self, run_id: str) -> Path:
        if not run_id or not set(run_id) <= _ID_CHARS or run_id.startswith("."):
            raise ValueError(f"not a run id: {run_id!r}")
        return self.folder / f"{run_id}.json"

    def save(self, run_id: str, spec: dict[str, Any], created_at: float) -> None:
        """Write the request of ``run_id`` (whole or not at all: a temporary file renamed
        over). ``OSError`` if it cannot be written."""
        path = self._path(run_id)
        data = json.dumps(
            {"run_id": run_id, "created_at": created_at, "spec": spec}, ensure_ascii=False
        ).encode("utf-8")
        temporary = path.with_name(f".{path.name}.tmp")
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW
        fd = os.open(temporary, flags, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, path)

    def remove(self, run_id: str) -> None:
        """Forget the request of ``run_id`` (it started, or ended before starting)."""
        with contextlib.suppress(FileNotFoundError):
            self._path(run_id).unlink()

    def pending(self) -> tuple[list[QueuedRequest], list[str]]:
        """The saved requests, oldest first, and a problem line for each file that could
        not be read back (that file is renamed ``*.json.bad`` so it is reported once)."""
        requests: list[QueuedRequest] = []
        problems: list[str] = []
        try:
            names = sorted(os.listdir(self.folder))
        except FileNotFoundError:
            return [], []
        for name in names:
            if not name.endswith(".json") or name.startswith("."):
                continue
            path = self.folder / name
            try:
                requests.append(_read(path, name[: -len(".json")]))
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}; set aside as {name}.bad")
                with contextlib.suppress(OSError):
                    os.replace(path, self.folder / f"{name}.bad")
        requests.sort(key=lambda r: r.created_at)
        return requests, problems


def _read(path: Path, run_id: str) -> QueuedRequest:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as f:
        raw = f.read(MAX_REQUEST_FILE + 1)
    if len(raw) > MAX_REQUEST_FILE:
        raise ValueError(f"larger than {MAX_REQUEST_FILE} bytes")
    try:
        data = json.loads(raw, parse_constant=_refuse_constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"not a saved request ({exc})") from None
    if (
        not isinstance(data, dict)
        or data.get("run_id") != run_id
        or not isinstance(data.get("spec"), dict)
        or not isinstance(data.get("created_at"), (int, float))
    ):
        raise ValueError("not a saved request (its fields are missing or do not match)")
    return QueuedRequest(run_id, data["spec"], float(data["created_at"]))


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")
