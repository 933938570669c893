"""``cc-executor cancel|pause|unpause RUN_ID`` without ``--fleet``: a local run started by
another process (``exec``, ``run``) is controlled through its run folder's socket."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor._store import open_store
from cc_executor.testing import Rule, Script
from tests._commands import CLI, cc
from tests._procs import HOLD, NEEDLE, pids_running
from tests._wait import await_for, wait_for

pytestmark = pytest.mark.slow


def running_id() -> str | None:
    store = open_store()
    try:
        found = store.running()
    finally:
        store.close()
    return found[0].id if found else None


def status_of(run_id: str) -> str | None:
    store = open_store()
    try:
        record = store.get(run_id)
    finally:
        store.close()
    return record.status if record is not None else None


def state(pid: int) -> str:
    """What psutil sees of ``pid``: ``gone`` once dead (a zombie is dead, only unreaped)."""
    try:
        status = str(psutil.Process(pid).status())
    except psutil.NoSuchProcess:
        return "gone"
    return "gone" if status == psutil.STATUS_ZOMBIE else status


def test_an_exec_run_of_another_process_is_paused_unpaused_and_cancelled(
    tmp_path: Path,
) -> None:
    marker = tmp_path / "grandchild"
    script = f"sleep 600 & echo $! > {marker}; echo started; wait"
    proc = subprocess.Popen(
        [CLI, "exec", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        found = wait_for(running_id, timeout=60, what="the exec run is recorded")
        assert found is not None
        run_id = found
        grandchild = int(wait_for(lambda: marker.exists() and marker.read_text().strip()))
        shell = psutil.Process(grandchild).ppid()

        paused = cc("pause", run_id)
        assert paused.returncode == 0, paused.stderr
        assert (
            paused.stderr
            == f"cc-executor pause: run {run_id}: pause done by the process running it\n"
        )
        # SIGSTOP takes effect when each process next runs, which on a loaded machine can
        # be after the answer: wait for the stopped state, not for a guess.
        wait_for(
            lambda: {state(shell), state(grandchild)} == {psutil.STATUS_STOPPED},
            what="the shell and its sleeper stopped",
        )
        again = cc("pause", run_id)
        assert again.returncode == 1
        assert "nothing to pause" in again.stderr

        unpaused = cc("unpause", run_id)
        assert unpaused.returncode == 0, unpaused.stderr
        assert psutil.STATUS_STOPPED not in {state(shell), state(grandchild)}

        cancelled = cc("cancel", run_id)
        assert cancelled.returncode == 0, cancelled.stderr
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    # Cancelled by someone else, not by its own console's Ctrl-C (130): exit 1.
    assert proc.returncode == 1, err
    # The whole tree is gone, the partial output kept, the run recorded cancelled.
    assert state(grandchild) == "gone"
    assert "started" in out
    assert status_of(run_id) == "cancelled"
    over = cc("cancel", run_id)
    assert over.returncode == 1
    assert over.stderr == f"cc-executor cancel: run {run_id} has ended: nothing to cancel\n"


def test_an_unknown_local_run_is_one_line_and_the_fleet_variable_is_not_used() -> None:
    # CC_EXECUTOR_FLEET names no fleet for cancel: without --fleet, the run is local.
    env = {**os.environ, "CC_EXECUTOR_FLEET": "unix:///nonexistent/redis.sock"}
    done = cc("cancel", "01abcdefghjkmnpqrstvwxyz01", env=env)
    assert done.returncode == 1
    assert done.stderr == (
        "cc-executor cancel: no run 01abcdefghjkmnpqrstvwxyz01 in this machine's history "
        "(a fleet run? give --fleet)\n"
    )
    # A bare --fleet takes the variable's URL.
    done = cc("pause", "01abcdefghjkmnpqrstvwxyz01", "--fleet", env=env)
    assert done.returncode == 2
    assert done.stderr.startswith("cc-executor pause: the fleet at unix:///nonexistent")


async def test_a_claude_run_of_another_process_is_cancelled_with_its_partial_answer(
    bed: Any,
) -> None:
    async with bed(Script([Rule(answers=[HOLD])])) as b:
        env = {**os.environ, **b.server.claude_env(home=b.home, max_retries=0)}
        env["CC_EXECUTOR_CLAUDE"] = b.claude
        argv = [CLI, "run", "sleep a while", "--allowed-tools", "Bash", "--json"]
        proc = await asyncio.create_subprocess_exec(
            *argv, cwd=b.workdir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        try:
            await await_for(
                lambda: pids_running(b.workdir, NEEDLE), timeout=120, what="the tool runs"
            )
            # The CLI is spawned before its start is recorded (in a thread): on a loaded
            # machine the tool can run before the history says so.
            run_id = await await_for(running_id, timeout=120, what="the run is recorded")
            assert run_id is not None
            cancelled = await asyncio.to_thread(cc, "cancel", run_id)
            assert cancelled.returncode == 0, cancelled.stderr
            out, err = await asyncio.wait_for(proc.communicate(), 120)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
    result = json.loads(out)
    assert result["status"] == "cancelled", err
    assert proc.returncode == 1, err  # not 130: its own console did not stop it
    assert result["partial"] is True
    assert "working on it" in result["result"]
    assert "cancelled by another process" in result["error"]
    # Killed, the tool dies when it next gets a core (seconds on a loaded machine).
    await await_for(lambda: not pids_running(b.workdir, NEEDLE), what="the tool gone")
