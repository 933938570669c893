"""Claude Code ``stream-json`` lines into typed events.

Tolerant by design: the CLI adds event types and fields between versions, so a line of an
unknown type becomes an :class:`UnknownEvent`, a line that is not a JSON object becomes a
:class:`NoiseEvent`, and a missing or ill-typed field becomes None or a default. Nothing here
raises on any input. Parsing is one ``orjson.loads`` per line: linear in the line's size.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cc_executor._agents._jsonl import LARGE_LINE as LARGE_LINE
from cc_executor._agents._jsonl import JsonLinesParser
from cc_executor._agents._kinds import ToolKindOf, claude_kind
from cc_executor._agents._types import (
    AgentEvent,
    ApiRetryEvent,
    InitEvent,
    PermissionDeniedEvent,
    RateLimitEvent,
    ResultEvent,
    StatusEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEvent,
    ThinkingEvent,
    ToolResultEvent,
    ToolUseEvent,
    UnknownEvent,
)

if TYPE_CHECKING:
    pass


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _num(value: Any) -> float | None:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def tool_result_text(content: Any) -> str:
    """The text of a ``tool_result`` content: a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    parts = []
    for block in _list(content):
        if isinstance(block, Mapping) and isinstance(block.get("text"), str):
            parts.append(block["text"])
    return "\n".join(parts)


def _assistant(obj: Mapping[str, Any], t: float, tool_kind: ToolKindOf) -> list[AgentEvent]:
    message = _map(obj.get("message"))
    message_id = _str(message.get("id"))
    events: list[AgentEvent] = []
    for block in _list(message.get("content")):
        if not isinstance(block, Mapping):
            continue
        kind = block.get("type")
        if kind == "text":
            events.append(
                TextEvent(t=t, raw=obj, text=_str(block.get("text")) or "", message_id=message_id)
            )
        elif kind == "thinking":
            events.append(
                ThinkingEvent(
                    t=t, raw=obj, text=_str(block.get("thinking")) or "", message_id=message_id
                )
            )
        elif kind in ("tool_use", "server_tool_use"):
            name, tool_input = _str(block.get("name")) or "", _map(block.get("input"))
            events.append(
                ToolUseEvent(
                    t=t,
                    raw=obj,
                    id=_str(block.get("id")) or "",
                    name=name,
                    kind=tool_kind(name, tool_input),
                    input=tool_input,
                    message_id=message_id,
                )
            )
    return events or [UnknownEvent(t=t, raw=obj, event_type="assistant")]


def _user(obj: Mapping[str, Any], t: float) -> list[AgentEvent]:
    message = _map(obj.get("message"))
    events: list[AgentEvent] = []
    for block in _list(message.get("content")):
        if isinstance(block, Mapping) and block.get("type") == "tool_result":
            events.append(
                ToolResultEvent(
                    t=t,
                    raw=obj,
                    tool_use_id=_str(block.get("tool_use_id")) or "",
                    content=tool_result_text(block.get("content")),
                    is_error=block.get("is_error") is True,
                )
            )
    return events or [UnknownEvent(t=t, raw=obj, event_type="user")]


def _system(obj: Mapping[str, Any], t: float) -> AgentEvent:
    subtype = obj.get("subtype")
    if subtype == "init":
        return InitEvent(
            t=t,
            raw=obj,
            session_id=_str(obj.get("session_id")),
            model=_str(obj.get("model")),
            cwd=_str(obj.get("cwd")),
            tools=tuple(x for x in _list(obj.get("tools")) if isinstance(x, str)),
            mcp_servers=tuple(x for x in _list(obj.get("mcp_servers")) if isinstance(x, Mapping)),
            permission_mode=_str(obj.get("permissionMode")),
            agent_version=_str(obj.get("claude_code_version")),
        )
    if subtype == "api_retry":
        return ApiRetryEvent(
            t=t,
            raw=obj,
            attempt=_int(obj.get("attempt")),
            max_retries=_int(obj.get("max_retries")),
            retry_delay_ms=_num(obj.get("retry_delay_ms")),
            error_status=_int(obj.get("error_status")),
            error=_str(obj.get("error")) or (json.dumps(obj["error"]) if "error" in obj else None),
        )
    if subtype == "status":
        return StatusEvent(t=t, raw=obj, status=_str(obj.get("status")) or "")
    if subtype == "permission_denied":
        return PermissionDeniedEvent(
            t=t,
            raw=obj,
            tool_name=_str(obj.get("tool_name")) or "",
            tool_use_id=_str(obj.get("tool_use_id")) or "",
            message=_str(obj.get("message")) or "",
        )
    return UnknownEvent(t=t, raw=obj, event_type=f"system/{subtype}")


