"""The run history: crash recovery, concurrency, receipts, export, migrations, bad stores.

The tests taking ``history_backend`` run against SQLite and PostgreSQL (tests/store/conftest.py)."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from cc_executor._store import (
    INTERRUPTED,
    SCHEMA_VERSION,
    HistoryError,
    Query,
    RunRecord,
    SQLiteStore,
    open_store,
    redact_argv,
)
from cc_executor._store._history import verify
from cc_executor._store._sqlite import MIGRATIONS
from tests._wait import wait_for
from tests.engine.children import child

CLI = str(Path(sys.executable).parent / "cc-executor")


def cc(*args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120, check=check)


def alive(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def wait_for_pids(path: Path, lines: int) -> list[int]:
    def written() -> list[int]:
        text = path.read_text() if path.exists() else ""
        return [int(x) for x in text.split()] if len(text.split()) >= lines else []

    return wait_for(written, what=f"{lines} pids in {path}")


def _statuses() -> list[str]:
    """The status of every run in the history, newest first."""
    store = open_store()
    try:
        return [r.status for r in store.query(Query())]
    finally:
        store.close()


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_exec_runs_are_recorded_with_receipts(
    cc_home: Path, history_backend: str, tmp_path: Path
) -> None:
    # The child stays until its start is in the history: the start time of a child that
    # is already gone (a zombie) cannot be read, and on a loaded machine it may be.
    go = tmp_path / "go"
    argv = ["sh", "-c", f"echo hello; echo oops >&2; until [ -e {go} ]; do sleep 0.01; done"]
    proc = subprocess.Popen([CLI, "exec", "--json", "--", *argv], stdout=subprocess.PIPE, text=True)
    wait_for(lambda: _statuses() == ["running"], what="the run's start in the history")
    go.touch()
    out, _ = proc.communicate(timeout=60)
    result = json.loads(out)
    store = open_store()
    record = store.get(result["run_id"])
    store.close()
    assert record is not None
    assert record.status == "ok"
    assert record.kind == "exec"
    assert record.argv == argv
    assert {a.name: a.sha256 for a in record.artifacts} == {
        "stdout": result["stdout_sha256"],
        "stderr": result["stderr_sha256"],
    }
    assert record.supervisor_pid
    assert record.pid
    assert record.pid_started


@pytest.mark.parametrize("kill_watchdog", [False, True])
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_supervisor_sigkilled_mid_run_is_recovered(
    cc_home: Path, history_backend: str, tmp_path: Path, kill_watchdog: bool
) -> None:
    """SIGKILL the supervising `cc-executor exec`; the next opening of the history marks the
    run interrupted and no process of it survives. With ``kill_watchdog`` the watchdog dies
    too, so the escaped grandchild is left for the recovery itself to find and kill."""
    pidfile = tmp_path / "pids"
    supervisor = subprocess.Popen(
        [CLI, "exec", "--", *child("tree", pidfile, "--ignore-term", "--escape", "--group-child")],
        stdout=subprocess.DEVNULL,
    )
    pids = wait_for_pids(pidfile, 3)
    wait_for(lambda: _statuses() == ["running"], what="the start of the run in the history")
    if kill_watchdog:
        for proc in psutil.Process(supervisor.pid).children():
            if "cc_executor._engine._guard" in " ".join(proc.cmdline()):
                proc.kill()
    supervisor.kill()
    supervisor.wait()
    try:
        store = open_store()
        (record,) = store.query(Query(limit=1))
        assert record.status == INTERRUPTED
        assert "supervisor" in (record.error or "")
        store.close()
        # The watchdog (nice 10) or the recovery kills them, and a killed process dies when
        # it next gets a core: seconds on a loaded machine, so wait for it.
        wait_for(lambda: not [p for p in pids if alive(p)], what=f"none of {pids} alive")
    finally:
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


WRITER = textwrap.dedent(
    """
    import sys, time
    from cc_executor._store import SQLiteStore, RunRecord
    store = SQLiteStore(sys.argv[1])
    worker = sys.argv[2]
    for i in range(100):
        record = RunRecord(
            id=f"w{worker}-{i:03d}", kind="exec", argv=["true"], started_at=time.time()
        )
        store.start(record)
        record.status = "ok"
        record.ended_at = time.time()
        store.finish(record)
    store.close()
    """
)


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_eight_processes_times_a_hundred_runs_lose_nothing(tmp_path: Path) -> None:
    db = tmp_path / "history.sqlite3"
    SQLiteStore(db).close()
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(n)], stderr=subprocess.PIPE, text=True
        )
        for n in range(8)
    ]
    errors = [w.communicate(timeout=120)[1] for w in writers]
    assert [w.returncode for w in writers] == [0] * 8, errors
    assert not any("locked" in e for e in errors)
    store = SQLiteStore(db)
    assert store.count() == 800
    assert {r.status for r in store.query(Query())} == {"ok"}
    store.close()


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_tampering_fails_verify_for_exactly_that_run(cc_home: Path, history_backend: str) -> None:
    ids = [
        json.loads(cc("exec", "--json", "--", "echo", str(i)).stdout)["run_id"] for i in range(3)
    ]
    assert cc("verify", "--last", "3").returncode == 0
    tampered = cc_home / "runs" / ids[1] / "stdout.log"
    tampered.write_text("X\n")  # same size, different bytes
    report = json.loads(cc("verify", "--last", "3", "--json").stdout)
    by_id = {r["run_id"]: r for r in report["runs"]}
    assert not report["ok"]
    assert [by_id[i]["unaltered"] for i in ids] == [True, False, True]
    assert cc("verify", ids[0]).returncode == 0
    done = cc("verify", ids[1])
    assert done.returncode == 1
    assert "stdout was altered" in done.stdout
    missing = cc("verify", "nosuchrun0000")
    assert missing.returncode == 1
    assert "exists=no" in missing.stdout


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_export_round_trips(cc_home: Path, history_backend: str, tmp_path: Path) -> None:
    for i in range(3):
        cc("exec", "--", "echo", f"api_key=sk-ant-{'x' * 20}", str(i))
    out = tmp_path / "export.json"
    assert cc("export", "--format", "json", "--output", str(out)).returncode == 0
    exported = [RunRecord.from_dict(d) for d in json.loads(out.read_text())]
    store = open_store()
    assert exported == store.query(Query())
    store.close()
    assert "sk-ant-" not in out.read_text()  # secrets never reach the history
    csv_text = cc("export", "--format", "csv").stdout
    assert csv_text.splitlines()[0].startswith("id,kind,agent,status")
    assert len(csv_text.splitlines()) == 4


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_corrupt_store_gives_a_clear_error_and_runs_still_complete(cc_home: Path) -> None:
    cc_home.mkdir(parents=True, exist_ok=True)
    (cc_home / "history.sqlite3").write_bytes(b"this is not a database" * 100)
    done = cc("exec", "--json", "--", "echo", "still works")
    result = json.loads(done.stdout)
    assert done.returncode == 0
    assert result["status"] == "ok"
    assert any(
        "history not recorded" in w and "damaged" in w and "move it aside" in w
        for w in result["warnings"]
    )
    listing = cc("history")
    assert listing.returncode != 0
    assert "history.sqlite3" in listing.stderr
    assert "damaged" in listing.stderr


def test_a_full_store_raises_history_error_and_stays_usable(tmp_path: Path) -> None:
    """SQLite's "database or disk is full" (here: max_page_count, per connection) is a
    HistoryError, which runs turn into a warning; it used to escape as a raw
    OperationalError (a second ROLLBACK after SQLite had rolled back) and end the run."""
    store = SQLiteStore(tmp_path / "history.sqlite3")
    store.start(RunRecord(id="small", kind="exec", argv=["true"], started_at=time.time()))
    db = store._db
    db.execute(f"PRAGMA max_page_count = {db.execute('PRAGMA page_count').fetchone()[0]}")
    big = RunRecord(id="big", kind="exec", argv=["x" * 500_000], started_at=time.time())
    with pytest.raises(HistoryError, match="full"):
        store.start(big)
    assert not db.in_transaction
    db.execute("PRAGMA max_page_count = 1073741823")
    store.start(big)
    assert [r.id for r in store.query(Query())] == ["big", "small"]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_unwritable_store_runs_still_complete(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder should be")
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(blocker / "home"))
    done = cc("exec", "--json", "--", "echo", "fine")
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    assert any("history not recorded" in w for w in result["warnings"])


def test_migrating_an_older_schema_keeps_every_row(tmp_path: Path) -> None:
    db = tmp_path / "old.sqlite3"
    old = SQLiteStore(db, migrate_to=1)
    assert old.schema_version == 1
    old.close()
    raw = sqlite3.connect(db)
    for i in range(50):
        raw.execute(
            "INSERT INTO runs (id, kind, started_at, status, argv, artifacts) "
            "VALUES (?, 'exec', ?, 'ok', '[\"echo\"]', '[]')",
            (f"old-{i:02d}", 1_700_000_000 + i),
        )
    raw.commit()
    raw.close()
    store = SQLiteStore(db)
    assert store.schema_version == SCHEMA_VERSION == len(MIGRATIONS)
    rows = store.query(Query())
    assert len(rows) == 50
    assert rows[-1].id == "old-00"
    assert rows[0].tree_token is None  # the column added by migration 2
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    db = tmp_path / "new.sqlite3"
    SQLiteStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.close()
    from cc_executor._store import HistoryError

    with pytest.raises(HistoryError, match="newer than this cc-executor"):
        SQLiteStore(db)


@pytest.mark.slow
def test_history_filters_and_prune(cc_home: Path, history_backend: str) -> None:
    cc("exec", "--", "true")
    cc("exec", "--", "false")
    cc("exec", "--timeout", "0.2", "--", "sleep", "5")
    statuses = json.loads(cc("history", "--json").stdout)
    assert [r["status"] for r in statuses] == ["timeout", "failed", "ok"]
    failed = json.loads(cc("history", "--status", "failed", "--json").stdout)
    assert [r["argv"] for r in failed] == [["false"]]
    assert "RUN ID" in cc("history").stdout
    assert cc("prune", "--older-than", "1h").stdout.startswith("removed 0 runs")
    store = open_store()
    records = store.query(Query())
    folders = [Path(r.run_dir or "") for r in records]
    store.close()
    newest = max(r.started_at for r in records)
    # Age is what --older-than tests: wait until every run started more than 1 s ago.
    wait_for(lambda: time.time() - newest > 1.0, interval=0.05, what="the runs to age 1 s")
    assert cc("prune", "--older-than", "1s").stdout.startswith("removed 3 runs (3 run folders)")
    assert not any(f.exists() for f in folders)
    assert json.loads(cc("history", "--json").stdout) == []


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_show_renders_the_transcript_of_an_exec(cc_home: Path, history_backend: str) -> None:
    run_id = json.loads(cc("exec", "--json", "--", "echo", "visible \x1b[2J text").stdout)["run_id"]
    shown = cc("show", run_id[:10], "--events")
    assert shown.returncode == 0
    assert "status: ok" in shown.stdout
    assert "visible \\x1b[2J text" in shown.stdout
    assert "\x1b[2J" not in shown.stdout


def test_redaction() -> None:
    argv = [
        "tool", "--api-key", "abc123", "--token=xyz", "ANTHROPIC_API_KEY=sk-ant-aaaaaaaaaaaa",
        "--note", "sk-ant-api03-abcdefghijklmnop", "plain",
    ]  # fmt: skip
    assert redact_argv(argv) == [
        "tool", "--api-key", "[REDACTED]", "--token=[REDACTED]", "ANTHROPIC_API_KEY=[REDACTED]",
        "--note", "[REDACTED]", "plain",
    ]  # fmt: skip


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_timeout_auto_uses_similar_past_runs(cc_home: Path, history_backend: str) -> None:
    for _ in range(5):
        cc("exec", "--", "sleep", "0.05")
    done = cc("exec", "--timeout", "auto", "--json", "--", "sleep", "0.05")
    result = json.loads(done.stdout)
    assert any("1.5 x p95" in w and "5 similar past runs" in w for w in result["warnings"])
    said = cc("exec", "--timeout", "auto", "--", "sleep", "0.01").stderr
    # Once, as the command starts: it was printed again at the end as a "warning".
    assert said.count("--timeout auto:") == 1, said
    assert "fewer than 5" in said


def test_secrets_in_command_lines_are_redacted_more_broadly() -> None:
    """Issue 18 M8: `mysql -phunter2` was kept in clear in the history."""
    assert redact_argv(["mysql", "-uroot", "-phunter2", "db"]) == [
        "mysql", "-uroot", "-p[REDACTED]", "db",
    ]  # fmt: skip
    assert redact_argv(["/usr/bin/sshpass", "-p", "s3cret", "ssh", "host"])[2] == "[REDACTED]"
    assert redact_argv(["git", "clone", "https://bob:tok123@example.com/x.git"]) == [
        "git", "clone", "https://bob:[REDACTED]@example.com/x.git",
    ]  # fmt: skip
    assert redact_argv(["curl", "--password", "pw", "-d", "token=abc"]) == [
        "curl", "--password", "[REDACTED]", "-d", "token=[REDACTED]",
    ]  # fmt: skip
    # Found by the review of the fix: HTTP credentials and the passwords of other clients.
    assert redact_argv(["curl", "-H", "Authorization: Bearer abc123", "-u", "u:pw", "x"]) == [
        "curl", "-H", "Authorization: [REDACTED]", "-u", "[REDACTED]", "x",
    ]  # fmt: skip
    assert redact_argv(["redis-cli", "-a", "hunter2"]) == ["redis-cli", "-a", "[REDACTED]"]
    assert redact_argv(["tool", "--pass", "pw", "--passive"]) == [
        "tool", "--pass", "[REDACTED]", "--passive",
    ]  # fmt: skip
    # Only MySQL's clients take an attached -p as a password.
    assert redact_argv(["gcc", "-pedantic", "-pthread"]) == ["gcc", "-pedantic", "-pthread"]
    # The second adversarial pass (F8.9): a token as a URL's user name, htpasswd's -b.
    assert redact_argv(["git", "clone", "https://ghp_TOKEN1@github.com/o/r.git"]) == [
        "git", "clone", "https://[REDACTED]@github.com/o/r.git",
    ]  # fmt: skip
    assert redact_argv(["htpasswd", "-bc", "users", "alice", "hunter2"]) == [
        "htpasswd", "-bc", "users", "alice", "[REDACTED]",
    ]  # fmt: skip
    assert redact_argv(["htpasswd", "users", "alice"]) == ["htpasswd", "users", "alice"]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_the_data_folder_and_history_are_private(cc_home: Path) -> None:
    """Issue 18 M8: the data folder and the history were created readable by other accounts
    (0755 / 0644): another user read prompts, answers and passwords in command lines."""
    old = os.umask(0o022)
    try:
        done = cc("exec", "--json", "--", "true")
    finally:
        os.umask(old)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert cc_home.stat().st_mode & 0o777 == 0o700
    assert (cc_home / "history.sqlite3").stat().st_mode & 0o777 == 0o600
    assert Path(result["run_dir"]).stat().st_mode & 0o777 == 0o700
    assert not any("readable by other accounts" in w for w in result["warnings"])


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_data_folder_others_can_read_is_tightened_with_a_warning(cc_home: Path) -> None:
    cc("exec", "--", "true")
    cc_home.chmod(0o755)
    (cc_home / "history.sqlite3").chmod(0o644)
    done = cc("exec", "--json", "--", "true")
    result = json.loads(done.stdout)
    assert cc_home.stat().st_mode & 0o777 == 0o700
    assert (cc_home / "history.sqlite3").stat().st_mode & 0o777 == 0o600
    warned = [w for w in result["warnings"] if "readable by other accounts" in w]
    assert any(str(cc_home) in w and "mode 755" in w for w in warned), result["warnings"]
    assert any("history.sqlite3" in w and "mode 644" in w for w in warned), result["warnings"]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_warnings_are_kept_and_shown(cc_home: Path) -> None:
    """A run's warnings reach the history (migration 3) and ``show`` prints them."""
    done = cc("exec", "--json", "--", "sh", "-c", "sleep 30 >/dev/null 2>&1 &")
    result = json.loads(done.stdout)
    warning = "1 descendant process(es) outlived the child; terminated them"
    assert result["warnings"] == [warning]
    shown = cc("show", result["run_id"])
    assert shown.returncode == 0, shown.stderr
    assert f"warning: {warning}" in shown.stdout
    assert json.loads(cc("show", result["run_id"], "--json").stdout)["warnings"] == [warning]
    assert json.loads(cc("history", "--json").stdout)[0]["warnings"] == [warning]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_history_commands_refuse_bad_input_on_one_line(cc_home: Path, tmp_path: Path) -> None:
    """Bad values are usage errors naming the flag; export to a missing folder or to a
    folder is one line, not a traceback."""
    for args, says in (
        (["history", "--kind", "foo"], "argument --kind: invalid choice: 'foo'"),
        (["history", "--status", "bogus"], "argument --status: invalid choice: 'bogus'"),
        (["verify", "--last", "0"], "argument --last: must be at least 1, got 0"),
        (["verify", "--last", "-1"], "argument --last: must be at least 1, got -1"),
    ):
        done = cc(*args)
        assert done.returncode == 2, done.stderr
        assert says in done.stderr
        assert done.stderr.count("\n") == 1
    cc("exec", "--", "true", check=True)
    for target, reason in (
        (tmp_path / "missing" / "out.json", "its folder does not exist"),
        (tmp_path, "it is a folder"),
    ):
        done = cc("export", "--output", str(target))
        assert done.returncode == 1
        assert done.stderr == f"cc-executor export: cannot write {target}: {reason}\n"


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_history_says_whether_it_is_empty_or_nothing_matched(
    cc_home: Path, history_backend: str
) -> None:
    assert cc("history").stdout == "no runs recorded yet\n"
    cc("exec", "--", "true", check=True)
    assert cc("history", "--kind", "run").stdout == "no runs match\n"
    assert cc("history", "--status", "failed").stdout == "no runs match\n"


