"""Children are started off the event loop (issue 18): many runs starting at once must not
stall the caller's loop for all their spawns together."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import statistics
import threading
import time
from pathlib import Path

import psutil
import pytest

from cc_executor._engine import ProcessStatus, SupervisedProcess, _supervisor, run_process
from cc_executor._engine._launch import launch
from tests._wait import await_for

STARTS = 20
TRIALS = 7


def _one_spawn(folder: Path) -> float:
    """The CPU time one start costs the thread doing it, a thread beside the loop's (so
    the same fork and exec as the supervisor's): the median of a few ``launch`` calls."""
    costs = []
    for i in range(7):
        run_dir = folder / f"single-{i}"
        run_dir.mkdir()
        began = time.thread_time()
        child = launch(["sleep", "30"], cwd=str(folder), run_id=f"single-{i}", run_dir=str(run_dir))
        costs.append(time.thread_time() - began)
        child.abandon()
    return statistics.median(costs)


async def _longest_stall(folder: Path, starts: int, trial: int) -> float:
    """The most CPU time the loop's thread spent between two turns of a ticker task while
    ``starts`` children were started at once (each from a task of its own, as concurrent
    runs do). CPU time, not wall time: what the loop itself did in one pass, whatever else
    the machine (or the GIL) made it wait for."""
    gaps: list[float] = []
    starting = True

    async def ticker() -> None:
        last = time.thread_time()
        while starting:
            await asyncio.sleep(0)
            now = time.thread_time()
            gaps.append(now - last)
            last = now

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    gaps.clear()
    procs: list[SupervisedProcess] = []

    async def start(i: int) -> None:
        proc = SupervisedProcess(["sleep", "30"], run_dir=folder / f"t{trial}-{i}")
        procs.append(proc)
        await proc.start()

    try:
        await asyncio.gather(*(start(i) for i in range(starts)))
    finally:
        starting = False
        await ticking
        results = await asyncio.gather(*(p.cancel() for p in procs if p.pid is not None))
    assert all(r.status is ProcessStatus.CANCELLED for r in results)
    assert len(results) == starts
    return max(gaps)


@pytest.mark.slow  # over 0.3 s: many concurrent starts
async def test_concurrent_starts_do_not_stall_the_loop(tmp_path: Path) -> None:
    """Before: every start forked on the loop, so 20 starts made in one loop pass held it
    for all of them (measured 35 to 90 times one spawn). Now the spawns run in the engine's
    spawn threads; what is left on the loop (making each SupervisedProcess, adopting its
    child) measured 1.6 to 3.8 times one spawn. The best of a few trials counts."""
    one = await asyncio.to_thread(_one_spawn, tmp_path)
    stalls = [await _longest_stall(tmp_path, STARTS, trial) for trial in range(TRIALS)]
    ratio = min(stalls) / one
    assert ratio < STARTS / 3, (
        f"{STARTS} concurrent starts held the loop {min(stalls) * 1000:.1f} ms of CPU at best "
        f"({ratio:.1f}x one spawn of {one * 1000:.2f} ms); trials: "
        + ", ".join(f"{s * 1000:.1f}" for s in stalls)
    )


async def test_a_start_cancelled_during_the_spawn_leaves_no_child(tmp_path: Path) -> None:
    """A caller cancelled while the spawn thread is at work: the child that thread starts
    is nobody's, so it is killed, not left running. The thread is held at a known point:
    opening the child's stdin, a FIFO, waits for a writer."""
    fifo = tmp_path / "stdin.fifo"
    os.mkfifo(fifo)
    marker = f"orphan-{os.getpid()}-{time.monotonic_ns()}"
    run_dir = tmp_path / "run"
    proc = SupervisedProcess(
        ["sleep", "600"], stdin=fifo, run_dir=run_dir, extra_env={"CCX_TEST_MARK": marker}
    )
    task = asyncio.ensure_future(proc.start())
    writer: list[int] = []

    def spawn_thread_waits() -> bool:
        try:  # succeeds only once a reader (the spawn thread) has the FIFO open
            writer.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    try:
        await await_for(spawn_thread_waits, what="the spawn thread opening the child's stdin")
        task.cancel()  # at once: the spawn thread goes on, and starts the child
        with pytest.raises(asyncio.CancelledError):
            await task
        await _spawn_threads_idle()
        assert run_dir.is_dir()  # the spawn went on after the cancel
        await await_for(lambda: not _marked(marker), what="no child of a cancelled start left")
    finally:
        for fd in writer:
            os.close(fd)
    assert proc.pid is None  # never adopted


