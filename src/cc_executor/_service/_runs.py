"""A run known to the run manager: its state, its numbered events kept in a bounded replay
buffer, and its result.

The buffer is bounded by count (``max_events`` per run) and by bytes (an
:class:`EventBudget` shared by every run of a server). An event whose JSON form is larger
than :data:`SPILL_BYTES` is not held in memory at all: a command's huge output line stays
a reference into the run's output file, any other huge event (a Claude Code answer, a
tool's result) is written to the server's :class:`EventSpool`; both are read back only
while a client is being sent them.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import tempfile
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from cc_executor._paths import data_home_path, private_dir
from cc_executor._status import Status

#: Run states before a run ends; any other ``status`` is final.
QUEUED = Status.QUEUED.value
RUNNING = Status.RUNNING.value
PAUSED = Status.PAUSED.value
LIVE_STATES = frozenset({QUEUED, RUNNING, PAUSED})

Event = dict[str, Any]

#: The events after which a run's line in a run list changes.
_LIFECYCLE = frozenset({"queued", "started", "paused", "resumed", "cancelled", "completed"})

#: An event whose JSON form is larger than this is kept on disk, not in memory.
SPILL_BYTES = 64 * 1024
#: What an event kept on disk costs in memory (its reference), for the byte budget.
_REFERENCE_BYTES = 200


class EventSpool:
    """Files holding the events too large to keep in memory, one per run, in a private
    folder of the data folder (not ``/tmp``, often memory itself), created on first use and
    removed by :meth:`close`. A server that was killed leaves its folder: the next spool
    created removes the folders of servers no longer running."""

    def __init__(self) -> None:
        self._dir: str | None = None

    def write(self, run_id: str, data: bytes) -> tuple[str, int]:
        """Append ``data`` to the run's file; returns the file and the offset written at."""
        if self._dir is None:
            self._dir = _new_spool_dir()
        path = os.path.join(self._dir, run_id)
        with open(path, "ab") as file:
            offset = file.tell()
            file.write(data)
        return path, offset

    def discard(self, run_id: str) -> None:
        """Remove the run's file (the run left the server's memory)."""
        if self._dir is not None:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self._dir, run_id))

    def close(self) -> None:
        """Remove every file (the server stops)."""
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None


_SPOOL_PREFIX = "service-events-"


