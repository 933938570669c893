"""From raw reads to events: a bounded queue and a byte-level line framer.

The reader side only appends *records* (stream, offset, length, time, maybe the bytes) to
the queue, so draining the pipes never waits for a consumer and does no per-line work when
nobody listens. Framing into lines happens on the consumer side.

Memory stays bounded whatever the consumer does: once the queued bytes pass the budget, new
records keep only their file position (the bytes are in the output file), and consecutive
file-backed records of a stream merge into one. Past ``max_records`` queued records they
merge even when records of the other stream came in between; only then can lines of stdout
and stderr be delivered out of their relative order.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from cc_executor._engine._capture import StreamCapture
from cc_executor._engine._types import LifecycleEvent, OutputEvent, Stream

#: File-backed records are read back in blocks of this size.
_READ_BACK = 1024 * 1024


@dataclass(slots=True)
class _Record:
    stream: Stream
    offset: int
    length: int
    t: float
    data: bytes | None


class EventQueue:
    """Single-producer, single-consumer queue of output records and lifecycle events."""

    def __init__(self, *, memory_budget: int, max_records: int = 4096) -> None:
        self._items: deque[_Record | LifecycleEvent] = deque()
        self._bytes = 0
        self._budget = memory_budget
        self._max_records = max_records
        self._last: dict[Stream, _Record] = {}
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    def push_output(self, stream: Stream, offset: int, data: bytes | memoryview, t: float) -> None:
        """Queue ``data`` (read at monotonic time ``t``) of ``stream`` at ``offset``."""
        n = len(data)
        last = self._last.get(stream)
        # Once a stream has spilled, it stays file-backed until the consumer catches up, so
        # spilled records keep merging instead of alternating with small in-memory ones.
        spilled = last is not None and last.data is None
        if not spilled and self._bytes + n <= self._budget:
            record = _Record(stream, offset, n, t, bytes(data))
            self._bytes += n
        else:
            if (
                last is not None
                and last.data is None
                and last.offset + last.length == offset
                and (
                    (self._items and self._items[-1] is last)
                    or len(self._items) >= self._max_records
                )
            ):
                last.length += n
                self._wake()
                return
            record = _Record(stream, offset, n, t, None)
        self._items.append(record)
        self._last[stream] = record
        self._wake()

    def push_lifecycle(self, event: LifecycleEvent) -> None:
        """Queue a lifecycle event."""
        self._items.append(event)
        self._wake()

    def close(self) -> None:
        """No more items will come; the consumer ends after the queued ones."""
        self._closed = True
        self._wake()

    async def get(self) -> _Record | LifecycleEvent | None:
        """The next item, waiting if needed; None once closed and empty."""
        while not self._items:
            if self._closed:
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        item = self._items.popleft()
        if isinstance(item, _Record):
            if item.data is not None:
                self._bytes -= item.length
            if self._last.get(item.stream) is item:
                del self._last[item.stream]
        return item


class LineFramer:
    """Splits one stream into lines at ``\\n`` with no length limit.

    A line is held in memory while it is at most ``max_line_memory`` bytes; a longer one is
    not buffered at all and comes out file-backed (its ``data`` reads the output file).
    """

    def __init__(self, stream: Stream, source: StreamCapture, max_line_memory: int) -> None:
        self._stream: Stream = stream
        self._source = source
        self._max = max_line_memory
        self._parts: list[bytes] = []
        self._pending = 0
        self._spilled = False
        self._line_start = 0
        self._t_start = 0.0

    def _event(
        self, offset: int, length: int, t: float, data: bytes | None, complete: bool
    ) -> OutputEvent:
        return OutputEvent(
            self._stream,
            "line",
            offset,
            length,
            t,
            complete,
            data,
            self._source if data is None else None,
        )

    def feed(self, data: bytes, offset: int, t: float) -> Iterator[OutputEvent]:
        """Lines completed by ``data``, the stream's bytes at ``offset`` read at time ``t``."""
        # find() rather than split(): the bytes of a line already spilled to the file are
        # never copied (a 20 MB line is 20 copies of 1 MiB otherwise).
        start = 0
        size = len(data)
        while (nl := data.find(b"\n", start)) >= 0:
            if not self._pending and not self._spilled:
                yield OutputEvent(
                    self._stream, "line", offset + start, nl - start, t, True, data[start:nl]
                )
            else:
                length = offset + nl - self._line_start
                if self._spilled:
                    yield self._event(self._line_start, length, self._t_start, None, True)
                else:
                    self._parts.append(data[start:nl])
                    line = b"".join(self._parts)
                    yield OutputEvent(
                        self._stream, "line", self._line_start, length, self._t_start, True, line
                    )
                self._parts = []
                self._pending = 0
                self._spilled = False
            start = nl + 1
        if start < size:
            if not self._pending and not self._spilled:
                self._line_start = offset + start
                self._t_start = t
            self._pending += size - start
            if self._spilled:
                pass
            elif self._pending > self._max:
                self._parts = []
                self._spilled = True
            else:
                self._parts.append(data[start:])

    def finish(self, t: float) -> OutputEvent | None:
        """The last line if the stream ended without a newline."""
        if not self._pending:
            return None
        data = None if self._spilled else b"".join(self._parts)
        event = self._event(self._line_start, self._pending, self._t_start, data, False)
        self._parts = []
        self._pending = 0
        self._spilled = False
        return event


def record_blocks(record: _Record, source: StreamCapture) -> Iterator[tuple[int, bytes]]:
    """The record's bytes as (offset, bytes) blocks, read back from the file if needed."""
    if record.data is not None:
        yield record.offset, record.data
        return
    position = record.offset
    end = record.offset + record.length
    while position < end:
        block = source.read_range(position, min(_READ_BACK, end - position))
        if not block:
            return
        yield position, block
        position += len(block)


#: A stdout line longer than this always counts as progress (see :class:`QuietLines`).
QUIET_LINE_LIMIT = 4096


class QuietLines:
    """Judges stdout as it is read, for the idle and first-output timers: does a read hold
    anything but lines that ``quiet`` calls quiet (a notice that the child is only waiting,
    such as a reconnect message)?

    A line is judged once complete; one longer than :data:`QUIET_LINE_LIMIT` counts as
    progress as soon as that much of it has arrived (a long answer streaming slowly keeps
    the run alive). ``quiet`` is called on the event loop for each complete short line: it
    must be cheap; an exception from it counts the line as progress.
    """

    def __init__(self, quiet: Callable[[bytes], bool], limit: int = QUIET_LINE_LIMIT) -> None:
        self._quiet = quiet
        self._limit = limit
        self._pending = bytearray()
        self._long = False

    def _counts(self, line: bytes) -> bool:
        try:
            return not self._quiet(line)
        except Exception:  # the caller's predicate: a bug in it never stops a run
            return True

    def progress(self, buf: bytearray, n: int) -> bool:
        """Whether ``buf[:n]``, the next bytes of the stream, hold progress."""
        found = False
        start = 0
        while (nl := buf.find(b"\n", start, n)) >= 0:
            if self._long:
                self._long = False  # the end of a long line: its bytes count
                found = True
            else:
                self._pending += buf[start:nl]
                if len(self._pending) > self._limit or self._counts(bytes(self._pending)):
                    found = True
                self._pending.clear()
            start = nl + 1
        if start < n:
            if self._long or len(self._pending) + n - start > self._limit:
                self._long = True
                self._pending.clear()
                found = True
            else:
                self._pending += buf[start:n]
        return found
