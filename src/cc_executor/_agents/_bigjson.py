"""Parsing one huge JSON line (a 20 MB answer) in little more memory than its result.

A whole-line parser holds the line's bytes, a working copy and the decoded strings at once:
about three times the line at its peak, whichever library (json, orjson, ijson were
measured). Claude Code puts a whole answer on one line, twice (the assistant message and the
result), so a 20 MB answer would cost 60 MB per line on top of the interpreter.

Here the line is read in windows from its file. Every string longer than ``SMALL_STRING``
is decoded on its own, one ``PIECE``-sized piece at a time (orjson does the unescaping and
the validation, at C speed), into a string that grows in place; in the line it is replaced by
a placeholder. The rest, a small *skeleton*, is parsed with orjson and the placeholders are
swapped for the decoded strings. Peak memory: the decoded strings, plus about three pieces.
The result is exactly what ``orjson.loads`` gives for the whole line; on anything unusual
(invalid JSON, a lone surrogate, a string key beyond the limit, ...) :class:`NotHandled` is
raised and the caller parses the whole line the ordinary way, so nothing is ever lost.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable
from typing import Any

import orjson

from cc_executor._errors import CCExecutorError

#: Strings up to this many bytes stay in the skeleton.
SMALL_STRING = 1 << 16
#: Bytes decoded per step of a large string (larger pieces fragment the heap: measured
#: +14 MB on a 20 MB string with 1 MiB pieces).
PIECE = 1 << 16
#: Bytes read from the file at a time.
READ_AHEAD = 1 << 18

ReadRange = Callable[[int, int], bytes]

#: A whole JSON string token: the quote, runs of plain bytes or escapes, the quote. The
#: possessive quantifiers keep the regex engine from storing backtracking state.
_STRING = re.compile(rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_BACKSLASH = 0x5C


class NotHandled(CCExecutorError, ValueError):
    """The line is not one this parser takes on; parse it whole instead (internal: its
    caller falls back to a whole-line parse)."""


class _Window:
    """Sequential access to bytes ``[start, end)`` of a file-backed line, a window at a time."""

    def __init__(self, read: ReadRange, start: int, end: int) -> None:
        self._read = read
        self.end = end
        self.base = start
        self.buf = b""

    def cover(self, pos: int, size: int) -> int:
        """Make the window hold ``[pos, pos + size)`` (clipped to the end); returns how
        many bytes from ``pos`` it holds."""
        want = min(pos + size, self.end)
        have = self.base + len(self.buf)
        if pos < self.base:
            raise NotHandled("window moved backwards")
        if want > have:
            # Read well ahead: a line of many small strings must not cost a refill (and a
            # copy of the window) per string.
            fill = min(max(want, pos + READ_AHEAD), self.end)
            keep = self.buf[pos - self.base :] if pos < have else b""
            start = max(pos, have)
            more = self._read(start, fill - start)
            if len(more) != fill - start:
                raise NotHandled("the line could not be read back whole")
            self.buf = keep + more
            self.base = pos
        return want - pos

    def copy_to_quote(self, pos: int, out: list[bytes]) -> int:
        """Append the bytes from ``pos`` up to the next ``"`` to ``out``; return the quote's
        position, or -1 after appending everything up to the end."""
        while pos < self.end:
            held = self.cover(pos, PIECE)
            lo = pos - self.base
            i = self.buf.find(b'"', lo, lo + held)
            if i >= 0:
                out.append(self.buf[lo:i])
                return self.base + i
            out.append(self.buf[lo : lo + held])
            pos += held
        return -1


def _backslashes_before(buf: bytes, lo: int, end: int) -> int:
    """How many backslashes end at ``end - 1`` (not looking before ``lo``)."""
    n = 0
    while end - n > lo and buf[end - n - 1] == _BACKSLASH:
        n += 1
        if n == 64:  # a long run: count the rest at C speed
            seg = buf[lo : end - n]
            return n + len(seg) - len(seg.rstrip(b"\\"))
    return n


def _is_boundary(buf: bytes, lo: int, p: int) -> bool:
    """Whether JSON string content ``buf[lo:]`` (``lo`` a boundary) may be cut at ``p``."""
    if buf[p] & 0xC0 == 0x80:  # inside a UTF-8 character
        return False
    run = _backslashes_before(buf, lo, p)
    if run % 2:  # p is the character an escape's backslash applies to
        return False
    # Inside a \uXXXX escape? Its backslash would sit in p-5 .. p-2, not part of the run.
    s = buf.rfind(b"\\u", max(lo, p - 5), p - run)
    while s >= 0:
        if _backslashes_before(buf, lo, s) % 2 == 0:
            return s + 6 <= p
        s = buf.rfind(b"\\u", max(lo, p - 5), s)
    # Never cut between the halves of a surrogate pair.
    return not (
        buf[p] == _BACKSLASH and buf[p + 1 : p + 4].lower() in (b"udc", b"udd", b"ude", b"udf")
    )


def _piece_end(buf: bytes, lo: int, hi: int) -> int:
    """A place in ``(lo, hi]`` near ``hi`` where ``buf``, JSON string content from ``lo``
    (a boundary), can be cut without splitting a UTF-8 character, an escape or a surrogate
    pair; -1 if there is none."""
    for p in range(hi, max(lo, hi - 8192), -1):
        if _is_boundary(buf, lo, p):
            return p
    return -1


def _decode_string(win: _Window, start: int) -> tuple[str, int]:
    """Decode the JSON string whose content starts at ``start`` (just after its opening
    quote). Returns the text and the position just after the closing quote.

    The text grows in place: CPython's specialised ``+=`` resizes a string it holds the only
    reference to, so memory stays at the text plus a piece. Under a tracer or a profiler
    (coverage, cProfile: CPython 3.11 then runs the generic instruction) every ``+=``
    copies, quadratic in the length (0.9 s for 20 MB); then the pieces are joined once at
    the end instead, in linear time and twice the memory."""
    parts: list[str] | None = [] if sys.gettrace() or sys.getprofile() else None
    out = ""
    pos = start
    while True:
        # A little more than a piece: deciding where to cut looks a few bytes ahead.
        held = win.cover(pos, PIECE + 16)
        if held == 0:
            raise NotHandled("unterminated string")
        lo = pos - win.base
        if pos + held == win.end:
            cut = lo + held
        else:
            cut = _piece_end(win.buf, lo, lo + held - 16)
            if cut < 0:
                raise NotHandled("no place to cut a string")
        piece = b"".join((b'"', memoryview(win.buf)[lo:cut], b'"'))
        try:
            # The piece holds no closing quote iff it decodes as one string.
            if parts is None:
                out += orjson.loads(piece)
            else:
                parts.append(orjson.loads(piece))
        except orjson.JSONDecodeError as exc:
            # The string ended inside the piece (``exc.pos`` counts characters, not bytes:
            # the regex finds the closing quote's byte). Anything else is invalid JSON.
            match = _STRING.match(piece)
            if match is None or match.end() >= len(piece):
                raise NotHandled(f"invalid string: {exc.msg}") from None
            try:
                out += orjson.loads(memoryview(piece)[: match.end()])
            except orjson.JSONDecodeError as inner:
                raise NotHandled(f"invalid string: {inner.msg}") from None
            if parts is not None:
                parts.append(out)
                out = "".join(parts)
            return out, pos + match.end() - 1
        del piece
        if cut - lo == held:
            raise NotHandled("unterminated string")
        pos += cut - lo


def _substitute(value: Any, large: dict[str, str]) -> Any:
    if isinstance(value, str):
        return large.pop(value, value)
    if isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, (str, list, dict)):
                value[i] = _substitute(item, large)
        return value
    if isinstance(value, dict):
        if any(key in large for key in value):  # a huge key: rebuild, keeping the order
            value = {large.pop(key, key): item for key, item in value.items()}
        for key, item in value.items():
            if isinstance(item, (str, list, dict)):
                value[key] = _substitute(item, large)
        return value
    return value


def loads_large(read: ReadRange, offset: int, length: int) -> Any:
    """``orjson.loads`` of the ``length`` bytes at ``offset`` (read through ``read``), with
    every string over :data:`SMALL_STRING` bytes decoded piece by piece.

    Raises :class:`NotHandled` when the line is not valid JSON or not one this parser takes
    on (the caller then parses it whole).
    """
    win = _Window(read, offset, offset + length)
    nonce = os.urandom(8).hex()
    skeleton: list[bytes] = []
    large: dict[str, str] = {}
    pos = offset
    while True:
        quote = win.copy_to_quote(pos, skeleton)
        if quote < 0:
            break
        held = win.cover(quote, SMALL_STRING + 2)
        lo = quote - win.base
        match = _STRING.match(win.buf, lo, lo + held)
        if match is not None:
            skeleton.append(win.buf[lo : match.end()])
            pos = win.base + match.end()
            continue
        text, pos = _decode_string(win, quote + 1)
        key = f"\x00cc-executor-large-{nonce}-{len(large)}"
        large[key] = text
        del text
        skeleton.append(orjson.dumps(key))
    try:
        obj = orjson.loads(b"".join(skeleton))
    except orjson.JSONDecodeError as exc:
        raise NotHandled(f"invalid JSON: {exc.msg}") from None
    if not large:
        return obj
    obj = _substitute(obj, large)
    if large:  # cannot happen with valid JSON; never return a placeholder
        raise NotHandled("a large string was not placed")
    return obj
