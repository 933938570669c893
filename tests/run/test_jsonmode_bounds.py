"""JSON extraction is bounded: linear in the answer, json_repair only on small spans, and off
the event loop, so a model's huge cut-off answer cannot freeze the runs sharing the loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import threading
from collections.abc import Callable
from typing import Any

import pytest

from cc_executor._agents._types import AgentEvent, ResultEvent, RunStatus
from cc_executor._run._jsonmode import (
    CUT_OFF_WARNING,
    MAX_REPAIR_CHARS,
    extract_from_answer,
    extract_from_answer_async,
    extract_json,
)
from cc_executor._run._runner import run, start_run
from cc_executor.testing import Reply, Rule, Script, Text
from tests._scaling import assert_linear


def cut_in_string(size: int) -> str:
    """The issue's case: an answer cut off inside a long string (2 MB took 49 s)."""
    return 'Here: {"summary": "ok", "log": "' + "lorem ipsum dolor " * (size // 18)


def cut_in_rows(size: int) -> str:
    """Dense brackets and commas, cut off after an element: the most tokens per character."""
    return '{"rows": [' + "[1, 2, 3], " * (size // 11)


@pytest.mark.parametrize(
    ("answer", "size"), [(cut_in_string, 1_000_000), (cut_in_rows, 300_000)], ids=["string", "rows"]
)
@pytest.mark.slow  # seconds of work: out of the fast tier
def test_salvaging_a_cut_off_answer_is_linear(answer: Callable[[int], str], size: int) -> None:
    # Both sizes are past MAX_REPAIR_CHARS; json_repair's string handling is quadratic.
    small, large = answer(size), answer(2 * size)
    for text in (small, large):
        extraction, warning = extract_from_answer(text)
        assert extraction.found, extraction.error
        assert extraction.repaired
        assert warning == CUT_OFF_WARNING
    assert_linear(answer, extract_from_answer, size)


def test_a_value_cut_off_in_a_huge_string_keeps_what_was_written() -> None:
    text = cut_in_string(2_000_000)
    extraction, warning = extract_from_answer(text)
    assert warning == CUT_OFF_WARNING
    assert extraction.value["summary"] == "ok"
    assert extraction.value["log"] == text.split('"log": "', 1)[1].rstrip()


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_a_cut_off_value_loses_only_its_incomplete_last_member() -> None:
    text = cut_in_rows(1_000_000) + "[4, 5"
    value = extract_json(text, partial=True).value
    assert value["rows"][-1] == [4, 5]
    assert extract_json(text + ', "x": tr', partial=True).value == value
    cut_key = extract_json('{"a": [1, 2], "b": {"c": 1, "d', partial=True)
    assert cut_key.value == {"a": [1, 2], "b": {"c": 1}}


def test_damage_past_the_repair_limit_is_reported_as_too_large() -> None:
    def damaged(size: int) -> str:
        return '{"a": "' + "x" * (size - 10) + '",}'  # a trailing comma

    fits = damaged(MAX_REPAIR_CHARS)
    assert len(fits) == MAX_REPAIR_CHARS
    assert extract_json(fits).value == {"a": "x" * (MAX_REPAIR_CHARS - 10)}
    too_large = damaged(MAX_REPAIR_CHARS + 1)
    error = extract_json(too_large).error
    assert error is not None
    assert (
        f"the first (chars 0-{len(too_large):,}) is not JSON (Expecting property name "
        f"enclosed in double quotes: line 1 column {len(too_large)} (char "
        f"{len(too_large) - 1})) and is too large to repair ({len(too_large):,} chars; "
        f"damaged JSON is repaired up to {MAX_REPAIR_CHARS:,})"
    ) in error


def test_json_repair_gets_a_bounded_share_of_the_answer() -> None:
    # Tried first (the larger): repaired into an empty object, refused, its share spent.
    spent = "{" + " " * (MAX_REPAIR_CHARS * 7 // 10) + ",}"
    damaged = '{"b": "' + "x" * (MAX_REPAIR_CHARS * 4 // 10) + '",}'
    assert extract_json(damaged).repaired
    extraction = extract_json(f"{spent}\n\n{damaged}")
    assert not extraction.found
    assert "2 candidate spans tried" in str(extraction.error)


async def count_ticks(work: asyncio.Future[Any]) -> int:
    """How often another task got the event loop while ``work`` was pending."""
    ticks = 0
    while not work.done():
        await asyncio.sleep(0)
        ticks += 1
    await work
    return ticks


@pytest.mark.slow  # seconds of work: out of the fast tier
async def test_the_event_loop_keeps_running_during_a_huge_extraction() -> None:
    # About a second of CPU: pure-Python bracket matching over a million tokens.
    text = cut_in_rows(2_000_000)
    ticks = await count_ticks(asyncio.ensure_future(extract_from_answer_async(text)))
    # Done on the loop, the extraction would let another task in once, at its end; in a
    # worker thread, the loop goes on (how often depends on the machine's load).
    assert ticks >= 3


class _Watching(concurrent.futures.ThreadPoolExecutor):
    """The loop's default executor, telling the loop when a JSON extraction starts and ends."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self.loop = loop
        self.started = asyncio.Event()
        self.running = threading.Event()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        # asyncio.to_thread submits functools.partial(context.run, func, ...).
        if not (isinstance(fn, functools.partial) and extract_from_answer in fn.args):
            return super().submit(fn, *args, **kwargs)

        def watched() -> Any:
            self.running.set()
            self.loop.call_soon_threadsafe(self.started.set)
            try:
                return fn(*args, **kwargs)
            finally:
                self.running.clear()

        return super().submit(watched)


async def test_another_run_is_cancelled_while_a_huge_answer_is_extracted(bed: Any) -> None:
    huge = cut_in_rows(2_000_000)
    slow = Reply([Text("word " * 400)], chunk_size=10, delay=0.25)
    script = Script(
        [
            Rule(answers=[Reply([Text(huge)], chunk_size=200_000)], match="huge"),
            Rule(answers=[slow], match="slow"),
        ]
    )
    loop = asyncio.get_running_loop()
    executor = _Watching(loop)
    loop.set_default_executor(executor)
    async with bed(script) as b:
        writing = asyncio.Event()

        def on_slow(event: AgentEvent) -> None:
            writing.set()

        other = start_run("slow", on_event=on_slow, **b.options())
        await writing.wait()
        answered = asyncio.Event()

        def on_huge(event: AgentEvent) -> None:
            if isinstance(event, ResultEvent):
                answered.set()

        big = asyncio.ensure_future(run("huge", json_mode=True, on_event=on_huge, **b.options()))
        await asyncio.wait(
            [asyncio.ensure_future(executor.started.wait()), big],
            return_when=asyncio.FIRST_COMPLETED,
        )
        assert executor.started.is_set(), "the extraction did not run in a worker thread"
        # The other run is cancelled, and its cancel served, while the extraction runs.
        ticks = 0
        other.cancel()
        waiting = asyncio.ensure_future(other.wait())
        while executor.running.is_set():
            await asyncio.sleep(0)
            ticks += 1
        assert ticks >= 3  # the loop went on meanwhile (see the test above)
        cancelled = await waiting
        result = await big
    assert answered.is_set()
    assert cancelled.status is RunStatus.CANCELLED
    assert result.status is RunStatus.OK, result.error
    assert CUT_OFF_WARNING in result.warnings
    assert result.json["rows"][-1] == [1, 2, 3]
    assert len(result.json["rows"]) == len(huge) // 11
