"""Rebuilding the text so far from stream-json, as a timeout or cancel needs it."""

from __future__ import annotations

import json

from cc_executor._agents import get_adapter
from cc_executor._agents._claude import ClaudeStreamParser
from cc_executor._run._runner import _AttemptState


def lines(*objs: object) -> list[bytes]:
    return [json.dumps(o).encode() for o in objs]


def delta(msg: str, index: int, text: str) -> dict[str, object]:
    return {
        "type": "stream_event",
        "api_message_id": msg,
        "event": {
            "type": "content_block_delta",
            "index": index,
            "delta": {"type": "text_delta", "text": text},
        },
    }


def replay(raw: list[bytes]) -> str:
    state = _AttemptState(cwd="/", adapter=get_adapter("claude"), keep_text=True)
    parser = ClaudeStreamParser()
    for line in raw:
        for event in parser.parse(line, 0.0):
            state.apply(event)
    return state.text_so_far()


def test_completed_blocks_and_the_block_still_streaming() -> None:
    raw = lines(
        delta("m1", 0, "Hel"),
        delta("m1", 0, "lo."),
        {
            "type": "assistant",
            "message": {"id": "m1", "content": [{"type": "text", "text": "Hello."}]},
        },
        delta("m2", 0, "Second "),
        delta("m2", 0, "answer, cut"),
    )
    assert replay(raw) == "Hello.\n\nSecond answer, cut"


def test_retracted_stream_is_not_counted_twice() -> None:
    """A broken stream is retracted (abandoned_blocks) and streamed again from the start."""
    raw = lines(
        delta("m1", 0, "First try, bro"),
        {
            "type": "stream_event",
            "api_message_id": "m1",
            "abandoned_blocks": {"api_message_id": "m1", "from_block_index": 0},
            "event": {"type": "message_stop"},
        },
        delta("m1", 0, "First try, "),
        delta("m1", 0, "again"),
    )
    assert replay(raw) == "First try, again"


def test_live_state_keeps_no_text() -> None:
    state = _AttemptState(cwd="/", adapter=get_adapter("claude"))
    parser = ClaudeStreamParser()
    for line in lines(delta("m1", 0, "x" * 1000)):
        for event in parser.parse(line, 0.0):
            state.apply(event)
    assert state.streaming == {}
    assert state.texts == []
