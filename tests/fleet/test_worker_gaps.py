"""Fleet details of issue 20 an audit found untested: the CLI's own retries are 0 on a
fleet run whatever its submitter says, a SIGTERMed worker finishes its run inside the grace
and takes no new one, and a plain ``exec``/``run`` never goes to ``$CC_EXECUTOR_FLEET``."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor import start_run
from cc_executor._agents._types import AgentEvent, CommandOutputEvent
from cc_executor._fleet import open_fleet
from cc_executor._run._fleet import start_fleet_exec
from cc_executor.testing import HttpErrorReply, Reply, Rule, Script, Text
from tests._wait import await_for
from tests.fleet.conftest import FleetBed

CLI = str(Path(sys.executable).parent / "cc-executor")


@pytest.mark.redis
@pytest.mark.slow
async def test_a_fleet_runs_cli_never_retries_whatever_its_submitter_says(
    fleet_bed: Any,
) -> None:
    # The first request gets a 500, which Claude Code retries itself when allowed to.
    script = Script([Rule(answers=[Reply([Text("done")], errors_before=[HttpErrorReply(500)])])])
    bed: FleetBed
    async with fleet_bed(script) as bed:
        # Neither the worker's environment nor the submitter's env ask for 0 retries.
        bed.start_worker(max_retries=5)
        handle = start_run(
            "hello",
            fleet=bed.url,
            cwd=str(bed.workdir),
            env={"CLAUDE_CODE_MAX_RETRIES": "5"},
            retries=0,
        )
        result = await handle.wait()
        requests = bed.server.message_requests
    # One request: the CLI gave up at the 500 instead of retrying it.
    assert len(requests) == 1, len(requests)
    assert result.status.value != "ok", result


@pytest.mark.redis
@pytest.mark.slow
async def test_a_sigtermed_worker_ends_its_run_takes_no_new_one_and_exits_0(
    fleet_bed: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    async with fleet_bed(Script([Rule(answers=[Reply([Text("unused")])])])) as bed:
        # Two slots: a worker still taking runs would take the second one at once.
        first = bed.start_worker("--allow-exec", "sh", "--slots", "2", "--grace", "300")
        events: list[AgentEvent] = []
        running = start_fleet_exec(
            ["sh", "-c", f"echo started; read x < {gate}; echo finished"],
            bed.url,
            cwd=str(bed.workdir),
            on_event=events.append,
        )
        await await_for(
            lambda: any(isinstance(e, CommandOutputEvent) for e in events),
            timeout=120,
            what="the first run runs",
        )
        first.proc.terminate()
        await await_for(
            lambda: "stopping: no new runs" in first.log.read_text(),
            timeout=120,
            what="the worker drains",
        )
        later = start_fleet_exec(["sh", "-c", "echo second"], bed.url, cwd=str(bed.workdir))
        await asyncio.to_thread(gate.write_text, "go\n")
        done = await running.wait()
        code = await asyncio.to_thread(first.proc.wait, 120)
        fleet = open_fleet(bed.url)
        try:
            where = await fleet.where(later.run_id)
        finally:
            await fleet.aclose()
        # Another worker takes it.
        second = bed.start_worker("--allow-exec", "sh")
        moved = await later.wait()
    assert done.status.value == "ok", done
    assert [e.text for e in events if isinstance(e, CommandOutputEvent)] == [
        "started",
        "finished",
    ]
    assert code == 0, first.log.read_text()
    assert where == "queued"
    assert moved.status.value == "ok", moved
    assert str(second.data) in (moved.run_dir or "")


def test_a_plain_exec_or_run_stays_local_with_the_fleet_variable_set(tmp_path: Path) -> None:
    # No Redis answers there: a run that tried the fleet would fail saying so.
    env = {**os.environ, "CC_EXECUTOR_FLEET": f"unix://{tmp_path}/no-redis.sock"}
    done = subprocess.run(
        [CLI, "exec", "--json", "--", "sh", "-c", "echo here"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert '"status": "ok"' in done.stdout or '"status":"ok"' in done.stdout, done.stdout
    assert "no-redis" not in done.stderr
    # A run too: it goes to its (missing) local CLI, not to the fleet.
    env["CC_EXECUTOR_CLAUDE"] = str(tmp_path / "no-claude")
    ran = subprocess.run(
        [CLI, "run", "hello"], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert ran.returncode != 0
    assert "no-claude" in ran.stderr, ran.stderr
    assert "no-redis" not in ran.stderr, ran.stderr
    assert "fleet" not in ran.stderr.lower(), ran.stderr
