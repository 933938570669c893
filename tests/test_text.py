"""Untrusted text on a terminal: control characters, bidi controls and invisible characters
are shown as escapes, everything else as it is."""

from __future__ import annotations

import pytest

from cc_executor._text import inert

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
