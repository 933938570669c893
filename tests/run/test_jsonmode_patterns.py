"""Schema patterns are matched off the GIL within a time budget: a pattern that backtracks
catastrophically on a model's answer is a schema error, never a frozen process."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from cc_executor._run._jsonmode import extract_from_answer_async, extract_json

# The review's reproduction: a backtracking pattern the stdlib's re takes hours on.
NESTED = {"type": "object", "properties": {"a": {"type": "string", "pattern": "^(a+)+$"}}}
NESTED_ANSWER = json.dumps({"a": "a" * 32 + "!"})
# Backtracking that the regex module cannot optimise away either: it spends the budget.
HOSTILE = "^(a|a)+$"
HOSTILE_TEXT = "a" * 40 + "!"


def test_the_reviews_reproduction_is_a_specific_schema_error() -> None:
    result = extract_json(NESTED_ANSWER, schema=NESTED)
    assert result.found
    assert result.schema_errors == [f"$.a: {'a' * 32 + '!'!r} does not match '^(a+)+$'"]
    assert result.error == f"JSON does not match the schema: {result.schema_errors[0]}"


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_a_pattern_over_the_budget_is_one_line_naming_the_property() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": HOSTILE}}}
    result = extract_json(json.dumps({"a": HOSTILE_TEXT}), schema=schema)
    assert len(result.schema_errors) == 1
    message = result.schema_errors[0]
    assert message.startswith(f"$.a: {HOSTILE_TEXT!r}: matching the pattern '^(a|a)+$' took ")
    assert "took too long" in message
    assert "\n" not in message


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_a_hostile_property_name_under_pattern_properties_is_bounded() -> None:
    schema = {"type": "object", "patternProperties": {HOSTILE: {"type": "integer"}}}
    result = extract_json(json.dumps({HOSTILE_TEXT: 1}), schema=schema)
    assert result.schema_errors == [
        f"$: property name {HOSTILE_TEXT!r}: matching the pattern '^(a|a)+$' took too long "
        "(over the 1 s budget for an answer's patterns); treated as not matching"
    ]


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_additional_properties_matches_the_patterns_within_the_budget() -> None:
    schema = {
        "type": "object",
        "patternProperties": {HOSTILE: {"type": "integer"}},
        "additionalProperties": False,
    }
    result = extract_json(json.dumps({HOSTILE_TEXT: 1}), schema=schema)
    assert result.schema_errors
    assert all("took too long" in e for e in result.schema_errors)


def test_patterns_still_validate_as_json_schema_says() -> None:
    schema = {
        "type": "object",
        "properties": {"id": {"type": "string", "pattern": "^[A-Z]{3}-\\d+$"}},
        "patternProperties": {"^x-": {"type": "integer"}},
        "additionalProperties": False,
    }
    assert extract_json('{"id": "ABC-12", "x-n": 3}', schema=schema).schema_errors == []
    assert extract_json('{"id": "abc", "x-n": "s", "y": 1}', schema=schema).schema_errors == [
        "$: 'y' does not match any of the regexes: '^x-'",
        "$.id: 'abc' does not match '^[A-Z]{3}-\\\\d+$'",
        "$[\"x-n\"]: 's' is not of type 'integer'",
    ]
    loose = {"type": "object", "properties": {"a": {}}, "additionalProperties": False}
    assert extract_json('{"b": 1, "c": 2}', schema=loose).schema_errors == [
        "$: Additional properties are not allowed ('b', 'c' were unexpected)"
    ]


async def tick_rate(work: Callable[[], Awaitable[Any]]) -> tuple[float, Any]:
    """Ticks per second an asyncio ticker makes while ``work`` runs, and its result."""
    ticks = 0
    done = asyncio.Event()

    async def ticker() -> None:
        nonlocal ticks
        while not done.is_set():
            await asyncio.sleep(0.001)
            ticks += 1

    task = asyncio.create_task(ticker())
    start = time.monotonic()
    try:
        result = await work()
    finally:
        elapsed = time.monotonic() - start
        done.set()
        await task
    return ticks / elapsed, result


@pytest.mark.slow  # seconds of work: out of the fast tier
async def test_the_event_loop_keeps_ticking_while_a_pattern_backtracks() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "string", "pattern": HOSTILE}}}
    answer = json.dumps({"a": HOSTILE_TEXT})
    started = time.monotonic()
    rate, (extraction, _) = await tick_rate(
        lambda: extract_from_answer_async(answer, schema=schema)
    )
    spent = time.monotonic() - started
    assert "took too long" in extraction.schema_errors[0]
    # The baseline: a worker thread that holds no GIL for as long as the validation took.
    waiting = threading.Event()
    baseline, _ = await tick_rate(lambda: asyncio.to_thread(waiting.wait, spent))
    # The stdlib's re held the GIL for the whole match: the loop made no tick at all.
    assert rate >= 0.2 * baseline, (rate, baseline)


def test_unevaluated_properties_beside_pattern_properties_is_refused() -> None:
    """jsonschema matches those property names with ``re`` in its own code, unbounded."""
    from cc_executor._run._jsonmode import check_schema

    schema = {
        "type": "object",
        "allOf": [{"patternProperties": {"^(a+)+$": {"type": "string"}}}],
        "unevaluatedProperties": False,
    }
    with pytest.raises(ValueError, match="unevaluatedProperties together with patternProperties"):
        check_schema(schema)
    check_schema({"type": "object", "unevaluatedProperties": False})
    check_schema({"type": "object", "patternProperties": {"^x": {}}})
