"""The embedded history: SQLite in WAL mode, one file, no server.

Concurrency: every connection waits for locks (``busy_timeout``) and every write is one short
``BEGIN IMMEDIATE`` transaction retried on ``SQLITE_BUSY``, so many processes can record at
once and none ever sees "database is locked". WAL lets readers run while a writer writes.

Schema changes are numbered migrations applied in order (``PRAGMA user_version`` holds the
current number), each in its own transaction, so an upgrade never loses history.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cc_executor._paths import data_home, private_dir
from cc_executor._store._base import HistoryError, Query
from cc_executor._store._receipt import check_record, record_receipt
from cc_executor._store._record import RUNNING, Artifact, RunRecord

#: Numbered schema migrations; index i upgrades from version i to i + 1.
MIGRATIONS: Sequence[str] = (
    # 1: the first schema.
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        agent TEXT,
        argv TEXT NOT NULL DEFAULT '[]',
        cwd TEXT,
        prompt_sha256 TEXT,
        prompt_preview TEXT,
        started_at REAL NOT NULL,
        ended_at REAL,
        status TEXT NOT NULL,
        exit_code INTEGER,
        signal TEXT,
        session_id TEXT,
        cost_usd REAL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        turns INTEGER,
        duration_s REAL,
        result_preview TEXT,
        error TEXT,
        parent_id TEXT,
        host TEXT,
        run_dir TEXT,
        pid INTEGER,
        pid_started INTEGER,
        supervisor_pid INTEGER,
        supervisor_started INTEGER,
        artifacts TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX runs_started ON runs (started_at);
    CREATE INDEX runs_status ON runs (status);
    """,
    # 2: the tree token (to find a dead supervisor's escaped descendants) and the model.
    """
    ALTER TABLE runs ADD COLUMN tree_token TEXT;
    ALTER TABLE runs ADD COLUMN model TEXT;
    CREATE INDEX runs_agent_started ON runs (agent, started_at);
    CREATE INDEX runs_parent ON runs (parent_id);
    """,
    # 3: the run's warnings (a JSON list of strings), kept for ``show``.
    """
    ALTER TABLE runs ADD COLUMN warnings TEXT NOT NULL DEFAULT '[]';
    """,
    # 4: the record's own receipt (a digest of its fields, keyed or not), for ``verify``.
    """
    ALTER TABLE runs ADD COLUMN record_receipt TEXT;
    """,
    # 5: the batch a run belongs to (run_many, ``cc-executor batch``) and its document's key.
    """
    ALTER TABLE runs ADD COLUMN batch_id TEXT;
    ALTER TABLE runs ADD COLUMN batch_key TEXT;
    CREATE INDEX runs_batch ON runs (batch_id, batch_key);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_COLUMNS = (
    "id", "kind", "agent", "argv", "cwd", "prompt_sha256", "prompt_preview", "started_at",
    "ended_at", "status", "exit_code", "signal", "session_id", "cost_usd", "input_tokens",
    "output_tokens", "turns", "duration_s", "result_preview", "error", "parent_id", "host",
    "run_dir", "pid", "pid_started", "supervisor_pid", "supervisor_started", "tree_token",
    "model", "artifacts", "warnings", "record_receipt", "batch_id", "batch_key",
)  # fmt: skip
_BUSY_RETRY_S = 60.0


def _row_values(record: RunRecord) -> list[Any]:
    values = []
    for column in _COLUMNS:
        value = getattr(record, column)
        if column in ("argv", "warnings"):
            value = json.dumps(value)
        elif column == "artifacts":
            value = json.dumps([a.to_dict() for a in value])
        values.append(value)
    return values


def _record(row: sqlite3.Row) -> RunRecord:
    data = dict(row)
    data["argv"] = json.loads(data.get("argv") or "[]")
    data["warnings"] = json.loads(data.get("warnings") or "[]")
    data["artifacts"] = [Artifact(**a) for a in json.loads(data.get("artifacts") or "[]")]
    return RunRecord(**{k: data[k] for k in _COLUMNS if k in data})


class SQLiteStore:
    """The history in one SQLite file. Thread-safe; safe across processes.

    Opening creates the file and its folder if needed and brings the schema up to date.
    Every failure (unwritable folder, corrupt file, disk full) raises :class:`HistoryError`
    with the path and the reason. Every write gives the record its receipt, an HMAC-SHA256
    with ``receipt_key`` when there is one (see :func:`~cc_executor._store.receipt_key`).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        migrate_to: int = SCHEMA_VERSION,
        receipt_key: bytes | None = None,
    ) -> None:
        self.path = Path(path)
        self._receipt_key = receipt_key
        self._lock = threading.Lock()
        #: What opening had to put right (permissions), for the caller to report.
        self.warnings: list[str] = []
        try:
            self._make_private()
            self._db = sqlite3.connect(
                self.path, timeout=_BUSY_RETRY_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"cannot open the history at {self.path}: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute(f"PRAGMA busy_timeout = {int(_BUSY_RETRY_S * 1000)}")
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = NORMAL")
            self._migrate(migrate_to)
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise HistoryError(
                f"the history at {self.path} is unusable ({exc}); move it aside to start a "
                "new one (runs themselves are not affected)"
            ) from None

    # ------------------------------------------------------------------ plumbing

    def _make_private(self) -> None:
        """The history holds prompts, answers and command lines: its folder 0700 and its
        files 0600, made so (with a warning) if other accounts could read them."""
        # Its folder is made private only when it is the data folder; a history placed
        # elsewhere keeps its folder as the user made it (only the files are tightened).
        warning = private_dir(
            str(self.path.parent), tighten=self.path.parent.resolve() == data_home().resolve()
        )
        if warning:
            self.warnings.append(warning)
        # Never open (and close) a descriptor on an existing history: closing any descriptor
        # of a file drops every POSIX lock this process holds on it, the locks of SQLite
        # connections already open here included, and another process could then take the
        # database for unused and delete its WAL under them. Create it only when missing.
        try:
            if stat.S_ISLNK(os.lstat(self.path).st_mode):
                raise OSError(errno.ELOOP, f"{self.path} is a symbolic link")
        except FileNotFoundError:
            flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            with contextlib.suppress(FileExistsError):  # another process made it meanwhile
                os.close(os.open(self.path, flags, 0o600))
        for path in (self.path, Path(f"{self.path}-wal"), Path(f"{self.path}-shm")):
            try:
                mode = path.stat().st_mode & 0o777
            except FileNotFoundError:
                continue
            if mode & 0o077:
                path.chmod(mode & 0o600 or 0o600)
                self.warnings.append(
                    f"{path} was readable by other accounts (mode {mode:o}); it now is not"
                )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction, retried while another process holds the lock."""
        deadline = time.monotonic() + _BUSY_RETRY_S
        with self._lock:
            while True:
                try:
                    self._db.execute("BEGIN IMMEDIATE")
                    break
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) and "busy" not in str(exc):
                        raise HistoryError(f"history at {self.path}: {exc}") from None
                    if time.monotonic() > deadline:
                        raise HistoryError(f"history at {self.path} stayed locked") from None
                    time.sleep(0.01)
            try:
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:  # a full disk, an I/O error, in the body or the commit
                self._rollback()
                raise HistoryError(f"cannot write the history at {self.path}: {exc}") from None
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        # A failed COMMIT (disk full) may already have rolled back: a second ROLLBACK would
        # raise "no transaction is active" over the real error.
        if self._db.in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise HistoryError(f"cannot read the history at {self.path}: {exc}") from None

    @property
    def schema_version(self) -> int:
        """The schema version of the file."""
        return int(self._read("PRAGMA user_version")[0][0])

    def _migrate(self, target: int) -> None:
        with self._write() as db:
            current = int(db.execute("PRAGMA user_version").fetchone()[0])
            if current > SCHEMA_VERSION:
                raise HistoryError(
                    f"the history at {self.path} has schema {current}, newer than this "
                    f"cc-executor ({SCHEMA_VERSION}): upgrade cc-executor"
                )
            for version in range(current, target):
                for statement in MIGRATIONS[version].split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")

    # ------------------------------------------------------------------ the interface

    def start(self, record: RunRecord) -> None:
        """Record a run that has just started (replaces a record with the same id)."""
        placeholders = ", ".join("?" for _ in _COLUMNS)
        with self._write() as db:
            db.execute(
                # Column names come from the fixed _COLUMNS tuple, values are bound.
                f"INSERT OR REPLACE INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
                _row_values(record),
            )
            self._seal(db, record.id)

    def finish(self, record: RunRecord) -> None:
        """Record the end of a run: every field of ``record`` is stored."""
        self.start(record)

    def update_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Set the status (and end time) of a run. The row keeps the rest of its fields, so
        it gets a new receipt only if it matched its old one: an update never launders an
        edit made behind the history's back."""
        with self._write() as db:
            row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
            intact = row is not None and check_record(_record(row), self._receipt_key) is None
            db.execute(
                "UPDATE runs SET status = ?, error = COALESCE(?, error), "
                "ended_at = COALESCE(ended_at, ?) WHERE id = ?",
                (status, error, time.time(), run_id),
            )
            if intact:
                self._seal(db, run_id)

    @property
    def receipt_key(self) -> bytes | None:
        """The key record receipts are made with (None: unkeyed)."""
        return self._receipt_key

    def _seal(self, db: sqlite3.Connection, run_id: str) -> None:
        """Give the row its receipt, computed from the row as SQLite now holds it (so a
        value SQLite converts, an integer cost in a REAL column, is covered as stored)."""
        row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is not None:
            receipt = record_receipt(_record(row), self._receipt_key)
            db.execute("UPDATE runs SET record_receipt = ? WHERE id = ?", (receipt, run_id))

    def get(self, run_id: str) -> RunRecord | None:
        """The run with this id, or with this unique id prefix (at least 6 characters)."""
        rows = self._read("SELECT * FROM runs WHERE id = ?", (run_id,))
        if not rows and len(run_id) >= 6:
            rows = self._read(
                "SELECT * FROM runs WHERE id >= ? AND id < ? ORDER BY id LIMIT 4",
                (run_id, run_id + "\uffff"),
            )
            if len(rows) > 1:
                some = ", ".join(row["id"] for row in rows[:3])
                more = ", ..." if len(rows) > 3 else ""
                raise HistoryError(
                    f"run id prefix {run_id!r} is ambiguous: it matches {some}{more} "
                    "(give more of the id)"
                )
        return _record(rows[0]) if rows else None

    def query(self, query: Query) -> list[RunRecord]:
        """Runs matching ``query``, newest first."""
        where: list[str] = []
        params: list[Any] = []
        if query.status:
            where.append("status = ?")
            params.append(query.status)
        if query.since is not None:
            where.append("started_at >= ?")
            params.append(query.since)
        if query.until is not None:
            where.append("started_at < ?")
            params.append(query.until)
        if query.agent:
            where.append("agent = ?")
            params.append(query.agent)
        if query.kind:
            where.append("kind = ?")
            params.append(query.kind)
        if query.parent_id:
            where.append("parent_id = ?")
            params.append(query.parent_id)
        if query.batch_id:
            where.append("batch_id = ?")
            params.append(query.batch_id)
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if query.limit is not None:
            sql += f" LIMIT {int(query.limit)}"
        return [_record(row) for row in self._read(sql, params)]

    def running(self) -> list[RunRecord]:
        """Runs still marked ``running``."""
        return [_record(r) for r in self._read("SELECT * FROM runs WHERE status = ?", (RUNNING,))]

    def durations(
        self,
        *,
        kind: str,
        agent: str | None,
        key: str | None,
        limit: int = 200,
        any_key: bool = False,
    ) -> list[float]:
        """Durations of the latest finished runs of the same kind, agent and ``key`` (the
        command for exec, the model for Claude runs; ``any_key``: whatever it is), for
        ``--timeout auto``."""
        column = "model" if kind == "run" else "argv"
        # ``column`` is one of two fixed names; every value is bound.
        same = "" if any_key else f"AND {column} IS ? "
        rows = self._read(
            f"SELECT duration_s FROM runs WHERE kind = ? AND agent IS ? {same}"  # noqa: S608
            "AND duration_s IS NOT NULL AND status NOT IN (?, ?) "
            "ORDER BY started_at DESC LIMIT ?",
            (kind, agent, *(() if any_key else (key,)), RUNNING, "spawn_failed", limit),
        )
        return [float(r[0]) for r in rows]

    def count(self) -> int:
        """How many runs the history holds."""
        return int(self._read("SELECT COUNT(*) FROM runs")[0][0])

    def delete_before(self, timestamp: float) -> list[RunRecord]:
        """Remove the finished runs that started before ``timestamp``; returns them."""
        rows = self._read(
            "SELECT * FROM runs WHERE started_at < ? AND status != ?", (timestamp, RUNNING)
        )
        with self._write() as db:
            db.execute(
                "DELETE FROM runs WHERE started_at < ? AND status != ?", (timestamp, RUNNING)
            )
        return [_record(r) for r in rows]

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
