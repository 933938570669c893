"""Untrusted text on a terminal: control characters, bidi controls and invisible characters
are shown as escapes, everything else as it is."""

from __future__ import annotations

import json

import orjson
import pytest

from cc_executor._text import inert, inert_json

BIDI = [
    "\u061c",
    "\u200e",
    "\u200f",
    *map(chr, range(0x202A, 0x202F)),
    *map(chr, range(0x2066, 0x206A)),
]
INVISIBLE = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]


@pytest.mark.parametrize("char", BIDI + INVISIBLE)
def test_bidi_and_invisible_characters_are_escaped(char: str) -> None:
    assert inert(f"a{char}b") == f"a\\u{ord(char):04x}b"


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\r", "\x7f", "\x9b"])
def test_control_characters_are_escaped(char: str) -> None:
    assert inert(f"a{char}b") == f"a\\x{ord(char):02x}b"


def test_newlines_tabs_and_ordinary_text_are_kept() -> None:
    text = "line 1\n\tcafé 中文 عربي emoji 🙂 (quoted)"
    assert inert(text) == text


def test_json_for_a_terminal_is_the_same_value_without_raw_controls() -> None:
    """Issue 18 F8.2: JSON encoders escape only C0; for a terminal, C1 and bidi controls,
    invisible characters and U+2028/U+2029 become \\u escapes of the same value."""
    unsafe = ["\x7f", *map(chr, range(0x80, 0xA0)), *BIDI, *INVISIBLE, "\u2028", "\u2029"]
    value = {"k\u202e": ["a" + "".join(unsafe) + 'é😀"\\\n']}
    for encoded in (orjson.dumps(value).decode(), json.dumps(value, ensure_ascii=False)):
        safe = inert_json(encoded)
        assert json.loads(safe) == value
        assert not set(safe) & set(unsafe)
        assert "é😀" in safe
