"""The MCP server through the official SDK client, over stdio and streamable HTTP."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TextIO

import httpx2
import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from cc_executor._run._options import RunOptions
from cc_executor._run._options_schema import options_json_schema
from cc_executor.tasks._schema import task_list_json_schema
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
async def stdio_client_for(
    home: Path, root: Path, errlog: TextIO = sys.stderr
) -> AsyncIterator[Client]:
    """A client of ``cc-executor mcp`` over stdio; the server's stderr goes to ``errlog``."""
    args = ["mcp", "--allow-dir", str(root)]
    if cli_test():
        args += ["--claude", str(claude_path())]
        for name in ("ANTHROPIC_BASE_URL", "HOME", "CLAUDE_CONFIG_DIR"):
            args += ["--allow-env", name]
    params = StdioServerParameters(
        command=CLI, args=args, env={**os.environ, "CC_EXECUTOR_HOME": str(home)}
    )
    async with Client(stdio_client(params, errlog=errlog)) as client:
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
    # wait_run on a task list returns each task's result, not only the list's status.
    assert state["tasks"]["one"]["status"] == "ok"
    assert state["tasks"]["one"]["result"] == "BETA"
    assert state["tasks"]["two"]["result"] == "finished"
    assert state["tasks"]["two"]["run_id"]
    assert state["counts"]["ok"] == 2


def refusals(root: Path) -> list[tuple[str, dict[str, Any], str]]:
    """(tool, arguments, the exact text the client must get) for ordinary refusals."""
    settable = ", ".join(sorted(options_json_schema(remote=True)["properties"]))
    return [
        (
            "start_run",
            {"prompt": "x", "options": {"cwd": "/"}},
            "forbidden: cwd '/' (resolved: /) is outside the allowed directories "
            "(start the server with --allow-dir to allow more)",
        ),
        (
            "start_run",
            {"prompt": "x", "cwd": str(root)},
            "invalid_request: unknown argument(s) of start_run: cwd (known: prompt, options); "
            "run options (cwd) go inside options",
        ),
        (
            "start_run",
            {"prompt": "x", "options": {"cwdd": str(root)}},
            "invalid_request: unknown run option(s) in options: cwdd (did you mean cwd?); "
            f"known: {settable}",
        ),
        (
            "start_run",
            {"prompt": "x", "options": {"record": False}},
            "forbidden: option(s) set by the server only: record",
        ),
        (
            "start_run",
            {"prompt": "x", "options": {"timeout": "soon"}},
            "invalid_request: timeout must be a number or None, got 'soon'",
        ),
        ("start_run", {"options": {}}, "invalid_request: start_run: prompt: Field required"),
        ("get_run", {"run_id": "nope"}, "not_found: no run 'nope'"),
        ("wait_run", {"run_id": "nope", "timeout_s": 1}, "not_found: no run 'nope'"),
        ("cancel_run", {"run_id": "nope"}, "not_found: no run 'nope' in this server's memory"),
        ("resume_tasks", {"list_id": "nope"}, "not_found: no task list 'nope'"),
        (
            "list_runs",
            {"kind": "task"},
            "invalid_request: unknown kind 'task' (known: run, exec, tasks)",
        ),
        (
            "list_permissions",
            {"run_id": "nope"},
            "not_found: no run 'nope' in this server's memory",
        ),
        (
            "decide_permission",
            {"run_id": "nope", "request_id": "p1", "decision": "maybe"},
            "invalid_request: decision must be allow or deny, got 'maybe'",
        ),
        (
            "wait_run",
            {"run_id": "nope", "timeout": 5},
            "invalid_request: unknown argument(s) of wait_run: timeout (known: run_id, timeout_s)",
        ),
        (
            "run_tasks",
            {"spec": {"tasks": [{"prompt": "x"}]}, "max_parallel": 2},
            "invalid_request: unknown argument(s) of run_tasks: max_parallel (known: spec)",
        ),
        (
            "run_tasks",
            {"spec": {"tasks": [{"promt": "x"}]}},
            'invalid_request: <request>: tasks[0]: task "task_1": unknown field "promt" (did '
            'you mean prompt?); <request>: tasks[0]: task "task_1": missing "prompt"',
        ),
    ]


