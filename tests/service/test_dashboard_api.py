"""What the dashboard needs from the API, through real clients: the session cookie with its
CSRF token, the read-only token on REST, WebSocket and MCP, the run list's filters and
keyset pages, and the run list's live feed (``GET /runs/events``)."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from cc_executor._service._security import SecurityPolicy, Sessions
from tests.service.conftest import Service, chatty


def _readonly(service: Service) -> dict[str, str]:
    token = (service.home / "service-token-readonly").read_text().strip()
    return {"Authorization": f"Bearer {token}"}


async def _login(client: httpx.AsyncClient, token: str | None) -> str:
    """Open a dashboard session in ``client``; returns the session's CSRF token."""
    reply = await client.post("/ui/login", data={"token": token or ""})
    assert reply.status_code == 303, reply.text
    page = await client.get("/ui/runs")
    match = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert match is not None
    return match.group(1)


async def test_the_session_cookie_reads_and_needs_csrf_to_change(service: Service) -> None:
    port = service.url.rsplit(":", 1)[-1]
    async with httpx.AsyncClient(base_url=service.url, headers={"Origin": service.url}) as client:
        csrf = await _login(client, service.token)
        assert list(client.cookies) == [f"cc_executor_session_{port}"]
        assert (await client.get("/runs")).status_code == 200
        refused = await client.post("/runs/nope/cancel")
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == "bad_csrf"
        wrong = await client.post("/runs/nope/cancel", headers={"X-CSRF-Token": csrf[:-1]})
        assert wrong.status_code == 403
        passed = await client.post("/runs/nope/cancel", headers={"X-CSRF-Token": csrf})
        assert passed.status_code == 404  # past the guard: no such run
        # Another origin is refused before the cookie counts.
        evil = await client.get("/runs", headers={"Origin": "http://evil.example"})
        assert evil.status_code == 403
        await _websocket_with_the_cookie(service, client.cookies.get(f"cc_executor_session_{port}"))
        # The same cookie under another port's name is no session.
        other = httpx.Cookies({f"cc_executor_session_{int(port) + 1}": "x"})
        async with httpx.AsyncClient(base_url=service.url, cookies=other) as stranger:
            assert (await stranger.get("/runs")).status_code == 401
            page = await stranger.get("/ui/runs")
            assert page.status_code == 303
            assert page.headers["location"] == "/ui/login"
        assert (await client.post("/ui/logout", headers={"X-CSRF-Token": csrf})).status_code == 204
        session = client.cookies.get(f"cc_executor_session_{port}")
        async with httpx.AsyncClient(base_url=service.url) as after:
            after.cookies.set(f"cc_executor_session_{port}", session or "gone")
            assert (await after.get("/runs")).status_code == 401


async def _websocket_with_the_cookie(service: Service, session: str | None) -> None:
    """A WebSocket handshake cannot carry X-CSRF-Token: with the session cookie, Origin is
    its CSRF check (docs/security.md). Another origin, a same-site one (another port of
    the same host: SameSite lets the cookie go) included, and no Origin are refused."""
    port = int(service.url.rsplit(":", 1)[-1])
    cookie = {"Cookie": f"cc_executor_session_{port}={session}"}
    host = service.url.rsplit(":", 1)[0]
    for origin in ("http://evil.example", f"{host}:{port + 1}", None):
        given = Origin(origin) if origin else None
        with pytest.raises(InvalidStatus) as refused:
            async with connect(service.ws_url, additional_headers=cookie, origin=given):
                pass
        assert refused.value.response.status_code == 403, origin
        assert b"bad_origin" in refused.value.response.body, origin
    ours = Origin(service.url)
    async with connect(service.ws_url, additional_headers=cookie, origin=ours) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status",
                                  "params": {"run_id": "nope"}}))  # fmt: skip
        assert json.loads(await ws.recv())["id"] == 1  # past the guard


