"""Which :class:`ToolKind` each agent's tools have: one table per tool family, read by the
parsers as they make a ``ToolUseEvent``. docs/events.md shows the same tables; change both.

A name not in its agent's table is ``other``: a new tool of a newer CLI is reported, never
refused.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

from cc_executor._agents._types import ToolKind

#: How a parser asks for the kind of a call: its tool name and its input.
ToolKindOf: TypeAlias = Callable[[str, Mapping[str, Any]], ToolKind]

_EXECUTE, _WRITE, _EDIT = ToolKind.EXECUTE, ToolKind.WRITE, ToolKind.EDIT
_READ, _SEARCH, _FETCH = ToolKind.READ, ToolKind.SEARCH, ToolKind.FETCH
_THINK, _SWITCH = ToolKind.THINK, ToolKind.SWITCH_MODE

#: Claude Code 2.1 (and the Messages API's server tools).
CLAUDE: Mapping[str, ToolKind] = {
    "Bash": _EXECUTE,
    "BashOutput": _EXECUTE,
    "KillShell": _EXECUTE,
    "Write": _WRITE,
    "Edit": _EDIT,
    "MultiEdit": _EDIT,
    "NotebookEdit": _EDIT,
    "Read": _READ,
    "NotebookRead": _READ,
    "Glob": _SEARCH,
    "Grep": _SEARCH,
    "LS": _SEARCH,
    "WebFetch": _FETCH,
    "WebSearch": _FETCH,
    "web_fetch": _FETCH,
    "web_search": _FETCH,
    "TodoWrite": _THINK,
    "Task": _THINK,
    "Agent": _THINK,
    "EnterPlanMode": _SWITCH,
    "ExitPlanMode": _SWITCH,
}

#: Gemini CLI 0.61.
GEMINI: Mapping[str, ToolKind] = {
    "run_shell_command": _EXECUTE,
    "write_file": _WRITE,
    "replace": _EDIT,
    "read_file": _READ,
    "read_many_files": _READ,
    "glob": _SEARCH,
    "grep_search": _SEARCH,
    "search_file_content": _SEARCH,
    "list_directory": _SEARCH,
    "web_fetch": _FETCH,
    "google_web_search": _FETCH,
    "write_todos": _THINK,
    "save_memory": _THINK,
    "invoke_agent": _THINK,
    "enter_plan_mode": _SWITCH,
    "exit_plan_mode": _SWITCH,
}

#: Qwen Code 0.24 (a fork of Gemini CLI, with MCP tools named as Claude Code names them).
QWEN: Mapping[str, ToolKind] = {
    **GEMINI,
    "edit": _EDIT,
    "notebook_edit": _EDIT,
    "web_search": _FETCH,
    "todo_write": _THINK,
    "agent": _THINK,
}

#: Codex CLI's items, as :mod:`._codex._parse` names them; a ``file_change`` is looked up
#: by the change's own kind (``add``, ``update``, ``delete``).
CODEX: Mapping[str, ToolKind] = {"shell": _EXECUTE, "web_search": _FETCH}
_CODEX_CHANGES = {"add": _WRITE, "update": _EDIT, "delete": ToolKind.DELETE}


def claude_kind(name: str, tool_input: Mapping[str, Any]) -> ToolKind:
    """A Claude Code tool's kind; ``mcp__server__tool`` is ``mcp``."""
    if name.startswith("mcp__"):
        return ToolKind.MCP
    return CLAUDE.get(name, ToolKind.OTHER)


def gemini_kind(name: str, tool_input: Mapping[str, Any]) -> ToolKind:
    """A Gemini CLI tool's kind; ``mcp_server_tool`` is ``mcp``."""
    if name.startswith("mcp_"):
        return ToolKind.MCP
    return GEMINI.get(name, ToolKind.OTHER)


def codex_kind(name: str, tool_input: Mapping[str, Any]) -> ToolKind:
    """A Codex item's kind (see :data:`CODEX`)."""
    if name.startswith("mcp__"):
        return ToolKind.MCP
    if name == "file_change":
        return _CODEX_CHANGES.get(str(tool_input.get("kind")), _EDIT)
    return CODEX.get(name, ToolKind.OTHER)


def spec_kind(declared: Mapping[str, ToolKind], file_tools: Mapping[str, str]) -> ToolKindOf:
    """The kinds of a command agent's tools: the spec's ``[tool_kinds]`` first, then the
    names Claude Code and Qwen Code use (``mcp__`` is ``mcp``), then a ``[file_tools]``
    entry is ``edit`` (it changes a file; whether wholly the spec does not say)."""

    def kind(name: str, tool_input: Mapping[str, Any]) -> ToolKind:
        found = declared.get(name) or CLAUDE.get(name) or QWEN.get(name)
        if found is not None:
            return found
        if name.startswith("mcp__"):
            return ToolKind.MCP
        return _EDIT if name in file_tools else ToolKind.OTHER

    return kind