def _stream(obj: Mapping[str, Any], t: float, message_ids: dict[str, str | None]) -> AgentEvent:
    event = _map(obj.get("event"))
    kind = event.get("type")
    if kind == "message_start":
        # Older CLIs put no message id on deltas: remember the one that started.
        message_ids["current"] = _str(_map(event.get("message")).get("id"))
    message_id = _str(obj.get("api_message_id")) or message_ids.get("current")
    if kind == "content_block_delta":
        delta = _map(event.get("delta"))
        if delta.get("type") == "text_delta":
            return TextDeltaEvent(
                t=t,
                raw=obj,
                text=_str(delta.get("text")) or "",
                message_id=message_id,
                index=_int(event.get("index")) or 0,
            )
    abandoned = _map(obj.get("abandoned_blocks"))
    return StreamEvent(
        t=t,
        raw=obj,
        event=event,
        message_id=_str(abandoned.get("api_message_id")) or message_id,
        abandoned_from=_int(abandoned.get("from_block_index")) if abandoned else None,
    )


def _result(obj: Mapping[str, Any], t: float) -> ResultEvent:
    return ResultEvent(
        t=t,
        raw=obj,
        subtype=_str(obj.get("subtype")) or "",
        is_error=obj.get("is_error") is True,
        result=_str(obj.get("result")),
        session_id=_str(obj.get("session_id")),
        cost_usd=_num(obj.get("total_cost_usd")),
        usage=_map(obj.get("usage")),
        num_turns=_int(obj.get("num_turns")),
        duration_ms=_num(obj.get("duration_ms")),
        api_error_status=_int(obj.get("api_error_status")),
        permission_denials=tuple(
            x for x in _list(obj.get("permission_denials")) if isinstance(x, Mapping)
        ),
        stop_reason=_str(obj.get("stop_reason")),
        terminal_reason=_str(obj.get("terminal_reason")),
        structured_output=obj.get("structured_output"),
    )


class ClaudeStreamParser(JsonLinesParser):
    """Turns one stdout line at a time into events. Keeps the little state streaming
    needs (the id of the message being streamed). ``tool_kind`` gives each tool call its
    kind: Claude Code's tools by default, a command agent's from its spec."""

    def __init__(self, tool_kind: ToolKindOf = claude_kind) -> None:
        self._message_ids: dict[str, str | None] = {}
        self._tool_kind = tool_kind

    def _events(self, obj: dict[str, Any], t: float) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "stream_event":
            return [_stream(obj, t, self._message_ids)]
        if kind == "assistant":
            return _assistant(obj, t, self._tool_kind)
        if kind == "user":
            return _user(obj, t)
        if kind == "system":
            return [_system(obj, t)]
        if kind == "result":
            return [_result(obj, t)]
        if kind == "rate_limit_event":
            info = _map(obj.get("rate_limit_info"))
            return [
                RateLimitEvent(
                    t=t,
                    raw=obj,
                    status=_str(info.get("status")),
                    resets_at=_num(info.get("resetsAt")),
                    limit_type=_str(info.get("rateLimitType")),
                    info=info,
                )
            ]
        return [UnknownEvent(t=t, raw=obj, event_type=str(kind))]
