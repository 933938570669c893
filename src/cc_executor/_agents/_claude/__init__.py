"""The Claude Code adapter: find the CLI, build its command line, parse its stream-json
output, and decide how a run ended.

The names below are loaded on first use: the console command builds the command line and
starts the CLI (``_locate``, ``_flags``) before it imports the parser and the rest.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cc_executor._agents._claude._command import ClaudeCommand
    from cc_executor._agents._claude._flags import build_command
    from cc_executor._agents._claude._locate import ClaudeNotFound, locate_claude
    from cc_executor._agents._claude._outcome import Outcome, decide_outcome
    from cc_executor._agents._claude._parse import LARGE_LINE, ClaudeStreamParser

_EXPORTS = {
    "ClaudeCommand": "_command",
    "build_command": "_flags",
    "ClaudeNotFound": "_locate",
    "locate_claude": "_locate",
    "Outcome": "_outcome",
    "decide_outcome": "_outcome",
    "LARGE_LINE": "_parse",
    "ClaudeStreamParser": "_parse",
}

__all__ = [
    "LARGE_LINE",
    "ClaudeCommand",
    "ClaudeNotFound",
    "ClaudeStreamParser",
    "Outcome",
    "build_command",
    "decide_outcome",
    "locate_claude",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
