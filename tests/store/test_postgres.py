"""What only the PostgreSQL history does: many writers on one database, its files kept in the
database (show and verify from another machine), import-history, its schema's version, and
where its password may come from. The shared behaviour is tested on both backends by the
tests taking ``history_backend``."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from cc_executor._store import (
    SCHEMA_VERSION,
    Artifact,
    HistoryError,
    Query,
    RunRecord,
    open_store,
)
from cc_executor._store._location import parse_postgres_url
from cc_executor._store._mirror import MirroredStore
from cc_executor._store._postgres import PostgresStore
from tests._commands import cc
from tests._postgres import PostgresServer

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def remote(store: object) -> PostgresStore:
    """The PostgreSQL side of a history ``open_store`` opened for writing."""
    assert isinstance(store, MirroredStore)
    assert store.remote is not None
    return store.remote


WRITER = textwrap.dedent(
    """
    import os, sys, time
    from cc_executor._store import Artifact, Recorder, RunRecord, open_store
    # What a run does (the Recorder fills in the host and supervisor, so that the other
    # writers' openings see these runs' supervisor alive).
    store = Recorder(open_store())
    worker, folder = sys.argv[1], sys.argv[2]
    for i in range(100):
        run_id = f"w{worker}-{i:03d}"
        record = RunRecord(id=run_id, kind="exec", argv=["true"], started_at=time.time())
        store.start(record)
        path = os.path.join(folder, run_id)
        with open(path, "w") as f:
            f.write(f"events of {run_id}\\n")
        record.status = "ok"
        record.ended_at = time.time()
        record.artifacts = [Artifact(name="stdout", path=path, size=0, sha256="")]
        store.finish(record)
    store.close()
    assert not store.warnings, store.warnings
    """
)


def test_eight_processes_times_a_hundred_runs_lose_nothing(pg_url: str, tmp_path: Path) -> None:
    open_store().close()  # the schema, once, before the writers race
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(n), str(tmp_path)], stderr=subprocess.PIPE, text=True
        )
        for n in range(8)
    ]
    errors = [w.communicate(timeout=300)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 8, errors
    store = open_store()
    try:
        assert store.count() == 800
        assert {r.status for r in store.query(Query())} == {"ok"}
        # Every run's event log reached the database, whole.
        for n in (0, 3, 7):
            for i in (0, 57, 99):
                run_id = f"w{n}-{i:03d}"
                assert store.file_content(run_id, "stdout") == f"events of {run_id}\n".encode()
        assert remote(store)._read("SELECT COUNT(*) AS n FROM run_files")[0]["n"] == 800
    finally:
        store.close()


def test_a_run_of_another_machine_is_shown_and_verified_from_its_copy(
    pg_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "stdout.log"
    log.write_bytes(b"line from the other machine\n")
    digest = hashlib.sha256(log.read_bytes()).hexdigest()
    record = RunRecord(
        id="01elsewhere0001",
        kind="exec",
        argv=["echo"],
        started_at=time.time(),
        ended_at=time.time(),
        status="ok",
        host="another-machine",
        artifacts=[Artifact(name="stdout", path=str(log), size=log.stat().st_size, sha256=digest)],
    )
    store = open_store()
    store.finish(record)
    store.close()
    log.unlink()  # the worker and its disk are gone
    done = cc("verify", "01elsewhere0001", "--json")
    report = json.loads(done.stdout)
    assert done.returncode == 0, done.stdout
    assert report["runs"][0]["artifacts"][0]["checked"] == "copy in the history"
    assert any("ran on another-machine" in n for n in report["runs"][0]["notes"])
    assert "line from the other machine" in cc("show", "01elsewhere0001", "--events").stdout
    # The copy is what verify checks: altered in the database, it fails.
    store = open_store()
    with remote(store)._write() as db:
        db.execute("UPDATE run_files SET content = ? WHERE run_id = ?", (b"X", record.id))
    store.close()
    done = cc("verify", "01elsewhere0001")
    assert done.returncode == 1
    assert "stdout was altered" in done.stdout


def test_import_history_moves_a_sqlite_history_once(
    pg_url: str, cc_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CC_EXECUTOR_HISTORY")
    ids = [
        json.loads(cc("exec", "--json", "--", "echo", f"run {i}").stdout)["run_id"] for i in (1, 2)
    ]
    source = cc_home / "history.sqlite3"
    done = cc("--history", pg_url, "import-history", str(source))
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"imported 2 runs from {source} (0 already in the history)\n"
    again = cc("--history", pg_url, "import-history", f"sqlite://{source}")
    assert again.stdout == f"imported 0 runs from {source} (2 already in the history)\n"
    listed = json.loads(cc("--history", pg_url, "history", "--json").stdout)
    assert [r["id"] for r in listed] == ids[::-1]
    # Receipts kept as made; the files came along: verify and show work without them.
    for run_id in ids:
        for path in (cc_home / "runs" / run_id).iterdir():
            path.unlink()
    assert cc("--history", pg_url, "verify", "--last", "2").returncode == 0
    assert "run 2" in cc("--history", pg_url, "show", ids[1], "--events").stdout
    # Into a SQLite history: refused, one line.
    refused = cc("import-history", str(source))
    assert refused.returncode == 2
    assert refused.stderr.count("\n") == 1
    assert "not a PostgreSQL one" in refused.stderr


def test_an_older_schema_is_migrated_and_a_newer_one_refused(pg_url: str) -> None:
    old = PostgresStore(parse_postgres_url(pg_url), migrate_to=1)
    assert old.schema_version == 1
    with old._write() as db:
        db.execute(
            "INSERT INTO runs (id, kind, started_at, status) VALUES ('old-1', 'exec', 1.5, 'ok')"
        )
    old.close()
    store = open_store()
    assert store.schema_version == SCHEMA_VERSION  # type: ignore[attr-defined]
    (record,) = store.query(Query())
    assert (record.id, record.started_at, record.tree_token) == ("old-1", 1.5, None)
    with remote(store)._write() as db:
        db.execute("UPDATE history_schema SET version = ?", (SCHEMA_VERSION + 1,))
    store.close()
    with pytest.raises(HistoryError, match="newer than this cc-executor"):
        open_store()
    done = cc("history")
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "newer than this cc-executor" in done.stderr


def test_the_password_never_goes_on_the_command_line(
    pg_url: str, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    with_password = pg_url.replace("postgres@", "postgres:s3cret@")
    done = cc("--history", with_password, "history")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "CC_EXECUTOR_HISTORY_PASSWORD" in done.stderr
    assert "s3cret" not in done.stderr
    # From the environment, the URL may hold it; the password file is read too.
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CC_EXECUTOR_HISTORY_PASSWORD_FILE", str(secret))
        assert parse_postgres_url(pg_url).password == "from-file"
        assert parse_postgres_url(with_password).password == "s3cret"
    assert "s3cret" not in parse_postgres_url(with_password).url
    # An unreachable server: one line naming the URL, never a traceback or a hang.
    gone = f"postgresql://postgres@/postgres?host={tmp_path}"
    done = cc("--history", gone, "history")
    assert done.returncode == 1
    assert done.stderr.startswith(f"cc-executor history: cannot open the history at {gone}: ")
    assert done.stderr.count("\n") == 1


def test_a_long_lived_store_survives_its_connections_being_cut(
    pg_url: str, postgres_server: PostgresServer
) -> None:
    """What a worker sees when the database restarts: its pooled connections are gone; the
    next start, end and query are recorded on new ones, without an error."""
    store = open_store()
    try:
        store.start(RunRecord(id="before-cut", kind="exec", started_at=1.0))
        postgres_server.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        record = RunRecord(id="after-cut", kind="exec", started_at=2.0)
        store.start(record)
        record.status = "ok"
        store.finish(record)
        postgres_server.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert [(r.id, r.status) for r in store.query(Query())] == [
            ("after-cut", "ok"),
            ("before-cut", "running"),
        ]
    finally:
        store.close()


ONE_SHOT = textwrap.dedent(
    """
    import sys
    import psycopg
    from cc_executor._cli import main

    # Every connection made, whoever makes it: psycopg.connect is Connection.connect,
    # which a pool calls too.
    made = []
    connect = psycopg.Connection.connect.__func__

    def counted(cls, *args, **kwargs):
        made.append(1)
        return connect(cls, *args, **kwargs)

    psycopg.Connection.connect = classmethod(counted)
    psycopg.connect = psycopg.Connection.connect
    code = main(["history", "--status", "ok", "--json"])
    print(f"code={code} connections={len(made)} pool={'psycopg_pool' in sys.modules}")
    """
)


def test_a_one_shot_read_makes_one_connection_and_no_pool(pg_url: str) -> None:
    """`history` on PostgreSQL (issue 21's cold-query target): the connection its opening
    made serves the query too (a second one costs a server process and cold caches), and
    the pool is not even imported."""
    store = open_store()
    record = RunRecord(id="one-shot-1", kind="exec", started_at=1.0)
    record.status = "ok"
    store.finish(record)
    store.close()
    done = subprocess.run(
        [sys.executable, "-c", ONE_SHOT], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    *listed, said = done.stdout.splitlines()
    assert [r["id"] for r in json.loads("".join(listed))] == ["one-shot-1"]
    assert said == "code=0 connections=1 pool=False"


def test_a_read_only_store_reads_on_after_its_connection_is_cut(
    pg_url: str, postgres_server: PostgresServer
) -> None:
    """A read-only store keeps one connection: cut (the database restarted), the next read
    is made on a new one, without an error."""
    store = open_store()
    store.start(RunRecord(id="kept-1", kind="exec", started_at=1.0))
    store.close()
    reader = open_store(readonly=True)
    try:
        assert [r.id for r in reader.query(Query())] == ["kept-1"]
        postgres_server.sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
        )
        assert [r.id for r in reader.query(Query())] == ["kept-1"]
        assert reader.get("kept-1") is not None
    finally:
        reader.close()


def test_import_history_copies_no_file_a_hostile_history_names(
    pg_url: str, cc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Fourth pass P9: a SQLite file handed to import-history named ~/.ssh/id_rsa as a run's
    # artifact, and its bytes went into the shared database.
    import psycopg

    monkeypatch.delenv("CC_EXECUTOR_HISTORY")
    secret = tmp_path / "id_rsa"
    secret.write_text("PRIVATE KEY\n")
    folder = tmp_path / "given"
    (folder / "runs" / "r1").mkdir(parents=True)
    (folder / "runs" / "r1" / "stdout").write_text("out\n")
    source = open_store(folder / "history.sqlite3")
    record = RunRecord(id="r1", kind="exec", argv=["true"], started_at=time.time())
    source.start(record)
    record.status = "ok"
    record.ended_at = time.time()
    record.artifacts = [
        Artifact(name="stdout", path=str(folder / "runs" / "r1" / "stdout"), size=4, sha256=""),
        Artifact(name="stderr", path=str(secret), size=12, sha256=""),
    ]
    source.finish(record)
    source.close()
    done = cc("--history", pg_url, "import-history", str(folder / "history.sqlite3"))
    assert done.returncode == 0, done.stderr
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT name, content FROM run_files").fetchall()
    assert rows == [("stdout", b"out\n")]
