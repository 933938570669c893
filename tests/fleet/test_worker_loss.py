"""Worker loss and broker loss with real processes: a worker SIGKILLed mid-run is found by
its lease's expiry and its run resumed on another worker (the Claude Code session carried
over); a Redis SIGKILLed and restarted mid-run (AOF) loses nothing of the run's stream."""

from __future__ import annotations

import contextlib
import signal
from typing import Any

import orjson
import psutil
import pytest

from cc_executor import start_run
from cc_executor._agents._types import AgentEvent, RunStartedEvent
from cc_executor._fleet import open_fleet
from cc_executor._run._fleet import attach_fleet_run
from cc_executor._service._worker import CONTINUE_PROMPT
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._wait import await_for
from tests.fleet.conftest import FleetBed
from tests.fleet.test_fleet_runs import NEEDLE, _in

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    alive = []
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE:
                alive.append(proc)
    return alive


async def test_a_worker_sigkilled_mid_run_is_recovered_and_its_session_resumed_elsewhere(
    fleet_bed: Any,
) -> None:
    command = f"if [ -e go ]; then echo again; else {NEEDLE}; fi"
    script = Script(
        [
            Rule(
                answers=[
                    Reply([Text("first half, "), ToolUse("Bash", {"command": command})]),
                    # Turn 2: Claude Code closes the interrupted turn on --resume with a
                    # synthetic "No response requested." of its own.
                    Reply([Text("not resumed: a restart from the prompt")]),
                    Reply([Text("second half: the answer, whole")]),
                ]
            )
        ]
    )
    bed: FleetBed
    async with fleet_bed(script) as bed:
        first = bed.start_worker("--heartbeat-timeout", "2")
        events: list[AgentEvent] = []
        handle = start_run(
            "do it in two halves",
            fleet=bed.url,
            cwd=str(bed.workdir),
            allowed_tools=["Bash"],
            on_event=events.append,
        )
        await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
        client = bed.redis.client()
        key = f"cc-executor:transcript:{handle.run_id}"
        # The session transcript, tool call included, is shipped while the tool runs.
        await await_for(lambda: b"tool_use" in (client.get(key) or b""), timeout=60)
        tree = psutil.Process(first.proc.pid).children(recursive=True)
        assert tree
        first.stop(signal.SIGKILL)
        # The dead worker's watchdog takes its whole tree down on its machine.
        await await_for(lambda: not _alive(tree), timeout=60, what="the dead worker's tree gone")
        assert _in(str(bed.workdir)) == []
        second = bed.start_worker("--heartbeat-timeout", "2")
        result = await handle.wait()
        assert result.ok, result.error
        assert result.result == "second half: the answer, whole"
        assert result.run_id == handle.run_id
        assert result.run_dir is not None
        assert result.run_dir.startswith(str(second.data))
        # attach follows the same stream across the attempts, to the final result.
        fleet = open_fleet(bed.url)
        attached: list[str] = []
        try:
            replayed = await attach_fleet_run(
                fleet, handle.run_id, on_event=lambda _seq, e: attached.append(e.type)
            )
        finally:
            await fleet.aclose()
        assert replayed.result == result.result
        raw: Any = client.xrange(f"cc-executor:events:{handle.run_id}")
        stream = [orjson.loads(e[b"e"]) for _, e in raw]
    kinds = [e["kind"] for e in stream]
    assert kinds.count("interrupted") == 1
    interrupted = stream[kinds.index("interrupted")]["result"]
    assert interrupted["status"] == "interrupted"
    assert "lost" in interrupted["error"]
    assert "resumes its session" in interrupted["error"]
    # What the first attempt streamed is kept before the mark, the second attempt's after.
    first_half = [e["event"]["type"] for e in stream[: kinds.index("interrupted")]]
    assert "tool_use" in first_half
    types = [e.type for e in events]
    assert types.count("run_started") == 2
    # A re-queued run keeps its id and gains an attempt, in its events and its result.
    assert [e.attempt for e in events if isinstance(e, RunStartedEvent)] == [1, 2]
    assert result.attempts == 2
    assert attached == types
    statuses = [getattr(e, "status", "") for e in events]
    assert any(s.startswith("session_resumed: ") for s in statuses), statuses
    # The submitter hears of the loss itself, before the next attempt: the mark's error.
    lost = [s for s in statuses if s.startswith("interrupted: ")]
    assert lost == [f"interrupted: {interrupted['error']}"], statuses
    assert statuses.index(lost[0]) < statuses.index(
        next(s for s in statuses if s.startswith("session_resumed: "))
    )
    # The second worker resumed the session: its model request carries the first half.
    last = bed.server.message_requests[-1]
    text = orjson.dumps(last.body).decode()
    assert "first half, " in text
    assert CONTINUE_PROMPT.decode()[:40] in text


