"""The Claude Code adapter: find the CLI, build its command line, parse its stream-json
output, and decide how a run ended."""

from cc_executor._agents._claude._command import ClaudeCommand, build_command
from cc_executor._agents._claude._locate import ClaudeNotFound, locate_claude
from cc_executor._agents._claude._outcome import Outcome, decide_outcome
from cc_executor._agents._claude._parse import LARGE_LINE, ClaudeStreamParser

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
