"""JSON Lines output of an agent CLI into typed events: the framing every JSONL agent shares.

A subclass says what one JSON object means (``_events``); this base turns stdout lines,
file-backed huge lines and whole event logs into those objects. Tolerant by design: a line
that is not a JSON object becomes a :class:`NoiseEvent`, and nothing here raises on any
input. Parsing is one ``orjson.loads`` per line: linear in the line's size.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, BinaryIO

import orjson

from cc_executor._agents._bigjson import NotHandled, loads_large
from cc_executor._agents._types import AgentEvent, NoiseEvent

if TYPE_CHECKING:
    from cc_executor._engine import OutputEvent

_NOISE_PREVIEW = 2000
#: File-backed lines longer than this are parsed in pieces.
LARGE_LINE = 1 << 20


class JsonLinesParser:
    """The framing of a JSONL stream; subclasses implement :meth:`_events`."""

    def _events(self, obj: dict[str, Any], t: float) -> list[AgentEvent]:
        """The events of one JSON object of the stream."""
        raise NotImplementedError

    def parse_output(self, item: OutputEvent) -> list[AgentEvent]:
        """Events for one line of the CLI's stdout as the process engine delivers it.

        A file-backed line (longer than the framing budget: a whole 20 MB answer) is parsed
        in pieces from the event log (:mod:`cc_executor._agents._bigjson`), in little more
        memory than the strings it holds; anything that parser does not take on is parsed
        whole, as every other line.
        """
        if not item.in_memory and item.length > LARGE_LINE:
            return self.parse_large(item.read, item.length, item.t)
        return self.parse(item.data, item.t)

    def parse_large(
        self, read: Callable[[int, int], bytes], length: int, t: float
    ) -> list[AgentEvent]:
        """Events for a line of ``length`` bytes that ``read(start, size)`` reads a piece
        at a time: parsed in pieces, or whole if the piecewise parser declines it."""
        try:
            obj = loads_large(read, 0, length)
        except (NotHandled, RecursionError):
            pass
        else:
            if isinstance(obj, dict):
                return self._events(obj, t)
        return self.parse(read(0, length), t)

    def parse_log(self, log: BinaryIO) -> Iterator[AgentEvent]:
        """The events of a whole event log (an open binary file), a line at a time; a line
        longer than :data:`LARGE_LINE` is never read whole (see :meth:`parse_large`)."""
        fd = log.fileno()
        offset = 0
        while True:
            line = log.readline(LARGE_LINE + 1)
            if not line:
                return
            if len(line) <= LARGE_LINE or line.endswith(b"\n"):
                offset += len(line)
                yield from self.parse(line, 0.0)
                continue
            start, length = offset, len(line)
            del line
            part = b""
            while True:  # find the end of the long line
                part = log.readline(LARGE_LINE)
                length += len(part)
                if not part or part.endswith(b"\n"):
                    break
            offset = start + length
            if part.endswith(b"\n"):
                length -= 1

            def read(at: int, size: int, start: int = start) -> bytes:
                return os.pread(fd, size, start + at)

            yield from self.parse_large(read, length, 0.0)

    def parse(self, line: bytes | str, t: float) -> list[AgentEvent]:
        """Events for one line (usually one; an assistant line may hold several blocks)."""
        obj: Any = None
        try:
            # orjson: several times faster than the standard library. On a huge line every
            # whole-line parser (json, orjson, ijson) peaks near 3x the line: see
            # ``parse_output`` for those.
            obj = orjson.loads(line)
        except (ValueError, RecursionError):
            try:  # what orjson refuses but JSON allows (integers beyond 64 bits, ...)
                obj = json.loads(line)
            except (ValueError, RecursionError):
                obj = None
        if not isinstance(obj, dict):
            text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
            text = text.strip()
            if not text:
                return []
            return [NoiseEvent(t=t, text=text[:_NOISE_PREVIEW])]
        return self._events(obj, t)
