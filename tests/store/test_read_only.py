"""Read-only commands open the history read-only (L6): on a read-only mount or file they
work, change nothing, show a run whose supervisor is gone as ``running (supervisor gone?)``,
and a damaged file is one line naming it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from cc_executor._store import HOST, RunRecord, SQLiteStore
from tests.store.test_history import CLI, cc

READ_ONLY_COMMANDS = [
    ["history"],
    ["history", "--json"],
    ["show", "stale0000000001"],
    ["verify", "--last", "5"],
    ["export"],
    ["export", "--format", "csv"],
]


def _unshare_works(*flags: str) -> bool:
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", *flags, "true"], capture_output=True, timeout=30, check=False)
    return done.returncode == 0


def _history_with_a_stale_run(home: Path) -> None:
    """Two finished exec runs and one still marked running by a supervisor that is gone;
    the files closed as cc-executor leaves them (no -wal, no -shm)."""
    for word in ("one", "two"):
        assert cc("exec", "--", "echo", word).returncode == 0
    store = SQLiteStore(home / "history.sqlite3")
    # PID 1 never started at clock tick 1: the supervisor is gone.
    store.start(
        RunRecord(
            id="stale0000000001",
            kind="exec",
            argv=["sleep", "1000"],
            started_at=time.time(),
            host=HOST,
            supervisor_pid=1,
            supervisor_started=1,
        )
    )
    store.close()


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file()
    }


def _check_read_only_commands(home: Path, prefix: list[str]) -> None:
    before = _snapshot(home)
    for command in READ_ONLY_COMMANDS:
        done = subprocess.run(
            [*prefix, CLI, *command], capture_output=True, text=True, timeout=120, check=False
        )
        # verify: 1, since the stale run did not complete; the two others are ok.
        assert done.returncode == (1 if command[0] == "verify" else 0), (command, done.stderr)
        assert "Traceback" not in done.stderr
        if command[0] == "verify":
            assert done.stdout.count("ok      ") == 2
        if command == ["history"]:
            assert "running (supervisor gone?)" in done.stdout
            assert done.stdout.count("exec   ok") == 2
        if command == ["history", "--json"]:
            assert {r["status"] for r in json.loads(done.stdout)} == {"ok", "running"}
        if command[0] == "show":
            assert "status: running (supervisor gone?)" in done.stdout
    assert _snapshot(home) == before  # nothing written, created or migrated
    db = sqlite3.connect(home / "history.sqlite3")
    assert db.execute("SELECT status FROM runs WHERE id = 'stale0000000001'").fetchone() == (
        "running",
    )
    db.close()


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_read_only_commands_on_a_read_only_file_and_folder(cc_home: Path) -> None:
    _history_with_a_stale_run(cc_home)
    prefix: list[str] = []
    if os.geteuid() == 0:
        # root writes through any mode: a user namespace where we are someone else (the
        # files' owner mapped to us, without root's privileges) makes chmod count.
        if not _unshare_works("--user", "--map-user=4242"):
            pytest.skip("running as root and cannot enter a user namespace to drop it")
        prefix = ["unshare", "--user", "--map-user=4242"]
    for path in cc_home.iterdir():
        if path.is_file():
            path.chmod(0o400)
    cc_home.chmod(0o500)
    try:
        _check_read_only_commands(cc_home, prefix)
    finally:
        cc_home.chmod(0o700)


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_read_only_commands_on_a_read_only_mount(cc_home: Path) -> None:
    if not _unshare_works("--user", "--map-root-user", "--mount"):
        pytest.skip("cannot make a mount namespace (unshare -rm) for a read-only bind mount")
    _history_with_a_stale_run(cc_home)
    home = str(cc_home)
    prefix = [
        "unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
        'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" "$0" && shift && exec "$@"',
        home, "placeholder",
    ]  # fmt: skip
    _check_read_only_commands(cc_home, prefix)


def test_an_older_schema_is_read_without_migrating(cc_home: Path) -> None:
    cc_home.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(cc_home / "history.sqlite3")
    from cc_executor._store._sqlite import MIGRATIONS, dialect_sql

    db.executescript(dialect_sql(MIGRATIONS[0], "sqlite") + "; PRAGMA user_version = 1;")
    db.execute(
        "INSERT INTO runs (id, kind, argv, started_at, status) VALUES (?, ?, ?, ?, ?)",
        ("old000000000001", "exec", '["true"]', time.time(), "ok"),
    )
    db.commit()
    db.close()
    listed = cc("history", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [r["id"] for r in json.loads(listed.stdout)] == ["old000000000001"]
    db = sqlite3.connect(cc_home / "history.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone() == (1,)  # not migrated
    db.close()


def test_a_missing_history_is_empty_and_not_created(cc_home: Path) -> None:
    done = cc("history")
    assert done.returncode == 0
    assert done.stdout == "no runs recorded yet\n"
    assert not (cc_home / "history.sqlite3").exists()


@pytest.mark.slow  # seconds of work: out of the fast tier
@pytest.mark.parametrize("damage", ["not a database", "damaged page"])
def test_a_damaged_history_is_one_line_naming_the_file(cc_home: Path, damage: str) -> None:
    path = cc_home / "history.sqlite3"
    if damage == "not a database":
        cc_home.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"this is not a database" * 100)
    else:
        for i in range(40):
            assert cc("exec", "--", "echo", "x" * 500, str(i)).returncode == 0
        db = sqlite3.connect(path)
        page = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
        db.close()
        data = bytearray(path.read_bytes())
        # The table's root page, overwritten (pages are numbered from 1).
        data[(root - 1) * page : root * page] = b"\xa5" * page
        path.write_bytes(bytes(data))
    # (show finds a run through the id's index, which may be intact: not asked here.)
    for command in (c for c in READ_ONLY_COMMANDS if c[0] != "show"):
        done = cc(*command)
        assert done.returncode == 1, (command, done.stdout, done.stderr)
        lines = done.stderr.splitlines()
        assert len(lines) == 1, (command, done.stderr)
        assert str(path) in lines[0]
        assert "damaged" in lines[0]
        assert "move it aside" not in lines[0]
