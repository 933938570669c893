"""Permission policies through the real Claude Code CLI and its permission-prompt tool."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from cc_executor._agents._types import (
    AgentEvent,
    PermissionDecisionEvent,
    PermissionRequestEvent,
    RunStatus,
)
from cc_executor._run._permissions import PermissionDecision, PermissionRequest
from cc_executor._run._runner import run
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse

CLI = str(Path(sys.executable).parent / "cc-executor")
POLICY = """\
ask_timeout_s: 30
default: deny
rules:
  - deny: Bash(rm:*)
  - allow: Bash(touch allowed.txt)
  - ask: Write
"""


def calls(*tools: ToolUse) -> Script:
    return Script([Rule(answers=[*(Reply([t]) for t in tools), Reply([Text("done")])])])


async def test_allow_deny_and_ask_with_a_python_callback(bed: Any, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    asked: list[PermissionRequest] = []

    async def on_permission(request: PermissionRequest) -> Any:
        asked.append(request)
        if request.input["file_path"].endswith("yes.txt"):
            # The decider may change what the tool runs with.
            return PermissionDecision("allow", updated_input={**request.input, "content": "ok"})
        return PermissionDecision("deny", "not that file")

    events: list[AgentEvent] = []
    async with bed(
        calls(
            ToolUse("Bash", {"command": "touch allowed.txt"}),
            ToolUse("Bash", {"command": "rm -f keep.txt"}),
            ToolUse("Bash", {"command": "touch other.txt"}),
            ToolUse("Write", {"file_path": "yes.txt", "content": "y"}),
            ToolUse("Write", {"file_path": "no.txt", "content": "n"}),
        )
    ) as b:
        (b.workdir / "keep.txt").write_text("kept")
        result = await run(
            "go",
            on_event=events.append,
            on_permission=on_permission,
            permission_policy=str(policy),
            **b.options(),
        )
        left = sorted(p.name for p in b.workdir.iterdir())
        assert (b.workdir / "yes.txt").read_text() == "ok"
    assert left == ["allowed.txt", "keep.txt", "yes.txt"]
    # The refused calls make the run "denied", as any denial does.
    assert result.status is RunStatus.DENIED
    # The CLI makes the paths absolute before it asks.
    assert [(r.tool_name, Path(r.input["file_path"]).name) for r in asked] == [
        ("Write", "yes.txt"),
        ("Write", "no.txt"),
    ]
    decisions = [e for e in events if isinstance(e, PermissionDecisionEvent)]
    assert [(d.tool_name, d.decision, d.decided_by, d.rule) for d in decisions] == [
        ("Bash", "allow", "rule", "Bash(touch allowed.txt)"),
        ("Bash", "deny", "rule", "Bash(rm:*)"),
        ("Bash", "deny", "default", None),
        ("Write", "allow", "callback", "Write"),
        ("Write", "deny", "callback", "Write"),
    ]
    assert decisions[-1].message == "not that file"
    requests = [e for e in events if isinstance(e, PermissionRequestEvent)]
    assert [r.request_id for r in requests] == [d.request_id for d in decisions[3:]]
    denied = {(d["tool_name"], json.dumps(d["tool_input"])) for d in result.permission_denials}
    assert ("Bash", json.dumps({"command": "rm -f keep.txt"})) in denied

    # The history keeps every decision, and `show` lists them.
    shown = subprocess.run(
        [CLI, "show", result.run_id, "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    kept = json.loads(shown.stdout)["permission_decisions"]
    assert [(d["decision"], d["decided_by"]) for d in kept] == [
        (d.decision, d.decided_by) for d in decisions
    ]
    assert kept[1]["tool_input"] == {"command": "rm -f keep.txt"}
    text = subprocess.run(
        [CLI, "show", result.run_id],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "permission: " in text
    assert 'deny Bash {"command": "rm -f keep.txt"} by rule (Bash(rm:*))' in text
    assert "by callback (Write): not that file" in text


async def test_an_unanswered_ask_is_denied_at_its_timeout(bed: Any, tmp_path: Path) -> None:
    # The ask outlasts the idle timeout: the run's idle clock is paused while it waits.
    policy = tmp_path / "policy.yaml"
    policy.write_text("ask_timeout_s: 5\nrules:\n  - ask: Write\n")
    never = asyncio.Event()

    async def on_permission(request: PermissionRequest) -> str:
        await never.wait()
        return "allow"

    events: list[AgentEvent] = []
    async with bed(calls(ToolUse("Write", {"file_path": "late.txt", "content": "x"}))) as b:
        result = await run(
            "go",
            on_event=events.append,
            on_permission=on_permission,
            permission_policy=str(policy),
            accept_denials=True,
            **b.options(idle_timeout=4),
        )
        assert not (b.workdir / "late.txt").exists()
    assert result.status is RunStatus.OK, result.error
    (decision,) = [e for e in events if isinstance(e, PermissionDecisionEvent)]
    assert (decision.decision, decision.decided_by) == ("deny", "timeout")
    assert decision.message == "no decision within 5 s"
    assert [d["tool_name"] for d in result.permission_denials] == ["Write"]
