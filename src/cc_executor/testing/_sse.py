"""How a scripted answer looks on the wire: Messages API events, messages and error bodies.

Pure functions from script values to JSON-ready data; pacing, dropping and sending are the
server's business.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cc_executor.testing._script import HttpErrorReply, Reply, Text, Thinking, ToolUse

# The events that carry a piece of content, in the Messages and the Responses API: the unit
# that Reply.delay paces and Reply.drop_after counts.
_DELTAS = frozenset(
    {
        "content_block_delta",
        "response.output_text.delta",
        "response.reasoning_summary_text.delta",
        "response.function_call_arguments.delta",
        "response.custom_tool_call_input.delta",
        "gemini.delta",
        "gemini.call",
        "chat.delta",
        "chat.call",
    }
)
# The events a dropped stream never reaches: those that close an item or the answer.
_CLOSING = frozenset(
    {
        "message_delta",
        "response.output_item.done",
        "response.completed",
        "gemini.done",
        "chat.finish",
    }
)


@dataclass(frozen=True)
class Event:
    """One server-sent event. ``is_delta`` marks the events carrying a piece of content
    (``content_block_delta``, ``response.*.delta``), the unit that ``Reply.delay`` paces and
    ``Reply.drop_after`` counts; ``is_closing`` those a dropped stream stops before."""

    name: str
    data: Mapping[str, Any]
    #: False for APIs whose stream has no ``event:`` lines (Gemini): ``name`` is then ours only.
    named: bool = True
    #: The frame as it is, for the odd one that is not JSON (``data: [DONE]``).
    raw: bytes | None = None

    @property
    def is_delta(self) -> bool:
        return self.name in _DELTAS

    @property
    def is_closing(self) -> bool:
        return self.name in _CLOSING

    def encode(self) -> bytes:
        """The SSE frame: ``event: NAME`` (when ``named``) and one ``data:`` line of JSON."""
        if self.raw is not None:
            return self.raw
        payload = json.dumps(self.data, ensure_ascii=False, separators=(",", ":"))
        if not self.named:
            return f"data: {payload}\n\n".encode()
        return f"event: {self.name}\ndata: {payload}\n\n".encode()


def estimate_tokens(chars: int) -> int:
    """About one token per four characters, at least 1: enough for cost and context displays."""
    return max(1, math.ceil(chars / 4))


def _tool_input_json(block: ToolUse) -> str:
    return json.dumps(block.input, ensure_ascii=False, separators=(",", ":"))


def _output_chars(reply: Reply) -> int:
    total = 0
    for block in reply.blocks:
        if isinstance(block, Text):
            total += len(block.text)
        elif isinstance(block, Thinking):
            total += len(block.thinking)
        else:
            total += len(block.name) + len(_tool_input_json(block))
    return total


def usage_of(reply: Reply, request_chars: int) -> dict[str, int]:
    """The ``usage`` object for ``reply``: its :class:`Usage` with estimates filled in."""
    usage = reply.usage
    return {
        "input_tokens": (
            usage.input_tokens if usage.input_tokens is not None else estimate_tokens(request_chars)
        ),
        "output_tokens": (
            usage.output_tokens
            if usage.output_tokens is not None
            else estimate_tokens(_output_chars(reply))
        ),
        "cache_creation_input_tokens": usage.cache_creation_input_tokens,
        "cache_read_input_tokens": usage.cache_read_input_tokens,
    }


def _block_json(block: Text | Thinking | ToolUse, tool_id: str) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"type": "text", "text": block.text}
    if isinstance(block, Thinking):
        return {"type": "thinking", "thinking": block.thinking, "signature": block.signature}
    return {"type": "tool_use", "id": tool_id, "name": block.name, "input": dict(block.input)}


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def message_json(
    reply: Reply,
    *,
    message_id: str,
    model: str,
    tool_ids: list[str],
    request_chars: int,
) -> dict[str, Any]:
    """The whole message, as a non-streaming ``POST /v1/messages`` returns it.

    ``tool_ids[i]`` is the id of the i-th block (used for ToolUse blocks without their own id).
    """
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [_block_json(block, tool_ids[i]) for i, block in enumerate(reply.blocks)],
        "stop_reason": reply.resolved_stop_reason,
        "stop_sequence": None,
        "usage": usage_of(reply, request_chars),
    }


def stream_events(
    reply: Reply,
    *,
    message_id: str,
    model: str,
    tool_ids: list[str],
    request_chars: int,
) -> Iterator[Event]:
    """The events of a streamed reply, in order, as the Messages API sends them.

    ``message_start`` (usage with ``output_tokens: 1``), ``ping``, then per block
    ``content_block_start``, its deltas (``text_delta``, ``thinking_delta`` then one
    ``signature_delta``, or ``input_json_delta``) of ``reply.chunk_size`` characters,
    ``content_block_stop``; then ``message_delta`` (stop_reason, full usage) and ``message_stop``.
    An empty text gets no delta; an empty tool input is sent as one ``{}`` fragment.
    """
    usage = usage_of(reply, request_chars)
    yield Event(
        "message_start",
        {
            "type": "message_start",
            "message": {
                "id": message_id,
                "type": "message",
                "role": "assistant",
                "model": model,
                "content": [],
                "stop_reason": None,
                "stop_sequence": None,
                "usage": {**usage, "output_tokens": 1},
            },
        },
    )
    yield Event("ping", {"type": "ping"})
    for index, block in enumerate(reply.blocks):
        start: dict[str, Any]
        deltas: list[dict[str, Any]]
        if isinstance(block, Text):
            start = {"type": "text", "text": ""}
            deltas = [
                {"type": "text_delta", "text": part}
                for part in _chunks(block.text, reply.chunk_size)
            ]
        elif isinstance(block, Thinking):
            start = {"type": "thinking", "thinking": "", "signature": ""}
            deltas = [
                {"type": "thinking_delta", "thinking": part}
                for part in _chunks(block.thinking, reply.chunk_size)
            ]
            deltas.append({"type": "signature_delta", "signature": block.signature})
        else:
            start = {"type": "tool_use", "id": tool_ids[index], "name": block.name, "input": {}}
            deltas = [
                {"type": "input_json_delta", "partial_json": part}
                for part in _chunks(_tool_input_json(block), reply.chunk_size)
            ]
        yield Event(
            "content_block_start",
            {"type": "content_block_start", "index": index, "content_block": start},
        )
        for delta in deltas:
            yield Event(
                "content_block_delta",
                {"type": "content_block_delta", "index": index, "delta": delta},
            )
        yield Event("content_block_stop", {"type": "content_block_stop", "index": index})
    yield Event(
        "message_delta",
        {
            "type": "message_delta",
            "delta": {"stop_reason": reply.resolved_stop_reason, "stop_sequence": None},
            "usage": usage,
        },
    )
    yield Event("message_stop", {"type": "message_stop"})


def error_json(error: HttpErrorReply) -> dict[str, Any]:
    """The Anthropic-style error body: ``{"type": "error", "error": {"type", "message"}}``."""
    return {
        "type": "error",
        "error": {"type": error.resolved_type, "message": error.resolved_message},
    }


def error_headers(error: HttpErrorReply, request_id: str) -> dict[str, str]:
    """Headers of an error answer: ``request-id``, ``retry-after`` (see HttpErrorReply), extras."""
    headers = {"request-id": request_id}
    retry_after = error.retry_after
    if retry_after is None and error.status == 429:
        retry_after = 1
    if retry_after is not None:
        # Whole seconds when possible: retry-after is an integer in the HTTP spec.
        headers["retry-after"] = (
            str(int(retry_after)) if float(retry_after).is_integer() else str(retry_after)
        )
    headers.update(error.headers)
    return headers
