"""Writing a result to stdout without copying a huge answer.

A 20 MB answer is already 20 MB of memory; encoding it in one go (``orjson.dumps`` of the
whole result, ``text + "\\n"``, a text stream encoding the whole string) would add another
20 MB or more. These helpers write it in slices instead.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import orjson

#: Characters encoded per write: 1 Mi, so a 20 MB answer takes 20 writes, not 300 (writing
#: it to a file took 7.6 ms instead of 10.6 ms with 64 Ki), for a few MB more at the peak.
SLICE = 1 << 20


def write_text(out: BinaryIO, text: str) -> None:
    """Write ``text`` as UTF-8 (lone surrogates replaced), a slice at a time."""
    for i in range(0, len(text), SLICE):
        out.write(text[i : i + SLICE].encode("utf-8", "replace"))


def _encode_str(write: Callable[[bytes | memoryview], object], text: str) -> None:
    write(b'"')
    for i in range(0, len(text), SLICE):
        part = text[i : i + SLICE]
        try:
            with memoryview(orjson.dumps(part)) as encoded:  # no copy to drop the quotes
                write(encoded[1:-1])
        except TypeError:  # lone surrogates, which orjson refuses and JSON can escape
            write(json.dumps(part)[1:-1].encode())
    write(b'"')


def write_json_line(out: BinaryIO, data: Mapping[str, Any], *, terminal: bool = False) -> None:
    """Write ``data`` as one line of JSON; long string values are encoded a slice at a
    time. Equivalent to ``json.dumps(data, ensure_ascii=False)`` plus a newline.

    ``terminal``: the output is a terminal, so the characters that would control it or
    reorder text (C1 controls, bidi controls, U+2028/U+2029, ...: :func:`inert_json`) are
    written as ``\\uNNNN`` escapes; the JSON value is the same."""
    from cc_executor._text import inert_json

    def write(chunk: bytes | memoryview) -> object:
        if not terminal:
            return out.write(chunk)
        text = inert_json(bytes(chunk).decode("utf-8", "surrogateescape"))
        return out.write(text.encode("utf-8", "surrogateescape"))

    write(b"{")
    for n, (key, value) in enumerate(data.items()):
        if n:
            write(b",")
        write(orjson.dumps(key))
        write(b":")
        if isinstance(value, str) and len(value) > SLICE:
            _encode_str(write, value)
            continue
        try:
            write(orjson.dumps(value))
        except TypeError:  # what orjson refuses (big integers, lone surrogates): ASCII JSON
            write(json.dumps(value).encode())
    write(b"}\n")
