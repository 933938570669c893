"""Codex CLI ``exec --json`` lines into typed events.

Codex prints whole items, not token deltas: ``item.started``/``item.completed`` of an
``agent_message``, ``reasoning``, ``command_execution``, ``file_change``, ``mcp_tool_call``,
``web_search``, ``todo_list`` or ``error``, framed by ``thread.started``, ``turn.started`` and
``turn.completed``/``turn.failed``. Tool items become a tool call when they start and its
result when they complete; one ``file_change`` item becomes one call per changed file, so
``files`` names each. Unknown lines pass through as :class:`UnknownEvent`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeAlias

import orjson

from cc_executor._agents._jsonl import JsonLinesParser
from cc_executor._agents._kinds import codex_kind
from cc_executor._agents._types import (
    AgentEvent,
    ApiRetryEvent,
    InitEvent,
    ResultEvent,
    StatusEvent,
    TextEvent,
    ThinkingEvent,
    ToolResultEvent,
    ToolUseEvent,
    UnknownEvent,
)

#: A tool call announced by an item: its id, normalized name and input.
_Call: TypeAlias = tuple[str, str, dict[str, Any]]
#: Codex's top-level ``error`` lines that only say it is retrying the connection:
#: "Reconnecting... 2/5 (...)" (its stream retries) or "Reconnecting... waiting for network
#: (...)" (a connection refused or no network: it waits forever, at growing gaps).
_RECONNECTING = "reconnecting"
_RETRY_COUNT = re.compile(r"^Reconnecting\.\.\. (\d+)/(\d+)\b")


def _is_reconnect(message: str) -> bool:
    return message.lower().startswith(_RECONNECTING)


def is_reconnect_line(line: bytes) -> bool:
    """Whether a stdout line is a top-level reconnect notice (see :data:`_RECONNECTING`):
    no progress for the idle and first-output timeouts. Cheap for every other line."""
    if b"Reconnecting" not in line:
        return False
    try:
        obj = orjson.loads(line)
    except ValueError:
        return False
    if not isinstance(obj, dict) or obj.get("type") != "error":
        return False
    message = obj.get("message")
    return isinstance(message, str) and _is_reconnect(message)


def _retry_event(obj: Mapping[str, Any], message: str, t: float) -> ApiRetryEvent:
    count = _RETRY_COUNT.match(message)
    return ApiRetryEvent(
        t=t,
        raw=obj,
        error=message,
        attempt=int(count.group(1)) if count else None,
        max_retries=int(count.group(2)) if count else None,
    )


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else orjson.dumps(value).decode()


class CodexStreamParser(JsonLinesParser):
    """Turns Codex's JSONL into events; remembers the thread id, the last answer and the
    tool items already announced."""

    def __init__(self) -> None:
        self.thread_id: str | None = None
        self._answer: str | None = None
        self._error: str | None = None
        self._started: set[str] = set()

    def _events(self, obj: dict[str, Any], t: float) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "thread.started":
            self.thread_id = _str(obj.get("thread_id"))
            return [InitEvent(t=t, raw=obj, session_id=self.thread_id)]
        if kind == "turn.started":
            return [StatusEvent(t=t, raw=obj, status="turn_started")]
        if kind in ("item.started", "item.updated", "item.completed"):
            return self._item(obj, t, done=kind == "item.completed")
        if kind == "turn.completed":
            return [
                ResultEvent(
                    t=t,
                    raw=obj,
                    subtype="success",
                    result=self._answer or "",
                    session_id=self.thread_id,
                    usage=_map(obj.get("usage")),
                )
            ]
        if kind == "turn.failed":
            message = _str(_map(obj.get("error")).get("message")) or self._error
            return [
                ResultEvent(
                    t=t,
                    raw=obj,
                    subtype="error",
                    is_error=True,
                    result=message or "Codex reported a failed turn",
                    session_id=self.thread_id,
                )
            ]
        if kind == "error":
            message = _str(obj.get("message")) or ""
            if _is_reconnect(message):
                return [_retry_event(obj, message, t)]
            self._error = message or self._error
            return [UnknownEvent(t=t, raw=obj, event_type="error")]
        return [UnknownEvent(t=t, raw=obj, event_type=str(kind))]

    def _item(self, obj: Mapping[str, Any], t: float, *, done: bool) -> list[AgentEvent]:
        item = _map(obj.get("item"))
        kind = item.get("type")
        item_id = _str(item.get("id")) or ""
        if kind == "agent_message":
            if not done:
                return []
            text = _str(item.get("text")) or ""
            self._answer = text
            return [TextEvent(t=t, raw=obj, text=text, message_id=item_id)]
        if kind == "reasoning":
            if not done:
                return []
            return [ThinkingEvent(t=t, raw=obj, text=_str(item.get("text")) or "")]
        calls = self._calls(item, item_id)
        if calls is None:
            if kind == "error" and done:
                self._error = _str(item.get("message")) or self._error
            return [UnknownEvent(t=t, raw=obj, event_type=f"item/{kind}")]
        events: list[AgentEvent] = []
        for call_id, name, arguments in calls:
            if call_id not in self._started:
                self._started.add(call_id)
                kind = codex_kind(name, arguments)
                events.append(
                    ToolUseEvent(t=t, raw=obj, id=call_id, name=name, kind=kind, input=arguments)
                )
        if done:
            failed = item.get("status") == "failed"
            exit_code = item.get("exit_code")
            if isinstance(exit_code, int) and exit_code != 0:
                failed = True
            content = self._output(item)
            for call_id, _name, _arguments in calls:
                events.append(
                    ToolResultEvent(
                        t=t, raw=obj, tool_use_id=call_id, content=content, is_error=failed
                    )
                )
        return events

    @staticmethod
    def _calls(
        item: Mapping[str, Any], item_id: str
    ) -> list[tuple[str, str, dict[str, Any]]] | None:
        kind = item.get("type")
        if kind == "command_execution":
            return [(item_id, "shell", {"command": _str(item.get("command")) or ""})]
        if kind == "file_change":
            return [
                (f"{item_id}:{index}", "file_change", dict(change))
                for index, change in enumerate(_list(item.get("changes")))
                if isinstance(change, Mapping)
            ]
        if kind == "mcp_tool_call":
            name = f"mcp__{item.get('server')}__{item.get('tool')}"
            return [(item_id, name, dict(_map(item.get("arguments"))))]
        if kind == "web_search":
            return [(item_id, "web_search", {"query": _str(item.get("query")) or ""})]
        return None

    @staticmethod
    def _output(item: Mapping[str, Any]) -> str:
        if item.get("type") == "command_execution":
            return _str(item.get("aggregated_output")) or ""
        for key in ("result", "error"):
            if item.get(key) is not None:
                return _json_text(item[key])
        return ""
