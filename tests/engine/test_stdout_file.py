"""``stdout_to_file``: the child writes its output file itself (as ``cmd > file``) and the
engine reads it back as it grows, with the same guarantees as through a pipe."""

from __future__ import annotations

import hashlib
import random
import struct
import sys
from pathlib import Path

import pytest

from cc_executor._engine import LifecycleEvent, OutputEvent, ProcessStatus, run_process
from tests.engine.children import child, sh_chatty
from tests.engine.test_output import MIB, pattern_sha256
from tests.engine.test_tree import assert_all_gone, read_pids


@pytest.mark.slow  # seconds of work: out of the fast tier
async def test_large_output_is_whole_and_hashed() -> None:
    out, err = 300 * MIB, 30 * MIB
    result = await run_process(child("flood", out, err), timeout=120, stdout_to_file=True)
    assert result.status is ProcessStatus.OK, result.error
    assert result.stdout_bytes == out
    assert result.stderr_bytes == err
    assert Path(result.stdout_path or "").stat().st_size == out
    assert result.stdout_sha256 == pattern_sha256(out, b"o")
    assert result.stderr_sha256 == pattern_sha256(err, b"e")


@pytest.mark.slow
async def test_lines_arrive_while_the_child_runs() -> None:
    code = (
        "import sys, time\n"
        "print('first', flush=True); time.sleep(1.5)\n"
        "sys.stdout.buffer.write(b'x' * (3 << 20) + b'\\n'); print('last')"
    )
    events: list[OutputEvent | LifecycleEvent] = []
    result = await run_process(
        [sys.executable, "-c", code],
        on_event=events.append,
        stdout_to_file=True,
        timeout=30,
        max_line_memory=1 << 20,
    )
    assert result.status is ProcessStatus.OK
    lines = [e for e in events if isinstance(e, OutputEvent) and e.stream == "stdout"]
    assert [e.length for e in lines] == [5, 3 << 20, 4]
    assert lines[0].data == b"first"
    assert not lines[1].in_memory  # over the framing budget: read back from the file
    assert lines[1].data == b"x" * (3 << 20)
    exited = next(e for e in events if isinstance(e, LifecycleEvent) and e.kind == "exited")
    # Seen while the child slept, not when it ended (polling is 1 to 50 ms).
    assert exited.t - lines[0].t > 1.0


@pytest.mark.slow
async def test_timeout_keeps_exactly_what_was_written(tmp_path: Path) -> None:
    counter_file = tmp_path / "written"
    for _ in range(3):
        counter_file.unlink(missing_ok=True)
        when = random.uniform(0.3, 1.2)
        result = await run_process(
            child("counter", counter_file), timeout=when, grace=0, stdout_to_file=True
        )
        assert result.status is ProcessStatus.TIMEOUT
        assert result.partial
        data = result.stdout
        expected = b"".join(b"%d\n" % i for i in range(1, data.count(b"\n") + 2))
        assert expected.startswith(data)
        (written,) = struct.unpack("<Q", counter_file.read_bytes()[:8])
        # Everything the child finished writing is in the file, so in the result.
        assert written <= len(data)
        assert hashlib.sha256(data).hexdigest() == result.stdout_sha256


@pytest.mark.slow
async def test_idle_timeout_and_output_that_resets_it() -> None:
    # Twice the idle timeout of output, each gap a twentieth of it (room for a loaded machine).
    ok = await run_process(sh_chatty(40, 0.05), idle_timeout=1.0, stdout_to_file=True)
    assert ok.status is ProcessStatus.OK
    idle = await run_process(
        ["sh", "-c", "echo hello; exec sleep 30"], idle_timeout=0.5, timeout=20, stdout_to_file=True
    )
    assert idle.status is ProcessStatus.IDLE_TIMEOUT
    assert idle.stdout == b"hello\n"
    # Liveness, not speed: the 0.5 s idle timeout ended it, not the child's 30 s (10x slack).
    assert idle.duration_s < 5


async def test_a_descendant_still_writing_after_the_exit_is_stopped(tmp_path: Path) -> None:
    """With a pipe the end of output is its end of file; a file has none: the run ends when
    the child exits, leftover writers are terminated, and what they wrote is read."""
    pidfile = tmp_path / "pids"
    script = (
        f"(while :; do echo tick; sleep 0.05; done) & echo $! > {pidfile}; sleep 0.3; echo done"
    )
    result = await run_process(["sh", "-c", script], grace=1, stdout_to_file=True, timeout=20)
    assert result.status is ProcessStatus.OK
    assert result.descendants_killed >= 1
    assert b"done\n" in result.stdout
    assert result.stdout.count(b"tick") >= 2
    assert Path(result.stdout_path or "").read_bytes() == result.stdout
    # Liveness, not speed: the run ends with the child (~0.3 s), not with the endless writer.
    assert result.duration_s < 5
    await assert_all_gone(read_pids(pidfile))
