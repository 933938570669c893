"""The embedded history: SQLite in WAL mode, one file, no server.

Concurrency: every connection waits for locks (``busy_timeout``) and every write is one short
``BEGIN IMMEDIATE`` transaction retried on ``SQLITE_BUSY``, so many processes can record at
once and none ever sees "database is locked". WAL lets readers run while a writer writes.

Schema changes are numbered migrations applied in order (``PRAGMA user_version`` holds the
current number), each in its own transaction, so an upgrade never loses history.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import math
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cc_executor._paths import data_home, private_dir
from cc_executor._status import Status
from cc_executor._store._base import HistoryError, Query
from cc_executor._store._receipt import check_record, record_receipt
from cc_executor._store._record import RUNNING, Artifact, RunRecord

#: Numbered schema migrations; index i upgrades from version i to i + 1. One list serves both
#: backends: a migration is SQL both run (types TEXT, INTEGER, REAL and BLOB, which the
#: PostgreSQL backend reads as TEXT, BIGINT, DOUBLE PRECISION and BYTEA: see
#: ``_postgres.postgres_sql``), or, where they must differ, a mapping of each dialect
#: ("sqlite", "postgresql") to its own SQL.
MIGRATIONS: Sequence[str | Mapping[str, str]] = (
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
    # 6: whether cost_usd was estimated from token counts (the agent reported no cost).
    """
    ALTER TABLE runs ADD COLUMN cost_estimated INTEGER NOT NULL DEFAULT 0;
    """,
    # 7: what the run's process tree used: its peak memory and its CPU time.
    """
    ALTER TABLE runs ADD COLUMN peak_memory_bytes INTEGER;
    ALTER TABLE runs ADD COLUMN cpu_time_s REAL;
    """,
    # 8: the permission decisions of each run's tool calls (docs/permissions.md).
    """
    CREATE TABLE permission_decisions (
        run_id TEXT NOT NULL,
        request_id TEXT NOT NULL,
        tool_name TEXT NOT NULL,
        tool_input TEXT NOT NULL,
        decision TEXT NOT NULL,
        decided_by TEXT NOT NULL,
        rule TEXT,
        message TEXT,
        requested_at REAL NOT NULL,
        decided_at REAL NOT NULL
    );
    CREATE INDEX permission_decisions_run ON permission_decisions (run_id, decided_at);
    """,
    # 9: copies of a run's files (event log, output) kept in the history itself, so that a
    # run can be shown and verified from any machine: the PostgreSQL backend fills it (up to
    # a size limit per file); SQLite, one machine's history, keeps the files on disk only.
    """
    CREATE TABLE run_files (
        run_id TEXT NOT NULL,
        name TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        content BLOB NOT NULL,
        PRIMARY KEY (run_id, name)
    );
    """,
    # 10: the runs a process recorded in its local SQLite that have still to be written to
    # the PostgreSQL history it was given (unreachable then): replayed when it is back.
    # PostgreSQL's own copy of the table stays empty.
    """
    CREATE TABLE history_pending (
        run_id TEXT PRIMARY KEY,
        queued_at REAL NOT NULL,
        reason TEXT
    );
    """,
)


def dialect_sql(migration: str | Mapping[str, str], dialect: str) -> str:
    """The SQL of ``migration`` for ``dialect`` ("sqlite" or "postgresql"), untranslated."""
    return migration if isinstance(migration, str) else migration[dialect]


SCHEMA_VERSION = len(MIGRATIONS)

#: The fields of a permission decision as stored (and as ``show --json`` lists them).
PERMISSION_FIELDS = (
    "request_id", "tool_name", "tool_input", "decision", "decided_by", "rule", "message",
    "requested_at", "decided_at",
)  # fmt: skip

_COLUMNS = (
    "id", "kind", "agent", "argv", "cwd", "prompt_sha256", "prompt_preview", "started_at",
    "ended_at", "status", "exit_code", "signal", "session_id", "cost_usd", "input_tokens",
    "output_tokens", "turns", "duration_s", "result_preview", "error", "parent_id", "host",
    "run_dir", "pid", "pid_started", "supervisor_pid", "supervisor_started", "tree_token",
    "model", "artifacts", "warnings", "record_receipt", "batch_id", "batch_key",
    "cost_estimated", "peak_memory_bytes", "cpu_time_s",
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
        elif isinstance(value, str):
            value = _storable(value)
        values.append(value)
    return values


def _storable(text: str) -> str:
    """``text`` as a database can hold it. A path or a name that is not UTF-8 (a cwd made of
    other bytes, ``--model $'x\\xff'``) reaches Python with surrogates, which no UTF-8
    column takes: each byte becomes ``\\xff``, as the file name shows in ``ls -b``."""
    try:
        text.encode()
    except UnicodeEncodeError:
        try:
            raw = text.encode("utf-8", "surrogateescape")
        except UnicodeEncodeError:  # a lone surrogate that stands for no byte
            return text.encode("utf-8", "backslashreplace").decode()
        return raw.decode("utf-8", "backslashreplace")
    return text


#: The type each column must hold: a row with another is skipped, never a failed command.
_INTEGER_COLUMNS = frozenset(
    ("exit_code", "input_tokens", "output_tokens", "turns", "pid", "pid_started",
     "supervisor_pid", "supervisor_started", "cost_estimated", "peak_memory_bytes")
)  # fmt: skip
_REAL_COLUMNS = frozenset(("started_at", "ended_at", "cost_usd", "duration_s", "cpu_time_s"))
_JSON_COLUMNS = frozenset(("argv", "warnings", "artifacts"))
_TEXT_COLUMNS = frozenset(
    ("id", "kind", "agent", "cwd", "prompt_sha256", "prompt_preview", "status", "signal",
     "session_id", "result_preview", "error", "parent_id", "host", "run_dir", "tree_token",
     "model", "record_receipt", "batch_id", "batch_key")
)  # fmt: skip
_REQUIRED = frozenset(("id", "kind", "started_at", "status"))
_STATUSES = frozenset(s.value for s in Status)
#: Timestamps a person can be shown (up to the year 9999).
_LATEST = 253402300799.0


def _column_problem(name: str, value: Any) -> str | None:
    """Why ``value`` cannot be column ``name`` of a run, or None."""
    if value is None:
        return "is empty" if name in _REQUIRED else None
    if name in _INTEGER_COLUMNS:
        return None if type(value) is int else f"holds {_shown(value)}, not a whole number"
    if name in _REAL_COLUMNS:
        if type(value) not in (int, float) or not math.isfinite(value):
            return f"holds {_shown(value)}, not a number"
        if name in ("started_at", "ended_at") and not 0 <= value <= _LATEST:
            return f"holds {_shown(value)}, not a time"
        return None
    if name not in _TEXT_COLUMNS:
        return None  # a column this check does not know (a later migration's) is its own
    if not isinstance(value, str):
        return f"holds {_shown(value)}, not text"
    if name == "status" and value not in _STATUSES:
        return f"holds {_shown(value)}, not a status"
    if name == "id" and not value:
        return "is empty"
    return None


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _strings(value: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("not a list of strings")
    return value


_ARTIFACT_FIELDS = frozenset(f.name for f in dataclasses.fields(Artifact))


def _artifacts(value: Any) -> list[Artifact]:
    if not isinstance(value, list):
        raise ValueError("not a list of receipts")
    out = []
    for item in value:
        if (
            not isinstance(item, dict)
            or not all(isinstance(item.get(k), str) for k in ("name", "path", "sha256"))
            or type(item.get("size")) is not int
        ):
            raise ValueError("not a list of receipts")
        # Keys a receipt does not have (a newer cc-executor's) are left out, not an error.
        try:
            out.append(Artifact(**{k: v for k, v in item.items() if k in _ARTIFACT_FIELDS}))
        except (TypeError, ValueError):
            raise ValueError("not a list of receipts") from None
    return out


def _decode(row: Any) -> RunRecord | str:
    """The run of ``row``, or why the row is malformed (a damaged or hand-edited file: one
    bad row is that row's problem, never a failed command)."""
    data = dict(row)
    for name in _COLUMNS:
        if name not in data or name in _JSON_COLUMNS:
            continue
        problem = _column_problem(name, data[name])
        if problem is not None:
            return f"its {name} {problem}"
    for name, convert in (("argv", _strings), ("warnings", _strings), ("artifacts", _artifacts)):
        raw = data.get(name)
        if raw is None:
            data[name] = []
            continue
        try:
            if not isinstance(raw, str):
                raise ValueError("not text")
            data[name] = convert(json.loads(raw))
        except (ValueError, RecursionError) as exc:
            reason = "not valid JSON" if isinstance(exc, json.JSONDecodeError) else str(exc)
            return f"its {name} is {reason}"
    for name in _REAL_COLUMNS:
        if type(data.get(name)) is int:
            data[name] = float(data[name])
    data["cost_estimated"] = bool(data.get("cost_estimated"))
    return RunRecord(**{k: data[k] for k in _COLUMNS if k in data})


def _damaged(exc: sqlite3.Error) -> bool:
    """True when SQLite says the file itself is damaged (not a database, a malformed
    page), as opposed to a healthy file it may not write or open."""
    return isinstance(exc, sqlite3.DatabaseError) and (
        "not a database" in str(exc) or "malformed" in str(exc)
    )


class SQLHistory:
    """The history's queries, in SQL both backends run (see :data:`MIGRATIONS`): a backend
    gives them its plumbing (``_read``, ``_write``, ``_receipt_key``, ``warnings``) and, where
    its SQL differs, its own spelling of an upsert (``_UPSERT``) and of a null-safe equality
    (``_IS``). Rows are read by column name."""

    _receipt_key: bytes | None
    warnings: list[str]
    #: ``INSERT OR REPLACE`` (SQLite) or its PostgreSQL spelling, for ``start``.
    _UPSERT = "INSERT OR REPLACE INTO runs ({columns}) VALUES ({values})"
    #: A comparison true for two nulls (SQLite's ``IS``).
    _IS = "IS"
    #: A text match that ignores ASCII case (SQLite's ``LIKE`` does; PostgreSQL's ``ILIKE``).
    _LIKE = "LIKE"

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _write(self) -> contextlib.AbstractContextManager[Any]:
        raise NotImplementedError

    def start(self, record: RunRecord) -> None:
        """Record a run that has just started (replaces a record with the same id)."""
        # Column names come from the fixed _COLUMNS tuple, values are bound.
        sql = self._UPSERT.format(
            columns=", ".join(_COLUMNS), values=", ".join("?" for _ in _COLUMNS)
        )
        with self._write() as db:
            db.execute(sql, self._values(record))
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
            decoded = _decode(row) if row is not None else None
            # A malformed row is not intact: it never gets a new receipt.
            intact = isinstance(decoded, RunRecord) and (
                check_record(decoded, self._receipt_key) is None
            )
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

    def _values(self, record: RunRecord) -> list[Any]:
        """The row of ``record`` as this backend stores it."""
        return _row_values(record)

    def _seal(self, db: Any, run_id: str) -> None:
        """Give the row its receipt, computed from the row as SQLite now holds it (so a
        value SQLite converts, an integer cost in a REAL column, is covered as stored)."""
        row = db.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        decoded = _decode(row) if row is not None else None
        if isinstance(decoded, RunRecord):
            receipt = record_receipt(decoded, self._receipt_key)
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
                some = ", ".join(str(row["id"]) for row in rows[:3])
                more = ", ..." if len(rows) > 3 else ""
                raise HistoryError(
                    f"run id prefix {run_id!r} is ambiguous: it matches {some}{more} "
                    "(give more of the id)"
                )
        found = self._records(rows[:1])
        return found[0] if found else None

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
        if query.session_id:
            where.append("session_id = ?")
            params.append(query.session_id)
        if query.model:
            where.append("model = ?")
            params.append(query.model)
        if query.text:
            where.append(f"prompt_preview {self._LIKE} ? ESCAPE '\\'")
            escaped = query.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            params.append(f"%{escaped}%")
        if query.before is not None:
            # Keyset pagination: the next page starts after the last row shown, so a page
            # deep in 100,000 runs costs what the first one does (no OFFSET scan).
            # The first term is a range the started_at index answers; the OR alone is not.
            where.append("started_at <= ? AND (started_at < ? OR id < ?)")
            params.extend((query.before[0], query.before[0], query.before[1]))
        sql = "SELECT * FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if query.limit is not None:
            sql += f" LIMIT {int(query.limit)}"
        return self._records(self._read(sql, params))

    def running(self) -> list[RunRecord]:
        """Runs still marked ``running``."""
        return self._records(self._read("SELECT * FROM runs WHERE status = ?", (RUNNING,)))

    def _records(self, rows: Sequence[Any]) -> list[RunRecord]:
        """The runs of ``rows``; a malformed row is skipped, with a warning in
        ``warnings`` (once per row)."""
        out = []
        for row in rows:
            decoded = _decode(row)
            if isinstance(decoded, str):
                warning = (
                    f"history row {_shown(row['id'])} skipped: {decoded} "
                    "(`cc-executor doctor` lists the malformed rows)"
                )
                if warning not in self.warnings:
                    self.warnings.append(warning)
            else:
                out.append(decoded)
        return out

    def bad_rows(self) -> list[tuple[str, str]]:
        """Every malformed row: its id (as text) and what is wrong with it."""
        found = []
        for row in self._read("SELECT * FROM runs ORDER BY started_at, id"):
            decoded = _decode(row)
            if isinstance(decoded, str):
                found.append((str(row["id"]), decoded))
        return found

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
        same = "" if any_key else f"AND {column} {self._IS} ? "
        rows = self._read(
            f"SELECT duration_s FROM runs WHERE kind = ? AND agent {self._IS} ? {same}"  # noqa: S608
            "AND duration_s IS NOT NULL AND status NOT IN (?, ?) "
            "ORDER BY started_at DESC LIMIT ?",
            (kind, agent, *(() if any_key else (key,)), RUNNING, "spawn_failed", limit),
        )
        # A malformed value (text where the duration should be) counts for nothing.
        values = [r["duration_s"] for r in rows]
        return [float(v) for v in values if type(v) in (int, float) and math.isfinite(v)]

    def file_content(self, run_id: str, name: str) -> bytes | None:
        """The copy of file ``name`` (``stdout``, ``events``, ...) of run ``run_id`` the
        history holds, or None (SQLite keeps none: the files are on its machine)."""
        rows = self._read(
            "SELECT content FROM run_files WHERE run_id = ? AND name = ?", (run_id, name)
        )
        return bytes(rows[0]["content"]) if rows else None

    def add_permission_decision(self, run_id: str, decision: Mapping[str, Any]) -> None:
        """Record one permission decision of a run (see :data:`PERMISSION_FIELDS`)."""
        with self._write() as db:
            self._insert_decision(db, run_id, decision)

    @staticmethod
    def _insert_decision(db: Any, run_id: str, decision: Mapping[str, Any]) -> None:
        values = [run_id, *(decision.get(name) for name in PERMISSION_FIELDS)]
        tool_input = decision.get("tool_input") or {}
        # Decisions read back (a replay) hold their input decoded already; stored as JSON.
        values[PERMISSION_FIELDS.index("tool_input") + 1] = json.dumps(tool_input)
        db.execute(
            "INSERT INTO permission_decisions (run_id, "  # noqa: S608  (fixed names)
            + ", ".join(PERMISSION_FIELDS)
            + ") VALUES ("
            + ", ".join("?" for _ in values)
            + ")",
            values,
        )

    def permission_decisions(self, run_id: str) -> list[dict[str, Any]]:
        """A run's permission decisions, oldest first."""
        rows = self._read(
            "SELECT * FROM permission_decisions WHERE run_id = ? ORDER BY decided_at",
            (run_id,),
        )
        out = []
        for row in rows:
            entry = {name: row[name] for name in PERMISSION_FIELDS}
            try:
                entry["tool_input"] = json.loads(entry["tool_input"])
            except ValueError:
                entry["tool_input"] = {}
            out.append(entry)
        return out

    def count(self) -> int:
        """How many runs the history holds."""
        rows = self._read("SELECT COUNT(*) AS n FROM runs")
        return int(rows[0]["n"]) if rows else 0  # no rows: a database without the schema

    def delete_before(self, timestamp: float) -> list[RunRecord]:
        """Remove the finished runs that started before ``timestamp``; returns them."""
        rows = self._read(
            "SELECT * FROM runs WHERE started_at < ? AND status != ?", (timestamp, RUNNING)
        )
        with self._write() as db:
            for table in ("run_files", "permission_decisions"):
                db.execute(
                    f"DELETE FROM {table} WHERE run_id IN "  # noqa: S608  (fixed names)
                    "(SELECT id FROM runs WHERE started_at < ? AND status != ?)",
                    (timestamp, RUNNING),
                )
            db.execute(
                "DELETE FROM runs WHERE started_at < ? AND status != ?", (timestamp, RUNNING)
            )
        return self._records(rows)


class SQLiteStore(SQLHistory):
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
        readonly: bool = False,
        receipt_key: bytes | None = None,
    ) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._receipt_key = receipt_key
        self._lock = threading.Lock()
        #: What opening had to put right (permissions) and the rows read that were
        #: malformed and skipped, for the caller to report.
        self.warnings: list[str] = []
        if readonly:
            self._db = self._open_readonly()
            return
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
            if _damaged(exc):
                raise HistoryError(
                    f"the history at {self.path} is damaged ({exc}); move it aside to start "
                    "a new one (runs themselves are not affected)"
                ) from None
            raise HistoryError(f"cannot open the history at {self.path}: {exc}") from None

    def _open_readonly(self) -> sqlite3.Connection:
        """A connection that can only read: no file or folder is created, tightened or
        migrated, so a history on a read-only mount (or in a read-only file) can be read.
        A missing history reads as an empty one. An older schema is read as it is (the
        columns added since read as empty)."""
        try:
            os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            empty = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            empty.row_factory = sqlite3.Row
            for statement in ";".join(dialect_sql(m, "sqlite") for m in MIGRATIONS).split(";"):
                if statement.strip():
                    empty.execute(statement)
            return empty
        except OSError as exc:
            raise HistoryError(f"cannot read the history at {self.path}: {exc.strerror}") from None
        uri = "file:" + urllib.parse.quote(os.path.abspath(self.path))
        last: sqlite3.Error | None = None
        # mode=ro first; a WAL database on a read-only mount has no -shm file to share and
        # cannot create one, and is then read as immutable (nobody can write it there).
        for query in ("?mode=ro", "?mode=ro&immutable=1"):
            db: sqlite3.Connection | None = None
            try:
                db = sqlite3.connect(
                    uri + query,
                    uri=True,
                    timeout=_BUSY_RETRY_S,
                    isolation_level=None,
                    check_same_thread=False,
                )
                db.row_factory = sqlite3.Row
                version = int(db.execute("PRAGMA user_version").fetchone()[0])
                db.execute("SELECT 1 FROM runs LIMIT 1").fetchall()
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                if _damaged(exc):
                    raise HistoryError(f"the history at {self.path} is damaged: {exc}") from None
                last = exc
                continue
            if version > SCHEMA_VERSION:
                db.close()
                raise HistoryError(
                    f"the history at {self.path} has schema {version}, newer than this "
                    f"cc-executor ({SCHEMA_VERSION}): upgrade cc-executor"
                )
            return db
        raise HistoryError(f"cannot read the history at {self.path}: {last}") from None

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
        if self.readonly:
            raise HistoryError(f"the history at {self.path} was opened read-only")
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
                if _damaged(exc):
                    raise HistoryError(f"the history at {self.path} is damaged: {exc}") from None
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
                for statement in dialect_sql(MIGRATIONS[version], "sqlite").split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {version + 1}")

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()
