"""The replay bound of a run's event log and the SSE keep-alive, on the real classes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from cc_executor._service._http import with_keepalive
from cc_executor._service._runs import ManagedRun


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
