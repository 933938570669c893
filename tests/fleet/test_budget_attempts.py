"""A fleet budget's reservation belongs to one attempt of a run: a run recovered after its
worker was lost (or handed back at a SIGTERM) reserves and settles anew, and the lost
attempt's reservation is settled exactly once (issue 20)."""

from __future__ import annotations

import asyncio

import pytest

from cc_executor._fleet import open_fleet
from cc_executor._fleet._base import Lease
from cc_executor._fleet._budget import RedisLedger, micro
from cc_executor._run._budget import BudgetGuard
from cc_executor._status import Status
from tests.fleet.conftest import RedisServer

pytestmark = pytest.mark.redis

RUN = "01abcdefghjkmnpqrstvwxyz01"


async def _numbers(ledger: RedisLedger) -> tuple[int, int]:
    state = await ledger.state()
    assert state is not None
    return micro(state.spent), micro(state.held)


async def test_each_attempt_reserves_and_settles_its_own(redis_server: RedisServer) -> None:
    """Attempt 1's worker is lost; attempt 2 (another worker) reserves anew; the old
    worker, coming back, settles its own attempt with its real cost; the new one with its."""
    fleet = open_fleet(redis_server.url)
    ledgers = [RedisLedger(redis_server.url, "a") for _ in range(2)]
    old, new = (BudgetGuard(ledger, 1.0, name="a", reap_lost=True) for ledger in ledgers)
    try:
        await ledgers[0].configure(1.0)
        first = await fleet.acquire(RUN, "w1", 0.05, {"run_id": RUN, "attempt": 1})
        assert isinstance(first, Lease)
        assert (await old.before(RUN, {"max_budget_usd": 0.4}, 1)).started
        # w1 stops renewing: its lease expires and another worker claims the recovery.
        while not (claimed := await fleet.reclaim()):
            await asyncio.sleep(0.02)
        [(attempt, message)] = claimed
        assert attempt == 2
        second = await fleet.acquire(RUN, "w2", 30, {**message, "attempt": attempt})
        assert isinstance(second, Lease)
        admitted = await new.before(RUN, {"max_budget_usd": 0.4}, attempt)
        assert (admitted.started, admitted.reserved) == (True, 0.4)
        assert await _numbers(ledgers[0]) == (0, micro(0.8))
        # The lost attempt settles what it really spent; the new attempt's hold stays.
        await old.after(RUN, Status.OK, 0.1, 1)
        assert await _numbers(ledgers[0]) == (micro(0.1), micro(0.4))
        await new.after(RUN, Status.OK, 0.25, attempt)
        assert await _numbers(ledgers[0]) == (micro(0.35), 0)
    finally:
        await fleet.aclose()
        for ledger in ledgers:
            await ledger.aclose()


async def test_a_lost_attempt_is_reaped_once_while_its_successor_runs(
    redis_server: RedisServer,
) -> None:
    """Attempt 1 was handed back (a SIGTERM) and never settled: the reaper charges it its
    whole reservation once, though attempt 2 holds the run's lease; a late settlement of
    attempt 1 and further reaps change nothing; attempt 2's reservation is left alone."""
    fleet = open_fleet(redis_server.url)
    ledger = RedisLedger(redis_server.url, "b")
    old, new = (BudgetGuard(ledger, 1.0, name="b", reap_lost=True) for _ in range(2))
    try:
        await ledger.configure(1.0)
        first = await fleet.acquire(RUN, "w1", 30, {"run_id": RUN, "attempt": 1})
        assert isinstance(first, Lease)
        assert (await old.before(RUN, {"max_budget_usd": 0.3}, 1)).started
        attempt = await fleet.handoff(first)
        assert attempt == 2
        second = await fleet.acquire(RUN, "w2", 30, {"run_id": RUN, "attempt": attempt})
        assert isinstance(second, Lease)
        assert (await new.before(RUN, {"max_budget_usd": 0.5}, attempt)).started
        assert await ledger.holders() == [RUN]
        assert await ledger.reap() == 1
        assert await _numbers(ledger) == (micro(0.3), micro(0.5))
        assert await ledger.reap() == 0
        await old.after(RUN, Status.CRASHED, None, 1)  # the old worker's safety net
        assert await _numbers(ledger) == (micro(0.3), micro(0.5))
        await new.after(RUN, Status.OK, 0.2, attempt)
        assert await _numbers(ledger) == (micro(0.5), 0)
    finally:
        await fleet.aclose()
        await ledger.aclose()
