"""run_many: batches of real Claude Code runs against the scripted model server."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import psutil
import pytest

from cc_executor import BatchEvent, batch_history, run_many, run_many_sync
from cc_executor._store import open_store
from cc_executor.testing import HttpErrorReply, Reply, Rule, Script, Text, Usage
from tests._wait import await_for
from tests.run.conftest import BedFactory

#: 1,000 input + 1,000 output tokens: Claude Code prices them at $0.024 for this model.
PRICED = Usage(input_tokens=1000, output_tokens=1000)


def echo_script() -> Script:
    """Each document's answer names it; "doc 0" answers slowly, so it ends late."""
    return Script(
        [
            Rule(match="^doc 0$", answers=[Reply([Text("answer 0")], chunk_size=1, delay=0.5)]),
            Rule(match="^fail", answers=[HttpErrorReply(400, message="scripted bad request")]),
            # About 100 s: these are always stopped before they end.
            Rule(match="^slow", answers=[Reply([Text("s" * 4000)], chunk_size=2, delay=0.05)]),
            Rule(match="^priced", answers=[Reply([Text("paid")], usage=PRICED)]),
            *(
                Rule(match=f"^doc {n}$", answers=[Reply([Text(f"answer {n}")])])
                for n in range(1, 8)
            ),
        ]
    )


def count(bed: Any, prompt: str) -> int:
    return sum(1 for r in bed.server.message_requests if r.prompt == prompt)


async def test_results_in_input_order_at_bounded_concurrency(bed: BedFactory) -> None:
    """The slow first document ends after later ones, yet results follow the input; no more than
    ``concurrency`` runs at once; every event names its run; the history has the batch."""
    events: list[BatchEvent] = []
    running: set[str] = set()
    most = 0

    def on_progress(event: BatchEvent) -> None:
        nonlocal most
        events.append(event)
        if event.kind == "started":
            running.add(event.run_id)
            most = max(most, len(running))
        elif event.kind == "finished":
            running.discard(event.run_id)

    async with bed(echo_script()) as b:
        prompts = [f"doc {n}" for n in range(8)]
        result = await run_many(
            prompts,
            concurrency=3,
            timeout=120,
            batch_id="ordered",
            on_progress=on_progress,
            **b.options(),
        )
    assert [r.result for r in result] == [f"answer {n}" for n in range(8)]
    assert result.ok
    assert (result.batch_id, len(result)) == ("ordered", 8)
    finished = [e.index for e in events if e.kind == "finished"]
    assert finished.index(0) > finished.index(2), finished  # started together, ended after
    assert most == 3
    ids = [r.run_id for r in result]
    assert len(set(ids)) == 8
    # Every event, the runs' own included, names the run it is about.
    inner = [e for e in events if e.kind == "event"]
    assert inner
    assert all(e.run_id == ids[e.index] for e in events)
    assert {type(e.event).__name__ for e in inner} >= {"RunStartedEvent", "ResultEvent"}
    assert events[-1].done == events[-1].total == 8
    records = batch_history("ordered")
    assert sorted(r.id for r in records) == sorted(ids)
    assert {r.batch_key for r in records} == set(result.keys)
    assert all(k.startswith("sha256:") for k in result.keys)


async def test_a_rerun_runs_only_what_did_not_end_ok(bed: BedFactory) -> None:
    """A second run of the batch (a crashed driver started again) reuses the ok runs,
    read back from their event logs, and runs only the failed document again."""
    async with bed(echo_script()) as b:
        prompts: list[Any] = [
            "doc 2",
            {"prompt": "fail once", "key": "flaky"},
            {"prompt": "doc 3", "options": {"model": "claude-sonnet-4-5"}},
        ]
        first = await run_many(prompts, timeout=120, batch_id="again", **b.options())
        assert [r.status.value for r in first] == ["ok", "error", "ok"]
        assert first.keys[1] == "flaky"
        events: list[BatchEvent] = []
        second = await run_many(
            prompts, timeout=300, batch_id="again", on_progress=events.append, **b.options()
        )
        assert second.reused == [0, 2]
        assert [second[i].run_id for i in (0, 2)] == [first[i].run_id for i in (0, 2)]
        assert [second[i].result for i in (0, 2)] == ["answer 2", "answer 3"]
        assert "not run again" in second[0].warnings[0]
        assert second[1].run_id != first[1].run_id
        assert [count(b, p) for p in ("doc 2", "doc 3")] == [1, 1]
        assert [r.batch_key for r in batch_history("again")].count("flaky") == 2
        reused = [(e.index, e.run_id) for e in events if e.kind == "reused"]
        assert reused == [(0, first[0].run_id), (2, first[2].run_id)]
        # skip_ok=False runs everything again.
        third = await run_many(
            prompts[:1], timeout=120, batch_id="again", skip_ok=False, **b.options()
        )
        assert third.reused == []
        assert count(b, "doc 2") == 2
    assert len(batch_history("again")) == 5
    assert len(batch_history("again", status="ok")) == 3


