"""Whole-tree ownership: nothing the child started survives a timeout, a cancel, the normal
end of the run, or the death of the supervisor itself."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import psutil
import pytest

from cc_executor._engine import ProcessStatus, open_process, run_process
from tests._wait import await_for
from tests.engine.children import child, sh_chatty


def alive(pid: int) -> bool:
    """True if ``pid`` is a running (not zombie) process."""
    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False


def read_pids(path: Path) -> list[int]:
    return [int(x) for x in path.read_text().split()] if path.exists() else []


async def wait_for_pids(path: Path, count: int, timeout: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = read_pids(path)
        if len(pids) >= count:
            return pids
        await asyncio.sleep(0.02)
    raise AssertionError(f"only {read_pids(path)} of {count} processes reported in time")


async def wait_for_states(pids: list[int], *, stopped: bool, within: float = 30.0) -> None:
    """Signals are delivered asynchronously: wait until every pid is (not) stopped."""
    deadline = time.monotonic() + within
    while True:
        states = {p: psutil.Process(p).status() == psutil.STATUS_STOPPED for p in pids}
        if all(v == stopped for v in states.values()):
            return
        assert time.monotonic() < deadline, f"stopped={stopped} not reached: {states}"
        await asyncio.sleep(0.01)


async def assert_all_gone(pids: list[int], within: float = 30.0) -> None:
    """Wait until none of ``pids`` runs (a zombie counts as gone). A killed process dies
    when it next gets a core, which on a loaded machine can take seconds: ``within`` only
    turns a survivor into a failure, it is not a speed bound."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        await asyncio.sleep(0.02)
    survivors = [p for p in pids if alive(p)]
    assert not survivors, f"survivors: {survivors}"


