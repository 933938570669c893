"""The history's batch columns (migration 5): filtering by batch in the store and in
``cc-executor history --batch``."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from cc_executor._store import SCHEMA_VERSION, Query, RunRecord, SQLiteStore, open_store
from tests._commands import cc


def _record(run_id: str, batch: str | None, key: str | None, started: float) -> RunRecord:
    return RunRecord(
        id=run_id, kind="run", status="ok", started_at=started, batch_id=batch, batch_key=key
    )


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_runs_are_found_by_batch_and_keep_their_key(cc_home: Path, history_backend: str) -> None:
    store = open_store()
    try:
        for n in range(30):
            store.start(_record(f"run-a{n:02d}", "nightly", f"key-{n}", 1000.0 + n))
        store.start(_record("run-b", "other", "key-0", 2000.0))
        store.start(_record("run-none", None, None, 3000.0))
        found = store.query(Query(batch_id="nightly"))
        assert [r.id for r in found] == [f"run-a{n:02d}" for n in reversed(range(30))]
        assert found[0].batch_key == "key-29"
        assert [r.id for r in store.query(Query(batch_id="other"))] == ["run-b"]
        got = store.get("run-none")
        assert got is not None
        got.record_receipt = None  # written by the store (the receipts' own tests cover it)
        assert got == _record("run-none", None, None, 3000.0)
    finally:
        store.close()
    listed = cc("history", "--batch", "nightly", "--json")
    assert listed.returncode == 0, listed.stderr
    # The whole batch, not the default 20 of an unfiltered listing.
    rows = json.loads(listed.stdout)
    assert len(rows) == 30
    assert {(r["batch_id"], r["batch_key"]) for r in rows} == {
        ("nightly", f"key-{n}") for n in range(30)
    }
    five = cc("history", "--batch", "nightly", "--limit", "5", "--json")
    assert len(json.loads(five.stdout)) == 5
    assert cc("history", "--batch", "nope").stdout == "no runs match\n"


def test_migrating_to_the_batch_columns_keeps_rows_and_indexes_them(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    SQLiteStore(db, migrate_to=SCHEMA_VERSION - 1).close()
    raw = sqlite3.connect(db)
    raw.execute("INSERT INTO runs (id, kind, started_at, status) VALUES ('old', 'run', 1.0, 'ok')")
    raw.commit()
    raw.close()
    store = SQLiteStore(db)
    try:
        (old,) = store.query(Query())
        assert (old.id, old.batch_id, old.batch_key) == ("old", None, None)
    finally:
        store.close()
    raw = sqlite3.connect(db)
    plan = raw.execute(
        "EXPLAIN QUERY PLAN SELECT * FROM runs WHERE batch_id = 'x' AND batch_key = 'y'"
    ).fetchall()
    raw.close()
    assert "runs_batch" in " ".join(str(row) for row in plan)