async def _spawn_threads_idle() -> None:
    """Every spawn submitted so far has ended (and its callbacks ran) once each spawn
    thread has reached this barrier."""
    barrier = threading.Barrier(_supervisor._SPAWN_THREADS)
    pool = _supervisor._spawner()
    await asyncio.gather(
        *(asyncio.wrap_future(pool.submit(barrier.wait)) for _ in range(barrier.parties))
    )


def _marked(marker: str) -> list[int]:
    found = []
    for p in psutil.process_iter():
        try:
            if p.environ().get("CCX_TEST_MARK") == marker:
                found.append(p.pid)
        except (psutil.Error, OSError):
            continue
    return found


async def test_pause_and_cancel_while_the_child_is_being_started(tmp_path: Path) -> None:
    """A pause or a cancel asked for while the spawn thread works is done once the child
    exists (before the spawn moved off the loop there was no such moment)."""
    fifo = tmp_path / "stdin.fifo"
    os.mkfifo(fifo)
    writer: list[int] = []

    def spawn_thread_waits() -> bool:
        try:
            writer.append(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            return False
        return True

    proc = SupervisedProcess(["sleep", "600"], stdin=fifo, run_dir=tmp_path / "paused")
    starting = asyncio.ensure_future(proc.start())
    try:
        await await_for(spawn_thread_waits, what="the spawn thread opening the child's stdin")
        assert proc.pause()
        assert proc.paused
        await starting
        assert proc.pid is not None
        child = psutil.Process(proc.pid)
        # A signal takes effect when the child next runs: wait for it, not for a guess.
        await await_for(lambda: child.status() == psutil.STATUS_STOPPED, what="stopped")
        assert proc.resume()
        await await_for(lambda: child.status() != psutil.STATUS_STOPPED, what="continued")
    finally:
        for fd in writer:
            os.close(fd)
    writer.clear()
    assert (await proc.cancel()).status is ProcessStatus.CANCELLED

    proc = SupervisedProcess(["sleep", "600"], stdin=fifo, run_dir=tmp_path / "cancelled")
    starting = asyncio.ensure_future(proc.start())
    try:
        await await_for(spawn_thread_waits, what="the spawn thread opening the child's stdin")
        stopping = asyncio.ensure_future(proc.cancel())
        await starting
        result = await stopping
    finally:
        for fd in writer:
            os.close(fd)
    assert result.status is ProcessStatus.CANCELLED
    assert result.pid is not None
    assert not psutil.pid_exists(result.pid)


def _start_in_a_forked_copy() -> None:
    result = asyncio.run(run_process(["true"]))
    os._exit(0 if result.status is ProcessStatus.OK else 3)


async def test_a_forked_copy_of_the_process_still_starts_children(tmp_path: Path) -> None:
    """``multiprocessing`` forks by default on Linux: a copy made after the spawn threads
    exist has none of them, and must not queue its spawns for threads that are not there."""
    await run_process(["true"])  # the spawn threads exist from here on
    copy = multiprocessing.get_context("fork").Process(target=_start_in_a_forked_copy)
    copy.start()
    await asyncio.to_thread(copy.join, 120)
    if copy.exitcode is None:
        copy.kill()
        copy.join()
    assert copy.exitcode == 0