async def check_refusals(client: Client, root: Path) -> None:
    for tool, arguments, expected in refusals(root):
        result = await client.call_tool(tool, arguments)
        assert result.is_error, (tool, arguments, result)
        assert [c.text for c in result.content] == [expected]  # type: ignore[union-attr]
    with pytest.raises(MCPError, match=r"^no run 'nope' in this server's memory$"):
        await client.read_resource("cc-executor://runs/nope/transcript")


def assert_quiet(stderr: str) -> None:
    """An ordinary refusal is no crash: the server logs no traceback for it."""
    assert "Traceback" not in stderr, stderr
    assert "Error executing tool" not in stderr, stderr


@pytest.mark.slow  # over 0.3 s: starts the service
async def test_refusals_reach_the_client_as_their_reason_over_stdio(
    cc_home: Path, root: Path, tmp_path: Path
) -> None:
    errlog = tmp_path / "server-stderr.txt"
    with errlog.open("w") as err:
        async with stdio_client_for(cc_home, root, errlog=err) as client:
            await check_refusals(client, root)
            listed = data(await client.call_tool("list_runs", {}))
    assert listed["runs"] == []  # nothing was started by any refused call
    assert_quiet(errlog.read_text())


async def test_refusals_reach_the_client_as_their_reason_over_streamable_http(
    start: Callable[..., Service],
) -> None:
    service = start("--transport", "http", command="mcp")
    async with http_client_for(service, service.token) as client:
        await check_refusals(client, service.root)
    service.proc.terminate()
    service.proc.wait(30)
    assert service.proc.stderr is not None
    assert_quiet(service.proc.stderr.read())


@pytest.mark.slow  # over 0.3 s: starts the service
async def test_run_tools_publish_schemas_derived_from_the_option_declarations(
    cc_home: Path, root: Path
) -> None:
    async with stdio_client_for(cc_home, root) as client:
        tools = {t.name: t for t in (await client.list_tools()).tools}
    for tool in tools.values():
        assert tool.input_schema["additionalProperties"] is False, tool.name
    start_run = tools["start_run"].input_schema
    assert set(start_run["properties"]) == {"prompt", "options"}
    assert start_run["required"] == ["prompt"]
    options = start_run["properties"]["options"]
    assert options["additionalProperties"] is False
    remote = {o.name for o in RunOptions.options if o.remote != "server_only"}
    assert set(options["properties"]) == remote
    assert {"cwd", "model", "allowed_tools", "timeout"} <= remote
    assert options["properties"]["timeout"]["exclusiveMinimum"] == 0
    assert options["properties"]["allowed_tools"]["items"] == {"type": "string"}
    assert options["properties"]["cwd"]["description"].startswith("the folder the agent runs")
    spec = tools["run_tasks"].input_schema["properties"]["spec"]
    assert {k: v for k, v in spec.items() if k != "description"} == task_list_json_schema(
        remote=True
    )
    for name in ("start_run", "run_tasks"):
        assert "Over stdio a run ends with the MCP session" in (tools[name].description or "")
    assert '"tasks" maps each task id to its status, result' in (
        tools["wait_run"].description or ""
    ).replace("\n", " ")


async def test_over_stdio_runs_end_with_the_session(bed: Any, cc_home: Path, root: Path) -> None:
    """What the tool descriptions promise: a client that disconnects ends its runs."""
    import psutil

    from cc_executor._store import open_store

    endless = Script([Rule(answers=[Reply([Text("word " * 400)], chunk_size=4, delay=0.5)])])
    async with bed(endless) as b:
        async with stdio_client_for(cc_home, root) as client:
            started = data(
                await client.call_tool("start_run", {"prompt": "go", "options": b.options()})
            )
            run_id = started["run_id"]
            state = started
            while not state.get("text_tail"):  # the CLI is up and answering
                state = data(await client.call_tool("wait_run", {"run_id": run_id, "timeout_s": 2}))
                assert not state["done"], state
        store = open_store()
        try:
            record = store.get(run_id)
        finally:
            store.close()
    assert record is not None
    assert record.status in ("cancelled", "interrupted"), record
    assert record.pid is not None
    assert not psutil.pid_exists(record.pid) or psutil.Process(record.pid).status() == "zombie"