async def test_the_read_only_token_reads_and_changes_nothing(service: Service) -> None:
    reader = _readonly(service)
    async with (
        service.client() as client,
        httpx.AsyncClient(base_url=service.url, headers=reader) as ro,
    ):
        started = await client.post(
            "/runs", json={"argv": chatty(1000, 0.05), "options": {"cwd": str(service.root)}}
        )
        run_id = started.json()["run_id"]
        assert (await ro.get("/runs")).status_code == 200
        assert (await ro.get(f"/runs/{run_id}")).status_code == 200
        changes = (
            "/runs",
            f"/runs/{run_id}/cancel",
            f"/runs/{run_id}/pause",
            f"/runs/{run_id}/permissions/0/decision",
            f"/runs/{run_id}/workspace/merge",
            f"/runs/{run_id}/workspace/discard",
        )
        for path in changes:
            refused = await ro.post(path, json={"argv": chatty(1)})
            assert refused.status_code == 403, path
            assert refused.json()["error"]["code"] == "read_only"
        async with connect(service.ws_url, additional_headers=reader) as ws:
            await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "status",
                                      "params": {"run_id": run_id}}))  # fmt: skip
            assert "result" in json.loads(await ws.recv())
            for method in ("execute", "control", "decide_permission"):
                params = {"run_id": run_id, "type": "CANCEL", "argv": chatty(1),
                          "request_id": "0", "decision": "allow"}  # fmt: skip
                await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": method,
                                          "params": params}))  # fmt: skip
                reply = json.loads(await ws.recv())
                assert reply["error"]["code"] == -32003, reply
        assert (await client.get(f"/runs/{run_id}")).json()["status"] == "running"
        await client.post(f"/runs/{run_id}/cancel")


async def test_the_read_only_token_on_mcp_calls_only_reading_tools(
    start: Callable[..., Service],
) -> None:
    service = start("--transport", "http", command="mcp")
    reader = {**_readonly(service), "Accept": "application/json, text/event-stream"}
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call"}
    async with httpx.AsyncClient(base_url=service.url, headers=reader) as ro:
        listed = await ro.post("/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"})
        assert listed.status_code != 403
        for tool in ("start_run", "cancel_run", "run_tasks", "resume_tasks"):
            refused = await ro.post("/mcp", json={**call, "params": {"name": tool}})
            assert refused.status_code == 403, tool
            batch = [{**call, "params": {"name": "list_runs"}}, {**call, "params": {"name": tool}}]
            assert (await ro.post("/mcp", json=batch)).status_code == 403
        reading = await ro.post("/mcp", json={**call, "params": {"name": "list_runs"}})
        assert reading.status_code != 403


async def test_run_list_filters_pages_and_live_feed(service: Service) -> None:
    async with service.client() as client:
        # A live feed first, then runs: their changes come through it.
        feed: list[dict[str, Any]] = []
        subscribed = asyncio.Event()

        async def follow() -> None:
            async with client.stream("GET", "/runs/events") as response:
                assert response.headers["content-type"].startswith("text/event-stream")
                async for line in response.aiter_lines():
                    subscribed.set()
                    if line.startswith("data: "):
                        feed.append(json.loads(line[6:]))
                        if len([e for e in feed if e["run"]["status"] == "ok"]) == 5:
                            return

        reader = asyncio.ensure_future(follow())
        await subscribed.wait()
        ids = []
        for n in range(5):
            argv = [sys.executable, "-c", f"print({n})"]
            reply = await client.post(
                "/runs", json={"argv": argv, "options": {"cwd": str(service.root)}}
            )
            ids.append(reply.json()["run_id"])
        await asyncio.wait_for(reader, 60)
        statuses = [e["run"]["status"] for e in feed if e["run"]["run_id"] == ids[0]]
        assert statuses[-1] == "ok"
        assert "running" in statuses
        for n in range(5):
            await client.get(f"/runs/{ids[n]}")
        seen: list[str] = []
        cursor = None
        while True:
            params = {"limit": "2", "brief": "1", "kind": "exec"}
            if cursor:
                params["before"] = cursor
            page = (await client.get("/runs", params=params)).json()
            seen += [r["run_id"] for r in page["runs"]]
            assert all("result" not in r for r in page["runs"])
            cursor = page["next"]
            if cursor is None:
                break
        assert seen == list(reversed(ids))
        bad = await client.get("/runs", params={"before": "yesterday"})
        assert bad.status_code == 400