async def test_a_rerun_verifies_what_it_reuses(bed: BedFactory) -> None:
    """Issue 18 F8.1: an ok run whose event log was altered or removed, or whose record was
    edited (its batch key given to another document), was reused as it stood; each is run
    again now, with a warning saying why."""
    import sqlite3

    from cc_executor._paths import data_home

    async with bed(echo_script()) as b:
        prompts = ["doc 1", "doc 2", "doc 3", "doc 4"]
        first = await run_many(prompts, timeout=120, batch_id="tamper", **b.options())
        assert first.ok
        logs = [r.event_log for r in first]
        assert all(logs)
        with open(str(logs[0]), "ab") as log:
            log.write(b"\n")
        os.remove(str(logs[1]))
        raw = sqlite3.connect(data_home() / "history.sqlite3")
        # doc 4's answer passed off as doc 3's: a record edited behind the history's back.
        raw.execute("UPDATE runs SET batch_key = ? WHERE id = ?", (first.keys[2], first[3].run_id))
        raw.execute("DELETE FROM runs WHERE id = ?", (first[2].run_id,))
        raw.commit()
        raw.close()
        second = await run_many(prompts, timeout=120, batch_id="tamper", **b.options())
        assert second.reused == []
        assert [r.result for r in second] == ["answer 1", "answer 2", "answer 3", "answer 4"]
        assert [count(b, p) for p in prompts] == [2, 2, 2, 2]
        [altered, missing, edited] = second.warnings
        assert altered.startswith(f"prompts[0]: run {first[0].run_id} ended ok but fails verif")
        assert "events was altered" in altered
        assert "events is missing" in missing
        assert edited.startswith(f"prompts[2]: run {first[3].run_id} ended ok but fails")
        assert "the record was altered" in edited
        # What verifies is reused.
        third = await run_many(prompts, timeout=120, batch_id="tamper", **b.options())
        assert third.reused == [0, 1, 2, 3]
        assert third.warnings == []


async def test_budget_stops_starting_runs(bed: BedFactory) -> None:
    """One at a time at $0.024 each against $0.03: the second run is capped at what is
    left (Claude Code stops it at its own budget), the third never starts."""
    async with bed(echo_script()) as b:
        result = await run_many(
            ["priced 1", "priced 2", "priced 3"],
            concurrency=1,
            budget_usd=0.03,
            timeout=120,
            **b.options(),
        )
        assert count(b, "priced 3") == 0
    assert [r.status.value for r in result] == ["ok", "budget_exceeded", "skipped"]
    assert result.spent_usd == pytest.approx(0.048)
    assert result.stopped_reason == "the batch's budget_usd $0.03 was reached ($0.0480 spent)"
    assert result.not_started == [2]
    assert result[2].error == f"not started: {result.stopped_reason}"
    assert result.cancelled_by_budget == []


async def test_budget_cancels_the_runs_still_going(bed: BedFactory) -> None:
    """When a finished run spends the budget, the run still answering is cancelled: its
    result, its event and its history record say the budget was why."""
    events: list[BatchEvent] = []
    async with bed(echo_script()) as b:
        task = asyncio.ensure_future(
            run_many(
                ["slow answer", "priced 1"],
                concurrency=2,
                budget_usd=0.01,
                timeout=120,
                on_progress=events.append,
                **b.options(),
            )
        )
        result = await task
    slow, priced = result
    assert (slow.status.value, priced.status.value) == ("cancelled", "budget_exceeded")
    assert result.cancelled_by_budget == [slow.run_id]
    reason = "cancelled: the batch's budget_usd $0.01 was reached ($0.0240 spent)"
    assert (slow.error or "").startswith(reason), slow.error
    assert slow.partial
    cancelling = [e for e in events if e.kind == "cancelling"]
    assert [(e.index, e.run_id) for e in cancelling] == [(0, slow.run_id)]
    store = open_store()
    try:
        record = store.get(slow.run_id)
    finally:
        store.close()
    assert record is not None
    assert record.status == "cancelled"
    assert (record.error or "").startswith(reason)


async def test_cancelling_the_batch_stops_every_run(bed: BedFactory) -> None:
    """Cancelling the task awaiting run_many kills every CLI and records the runs."""
    started: list[str] = []
    async with bed(echo_script()) as b:

        def on_progress(event: BatchEvent) -> None:
            if event.kind == "event" and type(event.event).__name__ == "TextDeltaEvent":
                started.append(event.run_id)

        task = asyncio.ensure_future(
            run_many(
                ["slow a", "slow b", "slow c"],
                concurrency=2,
                timeout=120,
                batch_id="cancelled",
                on_progress=on_progress,
                **b.options(),
            )
        )
        await await_for(lambda: len(set(started)) == 2, what="two runs answering")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    records = batch_history("cancelled")
    assert sorted(r.id for r in records) == sorted(set(started))
    assert {r.status for r in records} == {"cancelled"}


def test_run_many_sync(bed: BedFactory) -> None:
    async def serve() -> Any:
        async with bed(echo_script()) as b:
            return await asyncio.to_thread(
                run_many_sync, ["doc 4", "doc 5"], timeout=120, **b.options()
            )

    result = asyncio.run(serve())
    assert [r.result for r in result] == ["answer 4", "answer 5"]


async def test_an_exception_in_on_progress_stops_the_batch(bed: BedFactory) -> None:
    """The callback's exception is raised from run_many once every run has stopped: none
    is left running, in the process table or in the history."""

    class Stop(Exception):
        pass

    answering: set[str] = set()

    def on_progress(event: BatchEvent) -> None:
        if event.kind == "event" and type(event.event).__name__ == "TextDeltaEvent":
            answering.add(event.run_id)
            if len(answering) == 2:
                raise Stop

    async with bed(echo_script()) as b:
        with pytest.raises(Stop):
            await run_many(
                ["slow x", "slow y", "slow z"],
                concurrency=2,
                timeout=120,
                batch_id="raised",
                on_progress=on_progress,
                **b.options(),
            )
        assert count(b, "slow z") == 0
    records = batch_history("raised")
    assert sorted(r.id for r in records) == sorted(answering)
    assert "running" not in {r.status for r in records}
    assert all(r.pid is not None for r in records)
    # Stopped when run_many raises; an exited process may wait a moment for its reaping
    # (on this loop, which must keep running for it), then none is left in the table.
    await await_for(
        lambda: not any(psutil.pid_exists(r.pid) for r in records if r.pid is not None),
        what="the batch's processes gone from the process table",
    )