async def test_a_stalled_worker_that_lost_its_lease_stops_its_copy_and_writes_nothing(
    fleet_bed: Any,
) -> None:
    """SIGSTOP of a worker past its timeout: another worker recovers the run; once the first
    runs again, its next renewal finds the lease lost: it stops its copy (its whole tree)
    and sends nothing more to the run's stream. With a fleet budget, each attempt holds and
    settles its own reservation: the stalled attempt's is charged too, not the new one's
    lost (issue 20)."""
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": NEEDLE})]),
                    Reply([Text("not resumed")]),
                    Reply([Text("finished by the second worker")]),
                ]
            )
        ]
    )
    bed: FleetBed
    async with fleet_bed(script) as bed:
        budget = ("--budget-usd", "10", "--reserve-usd", "1")
        first = bed.start_worker("--heartbeat-timeout", "2", *budget)
        handle = start_run("stall", fleet=bed.url, cwd=str(bed.workdir), allowed_tools=["Bash"])
        await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
        client = bed.redis.client()
        key = f"cc-executor:transcript:{handle.run_id}"
        await await_for(lambda: b"tool_use" in (client.get(key) or b""), timeout=60)
        first.proc.send_signal(signal.SIGSTOP)
        try:
            second = bed.start_worker("--heartbeat-timeout", "2", *budget)
            result = await handle.wait()
        finally:
            first.proc.send_signal(signal.SIGCONT)
        assert result.result == "finished by the second worker"
        assert result.run_dir is not None
        assert result.run_dir.startswith(str(second.data))

        def stopped_its_copy() -> bool:
            shown = first.cc("history", "--json").stdout
            return "interrupted" in shown and "lost the run's lease" in shown

        await await_for(stopped_its_copy, timeout=120, what="the stalled copy stopped")
        await await_for(lambda: not _in(str(bed.workdir), NEEDLE), timeout=60)
        raw: Any = client.xrange(f"cc-executor:events:{handle.run_id}")
        ledger = "cc-executor:budget:default"
        await await_for(
            lambda: client.hget(ledger, "held") == b"0" and not client.hlen(f"{ledger}:held"),
            timeout=60,
            what="both attempts settled",
        )
        spent = int(client.hget(ledger, "spent") or 0)
    # The stalled attempt, stopped before its CLI reported a cost, is charged its whole
    # reservation ($1); the second its own cost (or its reservation).
    second_cost = 1.0 if result.cost_usd is None else result.cost_usd
    assert spent == round((1.0 + second_cost) * 1_000_000), (spent, result.cost_usd)
    kinds = [orjson.loads(e[b"e"])["kind"] for _, e in raw]
    assert kinds.count("result") == 1
    assert kinds[-1] == "result"  # nothing of the stalled copy came after


#: A tool call that waits for the file ``go``, then prints a line.
WAIT_GO = "until [ -e go ]; do sleep 0.1; done; echo printed-while-redis-was-down"


@pytest.mark.parametrize("redis_server", ["appendonly"], indirect=True)
async def test_redis_killed_and_restarted_mid_run_loses_none_of_its_events(
    fleet_bed: Any,
) -> None:
    script = Script(
        [
            Rule(
                match="wait for go",
                answers=[
                    Reply([ToolUse("Bash", {"command": WAIT_GO})]),
                    Reply([Text("done after the outage")]),
                ],
            ),
            Rule(answers=[Reply([Text("the broker is back")])]),
        ]
    )
    bed: FleetBed
    async with fleet_bed(script) as bed:
        worker = bed.start_worker("--heartbeat-timeout", "20")
        events: list[AgentEvent] = []
        handle = start_run(
            "wait for go",
            fleet=bed.url,
            cwd=str(bed.workdir),
            allowed_tools=["Bash"],
            on_event=events.append,
        )
        await await_for(lambda: _in(str(bed.workdir), "until [ -e go ]"), timeout=120)
        bed.redis.kill()
        # While Redis is down the run goes on and ends on its worker, which holds its
        # events; the submitter keeps waiting.
        (bed.workdir / "go").touch()

        def ended_locally() -> bool:
            shown = worker.cc("history", "--json")
            return '"status": "ok"' in shown.stdout.replace('":"', '": "')

        await await_for(ended_locally, timeout=120, what="the run ended on its worker")
        assert not handle.done
        bed.redis.start()
        result = await handle.wait()
        assert result.ok, result.error
        assert result.result == "done after the outage"
        # The worker reconnected: it takes the next run.
        again = await start_run("after", fleet=bed.url, cwd=str(bed.workdir)).wait()
        assert again.result == "the broker is back"
        assert worker.proc.poll() is None
        client = bed.redis.client()
        stream: Any = client.xrange(f"cc-executor:events:{handle.run_id}")
    # Every entry once, numbered without a gap, and the submitter saw each event in order.
    seqs = [int(entry_id.decode().split("-")[1]) for entry_id, _ in stream]
    assert seqs == list(range(1, len(seqs) + 1))
    entries = [orjson.loads(e[b"e"]) for _, e in stream]
    assert entries[-1]["kind"] == "result"
    streamed = [e["event"]["type"] for e in entries if e["kind"] == "event"]
    assert [e.type for e in events] == streamed
    outputs = [str(getattr(e, "content", "")) for e in events if e.type == "tool_result"]
    assert any("printed-while-redis-was-down" in o for o in outputs), outputs
    assert streamed.index("tool_result") < streamed.index("result") == len(streamed) - 1
