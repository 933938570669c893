"""Two stores in one process, and another process reading: nobody deletes the WAL under an
open connection (closing any descriptor of a file drops the process's POSIX locks on it)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._errors import HistoryError
from cc_executor._store import RunRecord, SQLiteStore, open_store


def test_a_second_store_keeps_the_first_ones_locks(cc_home: Path) -> None:
    first = open_store()
    second = open_store()  # this used to open and close the file: the first's locks went
    try:
        first.start(RunRecord(id="run-1", kind="run", status="running", started_at=1.0))
        assert isinstance(first, SQLiteStore)
        path = str(first.path)
        wal = Path(f"{path}-wal")
        assert wal.exists()
        # What `cc-executor history` does from another process: open, read, close. Finding
        # no other connection's lock, SQLite would checkpoint and delete the WAL and SHM.
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); "
                "c.execute('select count(*) from runs').fetchone(); c.close()",
                path,
            ],
            check=True,
            timeout=120,
        )
        assert wal.exists()
        assert Path(f"{path}-shm").exists()
        # Both stores still write and read, and what they write is there for others.
        second.start(RunRecord(id="run-2", kind="run", status="running", started_at=2.0))
        first.start(RunRecord(id="run-3", kind="run", status="running", started_at=3.0))
    finally:
        first.close()
        second.close()
    reopened = open_store()
    try:
        assert {r for r in ("run-1", "run-2", "run-3") if reopened.get(r) is not None} == {
            "run-1",
            "run-2",
            "run-3",
        }
    finally:
        reopened.close()


def test_a_history_that_is_a_link_is_refused(cc_home: Path, tmp_path: Path) -> None:
    open_store().close()
    target = tmp_path / "elsewhere.sqlite3"
    history = cc_home / "history.sqlite3"
    history.rename(target)
    history.symlink_to(target)
    with pytest.raises(HistoryError, match="symbolic link"):
        open_store().close()
