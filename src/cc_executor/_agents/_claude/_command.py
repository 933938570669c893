"""The options that map to Claude Code flags (the argv itself is built in ``_flags``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._claude._flags import PERMISSION_MODES, build_command, check_flags

__all__ = ["PERMISSION_MODES", "ClaudeCommand", "build_command"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ClaudeCommand:
    """Options that map to Claude Code flags. Every field is optional; None or empty means
    the CLI's own default."""

    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    resume: str | None = None
    continue_session: bool = False
    session_id: str | None = None
    fork_session: bool = False
    allowed_tools: Sequence[str] = ()
    disallowed_tools: Sequence[str] = ()
    permission_mode: str | None = None
    mcp_config: str | Mapping[str, Any] | None = None
    strict_mcp_config: bool = False
    append_system_prompt: str | None = None
    add_dirs: Sequence[str] = ()
    include_partial_messages: bool = True
    json_schema: Mapping[str, Any] | None = None
    extra_args: Sequence[str] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        check_flags(self)
