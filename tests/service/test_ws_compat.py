"""The original cc_executor's WebSocket clients, against the real server: its path
``/ws/mcp``, its ``{"command", "timeout"}`` requests, and the notification keys it reads
(``params.data``, ``params.exit_code``)."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

from cc_executor._store import open_store
from cc_executor.testing import Reply, Rule, Script, Text
from tests.service.conftest import Service, chatty


def old_client(service: Service) -> Any:
    """A connection where the original's clients connected: ``/ws/mcp``."""
    return connect(service.ws_url + "/mcp", additional_headers=service.headers())


async def call(conn: ClientConnection, method: str, params: dict[str, Any]) -> dict[str, Any]:
    """A request as the original's clients sent it; its reply, notifications skipped."""
    await conn.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
    while True:
        message = json.loads(await conn.recv())
        if message.get("id") == 1:
            return dict(message)


async def execute(conn: ClientConnection, params: dict[str, Any]) -> dict[str, Any]:
    return await call(conn, "execute", params)


async def until_completed(conn: ClientConnection) -> list[dict[str, Any]]:
    """Notifications as the original's client read them: until ``process.completed``."""
    out = []
    while True:
        message = json.loads(await asyncio.wait_for(conn.recv(), 60))
        out.append(message)
        if message.get("method") == "process.completed":
            return out


async def test_old_client_reads_data_and_exit_code(service: Service) -> None:
    async with old_client(service) as conn:
        reply = await execute(conn, {"command": chatty(3), "timeout": 60})
        assert "result" in reply, reply
        messages = await until_completed(conn)
    output = [m["params"]["data"] for m in messages if m["method"] == "process.output"]
    assert output == ["line 0", "line 1", "line 2"]
    assert messages[-1]["params"]["exit_code"] == 0
    assert messages[-1]["params"]["status"] == "ok"


async def test_top_level_timeout_is_the_runs(service: Service) -> None:
    forever = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"]
    async with old_client(service) as conn:
        reply = await execute(conn, {"command": forever, "timeout": 1})
        messages = await until_completed(conn)
        twice = await execute(conn, {"argv": forever, "timeout": 1, "options": {"timeout": 2}})
    assert messages[-1]["params"]["status"] == "timeout", messages[-1]
    assert reply["result"]["run_id"] == messages[-1]["params"]["run_id"]
    assert twice["error"]["code"] == -32602
    assert twice["error"]["message"] == (
        "timeout is given twice, at the top and in options, differently"
    )


async def test_shell_strings_are_refused_saying_why(service: Service) -> None:
    async with old_client(service) as conn:
        replies = [
            await execute(conn, {"command": command})
            for command in (
                "ls -la",
                "bash -c 'claude -p hi'",
                "claude -p 'hi' --unheard-of",
                "claude -p",
                "claude -p 'unclosed",
            )
        ]
    errors = [r["error"] for r in replies]
    assert all(e["code"] == -32602 for e in errors), errors
    assert errors[0]["message"].startswith(
        "command strings are not run: this server never uses a shell. Send argv"
    )
    assert errors[1]["message"] == errors[0]["message"]
    assert errors[2]["message"].startswith(
        "command: claude flag --unheard-of is not translated into a run option"
    )
    assert errors[3]["message"] == (
        "command: a claude command line needs exactly one prompt (quoted as one word), got 0"
    )
    assert errors[4]["message"].startswith("command: cannot be split into words (No closing")


async def test_old_client_claude_command_line_is_an_agent_run(service: Service, bed: Any) -> None:
    """``claude -p "..." --output-format stream-json --verbose`` (what the original's
    clients sent) runs as a Claude Code run, never through a shell; its text comes as
    process.output data, and its flags become options."""
    script = Script([Rule(answers=[Reply([Text("Hello from a translated run.")], chunk_size=5)])])
    command = (
        'claude -p "Say hello; $(touch pwned) `id`" --output-format stream-json --verbose '
        "--max-turns 3 --allowedTools Read,Grep"
    )
    async with bed(script) as b, old_client(service) as conn:
        reply = await execute(conn, {"command": command, "timeout": 120, "options": b.options()})
        assert "result" in reply, reply
        messages = await until_completed(conn)
        prompt = b.server.message_requests[-1].prompt
        after = await execute(conn, {"argv": ["nothing"]})  # the connection still works
    text = "".join(m["params"]["data"] for m in messages if m["method"] == "process.output")
    assert text == "Hello from a translated run."
    deltas = [m for m in messages if m["method"] == "run.text_delta"]
    outputs = [m for m in messages if m["method"] == "process.output"]
    assert [m["params"]["seq"] for m in outputs] == [m["params"]["seq"] for m in deltas]
    done = messages[-1]["params"]
    assert done["status"] == "ok"
    assert done["exit_code"] == 0
    assert done["result"]["result"] == "Hello from a translated run."
    # The prompt reached the CLI as data: no shell expanded it.
    assert prompt == "Say hello; $(touch pwned) `id`"
    assert not (b.workdir / "pwned").exists()
    assert "error" in after
    # The flags became the run's options: they reached the CLI as its own flags.
    store = open_store()
    try:
        record = store.get(done["run_id"])
    finally:
        store.close()
    assert record is not None
    assert "--max-turns=3" in record.argv
    assert {"--allowedTools=Read", "--allowedTools=Grep"} <= set(record.argv)


async def test_control_without_run_id_is_for_the_connections_last_run(service: Service) -> None:
    """The original's clients sent {"type": "CANCEL"} alone: one run per connection."""
    async with old_client(service) as conn:
        early = await call(conn, "control", {"type": "CANCEL"})
        reply = await execute(conn, {"command": chatty(100_000, 0.01)})
        cancelled = await call(conn, "control", {"type": "CANCEL"})
        messages = await until_completed(conn)
    assert early["error"]["message"] == "run_id (a string) is required"
    assert cancelled["result"]["run_id"] == reply["result"]["run_id"]
    assert messages[-1]["params"]["status"] == "cancelled"
