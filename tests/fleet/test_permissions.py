"""Permission policies on fleet runs: the rules travel in the run's message, the worker
applies them to the real Claude Code CLI, and an ``ask`` comes back to the submitter's
decider over Redis (denied by the worker at its timeout when nobody answers)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from cc_executor import start_run
from cc_executor._agents._types import (
    AgentEvent,
    PermissionDecisionEvent,
    PermissionRequestEvent,
)
from cc_executor._run._permissions import PermissionRequest
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.fleet.conftest import FleetBed

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _calls(match: str, tool: ToolUse) -> Rule:
    return Rule(match=match, answers=[Reply([tool]), Reply([Text("done")])])


SCRIPT = Script(
    [
        _calls("deny-run", ToolUse("Bash", {"command": "rm -f keep.txt"})),
        _calls("ask-run", ToolUse("Write", {"file_path": "yes.txt", "content": "y"})),
        _calls("late-run", ToolUse("Write", {"file_path": "late.txt", "content": "x"})),
    ]
)


def _decisions(events: list[AgentEvent]) -> list[tuple[str, str, str, str | None]]:
    return [
        (e.tool_name, e.decision, e.decided_by, e.rule)
        for e in events
        if isinstance(e, PermissionDecisionEvent)
    ]


async def test_deny_rules_apply_on_the_worker_and_ask_comes_back_to_the_submitter(
    fleet_bed: Any, tmp_path: Path
) -> None:
    bed: FleetBed
    async with fleet_bed(SCRIPT) as bed:
        # The policy files are the submitter's: the worker gets their rules, not the path.
        policies = tmp_path / "policies"
        policies.mkdir()
        deny = policies / "deny.yaml"
        deny.write_text("default: allow\nrules:\n  - deny: Bash(rm:*)\n")
        ask = policies / "ask.yaml"
        ask.write_text("ask_timeout_s: 60\ndefault: deny\nrules:\n  - ask: Write\n")
        late = policies / "late.yaml"
        late.write_text("ask_timeout_s: 3\ndefault: deny\nrules:\n  - ask: Write\n")
        folders = {name: bed.workdir / name for name in ("deny", "ask", "late")}
        for folder in folders.values():
            folder.mkdir()
        (folders["deny"] / "keep.txt").write_text("kept")
        worker = bed.start_worker("--slots", "3")

        asked: list[PermissionRequest] = []
        abandoned = asyncio.Event()

        async def approve(request: PermissionRequest) -> str:
            asked.append(request)
            return "allow"

        async def never(request: PermissionRequest) -> str:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                # The worker decided at its timeout: the submitter stops asking.
                abandoned.set()
                raise
            return "allow"

        events: dict[str, list[AgentEvent]] = {name: [] for name in folders}
        handles = {
            "deny": start_run(
                "deny-run",
                fleet=bed.url,
                on_event=events["deny"].append,
                cwd=str(folders["deny"]),
                permission_policy=str(deny),
            ),
            "ask": start_run(
                "ask-run",
                fleet=bed.url,
                on_event=events["ask"].append,
                on_permission=approve,
                cwd=str(folders["ask"]),
                permission_policy=str(ask),
            ),
            "late": start_run(
                "late-run",
                fleet=bed.url,
                on_event=events["late"].append,
                on_permission=never,
                cwd=str(folders["late"]),
                permission_policy=str(late),
            ),
        }
        results = {name: await handle.wait() for name, handle in handles.items()}

    # A deny rule is applied on the worker: the file is still there.
    assert (folders["deny"] / "keep.txt").read_text() == "kept"
    assert _decisions(events["deny"]) == [("Bash", "deny", "rule", "Bash(rm:*)")]
    assert results["deny"].status.value == "denied", results["deny"].error

    # An ask went to the submitter's callback, which allowed it.
    assert (folders["ask"] / "yes.txt").read_text() == "y"
    assert [(r.tool_name, r.rule, r.run_id) for r in asked] == [
        ("Write", "Write", handles["ask"].run_id)
    ]
    assert _decisions(events["ask"]) == [("Write", "allow", "callback", "Write")]
    assert results["ask"].ok, results["ask"].error

    # Nobody answered: the worker denied the call at the policy's timeout.
    assert not (folders["late"] / "late.txt").exists()
    (request,) = [e for e in events["late"] if isinstance(e, PermissionRequestEvent)]
    assert request.timeout_s == 3
    (decision,) = [e for e in events["late"] if isinstance(e, PermissionDecisionEvent)]
    assert (decision.decision, decision.decided_by) == ("deny", "timeout")
    assert decision.request_id == request.request_id
    # The submitter's decider was stopped when the worker's decision came.
    assert abandoned.is_set()

    # The worker's history keeps every decision, with who decided.
    kept = {}
    for name, result in results.items():
        shown = worker.cc("show", result.run_id, "--json")
        assert shown.returncode == 0, shown.stderr
        kept[name] = [
            (d["tool_name"], d["decision"], d["decided_by"])
            for d in json.loads(shown.stdout)["permission_decisions"]
        ]
    assert kept == {
        "deny": [("Bash", "deny", "rule")],
        "ask": [("Write", "allow", "callback")],
        "late": [("Write", "deny", "timeout")],
    }
