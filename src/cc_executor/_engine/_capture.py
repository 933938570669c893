"""Capturing one output stream: to its file, into its hash, with bounded memory."""

from __future__ import annotations

import hashlib
import os

#: After a write error (disk full, file too large) output is kept in memory up to this
#: much, so a transient disk problem loses nothing unless the output is enormous.
_OVERFLOW_LIMIT = 256 * 1024 * 1024


class StreamCapture:
    """Writes every byte of one stream to ``path``, hashes it, and keeps two memory copies:
    the whole stream while it fits ``memory_budget`` (then dropped: the file has it), and
    the last ``tail_bytes`` for error messages.

    A write error does not stop the capture: the error is recorded, later bytes are kept in
    memory (up to 256 MiB, then counted as lost), and hashing goes on over every byte the
    child wrote. The file then holds only the first ``file_size`` bytes, whose digest is
    ``file_sha256``: receipts describe the file as it is, not the stream.
    """

    def __init__(
        self,
        path: str,
        *,
        memory_budget: int,
        tail_bytes: int,
        child_writes: bool = False,
        create: bool = True,
    ) -> None:
        self.path = path
        #: The child writes the file itself (its stdout *is* the file) and the capture only
        #: reads it back: then ``feed`` hashes and counts, and never writes.
        self.child_writes = child_writes
        self.size = 0
        self.file_size = 0
        self.lost = 0
        self.write_error: str | None = None
        self._hash = hashlib.sha256()
        #: The digest of what the file holds, frozen at a write error (until then the
        #: file holds the whole stream and ``_hash`` is its digest too).
        self._file_hash: hashlib._Hash | None = None
        self._memory: bytearray | None = bytearray() if memory_budget > 0 else None
        self._budget = memory_budget
        self._tail = bytearray()
        self._tail_bytes = tail_bytes
        self._overflow = bytearray()
        self._kept_from = 0
        #: ``create=False``: the file exists already, made by whoever started the child.
        self._fd: int | None = None
        if create:
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
            self._fd = os.open(path, flags, 0o600)

    def feed(self, data: bytes | memoryview) -> None:
        """Record ``data`` (the next bytes of the stream)."""
        n = len(data)
        if not self.child_writes and self._fd is not None:
            self._write(data)  # before hashing: an error freezes the file's digest first
        self.size += n
        self._hash.update(data)
        if self._memory is not None:
            if len(self._memory) + n <= self._budget:
                self._memory += data
            else:
                self._memory = None
        if self._tail_bytes:
            self._tail += data[-self._tail_bytes :]
            if len(self._tail) > 2 * self._tail_bytes:
                del self._tail[: -self._tail_bytes]
        if self.child_writes:
            self.file_size = self.size
        elif self._fd is None:
            self._keep(data[self._kept_from :])
        self._kept_from = 0

    def _write(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        assert self._fd is not None
        while view:
            try:
                written = os.write(self._fd, view)
            except OSError as exc:
                self.write_error = f"cannot write {self.path}: {exc.strerror or exc}"
                os.close(self._fd)
                self._fd = None
                done = len(data) - len(view)
                self._file_hash = self._hash.copy()
                self._file_hash.update(data[:done])
                self._kept_from = done  # the rest of this chunk goes to memory
                return
            self.file_size += written
            view = view[written:]

    def _keep(self, data: bytes | memoryview) -> None:
        room = _OVERFLOW_LIMIT - len(self._overflow)
        self._overflow += data[:room]
        self.lost += max(0, len(data) - room)

    @property
    def fd(self) -> int | None:
        """The open file (written by us, or handed to the child as its output)."""
        return self._fd

    def close(self) -> None:
        """Close the file; the memory copies stay readable."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    @property
    def sha256(self) -> str:
        """Hex sha256 of every byte fed so far."""
        return self._hash.hexdigest()

    @property
    def file_sha256(self) -> str:
        """Hex sha256 of what the file holds (its first ``file_size`` bytes)."""
        return (self._file_hash or self._hash).hexdigest()

    @property
    def incomplete(self) -> bool:
        """True when the file holds fewer bytes than the stream had (a write error)."""
        return self.file_size < self.size

    @property
    def memory(self) -> bytes | None:
        """The whole stream if it fitted the memory budget, else None."""
        return bytes(self._memory) if self._memory is not None else None

    def tail(self) -> bytes:
        """The last ``tail_bytes`` of the stream."""
        return bytes(self._tail[-self._tail_bytes :]) if self._tail_bytes else b""

    def read_range(self, offset: int, length: int) -> bytes:
        """Bytes ``[offset, offset + length)`` of the stream, from the file and, after a
        write error, from the in-memory overflow. Lost bytes are simply absent."""
        if self._memory is not None and offset + length <= len(self._memory):
            return bytes(self._memory[offset : offset + length])
        parts = []
        end = offset + length
        if offset < self.file_size:
            with open(self.path, "rb") as f:
                f.seek(offset)
                parts.append(f.read(min(end, self.file_size) - offset))
        if end > self.file_size and self._overflow:
            start = max(offset, self.file_size) - self.file_size
            parts.append(bytes(self._overflow[start : end - self.file_size]))
        return b"".join(parts)

    def read_all(self) -> bytes:
        """The whole stream as captured (file plus any overflow)."""
        return self.read_range(0, self.size)
