"""Recording runs, recovering after crashes, verifying receipts.

Recording is best effort by design: a corrupt, locked or unwritable history produces a
warning on the run, never a failed run.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import socket
import stat
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cc_executor._engine import ProcessResult, _marker, kill_orphaned_tree, start_ticks
from cc_executor._engine._cgroup import remove_orphaned as remove_orphaned_cgroup
from cc_executor._engine._types import Stream
from cc_executor._paths import data_home
from cc_executor._store._base import HistoryError, HistoryStore, HistoryUnreachable
from cc_executor._store._location import (
    HISTORY_ENV,
    is_postgres,
    parse_postgres_url,
    sqlite_path,
)
from cc_executor._store._receipt import KEY_ENV, check_record, receipt_key, record_receipt
from cc_executor._store._record import (
    INTERRUPTED,
    RUNNING,
    Artifact,
    RunRecord,
    preview,
    redact_argv,
)
from cc_executor._store._sqlite import SQLiteStore

HOST = socket.gethostname()


def default_store_path() -> Path:
    """``history.sqlite3`` in the data dir (``$CC_EXECUTOR_HOME`` or the user data dir)."""
    return data_home() / "history.sqlite3"


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot), or None if there is no such process."""
    return start_ticks(pid)


def _same_process(pid: int | None, started: int | None) -> bool:
    return pid is not None and started is not None and process_start_ticks(pid) == started


#: The file in a run's folder holding the end of a run the history could not record.
UNRECORDED_END = "unrecorded-end.json"
#: A record is a few KiB; anything much larger is not one of ours.
_MAX_END_BYTES = 4 << 20


def keep_unrecorded_end(record: RunRecord, key: bytes | None) -> str | None:
    """Write ``record`` (a run's end the history refused: disk full, locked, damaged) with
    its receipt (made with ``key``) to ``unrecorded-end.json`` in its run folder, for the
    next opening of the history to record; the path, or None when that could not be
    written either."""
    if not record.run_dir:
        return None
    path = os.path.join(record.run_dir, UNRECORDED_END)
    tmp = f"{path}.{os.getpid()}.tmp"
    kept = RunRecord.from_dict(record.to_dict())
    # Receipted (keyed when a key is set), so that a file planted in the run folder cannot
    # pass for a run's end and be recorded with a receipt of the history's own.
    kept.record_receipt = record_receipt(kept, key)
    data = json.dumps(kept.to_dict(), ensure_ascii=True).encode()
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return None
    return path


#: What each field of a kept end may hold (JSON types), checked before it is recorded.
_END_TYPES: dict[str, tuple[type, ...]] = {
    **{f.name: (str, type(None)) for f in fields(RunRecord)},
    **{
        name: (int, type(None))
        for name in (
            "exit_code", "input_tokens", "output_tokens", "turns", "pid", "pid_started",
            "supervisor_pid", "supervisor_started", "peak_memory_bytes",
        )
    },
    **{
        name: (int, float, type(None))
        for name in ("ended_at", "cost_usd", "duration_s", "cpu_time_s")
    },
    **{name: (str,) for name in ("id", "kind", "status")},
    "started_at": (int, float),
    "cost_estimated": (bool, type(None)),  # absent from the ends written before it
    "argv": (list,),
    "warnings": (list,),
    "artifacts": (list,),
}  # fmt: skip


