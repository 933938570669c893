"""A full disk and a file size limit (issue 18 L5): receipts describe what the files hold,
the result says the output is incomplete, ``verify`` does not call such a file altered, and
a run's end the history could not record is recorded later, not taken for a crash."""

from __future__ import annotations

import hashlib
import json
import os
import resource
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor._store import Query, RunRecord, open_store
from cc_executor._store._history import UNRECORDED_END
from tests._means import unshare_argv

CLI = str(Path(sys.executable).parent / "cc-executor")
MIB = 1 << 20
#: A command writing 1 MiB to its stdout.
WRITER = [sys.executable, "-c", "import sys; sys.stdout.buffer.write(b'x' * (1 << 20))"]


def on_small_disk(size: str, folder: Path, commands: list[list[str]]) -> list[dict[str, Any]]:
    """Run ``commands`` in order with a tmpfs of ``size`` mounted on ``folder``."""
    helper = str(Path(__file__).with_name("_small_disk.py"))
    done = subprocess.run(
        [*unshare_argv(), sys.executable, helper, size, str(folder), json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    results: list[dict[str, Any]] = json.loads(done.stdout)
    return results


def _records() -> list[RunRecord]:
    store = open_store()
    try:
        return store.query(Query())
    finally:
        store.close()


@pytest.mark.mount
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_full_disk_gives_receipts_of_what_the_files_hold(cc_home: Path, tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    run_dir = small / "run"
    ran, checked = on_small_disk(
        "256k",
        small,
        [
            [CLI, "exec", "--json", "--run-dir", str(run_dir), "--", *WRITER],
            [CLI, "verify", "--last", "1", "--json"],
        ],
    )
    result = json.loads(ran["stdout"])
    stdout_log = str(run_dir / "stdout.log")
    # The command exited 0, but its output is not all on disk: not a success.
    assert result["status"] == "limit_exceeded"
    assert result["exit_code"] == 0
    assert result["partial"] is True
    assert result["incomplete_files"] == [stdout_log]
    assert any("No space left on device" in w for w in result["warnings"])
    assert result["stdout_bytes"] == MIB
    [record] = _records()
    stdout = next(a for a in record.artifacts if a.name == "stdout")
    assert 0 < stdout.size < MIB
    assert stdout.size + stdout.unwritten == MIB
    # The receipt is of the file as it was on the full disk: verify finds it unaltered.
    assert checked["returncode"] == 0, checked["stdout"]
    report = json.loads(checked["stdout"])["runs"][0]
    assert report["ok"] is True
    assert {a["name"]: a["state"] for a in report["artifacts"]} == {"stdout": "ok", "stderr": "ok"}
    assert any("stdout is incomplete" in n for n in report["notes"])


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_file_size_limit_gives_receipts_of_what_the_files_hold(
    cc_home: Path, tmp_path: Path
) -> None:
    open_store().close()  # the history exists, small, before the limit applies
    limit = 256 * 1024

    def limited() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    done = subprocess.run(
        [CLI, "exec", "--json", "--", *WRITER],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        preexec_fn=limited,  # the limit is the child's own, set before it runs
    )
    result = json.loads(done.stdout)
    assert result["status"] == "limit_exceeded"
    assert result["partial"] is True
    assert result["incomplete_files"] == [result["stdout_path"]]
    assert any("File too large" in w for w in result["warnings"])
    [record] = _records()
    stdout = next(a for a in record.artifacts if a.name == "stdout")
    held = Path(stdout.path).read_bytes()
    assert len(held) == limit
    assert (stdout.size, stdout.sha256) == (limit, hashlib.sha256(held).hexdigest())
    assert stdout.unwritten == MIB - limit
    checked = subprocess.run(
        [CLI, "verify", record.id], capture_output=True, text=True, timeout=120, check=False
    )
    assert checked.returncode == 0, checked.stdout
    assert "was altered" not in checked.stdout
    assert f"stdout is incomplete: it holds the first {limit} bytes" in checked.stdout
    shown = subprocess.run(
        [CLI, "show", record.id], capture_output=True, text=True, timeout=120, check=False
    )
    assert f"(incomplete: {MIB - limit} more bytes could not be written)" in shown.stdout


FILLER = """
import json, subprocess, sys
cli, filler = sys.argv[1], sys.argv[2]
# Wait until this run's start is in the history, then fill the disk the history is on.
while not any(r["status"] == "running" for r in json.loads(
        subprocess.run([cli, "history", "--json"], capture_output=True, text=True).stdout)):
    pass
with open(filler, "wb") as f:
    try:
        while True:
            f.write(b"\\0" * 65536)
            f.flush()
    except OSError:
        pass
print("filled")
"""


@pytest.mark.mount
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_an_end_the_history_could_not_record_is_recorded_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The history's disk fills up while the run goes on: its end cannot be recorded. The
    next opening of the history used to mark it ``interrupted``, saying its supervisor
    died; the end kept in the run folder is recorded instead."""
    small = tmp_path / "small"
    small.mkdir()
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(small / "home"))
    run_dir = tmp_path / "run"  # on the ordinary disk
    filler = str(small / "filler")
    # Room again, then the next opening of the history for writing (`prune --dry-run`:
    # `history` only reads) finds the kept end.
    drop_then_list = (
        f"import os, subprocess, sys; os.remove({filler!r}); subprocess.run([{CLI!r}, "
        "'prune', '--older-than', '9999w', '--dry-run'], capture_output=True); "
        f"sys.stdout.write(subprocess.run([{CLI!r}, 'history', '--json'], capture_output=True, "
        "text=True).stdout)"
    )
    ran, listed, checked = on_small_disk(
        "512k",
        small,
        [
            [CLI, "exec", "--json", "--run-dir", str(run_dir), "--", sys.executable, "-c",
             FILLER, CLI, filler],
            [sys.executable, "-c", drop_then_list],
            [CLI, "verify", "--last", "1", "--json"],
        ],
    )  # fmt: skip
    result = json.loads(ran["stdout"])
    assert result["status"] == "ok"
    assert Path(result["stdout_path"]).read_text() == "filled\n"
    assert any("history not recorded" in w for w in result["warnings"])
    assert any(UNRECORDED_END in w for w in result["warnings"])
    [row] = json.loads(listed["stdout"])
    assert row["status"] == "ok", row["error"]
    assert row["exit_code"] == 0
    assert {a["name"] for a in row["artifacts"]} == {"stdout", "stderr"}
    assert not os.path.exists(run_dir / UNRECORDED_END)
    assert checked["returncode"] == 0, checked["stdout"]


def _dead_supervisor_run(run_dir: Path) -> RunRecord:
    from cc_executor._store._history import HOST

    return RunRecord(
        id="kept-end-run",
        kind="exec",
        argv=["true"],
        started_at=1_700_000_000.0,
        run_dir=str(run_dir),
        host=HOST,
        supervisor_pid=2**22 + 1,  # above the kernel's pid_max: no such process
        supervisor_started=1,
    )


@pytest.mark.parametrize(
    "kept",
    ["valid", "edited", "another run", "bad types", "still running", "not json", "a link",
     "forged without the key"],
)  # fmt: skip
def test_a_kept_end_is_recorded_only_when_it_is_this_runs(tmp_path: Path, kept: str) -> None:
    """The kept end is a file in the run folder, as untrusted as any: only a well-formed
    end of the same run (id, folder, supervisor) with a final status and a receipt that
    checks (keyed, when a key is set) is recorded; anything else leaves the run to the usual
    recovery, with a reason that does not claim a crash."""
    from cc_executor._store import SQLiteStore, record_receipt, recover
    from cc_executor._store._history import keep_unrecorded_end

    key = b"k" * 32 if kept == "forged without the key" else None
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    store = SQLiteStore(tmp_path / "history.sqlite3", receipt_key=key)
    running = _dead_supervisor_run(run_dir)
    store.start(running)
    end = RunRecord.from_dict({**running.to_dict(), "status": "ok", "exit_code": 0})
    path = run_dir / UNRECORDED_END
    assert keep_unrecorded_end(end, key) == str(path)
    data: Any = json.loads(path.read_text())

    def rewrite(**changes: Any) -> None:
        """Change the kept end and give it the unkeyed receipt anyone can compute."""
        forged = RunRecord.from_dict({**data, **changes})
        forged.record_receipt = record_receipt(forged, None)
        path.write_text(json.dumps(forged.to_dict()))

    if kept == "edited":
        data["exit_code"] = 3
        path.write_text(json.dumps(data))
    elif kept == "another run":
        rewrite(id="another-run")
    elif kept == "bad types":
        data["status"] = ["ok"]
        path.write_text(json.dumps(data))
    elif kept == "still running":
        rewrite(status="running")
    elif kept == "not json":
        path.write_text('{"id": "kept-end-run", ')
    elif kept == "a link":
        target = tmp_path / "elsewhere.json"
        path.rename(target)
        path.symlink_to(target)
    elif kept == "forged without the key":
        rewrite()
    recover(store)
    after = store.get(running.id)
    store.close()
    assert after is not None
    if kept == "valid":
        assert (after.status, after.exit_code) == ("ok", 0)
        assert not path.exists()
    else:
        assert after.status == "interrupted"
        assert "the run's end was never recorded" in (after.error or "")
        assert "died before the run ended" not in (after.error or "")


def test_a_status_update_does_not_launder_an_edit(tmp_path: Path) -> None:
    """Recovery rewrites a row's status: an edit made to that row before must still show."""
    from cc_executor._store import SQLiteStore, verify

    db = tmp_path / "history.sqlite3"
    store = SQLiteStore(db)
    store.start(_dead_supervisor_run(tmp_path))
    raw = sqlite3.connect(db)
    raw.execute("UPDATE runs SET argv = '[\"forged\"]' WHERE id = 'kept-end-run'")
    raw.commit()
    raw.close()
    store.update_status("kept-end-run", "interrupted", error="its supervisor is gone")
    record = store.get("kept-end-run")
    store.close()
    assert record is not None
    assert "the record was altered" in " ".join(verify(record, record.id).problems)
