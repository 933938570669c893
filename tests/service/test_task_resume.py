"""``POST /tasks/{list_id}/resume`` (and the WebSocket and MCP equivalents): a task list
that failed runs again under its own id as ``tasks resume`` does: the tasks that ended ok
are kept, the others run again, with the caller's options over the saved ones; the same
policy as a new list, the read-only token and the session cookie's CSRF check apply."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import httpx
from websockets.asyncio.client import connect

from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.service.conftest import Service, sse_events

SCRIPT = Script(
    [
        # The second task writes a file: denied without allowed_tools, so the task fails.
        Rule(
            match="^write",
            answers=[
                Reply([ToolUse("Write", {"file_path": "out.txt", "content": "written"})]),
                Reply([Text("wrote out.txt")]),
            ],
        ),
        Rule(answers=[Reply([Text("first done")])]),
    ]
)

TASKS = {
    "tasks": [
        {"id": "first", "prompt": "say something"},
        {"id": "second", "prompt": "write out.txt", "depends_on": ["first"]},
    ]
}


async def _finished(client: httpx.AsyncClient, run_id: str) -> dict[str, Any]:
    """Follow the run's events to its end; returns its final state."""
    events = await sse_events(client, run_id)
    assert events[-1]["type"] == "completed", events[-1]
    reply = await client.get(f"/runs/{run_id}")
    data: dict[str, Any] = reply.json()
    return data


async def test_a_failed_list_resumes_with_fixed_options_and_keeps_its_ok_task(
    start: Callable[..., Service], bed: Any
) -> None:
    first = start()
    async with bed(SCRIPT) as b:
        async with first.client() as client:
            created = await client.post("/runs", json={"tasks": TASKS, "options": b.options()})
            assert created.status_code == 202, created.text
            list_id = created.json()["run_id"]
            failed = await _finished(client, list_id)
        assert failed["status"] == "failed", failed
        tasks = failed["result"]["tasks"]
        assert (tasks["first"]["status"], tasks["second"]["status"]) == ("ok", "failed")
        assert not (first.root / "out.txt").exists()
        first.stop()
        # Another server: the list is in its history and its folder only.
        service = start()
        async with httpx.AsyncClient(base_url=service.url) as browser:
            await browser.post("/ui/login", data={"token": service.token})
            page = (await browser.get(f"/ui/runs/{list_id}")).text
        # Its page draws the list from its folder: the graph, each task's last state.
        assert '<g class="task-node t-ok" data-task="first">' in page
        assert '<g class="task-node t-failed" data-task="second">' in page
        assert '<td data-col="state"><span class="status s-failed">failed</span>' in page
        # How long each task ran, from its saved start and end (table and tooltip).
        assert re.search(r'<tr data-task="first">.*?data-col="duration" class="num">\d+\.\d<', page)
        assert re.search(r"<title>first: ok, \d+\.\d s</title>", page)
        assert "data-resume-list aria" in page  # the Resume button, enabled
        await _resume_on(service, list_id, b)


async def _resume_on(service: Service, list_id: str, b: Any) -> None:
    async with service.client() as client:
        # Refused: the read-only token, an unknown list, a server-only option, bad input.
        reader = (service.home / "service-token-readonly").read_text().strip()
        refused = await client.post(
            f"/tasks/{list_id}/resume", headers={"Authorization": f"Bearer {reader}"}
        )
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "read_only")
        assert (await client.post("/tasks/nope/resume")).status_code == 404
        server_only = await client.post(
            f"/tasks/{list_id}/resume", json={"options": {"claude_path": "/bin/sh"}}
        )
        assert server_only.status_code == 403, server_only.text
        assert "set by the server only" in server_only.json()["error"]["message"]
        bad = await client.post(f"/tasks/{list_id}/resume", content=b"{")
        assert bad.status_code == 400
        limits = {"options": {"max_parallel": 0}}
        bad_limit = await client.post(f"/tasks/{list_id}/resume", json=limits)
        assert bad_limit.status_code == 400, bad_limit.text
        assert "max_parallel must be an integer >= 1" in bad_limit.json()["error"]["message"]

        # The fix: Write allowed (env is never saved: this server was not given it).
        options = {"allowed_tools": ["Write"], "env": b.options()["env"]}
        resumed = await client.post(f"/tasks/{list_id}/resume", json={"options": options})
        assert resumed.status_code == 202, resumed.text
        assert resumed.json()["run_id"] == list_id
        again = await client.post(f"/tasks/{list_id}/resume", json={"options": options})
        assert again.status_code == 409, again.text  # it runs: twice is refused
        events = await sse_events(client, list_id)
        done = (await client.get(f"/runs/{list_id}")).json()
        assert done["status"] == "ok", done
        tasks = done["result"]["tasks"]
        assert tasks["first"]["attempts"] == 1  # kept, not run again
        assert tasks["second"]["attempts"] == 2
        assert (service.root / "out.txt").read_text() == "written"
        assert sum(r.prompt == "say something" for r in b.server.message_requests) == 1
        # The kept task's state comes first in the resumed run's events (a page draws it).
        kept = [e for e in events if e["type"] == "task_state" and e["task_id"] == "first"]
        assert [e["state"] for e in kept] == ["ok"]
        listed = (await client.get("/runs", params={"kind": "tasks"})).json()["runs"]
        assert [r["status"] for r in listed if r["run_id"] == list_id] == ["ok"]


async def test_resume_needs_the_csrf_token_with_the_session_cookie_and_over_ws(
    start: Callable[..., Service],
) -> None:
    service = start()
    async with httpx.AsyncClient(base_url=service.url, headers={"Origin": service.url}) as client:
        assert (await client.post("/ui/login", data={"token": service.token})).status_code == 303
        page = await client.get("/ui/runs")
        match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
        assert match is not None
        refused = await client.post("/tasks/nope/resume")
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "bad_csrf")
        passed = await client.post("/tasks/nope/resume", headers={"X-CSRF-Token": match[1]})
        assert passed.status_code == 404  # past the guard: no such list
    reader = (service.home / "service-token-readonly").read_text().strip()
    request = {"jsonrpc": "2.0", "id": 1, "method": "resume_tasks", "params": {"list_id": "nope"}}
    async with connect(service.ws_url, additional_headers=service.headers()) as ws:
        await ws.send(json.dumps(request))
        assert json.loads(await ws.recv())["error"]["code"] == -32001  # not found
    async with connect(
        service.ws_url, additional_headers={"Authorization": f"Bearer {reader}"}
    ) as ws:
        await ws.send(json.dumps(request))
        assert json.loads(await ws.recv())["error"]["code"] == -32003  # read-only
