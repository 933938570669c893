"""A PostgreSQL history kept with a local SQLite beside it: what a process given
``--history postgresql://...`` (a fleet worker, ``serve``, ``run``...) records.

Every write goes to this machine's SQLite first (``history.sqlite3`` in the data folder),
then to PostgreSQL. A write PostgreSQL did not take (the server is down, the network cut)
leaves the run in the table ``history_pending`` of the local file; the next opening of the
history, or any open store every :data:`SYNC_INTERVAL_S` (a long-lived process: a worker,
``serve``), writes those runs to PostgreSQL again from their local rows. Writing is
an upsert by run id, so a run replayed twice, or by two processes at once, is one row.
Reads go to PostgreSQL, or to the local file while PostgreSQL is unreachable (this
machine's runs stay inspectable).

While a run lasts, its event log and stderr are copied into PostgreSQL every
:data:`STREAM_INTERVAL_S` (only the bytes added since, up to the 64 MiB bound): a run whose
worker dies mid-run keeps, in the database, what it had streamed.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from cc_executor._store._base import HistoryError, HistoryUnreachable, Query
from cc_executor._store._location import PostgresTarget
from cc_executor._store._postgres import MAX_FILE_BYTES, PostgresStore
from cc_executor._store._record import RunRecord
from cc_executor._store._sqlite import SQLiteStore

T = TypeVar("T")

#: How often a long-lived process retries writing its pending runs to PostgreSQL.
SYNC_INTERVAL_S = 30.0
#: How often a running run's files are copied into PostgreSQL (what they gained since).
STREAM_INTERVAL_S = 2.0
#: The most bytes one copy step sends (a fast-growing log is sent over several steps).
_CHUNK_BYTES = 8 << 20
#: Per database URL, until when (monotonic) this process does not try to connect again:
#: every store of the process shares it, so a database that hangs costs the runs that
#: start meanwhile nothing (a connection attempt waits up to CONNECT_TIMEOUT_S), not each
#: run's opening of the history one attempt.
_DOWN_UNTIL: dict[str, float] = {}
_DOWN_REASON: dict[str, str] = {}


class MirroredStore:
    """The PostgreSQL history at ``target`` with ``local`` beside it (see the module).
    Implements :class:`~cc_executor._store.HistoryStore`. Opening never fails for an
    unreachable database: the reason is in ``warnings``, and runs are kept locally."""

    def __init__(
        self,
        local: SQLiteStore,
        target: PostgresTarget,
        *,
        receipt_key: bytes | None = None,
        sync_interval_s: float = SYNC_INTERVAL_S,
        stream_interval_s: float = STREAM_INTERVAL_S,
    ) -> None:
        self.local = local
        self.url = target.url
        self.readonly = False
        self.warnings: list[str] = list(local.warnings)
        self.sync_interval_s = sync_interval_s
        self.stream_interval_s = stream_interval_s
        self._target = target
        self._receipt_key = receipt_key
        #: Why PostgreSQL was last found unreachable (None: it was not).
        self.remote_error: str | None = None
        self.remote: PostgresStore | None = None
        self._retry_at = 0.0
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._syncer: threading.Thread | None = None
        self._streams: dict[str, _Stream] = {}
        self._first = True
        self._remote_now()
        self._first = False
        if self.remote is None:
            self.warnings.append(
                f"{self.remote_error}; runs are recorded in {local.path} and written to "
                "the database when it is back"
            )
        self.sync()
        self._start_syncer()

    # ------------------------------------------------------------------ the remote side

    def _remote_now(self) -> PostgresStore | None:
        """The PostgreSQL store, (re)connected when the last failure is old enough."""
        with self._lock:
            now = time.monotonic()
            if self.remote is None and now < _DOWN_UNTIL.get(self.url, 0.0):
                # Another store of this process found it unreachable a moment ago.
                self.remote_error = self.remote_error or _DOWN_REASON.get(self.url)
                self._retry_at = max(self._retry_at, _DOWN_UNTIL[self.url])
            if self.remote is None and now >= self._retry_at:
                try:
                    self.remote = PostgresStore(self._target, receipt_key=self._receipt_key)
                except HistoryUnreachable as exc:
                    self._lost_locked(str(exc))
                except HistoryError as exc:
                    # It answered and refused (a newer schema): said at the first opening.
                    if self._first:
                        raise
                    self._lost_locked(str(exc))
                else:
                    self.remote_error = None
                    _DOWN_UNTIL.pop(self.url, None)
            return self.remote

    def _lost(self, exc: Exception) -> None:
        with self._lock:
            self._lost_locked(str(exc))

    def _lost_locked(self, reason: str) -> None:
        # Not retried before a while: a database that is down costs one attempt, not one
        # per write. A long-lived process's syncer retries it.
        self.remote_error = reason
        self._retry_at = time.monotonic() + min(self.sync_interval_s, 5.0)
        _DOWN_UNTIL[self.url] = self._retry_at
        _DOWN_REASON[self.url] = reason
        if self.remote is not None:
            remote, self.remote = self.remote, None
            remote.close()

    def _on_remote(self, body: Callable[[PostgresStore], T]) -> tuple[bool, T | None]:
        remote = self._remote_now()
        if remote is None:
            return False, None
        try:
            return True, body(remote)
        except HistoryError as exc:
            self._lost(exc)
            return False, None

    def _read_either(self, body: Callable[[PostgresStore | SQLiteStore], T]) -> T:
        """``body`` on PostgreSQL, or on the local file while it is unreachable."""
        done, value = self._on_remote(body)
        if done:
            return value  # type: ignore[return-value]  # T itself, None included
        note = (
            f"the history at {self.url} is unreachable ({self.remote_error}): showing this "
            f"machine's runs from {self.local.path}"
        )
        if note not in self.warnings:
            self.warnings.append(note)
        return body(self.local)

    # ------------------------------------------------------------------ pending runs

    def _pend(self, run_id: str, reason: str | None) -> None:
        with self.local._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO history_pending (run_id, queued_at, reason) "
                "VALUES (?, ?, ?)",
                (run_id, time.time(), reason),
            )

    def pending(self) -> int:
        """How many runs of the local file have still to be written to PostgreSQL."""
        return int(self.local._read("SELECT COUNT(*) AS n FROM history_pending")[0]["n"])

    def sync(self) -> int:
        """Write the pending runs to PostgreSQL, oldest first (from their local rows, with
        their files and permission decisions); returns how many are left pending."""
        rows = self.local._read("SELECT run_id, queued_at FROM history_pending ORDER BY queued_at")
        if not rows:
            return 0
        remote = self._remote_now()
        if remote is None:
            return len(rows)
        left = len(rows)
        for row in rows:
            run_id, queued_at = row["run_id"], row["queued_at"]
            found = self.local._records(
                self.local._read("SELECT * FROM runs WHERE id = ?", (run_id,))
            )
            if found:
                try:
                    remote.replay(found[0], self.local.permission_decisions(run_id))
                except HistoryError as exc:
                    self._lost(exc)
                    return left
            # Cleared only if not queued again meanwhile (a later write of the same run).
            with self.local._write() as db:
                db.execute(
                    "DELETE FROM history_pending WHERE run_id = ? AND queued_at = ?",
                    (run_id, queued_at),
                )
            left -= 1
        return left

    def _start_syncer(self) -> None:
        with self._lock:
            if self._closed.is_set() or (self._syncer is not None and self._syncer.is_alive()):
                return
            self._syncer = threading.Thread(
                target=self._sync_loop, name="cc-executor-history-sync", daemon=True
            )
            self._syncer.start()

    def _sync_loop(self) -> None:
        # For as long as the store is open: the pending runs may be another process's (a
        # run of serve, recorded through its own store, that ended during the outage).
        while not self._closed.wait(self.sync_interval_s):
            with contextlib.suppress(HistoryError):  # the local file failed: next time
                self.sync()

    # ------------------------------------------------------------------ writes

    @property
    def receipt_key(self) -> bytes | None:
        """The key record receipts are made with (None: unkeyed)."""
        return self._receipt_key

    def start(self, record: RunRecord) -> None:
        """Record a started run here, then in PostgreSQL (else pending); start copying
        its files into PostgreSQL as they grow."""
        self.local.start(record)
        done, _ = self._on_remote(lambda remote: remote.start(record))
        if not done:
            self._pend(record.id, self.remote_error)
        if record.run_dir and record.id not in self._streams and not self._closed.is_set():
            stream = _Stream(self, record)
            self._streams[record.id] = stream
            stream.start()

    def finish(self, record: RunRecord) -> None:
        """Record a run's end here, then in PostgreSQL with its files (else pending)."""
        stream = self._streams.pop(record.id, None)
        if stream is not None:
            stream.stop()
        self.local.finish(record)
        done, _ = self._on_remote(lambda remote: remote.finish(record))
        if not done:
            self._pend(record.id, self.remote_error)

    def update_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Set a run's status here and in PostgreSQL (else pending, if the run is here)."""
        self.local.update_status(run_id, status, error=error)
        done, _ = self._on_remote(lambda r: r.update_status(run_id, status, error=error))
        if done:
            return
        if not self.local._read("SELECT id FROM runs WHERE id = ?", (run_id,)):
            raise HistoryError(f"cannot write the history at {self.url}: {self.remote_error}")
        self._pend(run_id, self.remote_error)

    def add_permission_decision(self, run_id: str, decision: Mapping[str, Any]) -> None:
        """Record a permission decision here and in PostgreSQL (else the run is pending:
        its replay writes all its decisions)."""
        self.local.add_permission_decision(run_id, decision)
        done, _ = self._on_remote(lambda r: r.add_permission_decision(run_id, decision))
        if not done:
            self._pend(run_id, self.remote_error)

    def delete_before(self, timestamp: float) -> list[RunRecord]:
        """Prune PostgreSQL (which must be reachable) and the local file."""
        done, removed = self._on_remote(lambda r: r.delete_before(timestamp))
        if not done:
            raise HistoryError(f"cannot write the history at {self.url}: {self.remote_error}")
        self.local.delete_before(timestamp)
        return removed or []

    def import_record(self, record: RunRecord, **kwargs: Any) -> bool:
        """See :meth:`PostgresStore.import_record` (PostgreSQL must be reachable)."""
        done, added = self._on_remote(lambda r: r.import_record(record, **kwargs))
        if not done:
            raise HistoryError(f"cannot write the history at {self.url}: {self.remote_error}")
        return bool(added)

    # ------------------------------------------------------------------ reads

    @property
    def schema_version(self) -> int:
        """The schema version of PostgreSQL (of the local file while it is unreachable)."""
        return self._read_either(lambda s: int(s.schema_version))

    def get(self, run_id: str) -> RunRecord | None:
        """One run by id (or unique prefix)."""
        return self._read_either(lambda s: s.get(run_id))

    def query(self, query: Query) -> list[RunRecord]:
        """Runs matching the filters, newest first."""
        return self._read_either(lambda s: s.query(query))

    def running(self) -> list[RunRecord]:
        """Runs still marked running."""
        return self._read_either(lambda s: s.running())

    def durations(self, **kwargs: Any) -> list[float]:
        """Durations of similar finished runs (see :meth:`SQLHistory.durations`)."""
        return self._read_either(lambda s: s.durations(**kwargs))

    def file_content(self, run_id: str, name: str) -> bytes | None:
        """PostgreSQL's copy of a run's file (None: none, or unreachable)."""
        done, content = self._on_remote(lambda r: r.file_content(run_id, name))
        return content if done else None

    def count(self) -> int:
        """Number of runs."""
        return self._read_either(lambda s: s.count())

    def bad_rows(self) -> list[tuple[str, str]]:
        """Malformed rows."""
        return self._read_either(lambda s: s.bad_rows())

    def permission_decisions(self, run_id: str) -> list[dict[str, Any]]:
        """A run's permission decisions, oldest first."""
        return self._read_either(lambda s: s.permission_decisions(run_id))

    def close(self) -> None:
        """Stop copying, write what is pending once more if the database is there, and
        close both stores."""
        self._closed.set()
        for stream in list(self._streams.values()):
            stream.stop()
        self._streams.clear()
        if self._syncer is not None:
            self._syncer.join()
        if self.remote is not None:
            with contextlib.suppress(HistoryError):
                self.sync()
            self.remote.close()
        self.local.close()


