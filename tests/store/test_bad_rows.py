"""One malformed history row (M7): that row's problem, skipped with a warning and listed by
``doctor``, never a failed ``exec``, ``run`` or ``serve``."""

from __future__ import annotations

import json
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from cc_executor._cli._doctor_checks import check_history_rows
from cc_executor._errors import CCExecutorError
from cc_executor._store import HOST, Query, RunRecord, SQLiteStore, open_store
from cc_executor.testing import ModelServer
from tests.cli.test_run import cc as cc_run
from tests.cli.test_run import served
from tests.service.conftest import launch
from tests.store.test_history import cc

__all__ = ["served"]  # the fixture, imported for the run test

#: (column, value): a text in an integer column, in a number column, bad JSON, a list of
#: the wrong things, a status outside the vocabulary, an impossible time.
BAD_VALUES = [
    ("pid", "not a pid"),
    ("duration_s", "abc"),
    ("argv", "{not json"),
    ("artifacts", '[{"name": 1}]'),
    ("status", "bogus"),
    ("started_at", 1e300),
]


def _plant(home: Path, column: str, value: object) -> str:
    """A history with one good finished run and one running run whose ``column`` holds
    ``value`` (written behind cc-executor's back); returns the bad row's id."""
    home.mkdir(parents=True, exist_ok=True)
    store = SQLiteStore(home / "history.sqlite3")
    good = RunRecord(id="good0000000001", kind="exec", argv=["true"], started_at=time.time())
    good.status = "ok"
    store.finish(good)
    # Running, with a supervisor that is gone: every opening's recovery reads it.
    bad = RunRecord(
        id="bad00000000001",
        kind="exec",
        argv=["true"],
        started_at=time.time(),
        host=HOST,
        supervisor_pid=1,
        supervisor_started=1,
    )
    store.start(bad)
    store.close()
    db = sqlite3.connect(home / "history.sqlite3")
    # The column name comes from BAD_VALUES above.
    db.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (value, bad.id))
    db.commit()
    db.close()
    return bad.id


@pytest.mark.parametrize(("column", "value"), BAD_VALUES)
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_exec_and_the_history_commands_skip_a_bad_row_with_a_warning(
    cc_home: Path, column: str, value: object
) -> None:
    bad = _plant(cc_home, column, value)
    done = cc("exec", "--json", "--", "echo", "fine")
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    if column != "status":  # still "running": the recovery at every opening reads it
        assert any(f"row '{bad}' skipped" in w and column in w for w in result["warnings"])
    timed = cc("exec", "--timeout", "auto", "--", "true")
    assert timed.returncode == 0, timed.stderr
    assert "Traceback" not in timed.stderr
    for command in (["history"], ["export"], ["verify", "--last", "5"], ["show", bad]):
        shown = cc(*command)
        assert "Traceback" not in shown.stderr, command
        assert f"history row '{bad}' skipped: its {column}" in shown.stderr, command
    listed = json.loads(cc("history", "--json").stdout)
    assert bad not in [r["id"] for r in listed]
    assert "good0000000001" in [r["id"] for r in listed]
    store = open_store()
    assert [r.id for r in store.query(Query())][-1] == "good0000000001"
    store.close()


@pytest.mark.parametrize(("column", "value"), BAD_VALUES[:3])
def test_doctor_lists_the_bad_rows(cc_home: Path, column: str, value: object) -> None:
    bad = _plant(cc_home, column, value)
    with pytest.raises(CCExecutorError, match=rf"1 malformed row.*{bad}.*its {column}"):
        check_history_rows(cc_home)
    assert "no malformed row" in check_history_rows(cc_home.parent / "elsewhere")


@pytest.mark.cli
def test_run_is_not_failed_by_a_bad_row(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    _, env, work = served
    bad = _plant(Path(env["CC_EXECUTOR_HOME"]), "argv", "{not json")
    done = cc_run(env, "hello", "--json", "--cwd", str(work))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    assert any(f"history row '{bad}' skipped" in w for w in json.loads(done.stdout)["warnings"])


@pytest.mark.slow
def test_serve_starts_beside_a_bad_row(cc_home: Path, tmp_path: Path) -> None:
    bad = _plant(cc_home, "argv", "{not json")
    root = tmp_path / "root"
    root.mkdir()
    service = launch(cc_home, root)
    assert service.proc.poll() is None  # it listens
    service.proc.send_signal(signal.SIGTERM)
    _, err = service.proc.communicate(timeout=60)
    assert f"history row '{bad}' skipped" in err
    assert "Traceback" not in err


def test_what_a_newer_cc_executor_adds_is_not_malformed(cc_home: Path) -> None:
    """A column added by a later migration, or a key added to receipts, is read past: only
    the values this version knows are checked."""
    bad = _plant(
        cc_home,
        "artifacts",
        '[{"name": "events", "path": "/x", "size": 1, "sha256": "ab", "new": 1}]',
    )
    db = sqlite3.connect(cc_home / "history.sqlite3")
    db.execute("ALTER TABLE runs ADD COLUMN attempts INTEGER")
    db.execute("UPDATE runs SET attempts = 2")
    db.commit()
    db.close()
    listed = cc("history", "--json")
    assert listed.returncode == 0, listed.stderr
    assert "skipped" not in listed.stderr
    assert bad in [r["id"] for r in json.loads(listed.stdout)]
