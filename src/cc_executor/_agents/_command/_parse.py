"""Output of a command agent into typed events: plain text, or JSON Lines read through the
spec's field mapping. (Claude Code's stream-json uses the Claude parser.)"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from cc_executor._agents._jsonl import JsonLinesParser
from cc_executor._agents._types import AgentEvent, InitEvent, TextDeltaEvent, UnknownEvent

if TYPE_CHECKING:
    from cc_executor._agents._command._spec import JsonlMapping
    from cc_executor._engine import OutputEvent

_MESSAGE = "output"


def _field(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        if not isinstance(obj, Mapping):
            return None
        obj = obj.get(part)
    return obj


class TextParser:
    """Every stdout line is answer text; lines are joined with newlines."""

    def __init__(self) -> None:
        self._first = True

    def _delta(self, text: str, t: float) -> list[AgentEvent]:
        if not self._first:
            text = "\n" + text
        self._first = False
        return [TextDeltaEvent(t=t, text=text, message_id=_MESSAGE)]

    def parse(self, line: bytes | str, t: float) -> list[AgentEvent]:
        text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
        return self._delta(text.rstrip("\r\n"), t)

    def parse_output(self, item: OutputEvent) -> list[AgentEvent]:
        data = item.data if item.in_memory else item.read(0, item.length)
        return self.parse(data, item.t)

    def parse_log(self, log: BinaryIO) -> Iterator[AgentEvent]:
        for line in log:
            yield from self.parse(line, 0.0)


class JsonlParser(JsonLinesParser):
    """JSON Lines whose answer text sits in the spec's ``jsonl.text`` field."""

    def __init__(self, mapping: JsonlMapping) -> None:
        self._mapping = mapping
        self._session_seen = False
        self._first = True

    def _events(self, obj: dict[str, Any], t: float) -> list[AgentEvent]:
        events: list[AgentEvent] = []
        if self._mapping.session and not self._session_seen:
            session = _field(obj, self._mapping.session)
            if isinstance(session, str) and session:
                self._session_seen = True
                events.append(InitEvent(t=t, raw=obj, session_id=session))
        matches = all(_field(obj, k) == v for k, v in self._mapping.match.items())
        text = _field(obj, self._mapping.text) if matches else None
        if isinstance(text, str):
            events.append(TextDeltaEvent(t=t, raw=obj, text=text, message_id=_MESSAGE))
        elif not events:
            events.append(UnknownEvent(t=t, raw=obj, event_type=str(obj.get("type", ""))))
        return events
