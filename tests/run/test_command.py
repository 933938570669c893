"""The CLI command line built from run options: one argument per flag, nothing injectable."""

from __future__ import annotations

from typing import Any

import pytest

from cc_executor._agents._claude import ClaudeCommand, build_command


def test_values_never_become_flags() -> None:
    """``--resume`` takes an optional value: a separate value starting with ``-`` would be
    parsed as a flag of its own (e.g. ``--mcp-config``). Every value is bound with ``=``."""
    argv = build_command(
        "claude",
        ClaudeCommand(
            model="m",
            append_system_prompt="--settings={} and more",
            allowed_tools=["--mcp-config=x"],
            permission_mode="default",
            max_turns=3,
        ),
    )
    assert "--append-system-prompt=--settings={} and more" in argv
    assert "--allowedTools=--mcp-config=x" in argv
    assert "--model=m" in argv
    assert "--max-turns=3" in argv
    assert not [a for a in argv if a.startswith(("--settings", "--mcp-config"))]


@pytest.mark.parametrize("field", ["resume", "session_id", "model"])
def test_ids_starting_with_a_dash_are_refused(field: str) -> None:
    options: dict[str, Any] = {field: "--mcp-config={}"}
    with pytest.raises(ValueError, match="must be a session id or name"):
        ClaudeCommand(**options)