def _kept_end(record: RunRecord, key: bytes | None) -> RunRecord | None:
    """The end of ``record`` kept in its run folder, if there is a valid one: the same run
    (id, folder, supervisor), a final status, and a receipt that checks with ``key``.
    Anything else is ignored."""
    if not record.run_dir:
        return None
    path = os.path.join(record.run_dir, UNRECORDED_END)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        raw = os.read(fd, _MAX_END_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        data = json.loads(raw) if len(raw) <= _MAX_END_BYTES else None
        if not isinstance(data, dict):
            return None
        for name, allowed in _END_TYPES.items():
            value = data.get(name)
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                return None
        if not all(isinstance(x, str) for x in (*data["argv"], *data["warnings"])):
            return None
        for a in data["artifacts"]:
            if not (
                isinstance(a, dict)
                and set(a) <= {"name", "path", "size", "sha256", "unwritten"}
                and all(isinstance(a.get(k), str) for k in ("name", "path", "sha256"))
                and all(type(a.get(k, 0)) is int for k in ("size", "unwritten"))
            ):
                return None
        end = RunRecord.from_dict(data)
        end.cost_estimated = bool(end.cost_estimated)
    except (ValueError, TypeError, KeyError):
        return None
    same = (end.id, end.run_dir, end.supervisor_pid, end.supervisor_started) == (
        record.id,
        record.run_dir,
        record.supervisor_pid,
        record.supervisor_started,
    )
    if not same or end.status in (RUNNING, INTERRUPTED) or check_record(end, key) is not None:
        return None
    return end


def _record_kept_end(store: HistoryStore, record: RunRecord) -> bool:
    """Record the end kept in ``record``'s run folder, if it has a valid one; True if done.
    A history still unwritable leaves the run to be judged as any other."""
    end = _kept_end(record, store.receipt_key)
    if end is None:
        return False
    try:
        store.finish(end)
    except HistoryError:
        return False
    with contextlib.suppress(OSError):
        os.unlink(os.path.join(record.run_dir or "", UNRECORDED_END))
    return True


def recover(store: HistoryStore) -> list[RunRecord]:
    """Record the ends that could not be recorded when their runs ended (kept in their run
    folders, see :func:`keep_unrecorded_end`); then mark as ``interrupted`` every run of
    this host left ``running`` by a supervisor that no longer exists, and have the engine
    kill what is left of it (:func:`cc_executor._engine.kill_orphaned_tree`): the child if
    it is still the same process (PID *and* start time), and every process carrying its
    tree token. Returns the runs marked interrupted.

    Only rows recorded by this host (``host`` is :data:`HOST`) are touched: a row without
    a host (imported, or written into a shared PostgreSQL history by another tool) names
    no machine its PIDs belong to, so it is left as it is: ``cc-executor doctor`` names
    it, and a fleet run's loss is marked by the fleet's lease path (docs/security.md,
    P18)."""
    recovered = []
    for record in store.running():
        if record.host != HOST:
            continue
        if _record_kept_end(store, record):
            continue
        if _same_process(record.supervisor_pid, record.supervisor_started):
            continue
        kill_orphaned_tree(record.pid, record.pid_started, record.tree_token)
        remove_orphaned_cgroup(record.id)
        store.update_status(
            record.id,
            INTERRUPTED,
            error=f"its supervisor (pid {record.supervisor_pid}) is gone and the run's end "
            "was never recorded (the supervisor died first, or neither the history nor the "
            "run folder could be written when the run ended); found and marked interrupted "
            "when the history was next opened",
        )
        recovered.append(record)
    return recovered


def history_location() -> str | Path:
    """Where the history is: ``$CC_EXECUTOR_HISTORY`` (set by ``--history`` too: a file,
    ``sqlite:///path`` or ``postgresql://...``), else :func:`default_store_path`."""
    return os.environ.get(HISTORY_ENV) or default_store_path()


def open_store(
    path: str | os.PathLike[str] | None = None, *, readonly: bool = False
) -> HistoryStore:
    """Open (and create, migrate, recover) the history at ``path`` (a file,
    ``sqlite:///path`` or ``postgresql://...``; default: :func:`history_location`), with
    the receipt key of ``$CC_EXECUTOR_RECEIPT_KEY_FILE`` when it is set. Raises
    :class:`HistoryError` (a key file that is set but unusable included).

    ``readonly``: only read it (see :class:`SQLiteStore`): nothing is created, migrated
    or recovered, so it works on a read-only mount; a run whose supervisor is gone keeps
    its ``running`` status there (:func:`stale` tells)."""
    location = path if path is not None else history_location()
    store: HistoryStore
    if is_postgres(location):
        store = _open_postgres(str(location), readonly=readonly)
    else:
        store = SQLiteStore(sqlite_path(location), readonly=readonly, receipt_key=receipt_key())
    if not readonly:
        adopt_markers(store)
        recover(store)
    return store


def _open_postgres(url: str, *, readonly: bool) -> HistoryStore:
    """A PostgreSQL history: read directly (``readonly``), else with this machine's
    SQLite beside it (:class:`~cc_executor._store._mirror.MirroredStore`). A read that
    cannot reach the database reads this machine's SQLite instead, with a warning."""
    from cc_executor._store._postgres import PostgresStore

    target = parse_postgres_url(url)
    key = receipt_key()
    local_path = default_store_path()
    if readonly:
        try:
            return PostgresStore(target, readonly=True, receipt_key=key)
        except HistoryUnreachable as exc:
            if not local_path.is_file():
                raise
            local = SQLiteStore(local_path, readonly=True, receipt_key=key)
            local.warnings.append(f"{exc}: showing this machine's runs from {local_path}")
            return local
    from cc_executor._store._mirror import MirroredStore

    try:
        local = SQLiteStore(local_path, receipt_key=key)
    except HistoryError as exc:
        # No local file (an unwritable data folder): PostgreSQL alone, as before.
        store = PostgresStore(target, receipt_key=key)
        store.warnings.append(f"no local copy of the history is kept: {exc}")
        return store
    try:
        return MirroredStore(local, target, receipt_key=key)
    except BaseException:
        local.close()
        raise


def _int(text: object) -> int | None:
    return int(text) if isinstance(text, str) and text.isdigit() else None


def adopt_markers(store: HistoryStore) -> list[RunRecord]:
    """Turn into ``interrupted`` rows the spawn markers (see ``_engine._marker``) of runs
    of this host whose supervisor died before the history held their start, and have the
    engine kill what is left of their trees. A marker whose run has its row, or whose
    supervisor still runs (the start is on its way), is left to that supervisor."""
    adopted = []
    for run_id, run_dir in _marker.pending():
        fields = _marker.read(run_dir)
        if fields is None or fields.get("id") != run_id:
            _marker.clear(run_id, None)  # a link to nothing usable: nothing to record
            continue
        if fields.get("host") not in (None, HOST):
            continue
        supervisor, supervisor_started = (
            _int(fields.get("supervisor_pid")),
            _int(fields.get("supervisor_started")),
        )
        if _same_process(supervisor, supervisor_started):
            continue
        if store.get(run_id) is not None:
            _marker.clear(run_id, run_dir)
            continue
        pid, pid_started = _int(fields.get("pid")), _int(fields.get("pid_started"))
        token = fields.get("tree_token")
        kill_orphaned_tree(pid, pid_started, token if isinstance(token, str) else None)
        remove_orphaned_cgroup(run_id)
        record = _marker_record(run_id, run_dir, fields)
        record.supervisor_pid, record.supervisor_started = supervisor, supervisor_started
        record.pid, record.pid_started = pid, pid_started
        record.error = (
            f"its supervisor (pid {supervisor}) died before the run's start was recorded"
            + ("" if pid is not None else ", maybe before the command was started")
            + "; found by its spawn marker when the history was next opened"
        )
        store.finish(record)
        _marker.clear(run_id, run_dir)
        adopted.append(record)
    return adopted


def _marker_record(run_id: str, run_dir: str, fields: dict[str, str | list[str]]) -> RunRecord:
    """The ``interrupted`` row of a marker's run (argv redacted, the prompt's digest and
    preview from its saved file)."""

    def text(name: str) -> str | None:
        value = fields.get(name)
        return value if isinstance(value, str) and value else None

    argv = fields.get("argv")
    try:
        started_at = float(text("started_at") or "")
    except ValueError:
        started_at = time.time()
    record = RunRecord(
        id=run_id,
        kind=text("kind") or "exec",
        agent=text("agent"),
        argv=redact_argv(argv if isinstance(argv, list) else []),
        cwd=text("cwd"),
        started_at=started_at,
        ended_at=time.time(),
        status=INTERRUPTED,
        parent_id=text("parent_id"),
        host=text("host"),
        run_dir=run_dir,
        tree_token=text("tree_token"),
        model=text("model"),
    )
    if record.kind == "run":
        try:
            with open(os.path.join(run_dir, "prompt.txt"), "rb") as f:
                prompt = f.read()
        except OSError:
            pass
        else:
            record.prompt_sha256 = hashlib.sha256(prompt).hexdigest()
            record.prompt_preview = preview(prompt.decode("utf-8", "replace"))
    return record


def stale(record: RunRecord) -> bool:
    """True for a run of this host still marked ``running`` whose supervisor no longer
    exists: the next opening of the history for writing marks it ``interrupted``."""
    return (
        record.status == RUNNING
        and record.host == HOST
        and not _same_process(record.supervisor_pid, record.supervisor_started)
    )


#: How a stored file is opened: never through a symlink, never blocking on a FIFO, never
#: becoming the controlling terminal.
_OPEN_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
)


