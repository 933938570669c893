"""Options of an agent run, validated up front so mistakes fail fast and clearly."""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from cc_executor._agents._claude import ClaudeCommand
from cc_executor._run._prepare import check_run_options, command_fields, process_env


@dataclass(frozen=True, slots=True, kw_only=True)
class RunOptions:
    """Every option of :func:`cc_executor.run`.

    Agent (Claude Code flags): ``model``, ``max_turns``, ``max_budget_usd``, ``resume``,
    ``continue_session``, ``session_id``, ``fork_session``, ``allowed_tools``,
    ``disallowed_tools``, ``permission_mode``, ``mcp_config`` (path, JSON text or dict),
    ``strict_mcp_config``, ``append_system_prompt``, ``add_dirs``,
    ``include_partial_messages`` (token-level streaming, on by default so partial text is
    never lost), ``structured_output`` (pass ``json_schema`` to the CLI's ``--json-schema``),
    ``extra_args`` (raw flags, appended last), ``max_context_tokens`` (the context window
    Claude Code should assume: it refuses, before any request, a prompt it estimates to be
    over the window it believes the model has; for a model or gateway with a larger window,
    set it. Claude Code honours ``CLAUDE_CODE_MAX_CONTEXT_TOKENS`` only with compaction off,
    so this sets both that and ``DISABLE_COMPACT=1`` in the CLI's environment).

    Process: ``cwd``, ``env`` (added to our environment), ``timeout``, ``idle_timeout``,
    ``first_output_timeout``, ``grace`` (seconds between SIGTERM and SIGKILL).

    Answer: ``json_mode`` (extract a JSON value from the answer), ``json_schema`` (validate
    it; implies ``json_mode``).

    Robustness: ``retries`` (extra attempts for rate limits, overload and 5xx errors, only
    while no tool has run), ``retry_initial_delay``/``retry_max_delay`` (exponential
    back-off, seconds), ``heartbeat_s`` (interval of heartbeat events; 0 turns them off).

    Bookkeeping: ``claude_path`` (the executable; default: found automatically),
    ``run_id``, ``run_dir``, ``record`` (keep the run in the history; default True: a
    broken history only adds a warning), ``parent_id`` (the task list it belongs to).
    """

    model: str | None = None
    max_turns: int | None = None
    max_budget_usd: float | None = None
    resume: str | None = None
    continue_session: bool = False
    session_id: str | None = None
    fork_session: bool = False
    allowed_tools: Collection[str] = ()
    disallowed_tools: Collection[str] = ()
    permission_mode: str | None = None
    mcp_config: str | Mapping[str, Any] | None = None
    strict_mcp_config: bool = False
    append_system_prompt: str | None = None
    add_dirs: Sequence[str] = ()
    include_partial_messages: bool = True
    structured_output: bool = False
    extra_args: Sequence[str] = ()
    max_context_tokens: int | None = None
    cwd: str | os.PathLike[str] | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    timeout: float | None = None
    idle_timeout: float | None = None
    first_output_timeout: float | None = None
    grace: float = 5.0
    json_mode: bool = False
    json_schema: Mapping[str, Any] | None = None
    retries: int = 2
    retry_initial_delay: float = 2.0
    retry_max_delay: float = 60.0
    heartbeat_s: float = 10.0
    claude_path: str | os.PathLike[str] | None = None
    run_id: str | None = None
    run_dir: str | os.PathLike[str] | None = None
    record: bool = True
    parent_id: str | None = None

    def __post_init__(self) -> None:
        check_run_options(self)
        self.command()  # validates the agent flags

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> RunOptions:
        """Options from keyword arguments, with a clear error for an unknown name."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            raise TypeError(
                f"unknown run option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
            )
        return cls(**options)

    def process_env(self) -> dict[str, str]:
        """The variables added to the CLI's environment: ``env``, plus what
        ``max_context_tokens`` needs."""
        return process_env(self)

    def command(self) -> ClaudeCommand:
        """The Claude Code flags these options ask for."""
        return ClaudeCommand(**command_fields(self))