def _new_spool_dir() -> str:
    home = data_home_path()
    private_dir(home)
    for name in os.listdir(home):
        pid = name[len(_SPOOL_PREFIX) :].split("-", 1)[0]
        if name.startswith(_SPOOL_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(home, name), ignore_errors=True)
    return tempfile.mkdtemp(prefix=f"{_SPOOL_PREFIX}{os.getpid()}-", dir=home)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class EventBudget:
    """The bytes of events every run of a server may hold in memory together (their JSON
    size). Over ``limit``, the oldest events are dropped down to three quarters of it:
    finished runs' first (oldest run first), then live runs'; each run keeps its newest
    event. A follower asking for dropped events gets a ``gap`` event (the full record is
    the run's files on disk)."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError(f"max_event_bytes must be >= 1, got {limit}")
        self.limit = limit
        self.used = 0
        self._runs: dict[ManagedRun, None] = {}

    def charge(self, run: ManagedRun, size: int) -> None:
        """Count ``size`` more bytes (negative: fewer) held by ``run``."""
        self.used += size
        self._runs.setdefault(run)
        if self.used > self.limit:
            self._shed()

    def release(self, run: ManagedRun) -> None:
        """Forget ``run`` and its bytes (it left the server's memory)."""
        if run in self._runs:
            del self._runs[run]
            self.used -= run.held_bytes

    def _shed(self) -> None:
        target = self.limit * 3 // 4
        for finished in (True, False):
            for run in list(self._runs):
                if self.used <= target:
                    return
                if run.done == finished:
                    run.shed(self.used - target)


class _OnDisk:
    """An event kept on disk: what it starts as, and how to read the rest back."""

    __slots__ = ("head", "load")

    def __init__(self, head: Event, load: Callable[[], Event]) -> None:
        self.head = head
        self.load = load

    def read(self) -> Event:
        """The whole event; if its bytes are gone, its head saying so."""
        try:
            event = self.load()
        except (OSError, ValueError) as exc:
            return {**self.head, "unavailable": f"event data no longer readable: {exc}"}
        for key in ("seq", "run_id"):
            if key in self.head:
                event[key] = self.head[key]
        return event


def _json(event: Event) -> bytes:
    """``event`` as JSON, for its size and the spool. What JSON cannot hold (an integer over
    64 bits from a tool's input) is written as text, never an error that ends the run."""
    try:
        return orjson.dumps(event, default=str)
    except TypeError:
        return orjson.dumps(_plain(event))


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        return str(value)
    return value


def _seq(entry: Event | _OnDisk) -> int:
    seq: int = entry.head["seq"] if isinstance(entry, _OnDisk) else entry["seq"]
    return seq


def _read_json(path: str, offset: int, length: int) -> Event:
    with open(path, "rb") as file:
        file.seek(offset)
        data = file.read(length)
    if len(data) != length:
        raise ValueError(f"{len(data)} of {length} bytes left")
    loaded: Event = orjson.loads(data)
    return loaded


class ManagedRun:
    """One run known to the manager: its state, its numbered events, its result.

    ``status`` is ``queued``, ``running`` or ``paused`` while it lives, then the run's final
    status (``ok``, ``error``, ``cancelled``, ``timeout``, ``failed``, ...). ``result`` is
    the final result as a JSON-ready dict (``RunResult.to_dict()`` for Claude runs,
    ``ProcessResult.to_dict()`` for commands).
    """

    def __init__(
        self,
        run_id: str,
        kind: str,
        *,
        max_events: int,
        summary: Event,
        budget: EventBudget | None = None,
        spool: EventSpool | None = None,
    ) -> None:
        self.id = run_id
        self.kind = kind
        self.status = QUEUED
        self.created_at = time.time()
        self.started_at: float | None = None
        self.ended_at: float | None = None
        self._result: Event | _OnDisk | None = None
        self.error: str | None = None
        self.details = summary
        self.cancel_requested = False
        #: Tool calls waiting for a caller's decision (a permission policy's ``ask``), by
        #: request id: the request and the future its decision resolves.
        self.pending_permissions: dict[str, tuple[Any, asyncio.Future[Any]]] = {}
        #: Its request is saved in the service's queue folder (and a ``queued`` history row).
        self.persisted = False
        #: Not started by a draining server: it stays queued for the next one.
        self.left_queued = False
        #: Set by a drain that stops it: it ends ``interrupted`` with this reason.
        self.interrupted_because: str | None = None
        #: A task list's ``env`` (it may hold API keys, so it is never written or shown):
        #: what a resume on this server reuses when its caller gives none.
        self.resume_env: dict[str, str] | None = None
        self._max_events = max_events
        self._events: list[Event | _OnDisk] = []
        self._sizes: list[int] = []
        self.held_bytes = 0
        self._budget = budget
        self._spool = spool
        self._first_seq = 1
        self._next_seq = 1
        self._wakeup: asyncio.Event | None = None
        self._closed = False
        self._control: Any = None
        self._task: asyncio.Task[None] | None = None
        self._text_tail: list[str] = []
        self._text_tail_len = 0
        #: Called after each lifecycle event (the run list's live feed).
        self.on_change: Callable[[ManagedRun], None] | None = None

    @property
    def done(self) -> bool:
        """True once the run has ended and its last event (``completed``) is logged."""
        return self._closed

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest event (0 before the first)."""
        return self._next_seq - 1

    @property
    def result(self) -> Event | None:
        """The final result (read back from disk when it was too large to keep)."""
        kept = self._result
        return kept.read() if isinstance(kept, _OnDisk) else kept

    @result.setter
    def result(self, value: Event | None) -> None:
        self._result = value
        if value is not None and self._spool is not None:
            data = _json(value)
            if len(data) > SPILL_BYTES:
                self._result = self._spilled({}, data) or value

    def append(self, event: Event) -> Event:
        """Number ``event`` (adds ``seq`` and ``run_id``), log it and wake subscribers.
        Events appended after the run closed are dropped. An event larger than
        :data:`SPILL_BYTES` goes to the spool (when the run has one)."""
        if self._closed:
            return event
        event["seq"] = self._next_seq
        event["run_id"] = self.id
        data = _json(event) if self._budget or self._spool else b""
        size = len(data)
        entry: Event | _OnDisk = event
        if size > SPILL_BYTES and self._spool is not None:
            head = {"type": event.get("type"), "seq": event["seq"], "run_id": self.id}
            spilled = self._spilled(head, data)
            if spilled is not None:
                entry, size = spilled, _REFERENCE_BYTES
        del data
        self._keep(entry, size)
        kind = event.get("type")
        if kind == "text_delta":
            self._keep_text(str(event.get("text", "")))
        elif kind in _LIFECYCLE and self.on_change is not None:
            self.on_change(self)
        return event

    def append_on_disk(self, head: Event, load: Callable[[], Event]) -> Event:
        """Number and log an event whose body stays on disk (a command's huge output line,
        in its output file): ``head`` is what is known of it now, ``load()`` reads the whole
        event back (without ``seq`` and ``run_id``) each time a follower is sent it."""
        if self._closed:
            return head
        head["seq"] = self._next_seq
        head["run_id"] = self.id
        self._keep(_OnDisk(head, load), _REFERENCE_BYTES)
        return head

    def _spilled(self, head: Event, data: bytes) -> _OnDisk | None:
        assert self._spool is not None
        try:
            path, offset = self._spool.write(self.id, data)
        except OSError:
            return None  # kept in memory instead, and counted against the budget
        length = len(data)
        return _OnDisk(head, lambda: _read_json(path, offset, length))

    def _keep(self, entry: Event | _OnDisk, size: int) -> None:
        self._next_seq += 1
        self._events.append(entry)
        self._sizes.append(size)
        self.held_bytes += size
        if len(self._events) >= self._max_events + max(1, self._max_events // 4):
            # Trimming in steps keeps appends amortised O(1).
            self._drop(len(self._events) - self._max_events)
        if self._budget is not None:
            self._budget.charge(self, size)
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    def _drop(self, count: int) -> None:
        """Drop the ``count`` oldest events, and uncount their bytes."""
        freed = sum(self._sizes[:count])
        del self._events[:count]
        del self._sizes[:count]
        self._first_seq += count
        self.held_bytes -= freed
        if self._budget is not None:
            self._budget.used -= freed

    def shed(self, excess: int) -> None:
        """Drop the oldest events until ``excess`` bytes are freed, keeping the newest one
        (for the byte budget, which :meth:`_drop` updates)."""
        count, freed = 0, 0
        while freed < excess and count < len(self._sizes) - 1:
            freed += self._sizes[count]
            count += 1
        if count:
            self._drop(count)

    def discard(self) -> None:
        """The run leaves the server's memory: release its bytes and its spool file."""
        if self._budget is not None:
            self._budget.release(self)
        if self._spool is not None:
            self._spool.discard(self.id)

    def _keep_text(self, text: str) -> None:
        self._text_tail.append(text)
        self._text_tail_len += len(text)
        while self._text_tail_len > 4000 and len(self._text_tail) > 1:
            self._text_tail_len -= len(self._text_tail.pop(0))

    def text_tail(self, limit: int = 2000) -> str:
        """The last ``limit`` characters of assistant text streamed so far."""
        return "".join(self._text_tail)[-limit:]

    def events(self) -> list[Event]:
        """A copy of the events kept, oldest first (those on disk read back)."""
        return [e.read() if isinstance(e, _OnDisk) else e for e in self._events]

    def close(self) -> None:
        """No more events; subscribers finish after the last one. The control surface is
        let go: it may hold the whole result (a Claude Code answer)."""
        self._closed = True
        self._control = None
        if self._wakeup is not None:
            self._wakeup.set()
            self._wakeup = None

    async def follow(self, after: int = 0) -> AsyncGenerator[Event, None]:
        """Every event with ``seq > after``, logged ones first, then live ones as they are
        appended; ends after the run's last event. A slow follower never slows the run: it
        reads the log at its own pace. If events it asks for were already trimmed from
        memory, it first gets ``{"type": "gap", "run_id", "missed_from", "missed_to"}``.
        An event kept on disk is read back (in a worker thread) as it is sent."""
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
                next_seq = _seq(batch[-1]) + 1
                for entry in batch:
                    if isinstance(entry, _OnDisk):
                        yield await asyncio.to_thread(entry.read)
                    else:
                        yield entry
                continue
            if self._closed:
                return
            if self._wakeup is None:
                self._wakeup = asyncio.Event()
            await self._wakeup.wait()

    async def asummary(self) -> Event:
        """:meth:`summary`, reading a result kept on disk in a worker thread."""
        if isinstance(self._result, _OnDisk):
            return await asyncio.to_thread(self.summary)
        return self.summary()

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


def list_view(run: ManagedRun) -> Event:
    """A run as one line of a run list: its summary without the answer or streamed text
    (which may be megabytes), with the cost, tokens and duration of its result."""
    data: Event = {
        "run_id": run.id,
        "kind": run.kind,
        "status": run.status,
        "created_at": run.created_at,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "live": not run.done,
        **run.details,
    }
    if run.error:
        data["error"] = run.error[:500]
    kept = run._result
    if isinstance(kept, dict):
        usage = kept.get("usage") or {}
        data["cost_usd"] = kept.get("cost_usd")
        data["duration_s"] = kept.get("duration_s")
        data["model"] = kept.get("model") or data.get("model")
        if isinstance(usage, dict):
            data["input_tokens"] = usage.get("input_tokens")
            data["output_tokens"] = usage.get("output_tokens")
    return data


@dataclass(frozen=True)
class RunFilter:
    """The filters of a run list (``GET /runs``, ``GET /runs/events``) applied to a run
    in memory: each given one must hold. ``since``/``until``: when the server accepted
    the run; ``text``: in the prompt's preview, whatever the case."""

    status: str | None = None
    kind: str | None = None
    since: float | None = None
    until: float | None = None
    parent_id: str | None = None
    agent: str | None = None
    model: str | None = None
    text: str | None = None

    def matches(self, run: ManagedRun) -> bool:
        """True when ``run`` passes every filter given."""
        details = run.details
        return not (
            (self.status and run.status != self.status)
            or (self.kind and run.kind != self.kind)
            or (self.since and run.created_at < self.since)
            or (self.until and run.created_at >= self.until)
            or (self.parent_id and details.get("parent_id") != self.parent_id)
            or (self.agent and details.get("agent") != self.agent)
            or (self.model and details.get("model") != self.model)
            or (
                self.text
                and self.text.lower() not in str(details.get("prompt_preview", "")).lower()
            )
        )


class RunFeed:
    """The live feed of a server's run list (``GET /runs/events``): each subscriber gets
    every run's new list line as it changes, as a ``run`` event. A subscriber with a
    :class:`RunFilter` gets ``run`` for a run that matches it and ``leave`` (the same
    line) for one that does not, or no longer does: what it shows of that run is out of
    its list. A subscriber too slow to keep up with ``backlog`` changes gets ``{"type":
    "gap"}`` (reload the list) instead of growing memory."""

    def __init__(self, backlog: int = 1000) -> None:
        self._backlog = backlog
        self._subscribers: dict[asyncio.Queue[Event], RunFilter | None] = {}

    def publish(self, run: ManagedRun) -> None:
        """Send ``run``'s list line to every subscriber."""
        if not self._subscribers:
            return
        line = list_view(run)
        event, leave = {"type": "run", "run": line}, {"type": "leave", "run": line}
        for queue, wanted in list(self._subscribers.items()):
            if queue.qsize() >= self._backlog - 1:
                if queue.qsize() == self._backlog - 1:
                    queue.put_nowait({"type": "gap"})
                continue
            queue.put_nowait(event if wanted is None or wanted.matches(run) else leave)

    def subscribe(self, wanted: RunFilter | None = None) -> asyncio.Queue[Event]:
        """A new subscriber's queue: it gets every change from now on (of the runs
        ``wanted`` matches as ``run``, of the others as ``leave``), until
        :meth:`unsubscribe`."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        self._subscribers[queue] = wanted
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event]) -> None:
        """Stop sending changes to ``queue``."""
        self._subscribers.pop(queue, None)
