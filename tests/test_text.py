"""Untrusted text on a terminal: control characters, bidi controls and invisible characters
are shown as escapes, everything else as it is."""

from __future__ import annotations

import io

import pytest

from cc_executor._agents._types import InitEvent, ToolResultEvent, ToolUseEvent
from cc_executor._cli._live import LiveView
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


def test_the_live_view_shows_hostile_tool_input_inert() -> None:
    """The live view's progress lines (off a terminal) neutralise what the model wrote."""
    out = io.StringIO()
    view = LiveView(out, tty=False)
    view.handle(InitEvent(t=0.0, session_id="s", model="m\u202e"))
    view.handle(ToolUseEvent(t=0.0, name="Read", input={"file_path": "evil\u202etxt.exe"}))
    view.handle(ToolResultEvent(t=0.0, content="no\u2066such\u200bfile\x1b[2J", is_error=True))
    view.close()
    shown = out.getvalue()
    assert "evil\\u202etxt.exe" in shown
    assert "no\\u2066such\\u200bfile\\x1b[2J" in shown
    assert "model m\\u202e" in shown
    assert not any(c in shown for c in ["\u202e", "\u2066", "\u200b", "\x1b"])