def _kind(mode: int) -> str:
    for test, kind in (
        (stat.S_ISLNK, "a symbolic link"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return kind
    return "not a regular file"


def _open_regular(path: str | os.PathLike[str]) -> tuple[int, os.stat_result] | str:
    """An fd on ``path`` and its stat when it is a regular file (not through a symlink),
    else what it is instead (a FIFO or a device would block or never end if read).
    Raises ``OSError``."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        # O_NOFOLLOW on a symlink fails with ELOOP (Linux, macOS) or EMLINK (FreeBSD).
        if exc.errno in (errno.ELOOP, errno.EMLINK) and os.path.islink(path):
            return f"{os.fspath(path)} is now a symbolic link"
        raise
    try:
        info = os.fstat(fd)
    except BaseException:
        os.close(fd)
        raise
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return f"{os.fspath(path)} is now {_kind(info.st_mode)}"
    return fd, info


def read_receipt(
    name: str, path: str | os.PathLike[str], *, limit: int | None = None
) -> Artifact | str:
    """Size and sha256 of the regular file ``path``, read through no symlink and hashing at
    most ``limit + 1`` bytes (a file past ``limit`` gets the size it has and an empty
    sha256: it differs from a receipt of ``limit`` bytes either way), or why it is not
    read (it is not a regular file). Raises ``OSError``."""
    opened = _open_regular(path)
    if isinstance(opened, str):
        return opened
    fd, info = opened
    digest = hashlib.sha256()
    size = 0
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(1 << 20 if limit is None else min(1 << 20, limit + 1 - size)):
            digest.update(chunk)
            size += len(chunk)
            if limit is not None and size > limit:
                return Artifact(
                    name=name, path=os.fspath(path), size=max(size, info.st_size), sha256=""
                )
    return Artifact(name=name, path=os.fspath(path), size=size, sha256=digest.hexdigest())


def file_receipt(name: str, path: str | os.PathLike[str]) -> Artifact | None:
    """Size and sha256 of a stored file, or None if it cannot be read or is not a regular
    file."""
    try:
        receipt = read_receipt(name, path)
    except OSError:
        return None
    return receipt if isinstance(receipt, Artifact) else None


class Recorder:
    """Records runs in the history without ever failing them.

    Opens the store on first use; any :class:`HistoryError` (then or later) disables
    recording for this recorder and is kept in ``warnings``, for the run to report.
    """

    def __init__(self, store: HistoryStore | None = None, *, enabled: bool = True) -> None:
        self._store = store
        self._enabled = enabled
        self.warnings: list[str] = []

    def _get(self) -> HistoryStore | None:
        if not self._enabled:
            return None
        if self._store is None:
            try:
                self._store = open_store()
            except HistoryError as exc:
                self._fail(exc)
            else:
                self.warnings.extend(getattr(self._store, "warnings", ()))
        return self._store

    def _fail(self, exc: Exception) -> None:
        self._enabled = False
        self.warnings.append(f"history not recorded: {exc}")

    def start(self, record: RunRecord) -> None:
        """Record the start of ``record`` (filling host and supervisor identity)."""
        record.host = record.host or HOST
        record.supervisor_pid = os.getpid()
        record.supervisor_started = process_start_ticks(os.getpid())
        if record.pid is not None and record.pid_started is None:
            record.pid_started = process_start_ticks(record.pid)
        store = self._get()
        if store is not None:
            try:
                store.start(record)
            except (HistoryError, OSError) as exc:
                self._fail(exc)
            else:
                _marker.clear(record.id, record.run_dir)  # the row says it all now

    def permission(self, run_id: str, decision: Mapping[str, Any]) -> None:
        """Record a permission decision of run ``run_id`` (a failure only warns)."""
        store = self._get()
        if store is not None:
            try:
                store.add_permission_decision(run_id, decision)
            except (HistoryError, OSError) as exc:
                self._fail(exc)

    def finish(self, record: RunRecord) -> None:
        """Record the end of ``record``. When the history refuses it (disk full, ...) the
        end is kept in the run folder, and the next opening of the history records it: a
        run that ended is never taken for one whose supervisor died."""
        # The run ended under its supervisor: whatever was recorded, its marker is moot.
        _marker.clear(record.id, record.run_dir)
        store = self._get()
        if store is not None:
            try:
                store.finish(record)
            except (HistoryError, OSError) as exc:
                self._fail(exc)
                kept = keep_unrecorded_end(record, store.receipt_key)
                if kept is not None:
                    self.warnings.append(
                        f"the run's end is kept in {kept}; the next opening of the history "
                        "records it"
                    )

    def close(self) -> None:
        """Close the store if this recorder opened it."""
        if self._store is not None:
            self._store.close()


def process_receipts(process: ProcessResult, *, stdout_name: str = "stdout") -> list[Artifact]:
    """Receipts of a supervised process's output files, from the sizes and sha256 the
    engine computed while the bytes arrived: of what each file holds, which after a write
    error (disk full, file size limit) is less than the stream (``unwritten`` says how
    much less)."""
    receipts = []
    streams: tuple[tuple[str, Stream, str | None, int], ...] = (
        (stdout_name, "stdout", process.stdout_path, process.stdout_bytes),
        ("stderr", "stderr", process.stderr_path, process.stderr_bytes),
    )
    for name, stream, path, total in streams:
        if path is None:
            continue
        size, digest = process.on_disk(stream)
        receipts.append(
            Artifact(name=name, path=path, size=size, sha256=digest, unwritten=total - size)
        )
    return receipts


def finish_process_record(record: RunRecord, process: ProcessResult) -> RunRecord:
    """Fill ``record`` with how a plain command ended: times, status, exit code, signal,
    error and the receipts of its output."""
    record.ended_at = process.ended_at
    record.status = process.status.value
    record.exit_code = process.exit_code
    record.signal = process.signal
    record.duration_s = process.duration_s
    record.error = process.error
    record.artifacts = process_receipts(process)
    record.peak_memory_bytes = process.peak_memory_bytes
    record.cpu_time_s = process.cpu_time_s
    return record


@dataclass(slots=True)
class Verification:
    """What ``verify`` found for one run.

    ``unaltered``: every file matches its receipt; ``record_unaltered``: the record's
    fields match the record's receipt; ``keyed``: that receipt is an HMAC checked with the
    key of ``$CC_EXECUTOR_RECEIPT_KEY_FILE`` (else a plain sha256, which whoever can write
    the data folder can recompute). ``notes``: facts that are not problems (a file that
    holds only part of the output, the receipts being unkeyed)."""

    run_id: str
    exists: bool
    completed: bool = False
    unaltered: bool = False
    record_unaltered: bool = False
    keyed: bool = False
    status: str | None = None
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    artifacts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when the run exists, completed, every artifact matches its receipt and the
        record matches its own."""
        return self.exists and self.completed and self.unaltered and self.record_unaltered

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_id": self.run_id,
            "ok": self.ok,
            "exists": self.exists,
            "completed": self.completed,
            "unaltered": self.unaltered,
            "record_unaltered": self.record_unaltered,
            "keyed": self.keyed,
            "status": self.status,
            "problems": list(self.problems),
            "notes": list(self.notes),
            "artifacts": list(self.artifacts),
        }


#: What ``verify`` says when no key is configured.
UNKEYED_NOTE = (
    f"the receipts are unkeyed (no {KEY_ENV}): they show damage and naive edits, but "
    "whoever can write the data folder can rewrite them"
)


def verify(
    record: RunRecord | None, run_id: str, store: HistoryStore | None = None
) -> Verification:
    """Recompute the sha256 of every stored artifact of ``record`` against its receipt,
    and the record's own receipt (HMAC-SHA256 with the key of
    ``$CC_EXECUTOR_RECEIPT_KEY_FILE`` when it is set) against its fields. A file of a run
    of another machine, or missing here, is checked in the copy ``store`` holds, if any
    (a PostgreSQL history keeps one)."""
    if record is None:
        return Verification(run_id, exists=False, problems=["no such run in the history"])
    result = Verification(record.id, exists=True, status=record.status)
    try:
        key = receipt_key()
    except HistoryError as exc:
        result.problems.append(f"the record's receipt cannot be checked: {exc}")
    else:
        result.keyed = key is not None
        problem = check_record(record, key)
        result.record_unaltered = problem is None
        if problem is not None:
            result.problems.append(problem)
        if key is None:
            result.notes.append(UNKEYED_NOTE)
    result.completed = record.status not in ("running", INTERRUPTED) and bool(record.artifacts)
    if not result.completed:
        result.problems.append(
            f"the run did not complete (status {record.status})"
            if record.status in ("running", INTERRUPTED)
            else "no receipts were recorded"
        )
    altered = False
    for artifact in record.artifacts:
        entry: dict[str, Any] = {
            "name": artifact.name,
            "path": artifact.path,
            "recorded_sha256": artifact.sha256,
            "recorded_size": artifact.size,
        }
        now: Artifact | str | None = None
        here = record.host in (None, HOST)
        if here:
            with contextlib.suppress(OSError):
                # Bounded by the recorded size: more bytes than that is altered already.
                now = read_receipt(artifact.name, artifact.path, limit=max(artifact.size, 0))
        if now is None and store is not None:
            copy = store.file_content(record.id, artifact.name)
            if copy is not None:
                now = Artifact(
                    name=artifact.name,
                    path=artifact.path,
                    size=len(copy),
                    sha256=hashlib.sha256(copy).hexdigest(),
                )
                entry["checked"] = "copy in the history"
                where = "the file is not on this machine" if here else f"it ran on {record.host}"
                result.notes.append(f"{artifact.name} was checked in the history's copy ({where})")
        if isinstance(now, str):
            entry["state"] = "altered"
            entry["reason"] = f"{now}, not a regular file (not read)"
            result.problems.append(f"{artifact.name} was altered: {entry['reason']}")
            altered = True
            result.artifacts.append(entry)
            continue
        if now is None:
            entry["state"] = "missing"
            result.problems.append(f"{artifact.name} is missing ({artifact.path})")
            altered = True
        elif now.sha256 != artifact.sha256 or now.size != artifact.size:
            entry["state"] = "altered"
            entry["sha256"] = now.sha256
            entry["size"] = now.size
            result.problems.append(
                f"{artifact.name} was altered: sha256 {now.sha256[:12]}… != recorded "
                f"{artifact.sha256[:12]}… (size {now.size} vs {artifact.size})"
                if now.sha256
                else f"{artifact.name} was altered: it holds more than the recorded "
                f"{artifact.size} bytes (size {now.size})"
            )
            altered = True
        else:
            entry["state"] = "ok"
            if artifact.unwritten:
                entry["unwritten"] = artifact.unwritten
                result.notes.append(
                    f"{artifact.name} is incomplete: it holds the first {artifact.size} bytes "
                    f"of the output; {artifact.unwritten} more could not be written (disk full "
                    "or file size limit)"
                )
        result.artifacts.append(entry)
    result.unaltered = not altered and bool(record.artifacts)
    return result


def now() -> float:
    """Wall-clock time for records."""
    return time.time()
