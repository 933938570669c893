"""Remote approvals: a run's permission policy asks, a caller of the service decides."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from websockets.asyncio.client import connect

from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.service.conftest import CLI, Service, sse_events
from tests.service.test_ws import call


async def test_a_remote_approval_through_the_running_service(
    start: Callable[..., Service], bed: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ask_timeout_s: 120\nrules:\n  - ask: Write\n")
    service = start("--permission-policy", str(policy))
    tools = [ToolUse("Write", {"file_path": f"{n}.txt", "content": n}) for n in ("yes", "no")]
    script = Script([Rule(answers=[*(Reply([t]) for t in tools), Reply([Text("done")])])])
    async with bed(script) as b, service.client() as client:
        options = b.options(accept_denials=True)
        response = await client.post("/runs", json={"prompt": "write", "options": options})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        decided: list[str] = []
        pending: list[dict[str, Any]] = []

        async def asked() -> bool:
            listed = await client.get(f"/runs/{run_id}/permissions")
            pending[:] = listed.json()["permissions"]
            return bool(pending)

        # The first over REST.
        await await_for_async(asked)
        (request,) = pending
        assert request["tool_name"] == "Write"
        assert Path(request["tool_input"]["file_path"]).name == "yes.txt"
        url = f"/runs/{run_id}/permissions/{request['request_id']}/decision"
        bad = await client.post(url, json={"decision": "maybe"})
        assert bad.status_code == 400
        assert "decision must be allow or deny" in bad.json()["error"]["message"]
        # A misspelt field was dropped without a word, and the call decided.
        typo = await client.post(url, json={"decision": "deny", "mesage": "no"})
        assert typo.status_code == 400, typo.text
        assert typo.json()["error"]["message"] == (
            "unknown field(s): mesage (known: decision, message)"
        )
        ok = await client.post(url, json={"decision": "allow", "message": "reviewed"})
        assert ok.status_code == 200, ok.text
        again = await client.post(url, json={"decision": "allow"})
        assert again.status_code == 404
        decided.append(request["request_id"])
        # The second over the WebSocket.
        await await_for_async(asked)
        async with connect(service.ws_url, additional_headers=service.headers()) as ws:
            listed = await call(ws, "permissions", {"run_id": run_id})
            (request,) = listed["result"]["permissions"]
            assert Path(request["tool_input"]["file_path"]).name == "no.txt"
            params = {"run_id": run_id, "request_id": request["request_id"], "decision": "deny"}
            typo = await call(ws, "decide_permission", {**params, "mesage": "no"})
            assert typo["error"]["message"] == "unknown param(s): mesage", typo
            answered = await call(ws, "decide_permission", {**params, "message": "not this"})
            assert answered["result"]["decision"] == "deny", answered
        decided.append(request["request_id"])
        events = await sse_events(client, run_id)
    assert events[-1]["status"] == "ok"
    assert (b.workdir / "yes.txt").exists()
    assert not (b.workdir / "no.txt").exists()
    decisions = [e for e in events if e["type"] == "permission_decision"]
    assert [(d["request_id"], d["decision"], d["decided_by"]) for d in decisions] == [
        (decided[0], "allow", "service (HTTP)"),
        (decided[1], "deny", "service (WebSocket)"),
    ]
    assert [e["request_id"] for e in events if e["type"] == "permission_request"] == decided
    shown = subprocess.run(
        [CLI, "show", run_id], capture_output=True, text=True, check=True, env=service_env(service)
    ).stdout
    assert "by service (HTTP) (Write): reviewed" in shown


async def await_for_async(predicate: Callable[[], Any], timeout: float = 120) -> None:
    """Poll an async predicate until it is true (the service answers over HTTP)."""
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached within {timeout} s: {predicate!r}")
        await asyncio.sleep(0.02)


def service_env(service: Service) -> dict[str, str]:
    return {**os.environ, "CC_EXECUTOR_HOME": str(service.home)}


async def test_a_task_lists_asks_wait_in_the_services_queue(
    start: Callable[..., Service], bed: Any, tmp_path: Path
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("ask_timeout_s: 120\nrules:\n  - ask: Write\n")
    service = start("--permission-policy", str(policy))
    script = Script(
        [
            Rule(
                match=f"^write {n}$",
                answers=[
                    Reply([ToolUse("Write", {"file_path": f"{n}.txt", "content": n})]),
                    Reply([Text("done")]),
                ],
            )
            for n in ("yes", "no")
        ]
    )
    async with bed(script) as b, service.client() as client:
        tasks = [{"id": n, "prompt": f"write {n}"} for n in ("yes", "no")]
        body = {
            "tasks": {"parallel": True, "tasks": tasks},
            "options": b.options(accept_denials=True),
        }
        response = await client.post("/runs", json=body)
        assert response.status_code == 202, response.text
        list_id = response.json()["run_id"]
        pending: list[dict[str, Any]] = []

        async def asked() -> bool:
            listed = await client.get(f"/runs/{list_id}/permissions")
            pending[:] = listed.json()["permissions"]
            return len(pending) == 2

        # Both tasks ask at once; the list's queue holds both, each naming its task.
        await await_for_async(asked)
        by_task = {p["task_id"]: p for p in pending}
        assert sorted(by_task) == ["no", "yes"]
        assert Path(by_task["yes"]["tool_input"]["file_path"]).name == "yes.txt"
        # One by the list's id, the other by its task run's own id.
        yes = by_task["yes"]["request_id"]
        ok = await client.post(
            f"/runs/{list_id}/permissions/{yes}/decision", json={"decision": "allow"}
        )
        assert ok.status_code == 200, ok.text
        no_run = by_task["no"]["run_id"]
        alone = (await client.get(f"/runs/{no_run}/permissions")).json()["permissions"]
        assert [p["task_id"] for p in alone] == ["no"]
        url = f"/runs/{no_run}/permissions/{alone[0]['request_id']}/decision"
        denied = await client.post(url, json={"decision": "deny", "message": "not this"})
        assert denied.status_code == 200, denied.text
        events = await sse_events(client, list_id)
    assert events[-1]["status"] == "ok", events[-1]
    assert sorted(p.name for p in b.workdir.iterdir() if p.suffix == ".txt") == ["yes.txt"]
    decisions = sorted(
        (e["task_id"], e["decision"], e["decided_by"])
        for e in events
        if e["type"] == "permission_decision"
    )
    assert decisions == [("no", "deny", "service (HTTP)"), ("yes", "allow", "service (HTTP)")]
