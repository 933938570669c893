"""A task list run's folder, and finding it by list id (:func:`find_list`).

It holds the normalized spec, the list's state and one state file per task, each replaced
atomically (write a temporary file, then rename over the old one), so a reader or a crash
sees the old content or the new, never half of it.

Layout of ``runs/<list_id>/``: ``spec.json`` (written once), ``list.json`` (status, run
defaults, stop reason), ``tasks/<task id>.json`` (a task's :class:`TaskResult`; absent while
it is pending), ``lock`` (held with ``flock`` by the process running the list, so the kernel
releases it whatever way that process dies).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
from pathlib import Path
from typing import Any

import orjson

from cc_executor._paths import runs_dir
from cc_executor._store import HistoryError, open_store
from cc_executor.tasks._errors import TaskListBusy, TaskListNotFound

#: What a list id may be (it names a folder).
LIST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def atomic_write_json(path: Path, data: Any, *, durable: bool) -> None:
    """Replace ``path`` with ``data`` as JSON, atomically.

    ``durable`` also flushes the file and its folder to disk before returning, for the
    states that must survive even a machine crash (a task that ended). A process crash alone
    never loses a completed rename, so in-flight states skip the two fsyncs (about 1 ms).
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    payload = orjson.dumps(data, default=str, option=orjson.OPT_INDENT_2)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    try:
        view = memoryview(payload)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if durable:
        dir_fd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def read_json(path: Path) -> Any:
    """The JSON in ``path`` (raises ``OSError`` or ``orjson.JSONDecodeError``)."""
    return orjson.loads(path.read_bytes())


class ListFolder:
    """The folder of one task list run."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.spec_path = path / "spec.json"
        self.list_path = path / "list.json"
        self.tasks_dir = path / "tasks"
        self._lock_fd: int | None = None

    @property
    def exists(self) -> bool:
        """True when the folder holds a task list (its spec)."""
        return self.spec_path.is_file()

    def create(self) -> None:
        """Make the folder (private to the user: prompts and answers are inside)."""
        self.tasks_dir.mkdir(mode=0o700, parents=True, exist_ok=True)

    def write_spec(self, spec: dict[str, Any]) -> None:
        """Keep the normalized spec (durably: a resume depends on it)."""
        atomic_write_json(self.spec_path, spec, durable=True)

    def write_list(self, state: dict[str, Any], *, durable: bool) -> None:
        """Replace the list's own state."""
        atomic_write_json(self.list_path, state, durable=durable)

    def write_task(self, task_id: str, state: dict[str, Any], *, durable: bool) -> None:
        """Replace one task's state (ids are validated to be safe file names)."""
        atomic_write_json(self.tasks_dir / f"{task_id}.json", state, durable=durable)

    def read_spec(self) -> dict[str, Any]:
        """The normalized spec."""
        data: dict[str, Any] = read_json(self.spec_path)
        return data

    def read_list(self) -> dict[str, Any]:
        """The list's own state ({} if it was never written)."""
        try:
            data: dict[str, Any] = read_json(self.list_path)
        except FileNotFoundError:
            return {}
        return data

    def read_tasks(self) -> dict[str, dict[str, Any]]:
        """Every task state written so far, by task id."""
        out: dict[str, dict[str, Any]] = {}
        with contextlib.suppress(FileNotFoundError):
            for entry in os.scandir(self.tasks_dir):
                if entry.name.endswith(".json") and not entry.name.startswith("."):
                    data = read_json(Path(entry.path))
                    out[str(data["id"])] = data
        return out

    def lock(self) -> None:
        """Take the run lock, or raise :class:`TaskListBusy` if a live process holds it."""
        fd = os.open(self.path / "lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
            os.close(fd)
            raise TaskListBusy(
                f"task list {self.path.name} is being run by another process"
                + (f" (pid {holder})" if holder else "")
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._lock_fd = fd

    def unlock(self) -> None:
        """Release the run lock (closing the descriptor releases the ``flock``)."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def in_use(self) -> bool:
        """True when a live process holds the run lock."""
        try:
            fd = os.open(self.path / "lock", os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False


def find_list(list_id: str) -> ListFolder:
    """The folder of task list run ``list_id`` (or a unique id prefix, through the
    history). Raises :class:`TaskListNotFound`."""
    if not LIST_ID.match(list_id):
        raise TaskListNotFound(f"not a task list id: {list_id!r}")
    folder = ListFolder(runs_dir() / list_id)
    if folder.exists:
        return folder
    if len(list_id) >= 6:
        # Lists only: a list's first task run is started within the same millisecond, so
        # a prefix of the list's id often matches it too, which the history calls ambiguous.
        found = sorted(p for p in runs_dir().glob(f"{list_id}*") if ListFolder(p).exists)
        if len(found) == 1:
            return ListFolder(found[0])
        if found:
            some = ", ".join(p.name for p in found[:3]) + (", ..." if len(found) > 3 else "")
            raise TaskListNotFound(
                f"task list id prefix {list_id!r} is ambiguous: it matches {some} (give more "
                "of the id)"
            )
    record = None
    with contextlib.suppress(HistoryError):
        store = open_store()
        try:
            record = store.get(list_id)
        finally:
            store.close()
    if record is not None and record.kind == "tasks" and record.run_dir:
        folder = ListFolder(Path(record.run_dir))
        if folder.exists:
            return folder
    raise TaskListNotFound(
        f"no task list run {list_id!r} (cc-executor history --kind tasks lists them)"
    )
