"""Output: drained concurrently, framed without limits, bounded in memory, never lost."""

from __future__ import annotations

import asyncio
import hashlib
import random
import struct
import sys
from pathlib import Path

import pytest

from cc_executor._engine import (
    LifecycleEvent,
    OutputEvent,
    ProcessStatus,
    open_process,
    run_process,
)
from cc_executor._engine._events import QuietLines
from tests._wait import await_for
from tests.engine.children import child, sh_chatty

GIB = 1 << 30
MIB = 1 << 20


def pattern_sha256(total: int, byte: bytes, block: int = MIB) -> str:
    """sha256 of what children/flood.py writes for ``total`` bytes."""
    chunk = (byte * 63 + b"\n") * (block // 64)
    h = hashlib.sha256()
    left = total
    while left > 0:
        h.update(chunk[: min(left, len(chunk))])
        left -= len(chunk)
    return h.hexdigest()


@pytest.mark.slow
async def test_one_gib_stdout_with_100_mb_stderr_at_once() -> None:
    out, err = GIB, 100 * MIB
    result = await run_process(child("flood", out, err), timeout=120)
    assert result.status is ProcessStatus.OK, result.error
    assert result.stdout_bytes == out
    assert result.stderr_bytes == err
    assert Path(result.stdout_path or "").stat().st_size == out
    assert Path(result.stderr_path or "").stat().st_size == err
    assert result.stdout_sha256 == pattern_sha256(out, b"o")
    assert result.stderr_sha256 == pattern_sha256(err, b"e")
    # Far over the memory budget: nothing of it is held in memory by the result.
    assert result._stdout_memory is None


@pytest.mark.slow  # seconds of work: out of the fast tier
async def test_a_200_mb_single_line_arrives_whole() -> None:
    size = 200 * MIB
    code = (
        "import sys; b = b'z' * (1 << 20); w = sys.stdout.buffer.write\n"
        f"[w(b) for _ in range({size // MIB})]; w(b'\\nend\\n')"
    )
    lines: list[OutputEvent] = []
    result = await run_process([sys.executable, "-c", code], on_line=lines.append, timeout=120)
    assert result.status is ProcessStatus.OK
    assert [e.length for e in lines] == [size, 3]
    big = lines[0]
    assert not big.in_memory  # over the framing budget: file-backed, not buffered
    data = big.data
    assert len(data) == size
    assert data.count(b"z") == size
    assert lines[1].data == b"end"


async def test_lines_and_chunks_with_binary_garbage() -> None:
    payload = b"ok\n\x00\xff\xfe bad utf8 \xc3\x28\n\n" + b"no newline at end"
    lines: list[OutputEvent] = []
    chunks: list[OutputEvent] = []
    result = await run_process(
        [sys.executable, "-c", f"import sys; sys.stdout.buffer.write({payload!r})"],
        on_line=lines.append,
        on_chunk=chunks.append,
    )
    assert result.status is ProcessStatus.OK
    assert b"".join(c.data for c in chunks) == payload
    assert [e.data for e in lines] == payload.split(b"\n")
    assert [e.complete for e in lines] == [True, True, True, False]
    assert "\ufffd" in lines[1].text  # decoding never raises
    offsets = [e.offset for e in lines]
    assert offsets == [0, 3, 3 + len(payload.split(b"\n")[1]) + 1, offsets[3]]
    assert all(payload[e.offset : e.offset + e.length] == e.data for e in lines)


async def test_events_are_ordered_with_lifecycle_and_timestamps() -> None:
    events = []
    async with open_process(child("chatty", 5, 0.01)) as proc:
        async for event in proc.events():
            events.append(event)
    assert isinstance(events[0], LifecycleEvent)
    assert events[0].kind == "started"
    assert isinstance(events[-1], LifecycleEvent)
    assert events[-1].kind == "exited"
    lines = [e for e in events if isinstance(e, OutputEvent)]
    assert len(lines) == 5
    times = [e.t for e in events]
    assert times == sorted(times)


async def test_async_and_sync_callbacks_both_work() -> None:
    seen: list[str] = []

    async def on_line(event: OutputEvent) -> None:
        await asyncio.sleep(0)
        seen.append("line")

    def on_event(event: object) -> None:
        if isinstance(event, LifecycleEvent):
            seen.append(event.kind)

    result = await run_process(child("chatty", 3), on_line=on_line, on_event=on_event)
    assert result.ok
    assert seen[0] == "started"
    assert seen[-1] == "exited"
    assert seen.count("line") == 3


async def test_a_callback_that_raises_stops_the_run() -> None:
    def on_line(event: OutputEvent) -> None:
        raise RuntimeError("callback bug")

    started = asyncio.get_running_loop().time()
    with pytest.raises(RuntimeError, match="callback bug"):
        await run_process(child("chatty", 6000, 0.01), on_line=on_line)
    # Liveness, not speed: stopped at the first line (~0.1 s), not after the child's 60 s.
    assert asyncio.get_running_loop().time() - started < 20


@pytest.mark.slow  # over 0.3 s: scripted delays
async def test_slow_consumer_never_stalls_draining_and_loses_nothing() -> None:
    """The consumer sleeps; the child still finishes at full speed, memory stays bounded
    (late events are file-backed) and every line arrives in order."""
    count = 200_000
    code = f"import sys\nfor i in range({count}): sys.stdout.write(f'{{i:08d}}' + 'y' * 90 + '\\n')"
    async with open_process([sys.executable, "-c", code], queue_budget=256 * 1024) as proc:
        await asyncio.sleep(0.1)  # a consumer slow from the start: the behaviour under test
        seen = 0
        exited_before_consumed = None
        async for event in proc.events(lifecycle=False):
            assert isinstance(event, OutputEvent)
            if exited_before_consumed is None:
                # The child finishes while we have consumed almost nothing (a stalled
                # drain would keep it blocked on a full pipe until the timeout).
                await await_for(lambda: not proc.running, what="the child's exit")
                exited_before_consumed = not proc.running
                queue = proc._queue
                assert queue is not None
                # ~20 MB waited for us, but only the budget is held in memory and the
                # file-backed rest is a handful of merged records.
                assert queue._bytes <= 256 * 1024
                spilled = [
                    i.length
                    for i in queue._items
                    if not isinstance(i, LifecycleEvent) and i.data is None
                ]
                assert len(spilled) == 1
                assert spilled[0] > 10_000_000
            assert event.data[:8] == f"{seen:08d}".encode()
            seen += 1
    assert seen == count
    assert exited_before_consumed


@pytest.mark.slow
async def test_timeout_keeps_exactly_what_was_written(tmp_path: Path) -> None:
    """A counter killed at a random moment: the captured bytes are exactly a prefix of the
    sequence, and at least everything the child had finished writing."""
    counter_file = tmp_path / "written"
    rng = random.Random()
    for _ in range(3):
        counter_file.unlink(missing_ok=True)
        when = rng.uniform(0.3, 1.2)
        result = await run_process(child("counter", counter_file), timeout=when, grace=0)
        assert result.status is ProcessStatus.TIMEOUT
        assert result.partial
        data = result.stdout
        expected = b"".join(b"%d\n" % i for i in range(1, data.count(b"\n") + 2))
        assert expected.startswith(data), "captured bytes are not a prefix of the sequence"
        (written,) = struct.unpack("<Q", counter_file.read_bytes()[:8])
        # The counter is updated after each write, so it may lag one write behind.
        assert written <= len(data) <= written + 8192
        assert result.stdout_bytes == len(data)
        assert hashlib.sha256(data).hexdigest() == result.stdout_sha256


async def test_idle_timeout() -> None:
    # A shell, not Python: its first line comes long before the 0.5 s idle clock runs out.
    result = await run_process(
        ["sh", "-c", "echo hello; exec sleep 30"], idle_timeout=0.5, timeout=20
    )
    assert result.status is ProcessStatus.IDLE_TIMEOUT
    assert result.timed_out == "idle"
    assert result.timeout_after == 0.5
    assert result.stdout == b"hello\n"
    assert result.partial
    # Liveness, not speed: the 0.5 s idle timeout ended it, not the child's 30 s (10x slack).
    assert result.duration_s < 5


@pytest.mark.slow
async def test_idle_timeout_is_reset_by_output() -> None:
    # 2 s of output 0.05 s apart: twice the idle timeout, which a gap outlasts only when
    # the machine stalls the shell for a second (a 0.5 s clock against 0.1 s gaps left a
    # loaded machine's fork of `sleep` 0.4 s).
    result = await run_process(sh_chatty(40, 0.05), idle_timeout=1.0)
    assert result.status is ProcessStatus.OK


async def test_first_output_timeout() -> None:
    result = await run_process(["sleep", "30"], first_output_timeout=0.4)
    assert result.status is ProcessStatus.IDLE_TIMEOUT
    assert result.timed_out == "first_output"
    assert "no output within 0.4 s" in (result.error or "")


# Shells, not Python: the first line comes long before a 0.5 s clock runs out.
_WAITING = "while :; do echo waiting; sleep 0.05; done"


async def test_quiet_lines_do_not_reset_the_idle_timer() -> None:
    result = await run_process(
        ["sh", "-c", "echo working; " + _WAITING],
        idle_timeout=0.5,
        timeout=60,
        quiet_line=lambda line: line == b"waiting",
    )
    assert result.status is ProcessStatus.IDLE_TIMEOUT
    assert result.timed_out == "idle"
    assert result.stdout.startswith(b"working\nwaiting\n")  # the quiet lines are kept


async def test_quiet_lines_are_not_first_output() -> None:
    result = await run_process(
        ["sh", "-c", _WAITING],
        first_output_timeout=0.5,
        timeout=60,
        quiet_line=lambda line: line == b"waiting",
    )
    assert result.status is ProcessStatus.IDLE_TIMEOUT
    assert result.timed_out == "first_output"


def test_quiet_lines_are_judged_whole() -> None:
    seen: list[bytes] = []

    def quiet(line: bytes) -> bool:
        seen.append(line)
        return line.startswith(b"wait")

    judge = QuietLines(quiet, limit=16)

    def feed(data: bytes) -> bool:
        return judge.progress(bytearray(data), len(data))

    assert not feed(b"wait 1\nwa")  # a quiet line, and the start of one
    assert not feed(b"it 2\n")  # judged once complete
    assert feed(b"work\n")
    assert feed(b"a line longer than the limit")  # counts as it arrives
    assert feed(b" still\nwait 3\n")
    assert not feed(b"wait 4\n")
    assert seen == [b"wait 1", b"wait 2", b"work", b"wait 3", b"wait 4"]

    def broken(line: bytes) -> bool:
        raise RuntimeError("a bug in the predicate")

    assert QuietLines(broken).progress(bytearray(b"x\n"), 2)  # counts as progress


async def test_twenty_mb_stdin_echoed_back() -> None:
    data = random.Random(7).randbytes(20 * MIB)
    result = await run_process(["cat"], stdin=data, timeout=60)
    assert result.status is ProcessStatus.OK
    assert result.stdin_bytes_written == len(data)
    assert result.stdout_sha256 == hashlib.sha256(data).hexdigest()


async def test_stdin_from_text_file_and_nothing(tmp_path: Path) -> None:
    text = "héllo ✓\n"
    assert (await run_process(["cat"], stdin=text)).stdout == text.encode()
    source = tmp_path / "in.txt"
    source.write_bytes(b"from a file\n")
    assert (await run_process(["cat"], stdin=source)).stdout == b"from a file\n"
    with source.open("rb") as f:
        assert (await run_process(["cat"], stdin=f)).stdout == b"from a file\n"
    # No stdin means /dev/null: a reader sees EOF at once instead of waiting forever.
    result = await run_process(["cat"], timeout=10)
    assert result.status is ProcessStatus.OK
    assert result.stdout == b""


async def test_child_that_closes_stdin_early() -> None:
    result = await run_process(["head", "-c", "10"], stdin=b"x" * (8 * MIB), timeout=20)
    assert result.status is ProcessStatus.OK
    assert result.stdout == b"x" * 10
    assert any("stopped reading" in w for w in result.warnings)


@pytest.mark.slow
async def test_two_hundred_concurrent_chatty_runs() -> None:
    results = await asyncio.gather(
        *(run_process(child("chatty", 500), timeout=120) for _ in range(200))
    )
    assert all(r.status is ProcessStatus.OK for r in results)
    expected = sum(len(f"line {i} " + "x" * 40 + "\n") for i in range(500))
    assert {r.stdout_bytes for r in results} == {expected}
    assert len({r.run_id for r in results}) == 200


async def test_write_error_loses_nothing(tmp_path: Path) -> None:
    """The output file cannot grow (RLIMIT_FSIZE): the run still completes, its status says
    the file is incomplete (not ok), the error is specific, and every byte is still in the
    result."""
    script = (
        "import resource, sys, json\n"
        "from cc_executor._engine import run_process_sync\n"
        "resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))\n"
        "r = run_process_sync([sys.executable, '-c', "
        "'import sys; sys.stdout.buffer.write(b\"q\" * (5 << 20))'])\n"
        "print(json.dumps({'status': r.status.value, 'error': r.error, "
        "'bytes': r.stdout_bytes, 'kept': len(r.stdout), 'ok': r.stdout == b'q' * (5 << 20)}))\n"
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await proc.communicate()
    import json

    report = json.loads(out)
    assert report["status"] == "limit_exceeded"
    assert "File too large" in report["error"]
    assert report["bytes"] == 5 << 20
    assert report["kept"] == 5 << 20
    assert report["ok"]


@pytest.mark.slow  # over 0.3 s: scripted delays
async def test_held_quiet_clocks_pause_idle_and_first_output(tmp_path: Path) -> None:
    # A child waiting on its supervisor (a permission decision) prints nothing: while the
    # clocks are held it is not idle, and once released they count again from then.
    gate = tmp_path / "gate"
    code = f"import os, time\nwhile not os.path.exists({str(gate)!r}): time.sleep(0.01)"
    async with open_process(
        [sys.executable, "-c", code], idle_timeout=0.3, first_output_timeout=0.3, timeout=60
    ) as proc:
        loop = asyncio.get_running_loop()
        proc.hold_quiet_clocks()
        held_at = loop.time()
        await await_for(lambda: loop.time() > held_at + 1.0, what="three idle timeouts passed")
        assert proc.running, "a held clock timed the child out"
        proc.release_quiet_clocks()
        result = await proc.wait()
    assert result.status is ProcessStatus.IDLE_TIMEOUT
    assert result.timed_out == "first_output"
