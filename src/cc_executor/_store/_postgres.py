"""The fleet's history: one PostgreSQL database, through psycopg 3 and its connection pool.

The same schema as SQLite's, from the same numbered migrations (``MIGRATIONS`` in
``_sqlite.py``, read in PostgreSQL's types by :func:`postgres_sql`), the version kept in
the table ``history_schema``; the same queries (:class:`~cc_executor._store._sqlite.SQLHistory`).
Each write is one short transaction; PostgreSQL's row locks let many workers record at once.
Migrating takes a transaction-level advisory lock, so workers opening a new database at the
same moment migrate it once.

A run's files (its event log, its output) are copied into the table ``run_files`` when the
run ends, up to :data:`MAX_FILE_BYTES` each, with their sha256: ``show --events`` and
``verify`` work from any machine.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import stat
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from cc_executor._store._base import HistoryError, HistoryUnreachable
from cc_executor._store._location import PostgresTarget
from cc_executor._store._receipt import record_receipt
from cc_executor._store._record import RUNNING, RunRecord
from cc_executor._store._sqlite import (
    _COLUMNS,
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLHistory,
    _decode,
    _row_values,
    dialect_sql,
)

T = TypeVar("T")

#: The largest file copied into the database (a run's event log or output); a larger one
#: stays on its machine only (its receipt is recorded all the same).
MAX_FILE_BYTES = 64 << 20
#: How long opening waits for the server.
CONNECT_TIMEOUT_S = 10
#: The key of the advisory lock migrations take (any constant; "cc-x" in ASCII).
_MIGRATION_LOCK = 0x63632D78
_TYPES = (
    (re.compile(r"\bREAL\b"), "DOUBLE PRECISION"),
    (re.compile(r"\bINTEGER\b"), "BIGINT"),
    (re.compile(r"\bBLOB\b"), "BYTEA"),
    # Run ids compare bytewise (prefix lookups), whatever the database's collation.
    (re.compile(r"\bid TEXT PRIMARY KEY\b"), 'id TEXT COLLATE "C" PRIMARY KEY'),
)


def postgres_sql(sql: str) -> str:
    """A migration's portable SQL in PostgreSQL's types: REAL is 4 bytes there (times need
    8), INTEGER 4 (clock ticks and sizes need 8), BLOB is BYTEA."""
    for pattern, replacement in _TYPES:
        sql = pattern.sub(replacement, sql)
    return sql


def _param(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL (SQLite's can): it becomes U+FFFD, and the receipt is
    # made of the row as stored. A flag is stored as the 0/1 of the shared schema.
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, bool):
        return int(value)
    return value


class _Connection:
    """A psycopg connection speaking the shared SQL (``?`` placeholders)."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._conn.execute(sql.replace("?", "%s"), [_param(p) for p in params])


