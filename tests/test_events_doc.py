"""The tool kinds: their Agent Client Protocol names, and docs/events.md held to the tables
of ``_agents/_kinds.py`` (a tool added to one and not the other fails here)."""

from __future__ import annotations

import re
from pathlib import Path

from cc_executor._agents._kinds import (
    CLAUDE,
    GEMINI,
    QWEN,
    claude_kind,
    codex_kind,
    gemini_kind,
    spec_kind,
)
from cc_executor._agents._types import ToolKind, ToolUseEvent

PAGE = Path(__file__).resolve().parents[1] / "docs" / "events.md"
#: ACP's ToolKind (schema/schema.json of agentclientprotocol/agent-client-protocol).
ACP_KINDS = {
    "read",
    "edit",
    "delete",
    "move",
    "search",
    "execute",
    "think",
    "fetch",
    "switch_mode",
    "other",
}
ROW = re.compile(r"^\| `(?P<kind>[a-z_]+)` \|(?P<rest>.*)\|$")


def section(title: str) -> str:
    """The text of ``docs/events.md`` from the heading ``title`` to the next heading."""
    text = PAGE.read_text(encoding="utf-8")
    start = text.index(f"\n{title}\n")
    end = text.find("\n#", start + len(title) + 2)
    return text[start : end if end != -1 else None]


def table(text: str) -> dict[str, ToolKind]:
    """``{tool: kind}`` from the rows of the tables in ``text`` (placeholders in capitals,
    such as ``mcp__SERVER__TOOL``, left out)."""
    found = {}
    for line in text.splitlines():
        match = ROW.match(line)
        if match:
            for name in re.findall(r"`([^`]+)`", match["rest"]):
                if "SERVER" not in name:
                    found[name] = ToolKind(match["kind"])
    return found


def test_every_kind_has_an_acp_name() -> None:
    assert {kind.acp for kind in ToolKind} <= ACP_KINDS
    assert ToolKind.WRITE.acp == "edit"
    assert ToolKind.MCP.acp == "other"
    assert ToolKind.EXECUTE.acp == "execute"


def test_the_kinds_table_matches_the_enum() -> None:
    rows = [ROW.match(line) for line in section("## Tool calls and their kind").splitlines()]
    documented = {m["kind"]: m["rest"].split("|")[-1].strip() for m in rows if m}
    documented.pop("kind")  # the header
    assert documented == {kind.value: f"`{kind.acp}`" for kind in ToolKind}


def test_the_agent_tables_are_the_code_tables() -> None:
    assert table(section("### Claude Code (`--agent claude`)")) == dict(CLAUDE)
    assert table(section("### Gemini CLI (`--agent gemini`)")) == dict(GEMINI)
    qwen_only = {name: kind for name, kind in QWEN.items() if GEMINI.get(name) != kind}
    assert table(section("### Any command (`--agent command`)")) == qwen_only


def test_names_outside_the_tables() -> None:
    assert claude_kind("mcp__db__query", {}) is ToolKind.MCP
    assert claude_kind("SomeNewTool", {}) is ToolKind.OTHER
    assert gemini_kind("mcp_db_query", {}) is ToolKind.MCP
    assert codex_kind("file_change", {"kind": "delete"}) is ToolKind.DELETE
    assert codex_kind("mcp__db__query", {}) is ToolKind.MCP
    kind = spec_kind({"run_tests": ToolKind.EXECUTE}, {"save": "path"})
    assert kind("run_tests", {}) is ToolKind.EXECUTE
    assert kind("Bash", {}) is ToolKind.EXECUTE
    assert kind("save", {}) is ToolKind.EDIT
    assert kind("mcp__db__query", {}) is ToolKind.MCP
    assert kind("unknown", {}) is ToolKind.OTHER


def test_the_json_form_carries_the_kind_as_a_string() -> None:
    event = ToolUseEvent(t=1.0, name="Bash", kind=ToolKind.EXECUTE, raw={"type": "assistant"})
    data = event.to_dict()
    assert data["kind"] == "execute"
    assert type(data["kind"]) is str
    assert "raw" not in data
    assert ToolUseEvent(t=1.0).kind is ToolKind.OTHER