class _Stream(threading.Thread):
    """Copies a running run's files into PostgreSQL as they grow (the bytes added since
    the last copy, up to :data:`MAX_FILE_BYTES` per file)."""

    def __init__(self, store: MirroredStore, record: RunRecord) -> None:
        super().__init__(name=f"cc-executor-stream-{record.id}", daemon=True)
        self._store = store
        self._run_id = record.id
        folder = record.run_dir or ""
        # The names the run's receipts give them (see process_receipts).
        log = "events" if record.kind == "run" else "stdout"
        self._files = [
            _Copy(log, os.path.join(folder, "stdout.log")),
            _Copy("stderr", os.path.join(folder, "stderr.log")),
        ]
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join()

    def run(self) -> None:
        while not self._halt.wait(self._store.stream_interval_s):
            remote = self._store.remote
            if remote is None:
                continue  # unreachable: the end's copy, or its replay, will carry it all
            for copy in self._files:
                if self._halt.is_set():
                    return
                try:
                    copy.step(remote, self._run_id)
                except HistoryError:
                    break  # tried again next time, from where the copy stands


class _Copy:
    """One file being copied: how many of its bytes the database holds, and their sha256."""

    def __init__(self, name: str, path: str) -> None:
        self.name = name
        self.path = path
        self.offset = 0
        self.digest = hashlib.sha256()

    def step(self, remote: PostgresStore, run_id: str) -> None:
        room = MAX_FILE_BYTES - self.offset
        if room <= 0:
            return  # the bound: the copy holds the first 64 MiB
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return
        try:
            chunk = os.pread(fd, min(room, _CHUNK_BYTES), self.offset)
        except OSError:
            return
        finally:
            os.close(fd)
        if not chunk:
            return
        digest = self.digest.copy()
        digest.update(chunk)
        if remote.append_file(run_id, self.name, self.offset, chunk, digest.hexdigest()):
            self.offset += len(chunk)
            self.digest = digest
        else:
            # The copy is not what we sent (another writer, an answer lost with the
            # connection): start it again from the first byte.
            self.offset = 0
            self.digest = hashlib.sha256()