def test_text_that_is_not_utf8_is_recorded_byte_by_byte(
    cc_home: Path, history_backend: str
) -> None:
    # A cwd of other bytes (or --model $'x\xff') reaches Python with surrogates: the
    # history refused the row, and run() raised UnicodeEncodeError instead of a result.
    cwd = os.fsdecode(b"/tmp/caf\xe9")
    store = open_store()
    try:
        store.start(RunRecord(id="01bytes", kind="run", started_at=1.0, cwd=cwd, model="m\udcff"))
        store.finish(
            RunRecord(id="01bytes", kind="run", started_at=1.0, cwd=cwd, status="ok", ended_at=2.0)
        )
        stored = store.get("01bytes")
        assert stored is not None
        assert (stored.cwd, stored.status) == ("/tmp/caf\\xe9", "ok")
        assert verify(stored, "01bytes").record_unaltered  # its receipt is of what is stored
    finally:
        store.close()


def test_an_ambiguous_prefix_names_candidates(cc_home: Path, history_backend: str) -> None:
    store = open_store()
    for suffix in ("a", "b", "c", "d", "e"):
        store.start(RunRecord(id=f"01prefix{suffix}", kind="exec", started_at=1.0))
    store.close()
    done = cc("show", "01prefix")
    assert done.returncode == 1
    assert done.stderr == (
        "cc-executor show: run id prefix '01prefix' is ambiguous: it matches 01prefixa, "
        "01prefixb, 01prefixc, ... (give more of the id)\n"
    )


