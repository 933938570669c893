"""A fleet's budget: reservations in Redis shared by every worker, runs the budget cannot
cover ending ``budget_exceeded`` without starting, the soft threshold and its webhook."""

from __future__ import annotations

import asyncio
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from cc_executor import start_run
from cc_executor._agents._types import BudgetEvent
from cc_executor._fleet._budget import RedisLedger, micro
from cc_executor._run._budget import BudgetGuard, check_thresholds, send_webhook
from cc_executor._status import Status
from cc_executor.tasks._budget import Budget
from cc_executor.testing import Reply, Rule, Script, Text, Usage
from tests._wait import await_for
from tests.fleet.conftest import CLI, FleetBed, RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_the_ledger_grants_exactly_what_fits_to_concurrent_clients(
    redis_server: RedisServer,
) -> None:
    """Two clients (two "workers") reserve for 30 runs at once against a budget for 10:
    exactly 10 are granted; settling crosses the 50% threshold once for both."""
    ledgers = [RedisLedger(redis_server.url, "t") for _ in range(2)]
    try:
        await ledgers[0].configure(1.0)
        grants = await asyncio.gather(*(ledgers[i % 2].reserve(f"run{i}", 0.1) for i in range(30)))
        granted = [f"run{i}" for i, g in enumerate(grants) if g.granted]
        assert len(granted) == 10
        assert sum(g.first_refusal for g in grants) == 1
        crossed: list[float] = []
        for i, run_id in enumerate(granted):
            state = await ledgers[i % 2].settle(run_id, 0.1, (0.5, 0.9))
            crossed += state.crossed
        assert crossed == [0.5, 0.9]
        final = await ledgers[1].state()
        assert final is not None
        assert (micro(final.spent), micro(final.held)) == (micro(1.0), 0)
        # Settling twice (a second delivery's end) changes nothing.
        again = await ledgers[0].settle(granted[0], 0.1)
        assert micro(again.spent) == micro(1.0)
        # A larger total: the runs that fit start again, but not once drained.
        await ledgers[0].configure(1.5)
        assert (await ledgers[0].reserve("big", 0.6)).granted is False
        assert (await ledgers[1].reserve("small", 0.1, drain=True)).granted is False
        assert (await ledgers[1].reserve("small", 0.1)).granted is True
        # All that is left (no cap) only while nothing else is held.
        assert (await ledgers[0].reserve("whole", None)).granted is False
        await ledgers[1].settle("small", 0.0)
        whole = await ledgers[0].reserve("whole", None)
        assert (whole.granted, micro(whole.amount)) == (True, micro(0.5))
        # fleet status shows the budget.
        shown = await asyncio.to_thread(
            subprocess.run,
            [CLI, "fleet", "status", "--fleet", redis_server.url, "--json"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert json.loads(shown.stdout)["budgets"] == {
            "t": {"total_usd": 1.5, "spent_usd": 1.0, "held_usd": 0.5}
        }
    finally:
        for ledger in ledgers:
            await ledger.aclose()


class _Receiver(BaseHTTPRequestHandler):
    got: list[dict[str, Any]]
    #: How many of the next requests are answered 500.
    failures = 0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if _Receiver.failures > 0:
            _Receiver.failures -= 1
            self.send_response(500)
            self.end_headers()
            return
        self.got.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A real HTTP receiver on loopback: its URL and the JSON bodies it got."""
    got: list[dict[str, Any]] = []
    handler = type("Receiver", (_Receiver,), {"got": got})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/budget", got
    finally:
        server.shutdown()
        server.server_close()


def _costly() -> Script:
    # The CLI prices these tokens itself: its reported cost is what the budget counts.
    usage = Usage(input_tokens=1000, output_tokens=1000)
    return Script([Rule(answers=[Reply([Text("done")], usage=usage)])])


async def test_thirty_runs_over_two_workers_start_only_the_ten_the_budget_covers(
    fleet_bed: Any, webhook: tuple[str, list[dict[str, Any]]]
) -> None:
    url, notes = webhook
    bed: FleetBed
    async with fleet_bed(_costly()) as bed:
        # What one run costs, as the CLI reports it (a worker without a budget).
        first = bed.start_worker()
        probe = await start_run("probe", fleet=bed.url, cwd=str(bed.workdir)).wait()
        assert probe.cost_usd, probe
        await asyncio.to_thread(first.stop)
        cost = micro(probe.cost_usd) / 1e6
        budget = 10 * micro(cost) / 1e6
        flags = (
            "--slots", "2", "--budget-usd", f"{budget}", "--reserve-usd", f"{cost}",
            "--budget-threshold", "50", "--budget-webhook", url,
        )  # fmt: skip
        bed.start_worker(*flags)
        bed.start_worker(*flags)
        budget_events: list[BudgetEvent] = []

        def on_event(event: Any) -> None:
            if isinstance(event, BudgetEvent):
                budget_events.append(event)

        handles = [
            start_run(f"task {i}", fleet=bed.url, cwd=str(bed.workdir), on_event=on_event)
            for i in range(30)
        ]
        results = await asyncio.gather(*(h.wait() for h in handles))
        ledger = RedisLedger(bed.url)
        try:
            state = await ledger.state()
        finally:
            await ledger.aclose()
        await await_for(lambda: len(notes) >= 2, what="the threshold and exhausted webhooks")
    started = [r for r in results if r.run_dir is not None]
    refused = [r for r in results if r.run_dir is None]
    assert len(started) == 10, [(r.status, r.error) for r in results]
    assert {r.status.value for r in refused} == {"budget_exceeded"}
    assert all((r.error or "").startswith("not started: its reservation") for r in refused)
    spent = sum(r.cost_usd or 0.0 for r in started)
    assert micro(spent) <= micro(budget)
    assert state is not None
    assert micro(state.spent) == micro(spent) <= micro(budget)
    assert micro(state.held) == 0
    events = sorted(n["event"] for n in notes)
    assert events == ["budget_exhausted", "budget_threshold"], notes
    threshold = next(n for n in notes if n["event"] == "budget_threshold")
    assert threshold["threshold"] == 0.5
    assert threshold["budget"] == "default"
    assert threshold["spent_usd"] >= budget / 2
    # The same announcements reach the submitters as events of the runs that caused them.
    assert sorted((e.what, e.threshold) for e in budget_events) == [
        ("exhausted", None),
        ("threshold", 0.5),
    ]


async def test_the_first_refusal_cancels_the_holders_when_asked(redis_server: RedisServer) -> None:
    """``--on-budget-exhausted cancel``: the run refused first cancels every run holding a
    reservation, whichever worker holds it, and the exhaustion is announced once."""
    cancelled: list[str] = []
    notes: list[dict[str, Any]] = []

    async def cancel(run_id: str) -> None:
        cancelled.append(run_id)

    guards = [
        BudgetGuard(
            RedisLedger(redis_server.url, "c"),
            1.0,
            name="c",
            reserve={"*": 0.4},
            on_exhausted="cancel",
            cancel=cancel,
            on_note=notes.append,
        )
        for _ in range(2)
    ]
    try:
        await guards[0].ledger.configure(1.0)  # type: ignore[attr-defined]
        options: list[dict[str, Any]] = [{"agent": "claude", "model": "m"} for _ in range(4)]
        admitted = [await guards[i % 2].before(f"r{i}", options[i]) for i in range(4)]
    finally:
        for guard in guards:
            await guard.ledger.aclose()  # type: ignore[attr-defined]
    assert [a.started for a in admitted] == [True, True, False, False]
    assert options[0]["max_budget_usd"] == 0.4  # the reservation is the run's own cap
    assert sorted(cancelled) == ["r0", "r1"]
    assert [n["event"] for n in notes] == ["budget_exhausted"]
    assert notes[0]["on_exhausted"] == "cancel"
    assert (admitted[2].error or "").startswith("not started: its reservation $0.4000 is more")


async def test_a_list_and_the_fleet_announce_the_same_thresholds(
    redis_server: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The worker's and a list's thresholds come from one check (given out of order, twice,
    finer than a tenth of a percent): the same ends announce the same thresholds, each
    once, lowest first, whichever ledger keeps the budget."""
    thresholds = check_thresholds([80, 50, 50, 33.33])
    assert thresholds == (0.333, 0.5, 0.8)
    costs = [0.2, 0.133, 0.5]  # 20%, then 33.3%, then 83.3%: past 50% and 80% at once
    guard = BudgetGuard(RedisLedger(redis_server.url, "same"), 1.0, thresholds=thresholds)
    fleet: list[list[float | None]] = []
    try:
        await guard.ledger.configure(1.0)  # type: ignore[attr-defined]
        for i, cost in enumerate(costs):
            admitted = await guard.before(f"r{i}", {"agent": "command", "max_budget_usd": 0.5})
            assert admitted.started
            events = await guard.after(f"r{i}", Status.OK, cost)
            fleet.append([e.threshold for e in events])
    finally:
        await guard.ledger.aclose()  # type: ignore[attr-defined]
    listed = Budget(1.0, 0.0, {f"t{i}": 0.5 for i in range(3)}, thresholds)
    in_list: list[list[float]] = []
    for i, cost in enumerate(costs):
        assert listed.reserve(f"t{i}") == 0.5
        in_list.append(listed.release(f"t{i}", cost))
    assert fleet == in_list == [[], [0.333], [0.5, 0.8]]
    # The worker's log says which threshold, as given.
    said = [r.getMessage() for r in caplog.records if r.name == "cc_executor.budget"]
    assert said == [
        "budget 'default': 33.3% passed ($0.3330 of $1 spent)",
        "budget 'default': 50% passed ($0.8330 of $1 spent)",
        "budget 'default': 80% passed ($0.8330 of $1 spent)",
    ]


async def test_the_webhook_tries_three_times(
    webhook: tuple[str, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A receiver failing twice gets the note on the third try; one failing three times
    makes the send give up (no exception, a warning per try)."""
    import cc_executor._run._budget as budget_module

    monkeypatch.setattr(budget_module, "WEBHOOK_BACKOFF_S", (0.0, 0.0))
    url, got = webhook
    _Receiver.failures = 2
    try:
        assert await send_webhook(url, {"event": "budget_threshold"}) is True
        assert got == [{"event": "budget_threshold"}]
        _Receiver.failures = 3
        assert await send_webhook(url, {"event": "again"}) is False
    finally:
        _Receiver.failures = 0
    assert len(got) == 1


async def test_a_lost_workers_reservation_is_charged_whole_and_no_longer_held(
    redis_server: RedisServer,
) -> None:
    """A run holding a reservation without a live lease (its worker was lost) is settled
    at its whole reservation when a run would otherwise be refused; a run with a live
    lease keeps its reservation."""
    ledger = RedisLedger(redis_server.url, "lost")
    guard = BudgetGuard(ledger, 1.0, name="lost", reserve={"m": 0.3}, reap_lost=True)
    client = redis_server.client()
    try:
        await ledger.configure(1.0)
        assert (await guard.before("lost", {"agent": "claude", "model": "m"})).started
        assert (await guard.before("live", {"agent": "claude", "model": "m"})).started
        client.set("cc-executor:lease:live", "w1 1")
        # No reservation default for this model: it needs all that is left, alone.
        alone = await guard.before("alone", {"agent": "claude", "model": "x"})
        assert not alone.started  # "live" still holds
        state = await ledger.state()
        assert state is not None
        assert (micro(state.spent), micro(state.held)) == (micro(0.3), micro(0.3))
        assert await ledger.holders() == ["live"]
    finally:
        client.close()
        await ledger.aclose()
