"""Permission policies on fleet runs: the rules travel in the run's message, the worker
applies them to the real Claude Code CLI, and an ``ask`` comes back to the submitter's
decider over Redis (denied by the worker at its timeout when nobody answers)."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import re
import subprocess
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
from cc_executor.tasks import run_tasks
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.cli.test_permission_prompt import read_until
from tests.fleet.conftest import CLI, FleetBed


def _calls(match: str, tool: ToolUse) -> Rule:
    return Rule(match=match, answers=[Reply([tool]), Reply([Text("done")])])


SCRIPT = Script(
    [
        _calls("deny-run", ToolUse("Bash", {"command": "rm -f keep.txt"})),
        _calls("ask-run", ToolUse("Write", {"file_path": "yes.txt", "content": "y"})),
        _calls("late-run", ToolUse("Write", {"file_path": "late.txt", "content": "x"})),
        _calls("tty-run", ToolUse("Write", {"file_path": "tty.txt", "content": "t"})),
        _calls("list-run", ToolUse("Write", {"file_path": "task.txt", "content": "l"})),
    ]
)


def _decisions(events: list[AgentEvent]) -> list[tuple[str, str, str, str | None]]:
    return [
        (e.tool_name, e.decision, e.decided_by, e.rule)
        for e in events
        if isinstance(e, PermissionDecisionEvent)
    ]


@pytest.mark.redis
@pytest.mark.slow
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
        folders = {name: bed.workdir / name for name in ("deny", "ask", "late", "tty", "task")}
        for folder in folders.values():
            folder.mkdir()
        (folders["deny"] / "keep.txt").write_text("kept")
        worker = bed.start_worker("--slots", "5")

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
        # A task list on the fleet: its on_permission is told which task asks.
        told: list[str] = []

        def task_decider(task_id: str, request: PermissionRequest) -> str:
            told.append(task_id)
            return "allow"

        spec = {
            "tasks": [
                {
                    "id": "t",
                    "prompt": "list-run",
                    "cwd": str(folders["task"]),
                    "permission_policy": str(ask),
                }
            ]
        }
        listed = run_tasks(spec, fleet=bed.url, on_permission=task_decider)
        # `run --fleet` on a terminal: the worker's question is asked there.
        on_tty = asyncio.to_thread(_run_on_a_terminal, bed.url, folders["tty"], ask, tmp_path)
        results = {name: await handle.wait() for name, handle in handles.items()}
        screen, printed = await on_tty
        tasks = await listed

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

    assert b"tty.txt" in screen
    assert (folders["tty"] / "tty.txt").read_text() == "t"
    assert printed["status"] == "ok", printed
    assert (folders["task"] / "task.txt").read_text() == "l"
    assert told == ["t"]
    assert tasks.tasks["t"].status == "ok", tasks.tasks["t"]

    # The worker's history keeps every decision, with who decided.
    kept = {}
    run_ids = {name: result.run_id for name, result in results.items()}
    task_run = tasks.tasks["t"].run_id
    assert task_run is not None
    run_ids["tty"], run_ids["task"] = printed["run_id"], task_run
    for name, run_id in run_ids.items():
        shown = worker.cc("show", run_id, "--json")
        assert shown.returncode == 0, shown.stderr
        kept[name] = [
            (d["tool_name"], d["decision"], d["decided_by"])
            for d in json.loads(shown.stdout)["permission_decisions"]
        ]
    assert kept == {
        "deny": [("Bash", "deny", "rule")],
        "ask": [("Write", "allow", "callback")],
        "late": [("Write", "deny", "timeout")],
        "tty": [("Write", "allow", "console")],
        "task": [("Write", "allow", "callback")],
    }


def _run_on_a_terminal(
    url: str, cwd: Path, policy: Path, tmp_path: Path
) -> tuple[bytes, dict[str, Any]]:
    """``cc-executor run --fleet`` with a terminal as stdin and stderr: answer ``y`` to
    its question; what the terminal showed and the printed result."""
    controller, terminal = pty.openpty()
    env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path / "submitter")}
    argv = [CLI, "run", "tty-run", "--json", "--fleet", url, "--cwd", str(cwd)]
    proc = subprocess.Popen(
        [*argv, "--permission-policy", str(policy)],
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    seen = bytearray()
    try:
        read_until(controller, b"Allow? [y/N] ", seen)
        os.write(controller, b"y\n")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    return bytes(seen), json.loads(out)


def test_the_worker_checks_a_policy_as_data_and_reads_answers_as_untrusted(
    tmp_path: Path,
) -> None:
    from cc_executor._errors import RunRefused
    from cc_executor._run._fleet import decision_from_message
    from cc_executor._run._policy import load_policy, parse_policy
    from cc_executor._service._worker import FleetWorker, WorkerConfig

    policy = tmp_path / "p.yaml"
    policy.write_text("ask_timeout_s: 5\ndefault: deny\nrules:\n  - allow: Bash(git log:*)\n")
    loaded = load_policy(policy)
    # What a submitter sends is what the worker reads back.
    assert parse_policy(loaded.to_dict()) == loaded

    worker = FleetWorker(WorkerConfig(fleet="unix:///nonexistent.sock"))
    assert worker.check_policy({"policy": loaded.to_dict()}, {}) == loaded
    assert worker.check_policy({}, {}) is None
    for bad, said in [
        ({"rules": [{"maybe": "Bash"}]}, "the action must be allow, deny or ask"),
        ({"default": "deny", "path": "/etc/p.yaml"}, "unknown key(s) path"),
        ("/etc/p.yaml", "a permission policy is a mapping"),
    ]:
        with pytest.raises(RunRefused, match=re.escape(said)):
            worker.check_policy({"policy": bad}, {})
    with pytest.raises(RunRefused, match="the codex agent has no permission hook"):
        worker.check_policy({"policy": loaded.to_dict()}, {"agent": "codex"})

    allowed = decision_from_message({"behavior": "allow", "decided_by": "console"}, "submitter")
    assert (allowed.behavior, allowed.decided_by, allowed.message) == ("allow", "console", None)
    odd = decision_from_message({"behavior": "yes please", "message": 7}, "submitter")
    assert (odd.behavior, odd.decided_by) == ("deny", "submitter")
    assert odd.message == "the submitter answered 'yes please', not allow or deny"
    long = decision_from_message({"behavior": "deny", "message": "x" * 10_000}, "submitter")
    assert long.message == "x" * 2000
