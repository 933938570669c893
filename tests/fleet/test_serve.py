"""``serve --fleet``: the service's run endpoints (REST, SSE, WebSocket) start, list and
control fleet runs with the same API as local ones (the MCP tools stand on the same run
manager); the dashboard's side is test_serve_browser.py."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._procs import HOLD, NEEDLE, pids_running
from tests._wait import await_for
from tests.fleet.conftest import CLI
from tests.service.conftest import launch, sse_events
from tests.service.test_permissions import await_for_async

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_serve_with_fleet_runs_lists_and_controls_fleet_runs(
    fleet_bed: Any, tmp_path: Path
) -> None:
    script = Script(
        [
            Rule(match="^hold", answers=[HOLD]),
            Rule(
                match="^write",
                answers=[
                    Reply([ToolUse("Write", {"file_path": "approved.txt", "content": "ok"})]),
                    Reply([Text("written")]),
                ],
            ),
            Rule(answers=[Reply([Text("done on a worker")])]),
        ]
    )
    # The service's policy goes with its fleet runs; its ask comes back to its queue.
    policy = tmp_path / "policy.yaml"
    policy.write_text("ask_timeout_s: 120\ndefault: allow\nrules:\n  - ask: Write\n")
    async with fleet_bed(script) as bed:
        worker = bed.start_worker()
        home = tmp_path / "service-home"
        service = launch(home, bed.workdir, "--fleet", bed.url, "--permission-policy", str(policy))
        try:
            async with service.client() as client:
                options = {"cwd": str(bed.workdir)}
                quick = await client.post("/runs", json={"prompt": "quick", "options": options})
                assert quick.status_code == 202, quick.text
                quick_id = quick.json()["run_id"]
                events = await sse_events(client, quick_id)
                write = await client.post("/runs", json={"prompt": "write", "options": options})
                write_id = write.json()["run_id"]
                pending: list[dict[str, Any]] = []

                async def asked() -> bool:
                    listed = await client.get(f"/runs/{write_id}/permissions")
                    pending[:] = listed.json()["permissions"]
                    return bool(pending)

                await await_for_async(asked)
                (request,) = pending
                url = f"/runs/{write_id}/permissions/{request['request_id']}/decision"
                approved = await client.post(url, json={"decision": "allow"})
                assert approved.status_code == 200, approved.text
                written = await sse_events(client, write_id)
                # The fleet's workers, for the API and the dashboard's overview.
                status = await client.get("/fleet")
                assert status.status_code == 200, status.text
                (seen,) = status.json()["workers"]
                overview = await client.get("/ui/overview")
                held = await client.post(
                    "/runs",
                    json={"prompt": "hold", "options": {**options, "allowed_tools": ["Bash"]}},
                )
                held_id = held.json()["run_id"]
                needles = await await_for(
                    lambda: pids_running(bed.workdir, NEEDLE), timeout=120, what="the tool runs"
                )
                tool = psutil.Process(needles[0])
                paused = await client.post(f"/runs/{held_id}/pause")
                assert paused.status_code == 200, paused.text
                await await_for(lambda: tool.status() == psutil.STATUS_STOPPED, timeout=60)
                resumed = await client.post(f"/runs/{held_id}/resume")
                assert resumed.status_code == 200, resumed.text
                await await_for(lambda: tool.status() != psutil.STATUS_STOPPED, timeout=60)
                listed = (await client.get("/runs")).json()
                cancelled = await client.post(f"/runs/{held_id}/cancel")
                assert cancelled.status_code == 200, cancelled.text
                rest = await sse_events(client, held_id)
                held_run = (await client.get(f"/runs/{held_id}")).json()
        finally:
            await asyncio.to_thread(service.stop)
    done = events[-1]
    assert done["status"] == "ok", done
    assert written[-1]["status"] == "ok", written[-1]
    assert (bed.workdir / "approved.txt").read_text() == "ok"
    decisions = [e for e in written if e["type"] == "permission_decision"]
    assert [(d["tool_name"], d["decision"], d["decided_by"]) for d in decisions] == [
        ("Write", "allow", "service (HTTP)")
    ]
    assert seen["pid"] == worker.proc.pid
    assert seen["slots"] >= 1
    assert "claude" in seen["agents"]
    assert seen["queues"]
    assert 0 <= seen["heartbeat_age_s"] < 3600
    assert "default" in status.json()["queues"]
    assert overview.status_code == 200, overview.text
    assert seen["health"] == "ok"
    assert status.json()["lost"] == []
    assert f'<tr data-worker="{seen["worker_id"]}" data-health="ok">' in overview.text
    assert f"<td class=num>{worker.proc.pid}</td>" in overview.text
    assert done["result"]["result"] == "done on a worker"
    # It ran on the worker, under the service's own id (the fleet's id too).
    assert (worker.data / "runs" / quick_id).is_dir()
    assert bed.redis.client().exists(f"cc-executor:known:{quick_id}")
    assert {quick_id, held_id} <= {r["run_id"] for r in listed["runs"]}
    assert rest[-1]["status"] == "cancelled"
    assert held_run["result"]["partial"] is True
    assert "working on it" in held_run["result"]["result"]
    # Killed, the tool dies when it next gets a core (seconds on a loaded machine).
    await await_for(lambda: not pids_running(bed.workdir, NEEDLE), what="the tool gone")


async def test_a_fleet_run_over_the_websocket_streams_and_cancels(
    fleet_bed: Any, tmp_path: Path
) -> None:
    """``serve --fleet`` over its WebSocket: ``execute`` streams the worker's run as
    notifications, ``control`` CANCEL (from another connection) stops it."""
    from tests.service.test_ws import call, ws

    async def until(conn: Any, run_id: str, method: str) -> list[dict[str, Any]]:
        # No bound per message: a loaded machine may take long to start the worker's CLI
        # (pytest-timeout turns a hang into a failure).
        seen = []
        while True:
            message = json.loads(await conn.recv())
            if message.get("params", {}).get("run_id") == run_id:
                seen.append(message)
                if message["method"] == method:
                    return seen

    async with fleet_bed(Script([Rule(answers=[HOLD])])) as bed:
        worker = bed.start_worker()
        service = launch(tmp_path / "service-home", bed.workdir, "--fleet", bed.url)
        try:
            async with ws(service) as conn, ws(service) as control:
                options = {"cwd": str(bed.workdir), "allowed_tools": ["Bash"]}
                reply = await call(conn, "execute", {"prompt": "hold", "options": options})
                run_id = reply["result"]["run_id"]
                streamed = await until(conn, run_id, "run.tool_use")
                await await_for(
                    lambda: pids_running(bed.workdir, NEEDLE), timeout=120, what="the tool runs"
                )
                cancel = {"run_id": run_id, "type": "CANCEL"}
                cancelled = await call(control, "control", cancel)
                assert "result" in cancelled, cancelled
                rest = await until(conn, run_id, "process.completed")
        finally:
            await asyncio.to_thread(service.stop)
    text = "".join(
        m["params"]["text"] for m in streamed if m["method"] in ("run.text_delta", "run.text")
    )
    assert "working on it" in text, streamed
    methods = [m["method"] for m in rest]
    assert "process.canceled" in methods, methods
    completed = rest[-1]["params"]
    assert completed["status"] == "cancelled", completed
    assert completed["result"]["partial"] is True
    assert "working on it" in completed["result"]["result"]
    assert (worker.data / "runs" / run_id).is_dir()
    await await_for(lambda: not pids_running(bed.workdir, NEEDLE), what="the tool gone")


async def test_mcp_with_fleet_starts_and_waits_for_a_fleet_run(
    fleet_bed: Any, tmp_path: Path
) -> None:
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from tests.service.test_mcp import data

    async with fleet_bed(Script([Rule(answers=[Reply([Text("mcp on a worker")])])])) as bed:
        worker = bed.start_worker()
        args = ["mcp", "--allow-dir", str(bed.workdir), "--fleet", bed.url]
        env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path / "mcp-home")}
        params = StdioServerParameters(command=CLI, args=args, env=env)
        async with Client(stdio_client(params)) as client:
            options = {"cwd": str(bed.workdir)}
            started = data(
                await client.call_tool("start_run", {"prompt": "hi", "options": options})
            )
            state: dict[str, Any] = {"done": False}
            while not state["done"]:
                state = data(
                    await client.call_tool(
                        "wait_run", {"run_id": started["run_id"], "timeout_s": 50}
                    )
                )
    assert state["status"] == "ok", state
    assert state["result"] == "mcp on a worker"
    assert (worker.data / "runs" / started["run_id"]).is_dir()
