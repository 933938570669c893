"""``verify`` on a run folder whose stored file was swapped for a FIFO, a symlink or a
device: it answers at once, the file reported altered (never read, never waited on)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from tests._commands import cc


def finished_exec() -> tuple[str, Path]:
    """A finished ``exec`` run: its id and its stored ``stdout.log``."""
    done = json.loads(cc("exec", "--json", "--", "echo", "hello").stdout)
    assert done["status"] == "ok", done
    assert cc("verify", done["run_id"]).returncode == 0
    return str(done["run_id"]), Path(done["run_dir"]) / "stdout.log"


def to_fifo(path: Path) -> None:
    path.unlink()
    os.mkfifo(path)


def to_dev_zero(path: Path) -> None:
    path.unlink()
    path.symlink_to("/dev/zero")


def to_link_to_a_copy(path: Path) -> None:
    # A symlink to a file with the very same bytes is still not the stored file.
    copy = path.with_name("copy.log")
    copy.write_bytes(path.read_bytes())
    path.unlink()
    path.symlink_to(copy)


@pytest.mark.parametrize(
    ("swap", "what"),
    [(to_fifo, "is now a FIFO"), (to_dev_zero, "is now a symbolic link"),
     (to_link_to_a_copy, "is now a symbolic link")],
)  # fmt: skip
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_verify_reports_a_swapped_file_at_once(
    cc_home: Path, swap: Callable[[Path], None], what: str
) -> None:
    run_id, stdout_log = finished_exec()
    swap(stdout_log)
    done = cc("verify", run_id)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "unaltered=no" in done.stdout
    assert f"stdout was altered: {stdout_log} {what}, not a regular file (not read)" in (
        done.stdout
    ), done.stdout
    report = json.loads(cc("verify", run_id, "--json").stdout)["runs"][0]
    entry = next(a for a in report["artifacts"] if a["name"] == "stdout")
    assert entry["state"] == "altered"
    assert what in entry["reason"]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_verify_reads_no_more_than_the_recorded_size(cc_home: Path) -> None:
    run_id, stdout_log = finished_exec()
    recorded = stdout_log.stat().st_size
    stdout_log.write_bytes(b"x" * (recorded + 5_000_000))
    done = cc("verify", run_id)
    assert done.returncode == 1
    assert (
        f"stdout was altered: it holds more than the recorded {recorded} bytes "
        f"(size {recorded + 5_000_000})"
    ) in done.stdout, done.stdout
