"""From run options to Claude Code's command line: checks and argv, importable without the
rest of the adapter (the console command starts the CLI before it imports anything else).

Both functions read the options as attributes (the names of
:class:`~cc_executor._run._options.RunOptions`' fields) from any object, so the options
and the console's early start share one implementation. Types and ranges were checked
before, from the option declarations; these are the checks only Claude Code needs.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: The values of ``--permission-mode`` Claude Code 2.1.330 lists in its help, plus
#: ``default``, which it still takes without listing it (observed).
PERMISSION_MODES = ("acceptEdits", "auto", "bypassPermissions", "manual", "dontAsk", "plan")
_UNLISTED_MODES = ("default",)


_HEX = frozenset("0123456789abcdefABCDEF")


def _is_uuid(text: str) -> bool:
    """Whether ``text`` is a UUID as Claude Code reads one (no ``uuid`` import: the console
    reads this before it starts the CLI)."""
    return len(text) == 36 and all(
        char == "-" if index in (8, 13, 18, 23) else char in _HEX for index, char in enumerate(text)
    )


def check_flags(o: Any) -> None:
    """Raise ``ValueError`` for options the CLI would misread or refuse."""
    if o.resume and o.continue_session:
        raise ValueError("resume and continue_session exclude each other")
    if o.fork_session and not (o.resume or o.continue_session):
        # Named first, so the command line names both by their flags (flag_message).
        raise ValueError("resume or continue_session must be given with fork_session")
    if o.permission_mode is not None and o.permission_mode not in (
        *PERMISSION_MODES,
        *_UNLISTED_MODES,
    ):
        raise ValueError(
            f"permission_mode must be one of {', '.join(PERMISSION_MODES)}, "
            f"got {o.permission_mode!r}"
        )
    for name in ("resume", "session_id", "model", "fallback_model"):
        value = getattr(o, name)
        if value is not None and (
            not isinstance(value, str) or value.startswith("-") or "\0" in value
        ):
            raise ValueError(f"{name} must be a session id or name, got {value!r}")
    if isinstance(o.session_id, str) and not _is_uuid(o.session_id):
        # Claude Code exits 1 with "Invalid session ID. Must be a valid UUID.": said first.
        raise ValueError(
            "session_id must be a UUID (8-4-4-4-12 hex digits, as Claude Code requires), got "
            f"{o.session_id!r}"
        )


def build_command(executable: str, options: Any) -> list[str]:
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
        ("--fallback-model", o.fallback_model),
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
        if isinstance(o.mcp_config, str):
            argv.append(f"--mcp-config={o.mcp_config}")
        else:
            import json

            argv.append(f"--mcp-config={json.dumps(o.mcp_config)}")
    if o.strict_mcp_config:
        argv.append("--strict-mcp-config")
    for folder in o.add_dirs:
        argv.append(f"--add-dir={os.fspath(folder)}")
    if o.structured_output and o.json_schema is not None:
        import json

        argv.append(f"--json-schema={json.dumps(o.json_schema)}")
    argv += list(o.extra_args)
    return argv