@pytest.mark.slow
async def test_timeout_kills_child_ignoring_sigterm(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    started = time.monotonic()
    # 3 s: room for the child to start and ignore SIGTERM first, on a loaded machine too.
    result = await run_process(child("tree", pidfile, "--ignore-term"), timeout=3.0, grace=0.5)
    assert result.status is ProcessStatus.TIMEOUT
    assert result.kill_signal == "SIGKILL"
    assert result.signal == "SIGKILL"
    assert result.partial
    assert result.timed_out == "total"
    assert result.timeout_after == 3.0
    assert b"ready" in result.stdout
    # Liveness, not speed: 3 s timeout + 0.5 s grace, then SIGKILL (4x slack); the child
    # would never end by itself.
    assert time.monotonic() - started < 15
    await assert_all_gone(read_pids(pidfile))


async def test_sigterm_suffices_for_a_polite_child() -> None:
    result = await run_process(["sleep", "30"], timeout=0.3, grace=5)
    assert result.status is ProcessStatus.TIMEOUT
    assert result.kill_signal == "SIGTERM"
    assert result.signal == "SIGTERM"
    # Liveness, not speed: ~0.3 s, not the 30 s sleep nor the 5 s grace a SIGKILL would wait out.
    assert result.duration_s < 3


@pytest.mark.slow
@pytest.mark.parametrize("how", ["timeout", "cancel", "asyncio-cancel"])
async def test_escaped_grandchild_is_killed(tmp_path: Path, how: str) -> None:
    """A grandchild that double-forks into its own session, ignores SIGTERM and keeps the
    output pipes open is found and killed, and the run still ends promptly."""
    pidfile = tmp_path / "pids"
    argv = child("tree", pidfile, "--ignore-term", "--escape", "--group-child")
    if how == "timeout":
        # 3 s: room for the three processes to be set up first, on a loaded machine too.
        result = await run_process(argv, timeout=3.0, grace=0.3)
        assert result.status is ProcessStatus.TIMEOUT
    else:
        async with open_process(argv, grace=0.3) as proc:
            pids = await wait_for_pids(pidfile, 3)
            assert all(alive(p) for p in pids)
            if how == "cancel":
                result = await proc.cancel()
            else:
                task = asyncio.ensure_future(proc.wait())
                await asyncio.sleep(0.1)  # any time: the task only has to be waiting
                task.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await task
                assert proc.result is not None
                result = proc.result
        assert result.status is ProcessStatus.CANCELLED
    pids = read_pids(pidfile)
    assert len(pids) == 3
    assert result.kill_signal == "SIGKILL"
    # Liveness, not speed: ~3.3 s at most, not the tree's endless sleep (6x slack).
    assert result.duration_s < 20
    await assert_all_gone(pids)


async def test_descendants_left_behind_by_a_normal_exit_are_cleaned_up(tmp_path: Path) -> None:
    """`sh -c 'sleep 60 & echo done'` exits at once but leaves a sleeper holding stdout:
    the run must end promptly, not after 60 s, and the sleeper must be gone."""
    pidfile = tmp_path / "pids"
    script = f"sleep 60 & echo $! > {pidfile}; echo done"
    result = await run_process(["sh", "-c", script], grace=1)
    assert result.status is ProcessStatus.OK
    assert result.stdout == b"done\n"
    assert result.descendants_killed >= 1
    # Liveness, not speed: ~1 s (the grace), not the sleeper's 60 s (10x slack).
    assert result.duration_s < 20
    await assert_all_gone(read_pids(pidfile))


async def test_kill_descendants_can_be_turned_off(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    script = f"sleep 30 >/dev/null 2>&1 & echo $! > {pidfile}"
    result = await run_process(["sh", "-c", script], kill_descendants=False)
    assert result.status is ProcessStatus.OK
    (pid,) = read_pids(pidfile)
    try:
        assert alive(pid)
    finally:
        os.kill(pid, signal.SIGKILL)


SUPERVISOR = textwrap.dedent(
    """
    import sys
    from cc_executor._engine import run_process_sync
    sys.path.insert(0, sys.argv[1])
    from tests.engine.children import child
    run_process_sync(child("tree", sys.argv[2], "--ignore-term", "--escape", "--group-child"))
    """
)


@pytest.mark.parametrize("watchdog_too", [False, True])
async def test_supervisor_sigkilled_leaves_no_survivor(tmp_path: Path, watchdog_too: bool) -> None:
    """SIGKILL the supervising process mid-run: no descendant is left.

    With ``watchdog_too`` the watchdog is killed as well, leaving only the parent-death
    signal: then the direct child must still die (its escaped grandchildren cannot be
    reached by anything but the watchdog, so they are cleaned up by the test)."""
    pidfile = tmp_path / "pids"
    repo = str(Path(__file__).resolve().parents[2])
    supervisor = subprocess.Popen([sys.executable, "-c", SUPERVISOR, repo, str(pidfile)])
    try:
        pids = await wait_for_pids(pidfile, 3)
        assert all(alive(p) for p in pids)
        watchdogs = [
            c.pid
            for c in psutil.Process(supervisor.pid).children()
            if "cc_executor._engine._guard" in " ".join(c.cmdline())
        ]
        assert len(watchdogs) == 1
        # It yields the CPU (nice 10 at least) and never preempts on wake-up (batch), so it
        # costs the run nothing; its share of a busy CPU is what nice 10 gives.
        # It sets both first thing, but at nice 10 on a loaded machine "first" can be seconds
        # after its start: wait for them.
        await await_for(
            lambda: (
                os.sched_getscheduler(watchdogs[0]) == os.SCHED_BATCH
                and psutil.Process(watchdogs[0]).nice() >= 10
            ),
            what="the watchdog at SCHED_BATCH and nice 10",
        )
        if watchdog_too:
            os.kill(watchdogs[0], signal.SIGKILL)
        supervisor.kill()
        supervisor.wait()
        if watchdog_too:
            # The direct child is the last pid written (it records itself after its children).
            await assert_all_gone(pids[-1:])
        else:
            await assert_all_gone(pids)
    finally:
        for pid in read_pids(pidfile):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


async def test_pause_and_resume_the_whole_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "pids"
    async with open_process(
        child("tree", pidfile, "--escape", "--group-child"), timeout=30, grace=0.5
    ) as proc:
        pids = await wait_for_pids(pidfile, 3)
        assert proc.pause()
        assert not proc.pause()
        await wait_for_states(pids, stopped=True)
        assert proc.resume()
        assert not proc.resume()
        await wait_for_states(pids, stopped=False)
        result = await proc.cancel()
    assert result.status is ProcessStatus.CANCELLED
    await assert_all_gone(pids)


@pytest.mark.slow
async def test_pause_stops_output_and_the_idle_clock() -> None:
    """While paused no output arrives and no idle timeout fires; after resume it goes on."""
    async with open_process(sh_chatty(60, 0.05), idle_timeout=0.5) as proc:
        await await_for(lambda: proc._captures["stdout"].size, what="the first output")
        assert proc.pause()
        assert proc.pid is not None
        await wait_for_states([proc.pid], stopped=True)
        await asyncio.sleep(0.2)  # what the child wrote before it stopped reaches us
        before = proc._captures["stdout"].size
        await asyncio.sleep(1.0)  # twice the idle timeout
        assert proc._captures["stdout"].size == before
        assert proc.running
        assert proc.resume()
        result = await proc.wait()
    assert result.status is ProcessStatus.OK
    assert result.stdout.count(b"\n") == 60


async def test_cancel_while_paused_terminates() -> None:
    async with open_process(["sleep", "30"], grace=2) as proc:
        assert proc.pause()
        result = await proc.cancel()
    assert result.status is ProcessStatus.CANCELLED
    assert result.kill_signal == "SIGTERM"  # continued, so it could act on SIGTERM


@pytest.mark.parametrize("how", ["cancel", "timeout"])
@pytest.mark.slow  # over 0.3 s: waits out a process-tree sweep
async def test_a_child_that_scrubs_its_environment_and_leaves_the_session_is_found(
    tmp_path: Path, how: str
) -> None:
    """Issue 18 F8.5, in a library's process (no subreaper): `env -i setsid` leaves no token
    and no session, but while its parent is in the tree it is found as that one's child,
    and it is killed after SIGTERM (which it ignores) though its parent is gone by then."""
    pidfile, go = tmp_path / "escapee", tmp_path / "go"
    escape = (
        f'env -i setsid sh -c \'trap "" TERM; echo $$ > {pidfile}.tmp; '
        f"mv {pidfile}.tmp {pidfile}; exec sleep 1000' &"
    )
    script = f"{escape}\nwhile [ ! -e {go} ]; do sleep 0.01; done; exec sleep 1000"
    # Long enough for the escapee to start on a loaded machine: the test waits for it.
    timeout = 5.0 if how == "timeout" else None
    async with open_process(["sh", "-c", script], grace=1, timeout=timeout) as proc:
        await await_for(pidfile.exists, what=str(pidfile))
        escapee = int(pidfile.read_text())
        assert "CC_EXECUTOR_TREE" not in psutil.Process(escapee).environ()
        assert os.getsid(escapee) == escapee
        go.touch()
        result = await (proc.cancel() if how == "cancel" else proc.wait())
    assert result.status is (ProcessStatus.CANCELLED if how == "cancel" else ProcessStatus.TIMEOUT)
    await assert_all_gone([escapee])


def test_an_adopting_process_sweeping_another_tree_spares_its_own_children() -> None:
    """Crash recovery in ``cc-executor run``/``exec`` (a child subreaper) sweeps a dead run's
    token: that must not take the live run's child, which is outside the process's session."""
    script = textwrap.dedent(
        """
        import subprocess, sys
        from cc_executor._engine._tree import adopt_orphans, kill_tree, new_tree_token
        assert adopt_orphans()
        child = subprocess.Popen(["sleep", "60"], start_new_session=True)
        kill_tree([new_tree_token()])
        alive = child.poll() is None
        child.kill()
        child.wait()
        sys.exit(0 if alive else 1)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], check=False)
    assert done.returncode == 0, "the sweep of another token killed this process's own child"
