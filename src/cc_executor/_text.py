"""Untrusted text (model output, files, messages) made safe to show on a terminal.

Every terminal output of cc-executor that carries such text passes it through
:func:`inert`, the one place that decides what a terminal may receive raw. Also the one
reading of a duration a person types (``7d``), shared by the command line and the service.
"""

from __future__ import annotations

import re

# C0 controls but newline and tab, DEL and the C1 controls: they move the cursor, retitle the
# window or hide text. Then the characters that reorder or hide text without being seen
# ("Trojan Source"): bidi marks, embeddings, overrides and isolates, ALM, zero-width
# characters, word joiner and BOM.
_UNSAFE_CHARS = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u202a-\u202e\u2060\u2066-\u2069\ufeff"
)
_UNSAFE = re.compile(f"[{_UNSAFE_CHARS}]")
# In JSON also the line and paragraph separators, which end a line for some readers; the
# C0 controls, newline and tab are escaped by every JSON encoder already.
_UNSAFE_IN_JSON = re.compile(f"[{_UNSAFE_CHARS}\u2028\u2029]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def inert(text: str) -> str:
    """``text`` with terminal control characters (ESC, CSI, BEL, ...) shown as ``\\xNN`` and
    bidirectional controls, zero-width characters and BOM (U+061C, U+200B-U+200F,
    U+202A-U+202E, U+2060, U+2066-U+2069, U+FEFF) shown as ``\\uNNNN``; newlines and tabs
    are kept, everything else is unchanged."""
    return _UNSAFE.sub(_escape, text)


def _escape_json(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def inert_json(text: str) -> str:
    """``text``, JSON, with every character :func:`inert` escapes, and U+2028/U+2029,
    written as a ``\\uNNNN`` escape: the same JSON value, safe to write to a terminal
    (JSON encoders escape only the C0 controls)."""
    return _UNSAFE_IN_JSON.sub(_escape_json, text)


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhdw])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def duration_s(text: str) -> float | None:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` as seconds; None for anything else (the
    caller words the error: a command line and a request body say it differently)."""
    match = _DURATION.match(text.strip())
    return None if match is None else float(match.group(1)) * _UNITS[match.group(2)]
