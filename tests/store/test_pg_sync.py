"""A PostgreSQL history with this machine's SQLite beside it: runs recorded while the
database is down stay here and reach it when it is back (once), a running run's event log
is copied as it streams (kept when its supervisor is killed), and ``doctor`` checks it."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from cc_executor._cli._doctor_checks import (
    _check_postgres,
    _check_postgres_schema,
    _Failed,
    check_pending,
)
from cc_executor._paths import data_home
from cc_executor._store import SCHEMA_VERSION, Query, open_store
from cc_executor._store._location import parse_postgres_url
from cc_executor._store._mirror import MirroredStore
from cc_executor._store._postgres import PostgresStore
from cc_executor._store._sqlite import SQLiteStore
from tests._commands import CLI, cc
from tests._postgres import PostgresServer
from tests._wait import wait_for

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def _database(url: str) -> PostgresStore:
    """The database itself (its schema made, if no run made it yet)."""
    return PostgresStore(parse_postgres_url(url))


def _local() -> SQLiteStore:
    return SQLiteStore(data_home() / "history.sqlite3", readonly=True)


def test_runs_recorded_while_the_database_is_down_reach_it_once_when_it_is_back(
    pg_url: str, postgres_server: PostgresServer
) -> None:
    assert cc("exec", "--", "echo", "before the outage").returncode == 0
    postgres_server.halt()
    try:
        done = cc("exec", "--", "echo", "during the outage")
        assert done.returncode == 0, done.stderr
        # Kept here, and inspectable: `history` reads this machine's SQLite meanwhile.
        local = _local()
        (during,) = [r for r in local.query(Query()) if "during the outage" in r.argv]
        assert during.status == "ok"
        local.close()
        shown = cc("history")
        assert shown.returncode == 0, shown.stderr
        assert during.id in shown.stdout
        assert "showing this machine's runs" in shown.stderr
        # doctor: the database is unreachable and one run waits for it.
        with pytest.raises(_Failed, match="cannot open the history"):
            asyncio.run(_check_postgres(pg_url))
        with pytest.raises(_Failed, match="1 run"):
            check_pending(data_home())
        # A long-lived process (a worker) opened while the database is down (what
        # open_store makes, retrying sooner than every 30 s)...
        store = MirroredStore(
            SQLiteStore(data_home() / "history.sqlite3"),
            parse_postgres_url(pg_url),
            sync_interval_s=0.1,
        )
        assert store.remote is None
        assert store.pending() == 1
    finally:
        postgres_server.resume()
    try:
        # ... writes the pending run once it is back, without being asked.
        wait_for(lambda: store.pending() == 0, timeout=60, what="the pending run replayed")
    finally:
        store.close()
    database = _database(pg_url)
    try:
        runs = database.query(Query())
        assert sorted(r.argv[-1] for r in runs) == ["before the outage", "during the outage"]
        assert database.get(during.id) is not None
        assert database.get(during.id).status == "ok"  # type: ignore[union-attr]
        assert database.file_content(during.id, "stdout") == b"during the outage\n"
        # Replaying again (the run queued anew) changes nothing: one row, one copy.
        with SQLiteStore(data_home() / "history.sqlite3")._write() as db:
            db.execute(
                "INSERT INTO history_pending (run_id, queued_at) VALUES (?, 1.0)", (during.id,)
            )
        open_store().close()  # the next opening replays
        assert database.count() == 2
        files = database._read("SELECT COUNT(*) AS n FROM run_files WHERE run_id = ?", (during.id,))
        assert files[0]["n"] == 2  # stdout and stderr
    finally:
        database.close()
    assert check_pending(data_home()).startswith("no run of this machine")
    assert asyncio.run(_check_postgres(pg_url)).endswith("is reachable")
    schema = asyncio.run(_check_postgres_schema(pg_url))
    assert schema == f"schema {SCHEMA_VERSION}, this cc-executor's"
    done = cc("verify", during.id, "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["runs"][0]["unaltered"] is True


def test_a_killed_runs_streamed_event_log_is_kept_in_the_database(
    pg_url: str, tmp_path: Path
) -> None:
    script = "echo streamed-before-the-kill; exec sleep 600"
    supervisor = subprocess.Popen(
        [CLI, "exec", "--", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    database = _database(pg_url)
    child: int | None = None
    try:

        def streamed() -> bool:
            rows = database._read("SELECT run_id, content FROM run_files WHERE name = 'stdout'")
            return any(b"streamed-before-the-kill" in bytes(r["content"]) for r in rows)

        wait_for(streamed, timeout=120, what="the event log copied while the run lasts")
        (record,) = database.running()
        child = record.pid
        supervisor.send_signal(signal.SIGKILL)
        supervisor.wait()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        if child is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
        database.close()
    # The worker's machine is gone: its folder with it. The copy shows what was streamed.
    assert record.run_dir
    for name in ("stdout.log", "stderr.log"):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(record.run_dir, name))
    shown = cc("show", record.id, "--events")
    assert shown.returncode == 0, shown.stderr
    assert "the transcript streamed so far" in shown.stdout
    assert "streamed-before-the-kill" in shown.stdout


def test_a_streamed_copy_grows_only_from_its_end_and_an_end_replaces_it(
    pg_url: str, tmp_path: Path
) -> None:
    import hashlib

    from cc_executor._store import Artifact, RunRecord

    database = _database(pg_url)
    try:
        record = RunRecord(id="streamed-1", kind="exec", started_at=1.0)
        database.start(record)
        first = hashlib.sha256(b"abc")
        assert database.append_file(record.id, "stdout", 0, b"abc", first.hexdigest())
        # An append that does not start where the copy ends changes nothing.
        assert not database.append_file(record.id, "stdout", 2, b"zz", "x")
        both = hashlib.sha256(b"abcdef").hexdigest()
        assert database.append_file(record.id, "stdout", 3, b"def", both)
        assert database.file_content(record.id, "stdout") == b"abcdef"
        # The end: the whole file replaces the copy; a file no longer copied (gone) has
        # its partial copy removed (a copy is all of its file or none).
        log = tmp_path / "stdout.log"
        log.write_bytes(b"abcdefgh")
        record.status = "ok"
        record.artifacts = [
            Artifact(name="stdout", path=str(log), size=8, sha256=""),
            Artifact(name="stderr", path=str(tmp_path / "gone.log"), size=1, sha256=""),
        ]
        assert database.append_file(record.id, "stderr", 0, b"e", "x")
        database.finish(record)
        assert database.file_content(record.id, "stdout") == b"abcdefgh"
        assert database.file_content(record.id, "stderr") is None
    finally:
        database.close()
