"""Gemini CLI ``--output-format stream-json`` lines into typed events.

Lines: ``init {session_id, model}``, ``message`` (the user's prompt echoed, then the
assistant's text as ``delta`` pieces), ``tool_use {tool_name, tool_id, parameters}``,
``tool_result {tool_id, status, output | error}``, ``error``, and ``result {status, error,
stats}``. The result line carries no answer text: the answer is the assistant text after the
last tool call, which this parser keeps (earlier text is closed as a block when a tool runs).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from cc_executor._agents._jsonl import JsonLinesParser
from cc_executor._agents._kinds import gemini_kind
from cc_executor._agents._types import (
    AgentEvent,
    InitEvent,
    ResultEvent,
    TextDeltaEvent,
    TextEvent,
    ToolResultEvent,
    ToolUseEvent,
    UnknownEvent,
)

#: What a ``tool_result`` error names a tool the CLI did not offer (``Tool "write_file" not
#: found. Did you mean ...``): its approval mode leaves out what would need an approval.
_NOT_OFFERED = re.compile(r'Tool "([^"]+)" not found')
#: How to have Gemini CLI offer them (its ``--approval-mode``, our ``--permission-mode``).
_OFFER_HINT = (
    "have Gemini CLI offer them with permission_mode (--permission-mode) auto_edit "
    "(edits) or yolo (every tool, the shell too)"
)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class GeminiStreamParser(JsonLinesParser):
    """Turns Gemini CLI's JSONL into events; keeps the session id and the text of the
    assistant block being written."""

    def __init__(self) -> None:
        self.session_id: str | None = None
        self._block = 0
        self._text: list[str] = []
        self._answer = ""
        #: What the CLI said in its own ``error`` lines (severity ``warning`` or ``error``:
        #: "Loop detected, stopping execution", "Maximum session turns exceeded", a safety
        #: block, ...), for the result's warnings: they explain a short or empty answer.
        self._notes: list[str] = []
        #: The tool calls the CLI refused because it did not offer the tool (its headless
        #: ``default`` approval mode offers no write or shell tool): denials, as Claude
        #: Code's, since the model answers as if the work was done.
        self._refused: list[dict[str, str]] = []

    def _close_block(self, t: float, obj: Mapping[str, Any]) -> list[AgentEvent]:
        if not self._text:
            return []
        text = "".join(self._text)
        self._text = []
        self._answer = text
        event = TextEvent(t=t, raw=obj, text=text, message_id=f"gemini-{self._block}")
        self._block += 1
        return [event]

    def _events(self, obj: dict[str, Any], t: float) -> list[AgentEvent]:
        kind = obj.get("type")
        if kind == "init":
            self.session_id = _str(obj.get("session_id"))
            return [
                InitEvent(t=t, raw=obj, session_id=self.session_id, model=_str(obj.get("model")))
            ]
        if kind == "message":
            if obj.get("role") != "assistant":
                return [UnknownEvent(t=t, raw=obj, event_type=f"message/{obj.get('role')}")]
            text = _str(obj.get("content")) or ""
            if obj.get("delta") is not True:
                self._text = [text]
                return self._close_block(t, obj)
            self._text.append(text)
            return [TextDeltaEvent(t=t, raw=obj, text=text, message_id=f"gemini-{self._block}")]
        if kind == "tool_use":
            events = self._close_block(t, obj)
            # A tool call starts a new turn: the answer is what comes after the last one.
            self._answer = ""
            name, parameters = _str(obj.get("tool_name")) or "", _map(obj.get("parameters"))
            events.append(
                ToolUseEvent(
                    t=t,
                    raw=obj,
                    id=_str(obj.get("tool_id")) or "",
                    name=name,
                    kind=gemini_kind(name, parameters),
                    input=parameters,
                )
            )
            return events
        if kind == "tool_result":
            error = _map(obj.get("error"))
            content = _str(obj.get("output")) or _str(error.get("message")) or ""
            missing = _NOT_OFFERED.match(_str(error.get("message")) or "")
            if error.get("type") == "tool_not_registered" and missing:
                tool = missing.group(1)
                self._refused.append(
                    {"tool_name": tool, "tool_use_id": _str(obj.get("tool_id")) or "",
                     "hint": _OFFER_HINT}
                )  # fmt: skip
                self._notes.append(
                    f"Gemini CLI did not offer the tool {tool} (its approval mode leaves it "
                    f"out), so that call was refused: {_OFFER_HINT}"
                )
            return [
                ToolResultEvent(
                    t=t,
                    raw=obj,
                    tool_use_id=_str(obj.get("tool_id")) or "",
                    content=content,
                    is_error=obj.get("status") != "success",
                )
            ]
        if kind == "error":
            said = _str(obj.get("message")) or "(no message)"
            self._notes.append(f"Gemini CLI ({_str(obj.get('severity')) or 'error'}): {said}")
            return [UnknownEvent(t=t, raw=obj, event_type="error")]
        if kind == "result":
            events = self._close_block(t, obj)
            ok = obj.get("status") == "success"
            message = _str(_map(obj.get("error")).get("message"))
            fallback = self._notes[-1] if self._notes else "Gemini CLI reported an error"
            events.append(
                ResultEvent(
                    t=t,
                    raw=obj,
                    subtype="success" if ok else "error",
                    is_error=not ok,
                    result=self._answer if ok else (message or fallback),
                    session_id=self.session_id,
                    usage=_map(obj.get("stats")),
                    warnings=tuple(self._notes),
                    permission_denials=tuple(self._refused),
                )
            )
            return events
        return [UnknownEvent(t=t, raw=obj, event_type=str(kind))]