async def test_a_filtered_live_feed_sends_matches_as_run_and_the_rest_as_leave(
    service: Service,
) -> None:
    """``GET /runs/events`` with the run list's filters: a run's changes come as ``run``
    while it matches them, as ``leave`` (its new line) once it does not."""
    async with service.client() as client:
        # Streamed: a server taking no filters would answer 200 and never end the body.
        async with client.stream("GET", "/runs/events", params={"since": "yesterday"}) as bad:
            assert bad.status_code == 400
            assert "since must be a number" in (await bad.aread()).decode()
        feeds: dict[str, list[dict[str, Any]]] = {"running": [], "run": []}
        subscribed = {name: asyncio.Event() for name in feeds}

        async def follow(name: str, params: dict[str, str]) -> None:
            async with client.stream("GET", "/runs/events", params=params) as response:
                async for line in response.aiter_lines():
                    subscribed[name].set()
                    if line.startswith("data: "):
                        event = json.loads(line[6:])
                        feeds[name].append(event)
                        if event["run"]["status"] == "ok":
                            return

        readers = [
            asyncio.ensure_future(follow("running", {"status": "running", "kind": "exec"})),
            asyncio.ensure_future(follow("run", {"kind": "run"})),
        ]
        for ready in subscribed.values():
            await ready.wait()
        argv = [sys.executable, "-c", "print('filtered')"]
        reply = await client.post(
            "/runs", json={"argv": argv, "options": {"cwd": str(service.root)}}
        )
        run_id = reply.json()["run_id"]
        await asyncio.gather(*readers)
    running = [(e["type"], e["run"]["status"]) for e in feeds["running"]]
    assert {e["run"]["run_id"] for e in feeds["running"]} == {run_id}
    # Matching while it runs; out of the list once it is queued or has ended.
    assert ("run", "running") in running, running
    assert running[-1] == ("leave", "ok"), running
    assert all(kind == "leave" for kind, status in running if status != "running"), running
    # An exec run never matches kind=run: each of its changes leaves that list.
    assert {e["type"] for e in feeds["run"]} == {"leave"}, feeds["run"]


async def test_history_runs_page_by_key(service: Service) -> None:
    from cc_executor._store import RunRecord, open_store

    store = open_store()  # the server's history (same data folder)
    try:
        for n in range(3):
            record = RunRecord(
                id=f"old-{n}", kind="run", status="ok", started_at=1000.0 + n, cwd=str(service.root)
            )
            store.start(record)
    finally:
        store.close()
    async with service.client() as client:
        first = (await client.get("/runs", params={"limit": "2"})).json()
        assert [r["run_id"] for r in first["runs"]] == ["old-2", "old-1"]
        assert first["next"] is not None
        rest = (await client.get("/runs", params={"limit": "2", "before": first["next"]})).json()
        assert [r["run_id"] for r in rest["runs"]] == ["old-0"]
        assert rest["next"] is None
        overview = (await client.get("/runs/overview", params={"since": "0"})).json()
        assert overview["runs"] == 3
        assert overview["by_status"] == {"ok": 3}
        assert list(overview["cost_by_day"]) == ["1970-01-01"]
        recent = (await client.get("/runs/overview")).json()  # the last 7 days: none
        assert recent["runs"] == 0
    # The run list page says what is wrong with a filter of its URL: a date it could not
    # read was ignored (every run listed), a bad key was Python's "could not convert".
    async with httpx.AsyncClient(base_url=service.url) as browser:
        await _login(browser, service.token)
        for query, says in (
            ("from=yesterday", "from must be a date like 2026-12-31, got &#x27;yesterday&#x27;"),
            ("to=2026-13-01", "to must be a date like 2026-12-31, got &#x27;2026-13-01&#x27;"),
            ("before=garbage", "before must be the key of an Older runs link, got &#x27;garbage"),
            ("status=done", "unknown status &#x27;done&#x27; (known: queued, "),
        ):
            page = await browser.get(f"/ui/runs?{query}")
            assert page.status_code == 400, (query, page.text)
            assert says in page.text, (query, page.text)
            assert "old-0" not in page.text, query


def test_sessions_end_when_idle_or_old() -> None:
    sessions = Sessions(lifetime=3600, idle=0)
    session_id, _ = sessions.open("full")
    assert sessions.get(session_id) is None
    sessions = Sessions(lifetime=0, idle=3600)
    session_id, _ = sessions.open("full")
    assert sessions.get(session_id) is None
    sessions = Sessions(limit=2)
    first, _ = sessions.open("full")
    sessions.open("read")
    sessions.open("read")
    assert sessions.get(first) is None  # the oldest made room
    policy = SecurityPolicy.build("t" * 43, readonly_token="r" * 43)
    assert policy.role_of_token("t" * 43) == "full"
    assert policy.role_of_token("r" * 43) == "read"
    assert policy.role_of_token("x") is None
