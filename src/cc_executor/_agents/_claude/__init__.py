"""The Claude Code adapter: find the CLI, build its command line, parse its stream-json
output, and decide how a run ended.

The names below are loaded on first use: the console command builds the command line and
starts the CLI (``_locate``, ``_flags``) before it imports the parser and the rest.
"""

from __future__ import annotations

from cc_executor._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cc_executor._agents._claude._adapter import ClaudeAdapter
    from cc_executor._agents._claude._flags import build_command
    from cc_executor._agents._claude._locate import ClaudeNotFound, locate_claude
    from cc_executor._agents._claude._outcome import decide_outcome
    from cc_executor._agents._claude._parse import LARGE_LINE, ClaudeStreamParser
    from cc_executor._agents._types import Outcome

_EXPORTS = {
    "ClaudeAdapter": "cc_executor._agents._claude._adapter",
    "build_command": "cc_executor._agents._claude._flags",
    "ClaudeNotFound": "cc_executor._agents._claude._locate",
    "locate_claude": "cc_executor._agents._claude._locate",
    "Outcome": "cc_executor._agents._types",
    "decide_outcome": "cc_executor._agents._claude._outcome",
    "LARGE_LINE": "cc_executor._agents._claude._parse",
    "ClaudeStreamParser": "cc_executor._agents._claude._parse",
}

__all__ = [
    "LARGE_LINE",
    "ClaudeAdapter",
    "ClaudeNotFound",
    "ClaudeStreamParser",
    "Outcome",
    "build_command",
    "decide_outcome",
    "locate_claude",
]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