def test_show_events_of_an_interrupted_run_shows_its_partial_transcript(
    cc_home: Path, history_backend: str, tmp_path: Path
) -> None:
    """A run that never ended has no receipts; the event log it was writing is shown."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "stdout.log").write_text(
        json.dumps(
            {
                "type": "assistant",
                "message": {"id": "m1", "content": [{"type": "text", "text": "half done"}]},
            }
        )
        + "\n"
    )
    store = open_store()
    store.start(
        RunRecord(
            id="01interrupted", kind="run", status=INTERRUPTED, run_dir=str(run_dir), started_at=1.0
        )
    )
    store.close()
    done = cc("show", "01interrupted", "--events")
    assert done.returncode == 0, done.stderr
    assert "(the run did not end: interrupted; the transcript so far)" in done.stdout
    assert "assistant: half done" in done.stdout


def test_folders_that_are_not_cc_executors_to_change_are_left_with_a_warning(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by the review of M8: as root, a history in /tmp made /tmp 0700, and any folder
    named by CC_EXECUTOR_HOME lost its group access and special bits."""
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o1777)  # sticky, as /tmp
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(shared))
    done = cc("exec", "--json", "--", "true")
    result = json.loads(done.stdout)
    assert shared.stat().st_mode & 0o7777 == 0o1777
    assert any("not cc-executor's own folder" in w for w in result["warnings"]), result
    # A history kept outside the data folder leaves its folder as it is; its file is 0600.
    elsewhere = tmp_path / "project"
    elsewhere.mkdir()
    elsewhere.chmod(0o2755)
    SQLiteStore(elsewhere / "history.sqlite3").close()
    assert elsewhere.stat().st_mode & 0o7777 == 0o2755
    assert (elsewhere / "history.sqlite3").stat().st_mode & 0o777 == 0o600


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_history_option_and_variable_choose_the_file(cc_home: Path, tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.sqlite3"
    done = cc("--history", str(chosen), "exec", "--json", "--", "true")
    run_id = json.loads(done.stdout)["run_id"]
    assert [
        r["id"] for r in json.loads(cc(f"--history=sqlite://{chosen}", "history", "--json").stdout)
    ] == [run_id]
    assert not (cc_home / "history.sqlite3").exists()
    for bad, says in (
        ("ftp://host/x", "the location must be a file path, sqlite:///path or postgresql://"),
        ("sqlite://relative", "a sqlite:// location names an absolute path"),
        ("", "the history location is empty"),
    ):
        refused = cc("--history", bad, "history")
        assert refused.returncode == 2
        assert refused.stderr.count("\n") == 1
        assert says in refused.stderr
    assert "expected one argument" in cc("--history").stderr


def test_recovery_touches_only_the_rows_of_this_host(cc_home: Path, history_backend: str) -> None:
    """P18: a `running` row without a host (imported, or written into a shared database by
    another tool) names no machine its PIDs belong to: opening the history leaves it as it
    is (doctor names it); a row of this host whose supervisor is gone is recovered."""
    from cc_executor._cli._doctor_checks import check_history_rows
    from cc_executor._store import HOST

    store = open_store()
    for run_id, host in (("01nohost000001", None), ("01thishost0001", HOST)):
        # supervisor_pid None: no supervisor exists, so the run would be recoverable.
        store.start(
            RunRecord(id=run_id, kind="exec", argv=["true"], started_at=time.time(), host=host)
        )
    store.close()
    store = open_store()
    try:
        assert store.get("01nohost000001").status == "running"  # type: ignore[union-attr]
        assert store.get("01thishost0001").status == INTERRUPTED  # type: ignore[union-attr]
    finally:
        store.close()
    if history_backend == "sqlite":
        assert "1 marked running without a host" in check_history_rows(cc_home)
        assert "01nohost000001" in check_history_rows(cc_home)
