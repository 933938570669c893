"""The MCP server through the official SDK client, over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client

from cc_executor.testing import Reply, Rule, Script, Text
from tests._means import claude_path, cli_test
from tests.service.conftest import CLI, Service


def data(result: Any) -> dict[str, Any]:
    assert not result.is_error, result.content
    if result.structured_content is not None:
        payload: dict[str, Any] = result.structured_content
        return payload
    loaded: dict[str, Any] = json.loads(result.content[0].text)
    return loaded


@asynccontextmanager
async def stdio_client_for(home: Path, root: Path) -> AsyncIterator[Client]:
    args = ["mcp", "--allow-dir", str(root)]
    if cli_test():
        args += ["--claude", str(claude_path())]
    params = StdioServerParameters(
        command=CLI, args=args, env={**os.environ, "CC_EXECUTOR_HOME": str(home)}
    )
    async with Client(params) as client:
        yield client


async def job_pattern(client: Client, options: dict[str, Any]) -> None:
    tools = {t.name for t in (await client.list_tools()).tools}
    assert tools >= {
        "start_run",
        "wait_run",
        "get_run",
        "cancel_run",
        "list_runs",
        "run_tasks",
        "verify_run",
    }
    started = data(await client.call_tool("start_run", {"prompt": "slow", "options": options}))
    run_id = started["run_id"]
    seen: list[tuple[float, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, message))

    first = data(
        await client.call_tool(
            "wait_run", {"run_id": run_id, "timeout_s": 2.5}, progress_callback=on_progress
        )
    )
    assert first["done"] is False, first
    assert seen, "no progress notification during wait_run"
    waits = 1
    state = first
    while not state["done"]:
        state = data(await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 50}))
        waits += 1
    assert waits >= 2
    assert state["status"] == "ok", state
    assert state["result"].startswith("word word")
    final = data(await client.call_tool("get_run", {"run_id": run_id}))
    assert final["status"] == "ok"
    assert final["cost_usd"] is not None
    listed = data(await client.call_tool("list_runs", {"limit": 5}))
    assert run_id in [r["run_id"] for r in listed["runs"]]
    verified = data(await client.call_tool("verify_run", {"run_id": run_id}))
    assert verified["ok"] is True, verified
    transcript = await client.read_resource(f"cc-executor://runs/{run_id}/transcript")
    text = transcript.contents[0].text  # type: ignore[union-attr]
    assert "[completed: ok]" in text
    history = await client.read_resource("cc-executor://history")
    assert run_id in history.contents[0].text  # type: ignore[union-attr]

    other = data(await client.call_tool("start_run", {"prompt": "slow", "options": options}))
    cancelled = data(await client.call_tool("cancel_run", {"run_id": other["run_id"]}))
    assert cancelled["run_id"] == other["run_id"]
    end = data(await client.call_tool("wait_run", {"run_id": other["run_id"], "timeout_s": 30}))
    assert end["status"] == "cancelled"
    refused = await client.call_tool("start_run", {"prompt": "x", "options": {"cwd": "/"}})
    assert refused.is_error
    missing = await client.call_tool("get_run", {"run_id": "nope"})
    assert missing.is_error


SLOW = Script([Rule(answers=[Reply([Text("word " * 80)], chunk_size=4, delay=0.05)])])


async def test_job_pattern_over_stdio(bed: Any, cc_home: Path, root: Path) -> None:
    async with bed(SLOW) as b, stdio_client_for(cc_home, root) as client:
        await job_pattern(client, b.options())


@asynccontextmanager
async def http_client_for(service: Service, token: str | None) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(service.url + "/mcp", http_client=http)) as client,
    ):
        yield client


async def test_job_pattern_over_streamable_http(bed: Any, start: Callable[..., Service]) -> None:
    service = start("--transport", "http", command="mcp")
    async with bed(SLOW) as b, http_client_for(service, service.token) as client:
        await job_pattern(client, b.options())


async def test_streamable_http_requires_the_token(start: Callable[..., Service]) -> None:
    service = start("--transport", "http", command="mcp")
    async with httpx2.AsyncClient() as http:
        response = await http.post(
            service.url + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Accept": "application/json, text/event-stream"},
        )
        assert response.status_code == 401
        response = await http.post(
            service.url + "/mcp",
            json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
            headers={"Authorization": f"Bearer {service.token}", "Host": "evil.example"},
        )
        assert response.status_code == 403
    with pytest.raises(Exception):  # noqa: B017, PT011 (the SDK wraps the 401 its own way)
        async with http_client_for(service, "wrong") as client:
            await client.list_tools()


async def test_run_tasks_tool_over_stdio(bed: Any, cc_home: Path, root: Path) -> None:
    script = Script(
        [
            Rule(match="first", answers=[Reply([Text("BETA")])]),
            Rule(match="second", answers=[Reply([Text("finished")])]),
        ]
    )
    async with bed(script) as b, stdio_client_for(cc_home, root) as client:
        options = b.options()
        spec = {
            "defaults": {"env": options["env"]},
            "tasks": [
                {"id": "one", "prompt": "first", "cwd": options["cwd"]},
                {
                    "id": "two",
                    "prompt": "second with {{ tasks.one.result }}",
                    "cwd": options["cwd"],
                },
            ],
        }
        started = data(await client.call_tool("run_tasks", {"spec": spec}))
        state = data(
            await client.call_tool("wait_run", {"run_id": started["run_id"], "timeout_s": 50})
        )
        prompts = [r.prompt for r in b.server.message_requests]
    assert state["done"] is True
    assert state["status"] == "ok"
    assert "second with BETA" in prompts
