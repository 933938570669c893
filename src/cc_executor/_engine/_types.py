"""Typed results and events of the process engine."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from cc_executor._payload import payload
from cc_executor._status import Status

Stream = Literal["stdout", "stderr"]
TimeoutKind = Literal["total", "idle", "first_output"]

#: What a child's stdin can be fed from: nothing (``/dev/null``), bytes, text (UTF-8), a path
#: to a file, or an open file object with a real file descriptor.
StdinSource = bytes | bytearray | memoryview | str | Path | IO[bytes] | IO[str] | None


#: How a supervised process ended: the one status vocabulary (see
#: :mod:`cc_executor._status`). A process ends ok (exit 0), failed (a non-zero exit, or a
#: signal we did not send), timeout, idle_timeout (nothing printed for ``idle_timeout``
#: seconds, or nothing at all within ``first_output_timeout``), cancelled (``cancel()``,
#: asyncio cancellation, Ctrl-C) or spawn_failed (``error`` says why; nothing ran).
ProcessStatus = Status


class _RangeSource(Protocol):
    def read_range(self, offset: int, length: int) -> bytes: ...


@dataclass(frozen=True, slots=True)
class OutputEvent:
    """One line or chunk of a child's output, delivered as it arrives.

    ``offset`` and ``length`` locate the bytes in the stream (and in its output file). For a
    line, the bytes exclude the ``\\n``; ``complete`` is False only for a last line that the
    child ended without a newline. ``t`` is ``time.monotonic()`` when the bytes were read.

    Small payloads are held in memory. A line longer than the framing budget, or output
    queued while a consumer lagged behind, is *file-backed*: ``data`` then reads it from the
    output file on access, so nothing is lost and memory stays bounded.
    """

    stream: Stream
    kind: Literal["line", "chunk"]
    offset: int
    length: int
    t: float
    complete: bool = True
    _data: bytes | None = field(default=None, repr=False)
    _source: _RangeSource | None = field(default=None, repr=False, compare=False)

    @property
    def data(self) -> bytes:
        """The bytes (read from the output file if they are not held in memory)."""
        if self._data is not None:
            return self._data
        if self._source is None:
            return b""
        return self._source.read_range(self.offset, self.length)

    def read(self, start: int, length: int) -> bytes:
        """Bytes ``[start, start + length)`` of this line or chunk, reading only those from
        the output file when it is file-backed (for parsing a huge line in pieces)."""
        start = max(0, min(start, self.length))
        length = max(0, min(length, self.length - start))
        if self._data is not None:
            return self._data[start : start + length]
        if self._source is None:
            return b""
        return self._source.read_range(self.offset + start, length)

    @property
    def in_memory(self) -> bool:
        """True when ``data`` is held in memory rather than read back from the file."""
        return self._data is not None

    @property
    def text(self) -> str:
        """``data`` decoded as UTF-8; invalid bytes become U+FFFD."""
        return self.data.decode("utf-8", "replace")


LifecycleKind = Literal[
    "started", "paused", "resumed", "timeout", "terminating", "killing", "exited"
]


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """A change in the supervised process's life, in order with its output events."""

    kind: LifecycleKind
    t: float
    detail: Mapping[str, Any] = field(default_factory=dict)


ProcessEvent = OutputEvent | LifecycleEvent
EventCallback = Callable[[Any], Any]


@dataclass(slots=True)
class ProcessResult:
    """Everything known about one supervised run once it is over.

    Every byte the process tree wrote is in ``stdout_path``/``stderr_path`` (and hashed into
    ``stdout_sha256``/``stderr_sha256``), including when it was stopped early, in which case
    ``partial`` is True. When a file could not be written to the end (disk full, file size
    limit), its path is in ``incomplete_files`` and ``partial`` is True too: the file holds
    only the first bytes (:meth:`on_disk`), while ``stdout_bytes``/``stdout_sha256`` still
    describe the whole stream (kept in memory, up to 256 MiB). ``kill_signal`` says how far
    the stop had to go: ``"SIGTERM"`` if the tree ended within the grace period,
    ``"SIGKILL"`` if it had to be killed.

    ``peak_memory_bytes`` and ``cpu_time_s``: what the whole tree used, from its cgroup
    when it had one (``usage_source`` ``"cgroup v1"``/``"cgroup v2"``: exact, ended
    members included), else sampled from ``/proc`` (``"sampled"``: the child and its descendants,
    a lower bound); None when nothing could be measured. ``cpu_throttled_s``: time the
    tree was held back by its ``cpus`` limit.
    """

    run_id: str
    argv: list[str]
    cwd: str
    status: ProcessStatus
    exit_code: int | None = None
    signal: str | None = None
    pid: int | None = None
    duration_s: float = 0.0
    started_at: float = 0.0
    ended_at: float = 0.0
    partial: bool = False
    timed_out: TimeoutKind | None = None
    timeout_after: float | None = None
    kill_signal: str | None = None
    stdout_path: str | None = None
    stderr_path: str | None = None
    stdout_bytes: int = 0
    stderr_bytes: int = 0
    stdout_sha256: str = ""
    stderr_sha256: str = ""
    stderr_tail: str = ""
    error: str | None = None
    run_dir: str | None = None
    descendants_killed: int = 0
    stdin_bytes_written: int = 0
    warnings: list[str] = field(default_factory=list)
    incomplete_files: list[str] = field(default_factory=list)
    peak_memory_bytes: int | None = None
    cpu_time_s: float | None = None
    cpu_throttled_s: float | None = None
    usage_source: str | None = None
    _stdout_memory: bytes | None = field(default=None, repr=False)
    _stderr_memory: bytes | None = field(default=None, repr=False)
    #: Size and sha256 of what an incomplete file holds, by stream.
    _on_disk: dict[str, tuple[int, str]] = field(default_factory=dict, repr=False)

    def on_disk(self, stream: Stream) -> tuple[int, str]:
        """Size and sha256 of what the stream's file holds: the whole stream, unless the
        file is incomplete (see ``incomplete_files``)."""
        if stream in self._on_disk:
            return self._on_disk[stream]
        if stream == "stdout":
            return self.stdout_bytes, self.stdout_sha256
        return self.stderr_bytes, self.stderr_sha256

    @property
    def ok(self) -> bool:
        """True when ``status`` is ``ok``."""
        return self.status is ProcessStatus.OK

    @property
    def stdout(self) -> bytes:
        """All of stdout: from memory when it fitted the budget, else read from its file."""
        return self._read("stdout")

    @property
    def stderr(self) -> bytes:
        """All of stderr: from memory when it fitted the budget, else read from its file."""
        return self._read("stderr")

    def _read(self, stream: Stream) -> bytes:
        memory = self._stdout_memory if stream == "stdout" else self._stderr_memory
        if memory is not None:
            return memory
        path = self.stdout_path if stream == "stdout" else self.stderr_path
        if path is None or not os.path.exists(path):
            return b""
        return Path(path).read_bytes()

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the public fields, with ``schema_version``."""
        return payload(self)
