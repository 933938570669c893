"""Receipts that cover the record itself (keyed or not) and task-list state (issue 18 L7).
The tests taking ``history_backend`` run against SQLite and PostgreSQL (tests/store/conftest.py)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._store import (
    KEY_ENV,
    RunRecord,
    SQLiteStore,
    open_store,
    record_receipt,
    verify,
)
from cc_executor._store._sqlite import MIGRATIONS

CLI = str(Path(sys.executable).parent / "cc-executor")


def cc(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def _exec(*command: str) -> dict[str, object]:
    result: dict[str, object] = json.loads(cc("exec", "--json", "--", *command).stdout)
    return result


def _edit(home: Path, run_id: object, **columns: object) -> None:
    """Change columns of a run's row the way anyone who can write the history can (the
    SQLite file, or the PostgreSQL database ``history_backend`` named)."""
    url = os.environ.get("CC_EXECUTOR_HISTORY")
    if url:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            for column, value in columns.items():
                conn.execute(f"UPDATE runs SET {column} = %s WHERE id = %s", (value, run_id))
        return
    raw = sqlite3.connect(home / "history.sqlite3")
    for column, value in columns.items():
        raw.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, run_id))
    raw.commit()
    raw.close()


def _record(run_id: object) -> RunRecord:
    store = open_store()
    try:
        record = store.get(str(run_id))
    finally:
        store.close()
    assert record is not None
    return record


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_status_edited_to_ok_fails_verify(cc_home: Path, history_backend: str) -> None:
    failed = _exec("false")
    assert failed["status"] == "failed"
    done = cc("verify", str(failed["run_id"]))
    assert done.returncode == 0, done.stdout
    # Without a key, verify says what its receipts can and cannot show.
    assert "receipts are unkeyed" in done.stdout
    assert KEY_ENV in done.stdout
    _edit(cc_home, failed["run_id"], status="ok", exit_code=0)
    done = cc("verify", str(failed["run_id"]))
    assert done.returncode == 1
    assert "record=no" in done.stdout
    assert "the record was altered" in done.stdout
    report = json.loads(cc("verify", str(failed["run_id"]), "--json").stdout)
    assert report["ok"] is False
    assert report["keyed"] is False
    assert report["runs"][0]["unaltered"] is True  # the files were not touched
    assert report["runs"][0]["record_unaltered"] is False


@pytest.mark.parametrize(
    ("column", "value"),
    [("cost_usd", 0.0), ("exit_code", 0), ("error", None), ("argv", '["pytest"]'),
     ("artifacts", "[]"), ("record_receipt", None), ("batch_id", "b"), ("batch_key", "k")],
)  # fmt: skip
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_every_field_is_covered(
    cc_home: Path, column: str, value: object, history_backend: str
) -> None:
    run = _exec("sh", "-c", "echo out; exit 3")
    assert verify(_record(run["run_id"]), str(run["run_id"])).ok
    _edit(cc_home, run["run_id"], **{column: value})
    check = verify(_record(run["run_id"]), str(run["run_id"]))
    assert not check.ok
    assert not check.record_unaltered


def test_a_v1_receipt_written_before_batches_were_covered_still_verifies(
    cc_home: Path, history_backend: str
) -> None:
    """Issue 18 F8.1: v2 receipts cover batch_id and batch_key; a v1 receipt checks the
    fields it covered, so an older history still verifies."""
    run = _exec("true")
    record = _record(run["run_id"])
    assert (record.record_receipt or "").startswith("v3:sha256:")
    _edit(cc_home, record.id, record_receipt=record_receipt(record, None, "v1"))
    assert verify(_record(record.id), record.id).ok
    # v3 added the tree's peak memory and CPU time: a v2 receipt still verifies too.
    _edit(cc_home, record.id, record_receipt=record_receipt(record, None, "v2"))
    assert verify(_record(record.id), record.id).ok
    _edit(cc_home, record.id, status="failed")
    assert not verify(_record(record.id), record.id).record_unaltered
    _edit(cc_home, record.id, status="ok", record_receipt="v9:sha256:" + "0" * 64)
    assert "not one cc-executor writes" in verify(_record(record.id), record.id).problems[0]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_keyed_receipt_cannot_be_recomputed_without_the_key(
    cc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, history_backend: str
) -> None:
    key = tmp_path / "receipt.key"
    key.write_bytes(b"k" * 32)
    key.chmod(0o600)
    monkeypatch.setenv(KEY_ENV, str(key))
    failed = _exec("false")
    record = _record(failed["run_id"])
    assert (record.record_receipt or "").startswith("v3:hmac-sha256:")
    done = cc("verify", str(failed["run_id"]), "--json")
    assert done.returncode == 0, done.stdout
    assert json.loads(done.stdout)["keyed"] is True
    assert "unkeyed" not in cc("verify", str(failed["run_id"])).stdout

    # An edit with the unkeyed receipt recomputed is seen: a key is configured.
    record.status, record.exit_code = "ok", 0
    _edit(cc_home, record.id, status="ok", exit_code=0, record_receipt=record_receipt(record, None))
    done = cc("verify", record.id)
    assert done.returncode == 1
    assert "not keyed though a key is configured" in done.stdout
    # So is an HMAC made with another key.
    _edit(cc_home, record.id, record_receipt=record_receipt(record, b"x" * 32))
    assert "the record was altered" in cc("verify", record.id).stdout
    # Without the key, a keyed receipt cannot be checked: not ok either.
    monkeypatch.delenv(KEY_ENV)
    done = cc("verify", record.id)
    assert done.returncode == 1
    assert "no key is configured" in done.stdout


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_bad_key_file_is_one_clear_error(
    cc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    short = tmp_path / "short.key"
    short.write_bytes(b"abc")
    short.chmod(0o600)
    inside = cc_home / "receipt.key"
    cc_home.mkdir(parents=True, exist_ok=True)
    inside.write_bytes(b"k" * 32)
    cases = {
        str(tmp_path / "missing.key"): "cannot read",
        str(short): "holds 3 bytes",
        str(inside): "is inside the data folder",
    }
    # F8.6: a key others may read (or write) is refused, saying how to fix it.
    for mode in (0o644, 0o640, 0o602):
        shared = tmp_path / f"shared-{mode:o}.key"
        shared.write_bytes(b"k" * 32)
        shared.chmod(mode)
        cases[str(shared)] = f"is open to group or others (mode {mode:03o}): fix with chmod 600"
    for path, reason in cases.items():
        monkeypatch.setenv(KEY_ENV, path)
        done = cc("history")
        assert done.returncode != 0
        [line] = done.stderr.splitlines()
        assert KEY_ENV in line
        assert reason in line
        assert "Traceback" not in done.stderr
        # A run still runs, and says why it was not recorded.
        run = _exec("true")
        assert run["status"] == "ok"
        assert any(reason in str(w) for w in run["warnings"])  # type: ignore[attr-defined]


def test_older_records_are_migrated_and_reported_without_a_receipt(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    SQLiteStore(db, migrate_to=len(MIGRATIONS) - 1).close()
    raw = sqlite3.connect(db)
    raw.execute(
        "INSERT INTO runs (id, kind, started_at, status, argv, artifacts) "
        "VALUES ('old', 'exec', 1700000000, 'ok', '[\"echo\"]', '[]')"
    )
    raw.commit()
    raw.close()
    store = SQLiteStore(db)
    record = store.get("old")
    store.close()
    assert record is not None
    assert record.record_receipt is None
    check = verify(record, "old")
    assert not check.ok
    assert any("the record has no receipt" in p for p in check.problems)


def test_task_list_state_files_get_receipts(cc_home: Path, tmp_path: Path) -> None:
    from cc_executor.tasks import run_tasks_sync

    spec = {"tasks": [{"id": "build", "prompt": "Build it"}, {"id": "test", "prompt": "Test it"}]}
    result = run_tasks_sync(spec, claude_path=str(tmp_path / "no-such-claude"), cwd=tmp_path)
    assert result.status.value == "failed"
    record = _record(result.list_id)
    assert {a.name for a in record.artifacts} == {
        "spec",
        "list state",
        "task build state",
        "task test state",
    }
    assert verify(record, record.id).ok
    state = Path(result.run_dir or "") / "tasks" / "build.json"
    data = json.loads(state.read_text())
    data["status"] = "ok"
    state.write_text(json.dumps(data))
    check = verify(record, record.id)
    assert not check.ok
    assert any("task build state was altered" in p for p in check.problems)
