"""A run known to the run manager: its state, its numbered events kept in a bounded replay
buffer, and its result."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator
from typing import Any

from cc_executor._status import Status

#: Run states before a run ends; any other ``status`` is final.
QUEUED = Status.QUEUED.value
RUNNING = Status.RUNNING.value
PAUSED = Status.PAUSED.value
LIVE_STATES = frozenset({QUEUED, RUNNING, PAUSED})

Event = dict[str, Any]


class ManagedRun:
    """One run known to the manager: its state, its numbered events, its result.

    ``status`` is ``queued``, ``running`` or ``paused`` while it lives, then the run's final
    status (``ok``, ``error``, ``cancelled``, ``timeout``, ``failed``, ...). ``result`` is
    the final result as a JSON-ready dict (``RunResult.to_dict()`` for Claude runs,
    ``ProcessResult.to_dict()`` for commands).
    """

    def __init__(self, run_id: str, kind: str, *, max_events: int, summary: Event) -> None:
        self.id = run_id
        self.kind = kind
        self.status = QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self.result: Event | None = None
        self.error: str | None = None
        self.details = summary
        self.cancel_requested = False
        #: Its request is saved in the service's queue folder (and a ``queued`` history row).
        self.persisted = False
        #: Not started by a draining server: it stays queued for the next one.
        self.left_queued = False
        #: Set by a drain that stops it: it ends ``interrupted`` with this reason.
        self.interrupted_because: str | None = None
        self._max_events = max_events
        self._events: list[Event] = []
        self._first_seq = 1
        self._next_seq = 1
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        self._control: Any = None
        self._task: asyncio.Task[None] | None = None
        self._text_tail: list[str] = []
        self._text_tail_len = 0

    @property
    def done(self) -> bool:
        """True once the run has ended and its last event (``completed``) is logged."""
        return self._closed

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        return self._next_seq - 1

    def append(self, event: Event) -> Event:
        """Number ``event`` (adds ``seq`` and ``run_id``), log it and wake subscribers.
        Events appended after the run closed are dropped."""
        if self._closed:
            return event
        event["seq"] = self._next_seq
        event["run_id"] = self.id
        self._next_seq += 1
        self._events.append(event)
        if len(self._events) >= self._max_events + max(1, self._max_events // 4):
            # Trimming in steps keeps appends amortised O(1).
            drop = len(self._events) - self._max_events
            del self._events[:drop]
            self._first_seq += drop
        if event.get("type") == "text_delta":
            self._keep_text(str(event.get("text", "")))
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None
        return event

    def _keep_text(self, text: str) -> None:
        self._text_tail.append(text)
        self._text_tail_len += len(text)
        while self._text_tail_len > 4000 and len(self._text_tail) > 1:
            self._text_tail_len -= len(self._text_tail.pop(0))

    def text_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters of assistant text streamed so far."""
        return "".join(self._text_tail)[-limit:]

    def events(self) -> list[Event]:
        """A copy of the events kept in memory, oldest first."""
        return list(self._events)

    def close(self) -> None:
        """No more events; subscribers finish after the last one."""
        self._closed = True
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def follow(self, after: int = 0) -> AsyncGenerator[Event, None]:
        """Every event with ``seq > after``, logged ones first, then live ones as they are
        appended; ends after the run's last event. A slow follower never slows the run: it
        reads the log at its own pace. If events it asks for were already trimmed from
        memory, it first gets ``{"type": "gap", "run_id", "missed_from", "missed_to"}``."""
        next_seq = max(after, 0) + 1
        while True:
            if next_seq < self._first_seq:
                yield {
                    "type": "gap",
                    "run_id": self.id,
                    "missed_from": next_seq,
                    "missed_to": self._first_seq - 1,
                }
                next_seq = self._first_seq
            start = next_seq - self._first_seq
            if start < len(self._events):
                batch = self._events[start:]
                next_seq = batch[-1]["seq"] + 1
                for event in batch:
                    yield event
                continue
            if self._closed:
                return
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            await self._wakeup.wait()

    def summary(self) -> Event:
        """A JSON-ready view: id, kind, status, times, last sequence number, and the result
        once there is one (else the tail of the text streamed so far)."""
        data: Event = {
            "run_id": self.id,
            "kind": self.kind,
            "status": self.status,
            "created_at": self.created_at,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "last_seq": self.last_seq,
            "live": not self._closed,
            **self.details,
        }
        if self.error:
            data["error"] = self.error
        if self.result is not None:
            data["result"] = self.result
        elif self.kind == "run":
            data["text_tail"] = self.text_tail()
        return data
