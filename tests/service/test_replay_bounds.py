"""The replay bound of a run's event log and the SSE keep-alive, on the real classes."""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cc_executor._cli import _serve as serve_defaults
from cc_executor._service import _manager as manager
from cc_executor._service._http import with_keepalive
from cc_executor._service._runs import SPILL_BYTES, EventBudget, EventSpool, ManagedRun


async def test_a_follower_behind_the_bound_is_told_what_it_missed() -> None:
    run = ManagedRun("r1", "exec", max_events=10, summary={})
    for i in range(40):
        run.append({"type": "output", "text": f"line {i}"})
    run.close()
    seen = [event async for event in run.follow(after=0)]
    gap = seen[0]
    assert gap["type"] == "gap"
    assert gap["missed_from"] == 1
    rest = seen[1:]
    assert rest[0]["seq"] == gap["missed_to"] + 1
    assert [e["seq"] for e in rest] == list(range(rest[0]["seq"], 41))
    assert len(rest) >= 10  # at least the bound is kept
    # A follower that is not behind gets no gap.
    tail = [event async for event in run.follow(after=38)]
    assert [e["seq"] for e in tail] == [39, 40]


async def test_keepalive_fills_silences_without_losing_events() -> None:
    async def slow() -> AsyncIterator[dict[str, Any]]:
        yield {"n": 1}
        await asyncio.sleep(0.35)
        yield {"n": 2}

    # The 0.35 s silence is the behaviour under test; keep-alives every 0.05 s make ~7 of
    # them, so a loaded machine delaying a few still leaves the 2 asserted.
    items = [item async for item in with_keepalive(slow(), 0.05)]
    events = [i for i in items if i is not None]
    assert events == [{"n": 1}, {"n": 2}]
    assert items.count(None) >= 2
    assert items[0] == {"n": 1}
    assert items[-1] == {"n": 2}


async def test_events_held_in_memory_are_bounded_by_bytes_across_runs() -> None:
    """Issue 18 L11: a count of events bounded nothing (10,000 events of 60 KiB is 600 MB a
    run). The budget drops the oldest events of finished runs first, then of live runs, and
    each run keeps its newest event (a follower still sees how the run ended)."""
    budget = EventBudget(1_000_000)
    finished = ManagedRun("done", "exec", max_events=10_000, summary={}, budget=budget)
    for i in range(20):
        finished.append({"type": "output", "text": f"{i} " + "x" * 30_000})
    finished.append({"type": "completed", "status": "ok"})
    finished.close()
    live = ManagedRun("live", "exec", max_events=10_000, summary={}, budget=budget)
    for i in range(60):
        live.append({"type": "output", "text": f"{i} " + "y" * 30_000})
        assert budget.used <= budget.limit
    assert budget.used == finished.held_bytes + live.held_bytes
    kept = [event async for event in finished.follow(0)]
    assert [e["type"] for e in kept] == ["gap", "completed"]
    assert kept[0]["missed_to"] == 20
    live.close()
    seen = [event async for event in live.follow(0)]
    assert seen[0]["type"] == "gap"
    assert seen[-1]["text"].startswith("59 ")
    assert len(seen) > 10  # the live run kept what the budget leaves it
    finished.discard()
    assert budget.used == live.held_bytes


async def test_huge_events_and_results_are_kept_on_disk_and_read_back(cc_home: Path) -> None:
    """An event over SPILL_BYTES (a Claude Code answer, a tool's result) costs memory only
    for its reference; followers and the result read it back whole. The spool lives in the
    data folder, and the folder a killed server left is removed by the next one."""
    gone_pid = subprocess.Popen(["true"])
    gone_pid.wait()
    leftover = cc_home / f"service-events-{gone_pid.pid}-x"
    leftover.mkdir(parents=True)
    (leftover / "run").write_bytes(b"old")
    budget = EventBudget(10 * SPILL_BYTES)
    spool = EventSpool()
    run = ManagedRun("r", "run", max_events=100, summary={}, budget=budget, spool=spool)
    answer = "z" * (50 * SPILL_BYTES)
    run.append({"type": "text", "text": answer})
    run.result = {"result": answer, "status": "ok"}
    run.append({"type": "completed", "status": "ok"})
    run.close()
    assert run.held_bytes < SPILL_BYTES
    events = [event async for event in run.follow(0)]
    assert [e["type"] for e in events] == ["text", "completed"]
    assert events[0] == {"type": "text", "text": answer, "seq": 1, "run_id": "r"}
    assert run.result == {"result": answer, "status": "ok"}
    assert run.events()[0]["text"] == answer
    assert not leftover.exists()
    (mine,) = cc_home.glob(f"service-events-{os.getpid()}-*")
    assert [p.name for p in mine.iterdir()] == ["r"]
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    run.discard()
    spool.close()
    assert not mine.exists()
    gone = [event async for event in run.follow(0)]
    assert gone[0]["unavailable"].startswith("event data no longer readable")
    assert budget.used == 0


def test_the_default_byte_budget_is_declared_once() -> None:
    assert serve_defaults.DEFAULT_MAX_EVENT_BYTES == manager.DEFAULT_MAX_EVENT_BYTES


async def test_an_event_json_cannot_hold_is_kept_not_an_error() -> None:
    """Sizing an event for the budget must never end a run: an integer over 64 bits in a
    tool's input (orjson refuses it) is counted, and spilled, as text."""
    spool = EventSpool()
    run = ManagedRun("r", "run", max_events=10, summary={}, budget=EventBudget(10**6), spool=spool)
    run.append({"type": "tool_use", "input": {"n": 10**30}})
    run.append({"type": "tool_use", "input": {"n": 10**30, "pad": "p" * (2 * SPILL_BYTES)}})
    run.close()
    events = [event async for event in run.follow(0)]
    assert events[0]["input"] == {"n": 10**30}
    assert events[1]["input"]["n"] == str(10**30)
    spool.close()