def _read_file(path: str) -> bytes | None:
    """The bytes of the regular file ``path`` (never through a symlink, never blocking on
    a FIFO), or None when it cannot be read or is larger than :data:`MAX_FILE_BYTES`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_FILE_BYTES:
            return None
        with os.fdopen(os.dup(fd), "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data if len(data) <= MAX_FILE_BYTES else None


class _OneConnection:
    """What a read-only store needs of a pool: the one connection opened with it, used by
    one thread at a time, and made again when found closed or broken. A one-shot command
    (``history``, ``show``) then costs one connection, and imports no pool."""

    def __init__(self, connect: Callable[[], Any], conn: Any) -> None:
        self._connect = connect
        self._conn: Any = conn
        self._lock = threading.Lock()

    @contextmanager
    def connection(self) -> Iterator[Any]:
        with self._lock:
            if self._conn is None or self._conn.closed:
                self._conn = self._connect()
            yield self._conn

    def check(self) -> None:
        """Drop the connection if it is closed or broken (the next use makes a new one)."""
        with self._lock:
            if self._conn is not None and (self._conn.closed or self._conn.broken):
                self._conn = None

    def close(self, timeout: float | None = None) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None


class PostgresStore(SQLHistory):
    """The history in a PostgreSQL database. Thread-safe (a pool of up to ``max_size``
    connections; ``readonly``: the one connection opening made, which is all a one-shot
    reader needs); safe across processes and machines.

    Opening connects (failing within :data:`CONNECT_TIMEOUT_S` with the server's reason),
    creates or migrates the schema (not when ``readonly``: then a database without the
    schema reads as an empty history) and refuses a schema newer than this cc-executor's.
    Every failure raises :class:`HistoryError` naming the URL (never its password).
    """

    # Column names come from the fixed _COLUMNS tuple.
    _UPSERT = (
        "INSERT INTO runs ({columns}) VALUES ({values}) ON CONFLICT (id) DO UPDATE SET "  # noqa: S608
        + ", ".join(f"{c} = EXCLUDED.{c}" for c in _COLUMNS if c != "id")
    )
    _IS = "IS NOT DISTINCT FROM"
    _LIKE = "ILIKE"

    def __init__(
        self,
        target: PostgresTarget,
        *,
        migrate_to: int = SCHEMA_VERSION,
        readonly: bool = False,
        receipt_key: bytes | None = None,
        max_size: int = 4,
    ) -> None:
        from cc_executor._extras import MissingExtra, require_extra

        try:
            require_extra("postgres", "a PostgreSQL history")
        except MissingExtra as exc:
            raise HistoryError(str(exc)) from None
        import psycopg
        from psycopg.rows import dict_row

        self.url = target.url
        self.readonly = readonly
        self._receipt_key = receipt_key
        self._psycopg = psycopg
        self.warnings: list[str] = []
        self._empty = False
        kwargs: dict[str, Any] = {"autocommit": True, "row_factory": dict_row}
        if target.password is not None:
            kwargs["password"] = target.password
        if target.ssl_password is not None:
            kwargs["sslpassword"] = target.ssl_password

        def connect() -> Any:
            return psycopg.connect(target.url, connect_timeout=CONNECT_TIMEOUT_S, **kwargs)

        # A first connection of our own: a server that is down or refuses us fails here at
        # once with its reason (a pool would retry in the background and time out mute).
        try:
            conn = connect()
            try:
                self._prepare(_Connection(conn), migrate_to)
            except BaseException:
                conn.close()
                raise
        except psycopg.OperationalError as exc:
            raise HistoryUnreachable(
                f"cannot open the history at {self.url}: {_reason(exc)}"
            ) from None
        except psycopg.Error as exc:
            raise HistoryError(f"cannot open the history at {self.url}: {_reason(exc)}") from None
        self._pool: Any
        self._pool_errors: tuple[type[Exception], ...] = ()
        if readonly:
            # A reader goes on on the connection it opened with: a second one would cost a
            # new server process and its cold catalog caches (measured: most of a cold
            # `history` after the imports), and importing the pool.
            self._pool = _OneConnection(connect, conn)
            return
        conn.close()
        from psycopg_pool import ConnectionPool, PoolTimeout

        self._pool_errors = (PoolTimeout,)
        # Connections are made when first needed (a command that only reads makes one), and
        # one found broken is dropped when it comes back: the next use gets a new one.
        self._pool = ConnectionPool(
            target.url,
            kwargs=kwargs,
            min_size=0,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            open=False,
        )
        self._pool.open()

    # ------------------------------------------------------------------ plumbing

    def _prepare(self, db: _Connection, target: int) -> None:
        if self.readonly:
            version = self._current(db)
            if version is None:
                self._empty = True
                return
        elif self._current(db) == target:
            return  # the usual case: one query, no lock
        else:
            with db._conn.transaction():
                db.execute(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
                db.execute("CREATE TABLE IF NOT EXISTS history_schema (version INTEGER NOT NULL)")
                version = self._version(db)
                if version is None:
                    db.execute("INSERT INTO history_schema (version) VALUES (0)")
                    version = 0
                if version <= SCHEMA_VERSION:
                    for step in range(version, target):
                        for statement in postgres_sql(
                            dialect_sql(MIGRATIONS[step], "postgresql")
                        ).split(";"):
                            if statement.strip():
                                db.execute(statement)
                        db.execute("UPDATE history_schema SET version = ?", (step + 1,))
        if version is not None and version > SCHEMA_VERSION:
            raise HistoryError(
                f"the history at {self.url} has schema {version}, newer than this "
                f"cc-executor ({SCHEMA_VERSION}): upgrade cc-executor"
            )

    def _current(self, db: _Connection) -> int | None:
        """The schema version, None when there is no schema (or no version in it): one
        query in the usual case (outside any transaction, so a missing table costs
        nothing else)."""
        try:
            return self._version(db)
        except self._psycopg.errors.UndefinedTable:
            return None

    @staticmethod
    def _version(db: _Connection) -> int | None:
        row = db.execute("SELECT version FROM history_schema").fetchone()
        return None if row is None else int(row["version"])

    @contextmanager
    def _write(self) -> Iterator[_Connection]:
        """One short write transaction (the shared queries' ``update_status`` and
        ``delete_before``, and ``import_record``)."""
        if self.readonly:
            raise HistoryError(f"the history at {self.url} was opened read-only")
        psycopg = self._psycopg
        try:
            with self._pool.connection() as conn, conn.transaction():
                yield _Connection(conn)
        except psycopg.Error as exc:
            raise HistoryError(f"cannot write the history at {self.url}: {_reason(exc)}") from None
        except self._pool_errors as exc:
            raise HistoryError(f"cannot write the history at {self.url}: {exc}") from None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        if self._empty:
            return []
        rows: list[Any] = self._again(lambda db: db.execute(sql, params).fetchall())
        return rows

    def _again(self, body: Callable[[_Connection], T], *, write: bool = False) -> T:
        """``body`` on a connection of the pool (``write``: in one pipelined transaction),
        run a second time on a new connection when the first was found broken (the server
        restarted, an idle connection was cut): a worker keeps recording across a restart
        of the database. Only for bodies that may run twice (reads, upserts)."""
        if write and self.readonly:
            raise HistoryError(f"the history at {self.url} was opened read-only")
        psycopg = self._psycopg
        verb = "write" if write else "read"
        retried = False
        while True:
            try:
                with self._pool.connection() as conn:
                    try:
                        if not write:
                            return body(_Connection(conn))
                        with conn.pipeline(), conn.transaction():
                            return body(_Connection(conn))
                    except psycopg.OperationalError:
                        conn.close()  # lost or cut: closed, the pool drops it
                        raise
            except psycopg.OperationalError as exc:
                if not retried:
                    # The others idle in the pool may be cut too: tested, the dead dropped.
                    retried = True
                    with contextlib.suppress(Exception):
                        self._pool.check()
                    continue
                reason = _reason(exc)
            except psycopg.Error as exc:
                reason = _reason(exc)
            except self._pool_errors as exc:
                reason = str(exc)
            raise HistoryError(f"cannot {verb} the history at {self.url}: {reason}")

    @property
    def schema_version(self) -> int:
        """The schema version of the database (0: none yet)."""
        rows = [] if self._empty else self._read("SELECT version FROM history_schema")
        return int(rows[0]["version"]) if rows else 0

    # ------------------------------------------------------------------ beyond SQLite's

    def start(self, record: RunRecord) -> None:
        """Record a run that has just started (replaces a record with the same id): one
        statement, one round trip."""
        self._upsert(record, [])

    def finish(self, record: RunRecord) -> None:
        """Record the end of a run and copy its files (up to :data:`MAX_FILE_BYTES` each)
        into the database: one transaction, sent in one round trip. A copy streamed while
        the run lasted (:meth:`append_file`) is replaced by the whole file, or removed when
        the file is no longer copied (too large, gone): a copy is all of its file or none."""
        self._upsert(record, self._files(record), drop_others=True)

    def replay(self, record: RunRecord, decisions: Sequence[Mapping[str, Any]]) -> None:
        """Write ``record`` as a local history holds it (its files copied as at its end,
        its permission decisions replacing any already here), for a run recorded while
        the database was unreachable. Idempotent: replaying twice leaves one row."""
        files = self._files(record) if record.status != RUNNING else []
        self._upsert(record, files, drop_others=record.status != RUNNING, decisions=list(decisions))

    def append_file(self, run_id: str, name: str, offset: int, chunk: bytes, sha256: str) -> bool:
        """Append ``chunk`` to the copy of a running run's file ``name`` that holds its
        first ``offset`` bytes (``offset`` 0: the copy starts, replacing any older one);
        ``sha256`` is that of the copy with the chunk. False when the copy does not hold
        ``offset`` bytes (another writer, a lost answer): nothing is changed then."""
        size = offset + len(chunk)
        if offset == 0:
            sql = (
                "INSERT INTO run_files (run_id, name, size, sha256, content) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
                "size = EXCLUDED.size, sha256 = EXCLUDED.sha256, content = EXCLUDED.content"
            )
            params: tuple[Any, ...] = (run_id, name, size, sha256, chunk)
        else:
            sql = (
                "UPDATE run_files SET size = ?, sha256 = ?, content = content || ? "
                "WHERE run_id = ? AND name = ? AND size = ? RETURNING size"
            )
            params = (size, sha256, chunk, run_id, name, offset)

        def write(db: _Connection) -> bool:
            # A row read back, not rowcount: in a pipeline the count is not known yet.
            cursor = db.execute(sql, params)
            return offset == 0 or cursor.fetchone() is not None

        return self._again(write, write=True)

    def _upsert(
        self,
        record: RunRecord,
        files: list[tuple[str, bytes]],
        *,
        drop_others: bool = False,
        decisions: list[Mapping[str, Any]] | None = None,
    ) -> None:
        # The receipt is made here, of the row as PostgreSQL will hold it (NUL replaced; its
        # numbers and text come back as they went), so that no statement has to read the
        # row back: SQLite's backend seals after writing, this one in the same statement.
        values = [_param(v) for v in _row_values(record)]
        stored = _decode(dict(zip(_COLUMNS, values, strict=True)))
        if isinstance(stored, RunRecord):
            values[_COLUMNS.index("record_receipt")] = record_receipt(stored, self._receipt_key)
        sql = self._UPSERT.format(
            columns=", ".join(_COLUMNS), values=", ".join("?" for _ in _COLUMNS)
        )

        kept = [name for name, _ in files]
        dropped = [a.name for a in record.artifacts if a.name not in kept] if drop_others else []

        def write(db: _Connection) -> None:
            db.execute(sql, values)
            self._store_files(db, record.id, files)
            for name in dropped:
                db.execute("DELETE FROM run_files WHERE run_id = ? AND name = ?", (record.id, name))
            if decisions is not None:
                db.execute("DELETE FROM permission_decisions WHERE run_id = ?", (record.id,))
                for decision in decisions:
                    self._insert_decision(db, record.id, decision)

        self._again(write, write=True)

    def import_record(self, record: RunRecord, *, files_under: Sequence[str]) -> bool:
        """Add ``record`` as it is (its receipt kept: it was made where the run ran) with
        the copies of its files still on this machine, unless the history has a run of that
        id already; True if it was added. Importing twice adds nothing. The record comes
        from a file that may not be ours: only files inside ``files_under`` (the runs
        folders) are copied, never one its artifacts name elsewhere (``~/.ssh/id_rsa``)."""
        roots = [os.path.join(os.path.realpath(r), "") for r in files_under]
        files = [
            (name, data)
            for name, data, path in self._files_at(record)
            if any(os.path.realpath(path).startswith(root) for root in roots)
        ]
        columns = ", ".join(_COLUMNS)
        values = ", ".join("?" for _ in _COLUMNS)
        with self._write() as db:
            added = db.execute(
                # Column names come from the fixed _COLUMNS tuple, values are bound.
                f"INSERT INTO runs ({columns}) VALUES ({values}) "  # noqa: S608
                "ON CONFLICT (id) DO NOTHING RETURNING id",
                _row_values(record),
            ).fetchone()
            if added is not None:
                self._store_files(db, record.id, files)
        return added is not None

    @staticmethod
    def _files(record: RunRecord) -> list[tuple[str, bytes]]:
        """The files of ``record`` to copy: those still on this machine, small enough."""
        return [(name, data) for name, data, _ in PostgresStore._files_at(record)]

    @staticmethod
    def _files_at(record: RunRecord) -> list[tuple[str, bytes, str]]:
        found = []
        for artifact in record.artifacts:
            if artifact.path and artifact.size <= MAX_FILE_BYTES:
                data = _read_file(artifact.path)
                if data is not None:
                    found.append((artifact.name, data, artifact.path))
        return found

    @staticmethod
    def _store_files(db: _Connection, run_id: str, files: list[tuple[str, bytes]]) -> None:
        for name, data in files:
            db.execute(
                "INSERT INTO run_files (run_id, name, size, sha256, content) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (run_id, name) DO UPDATE SET "
                "size = EXCLUDED.size, sha256 = EXCLUDED.sha256, content = EXCLUDED.content",
                (run_id, name, len(data), hashlib.sha256(data).hexdigest(), data),
            )

    def close(self) -> None:
        """Close the pool (or the one connection) and its connections."""
        with contextlib.suppress(Exception):
            self._pool.close(timeout=5)


def _reason(exc: Exception) -> str:
    """The server's or libpq's message, on one line."""
    return " ".join(str(exc).split()) or type(exc).__name__
