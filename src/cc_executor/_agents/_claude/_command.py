"""From run options to the CLI's command line."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

PERMISSION_MODES = ("default", "acceptEdits", "bypassPermissions", "plan", "dontAsk", "auto")


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
        if self.max_turns is not None and self.max_turns < 1:
            raise ValueError(f"max_turns must be >= 1, got {self.max_turns}")
        if self.max_budget_usd is not None and self.max_budget_usd <= 0:
            raise ValueError(f"max_budget_usd must be positive, got {self.max_budget_usd}")
        if self.resume and self.continue_session:
            raise ValueError("resume and continue_session exclude each other")
        if self.fork_session and not (self.resume or self.continue_session):
            raise ValueError("fork_session needs resume or continue_session")
        if self.permission_mode is not None and self.permission_mode not in PERMISSION_MODES:
            raise ValueError(
                f"permission_mode must be one of {', '.join(PERMISSION_MODES)}, "
                f"got {self.permission_mode!r}"
            )
        for name in ("allowed_tools", "disallowed_tools", "add_dirs", "extra_args"):
            if isinstance(getattr(self, name), str):
                raise TypeError(f"{name} must be a list of strings, not a string")
        for name in ("resume", "session_id", "model"):
            value = getattr(self, name)
            if value is not None and (
                not isinstance(value, str) or value.startswith("-") or "\0" in value
            ):
                raise ValueError(f"{name} must be a session id or name, got {value!r}")


def build_command(executable: str, options: ClaudeCommand) -> list[str]:
    """The argv for a headless run whose prompt comes on stdin.

    Every flag that takes a value is written as one ``--flag=value`` argument. Some of the
    CLI's flags take an *optional* value (``--resume``), and the CLI's parser then treats a
    separate value starting with ``-`` as a flag of its own: ``--resume`` followed by
    ``--mcp-config=...`` would load an MCP server of the caller's choosing. One argument per
    flag leaves no value able to become a flag.
    """
    argv = [executable, "-p", "--output-format=stream-json", "--verbose"]
    o = options
    if o.include_partial_messages:
        argv.append("--include-partial-messages")
    valued: list[tuple[str, object]] = [
        ("--model", o.model),
        ("--max-turns", o.max_turns),
        ("--max-budget-usd", repr(float(o.max_budget_usd)) if o.max_budget_usd else None),
        ("--resume", o.resume),
        ("--session-id", o.session_id),
        ("--permission-mode", o.permission_mode),
        ("--append-system-prompt", o.append_system_prompt),
    ]
    for flag, value in valued:
        if value is not None and value != "":
            argv.append(f"{flag}={value}")
    if o.continue_session:
        argv.append("--continue")
    if o.fork_session:
        argv.append("--fork-session")
    for tool in o.allowed_tools:
        argv.append(f"--allowedTools={tool}")
    for tool in o.disallowed_tools:
        argv.append(f"--disallowedTools={tool}")
    if o.mcp_config is not None:
        config = o.mcp_config if isinstance(o.mcp_config, str) else json.dumps(o.mcp_config)
        argv.append(f"--mcp-config={config}")
    if o.strict_mcp_config:
        argv.append("--strict-mcp-config")
    for folder in o.add_dirs:
        argv.append(f"--add-dir={os.fspath(folder)}")
    if o.json_schema is not None:
        argv.append(f"--json-schema={json.dumps(o.json_schema)}")
    argv += list(o.extra_args)
    return argv
