"""WebSocket JSON-RPC through the ``websockets`` client against the real server."""

from __future__ import annotations

import asyncio
import json
import random
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from cc_executor.testing import Reply, Rule, Script, Text
from tests.service.conftest import Service, chatty


def ws(service: Service, **kwargs: Any) -> Any:
    return connect(service.ws_url, additional_headers=service.headers(), **kwargs)


async def call(conn: ClientConnection, method: str, params: Any = None, id_: int = 1) -> Any:
    """Send a request; return its response, skipping notifications."""
    request: dict[str, Any] = {"jsonrpc": "2.0", "id": id_, "method": method}
    if params is not None:
        request["params"] = params
    await conn.send(json.dumps(request))
    while True:
        message = json.loads(await conn.recv())
        if "id" in message:
            return message


async def notifications(conn: ClientConnection, run_id: str) -> list[dict[str, Any]]:
    """Notifications for ``run_id`` until ``process.completed``."""
    out: list[dict[str, Any]] = []
    while True:
        message = json.loads(await asyncio.wait_for(conn.recv(), 30))
        if message.get("params", {}).get("run_id") != run_id:
            continue
        out.append(message)
        if message["method"] == "process.completed":
            return out


async def first_notification(conn: ClientConnection, run_id: str, method: str) -> None:
    """Read notifications for ``run_id`` until one named ``method`` arrives."""
    while True:
        message = json.loads(await asyncio.wait_for(conn.recv(), 30))
        params = message.get("params", {})
        if message.get("method") == method and params.get("run_id") == run_id:
            return


async def test_execute_streams_a_command_to_completion(service: Service) -> None:
    async with ws(service) as conn:
        reply = await call(conn, "execute", {"command": chatty(200)})
        run_id = reply["result"]["run_id"]
        messages = await notifications(conn, run_id)
    seqs = [m["params"]["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))
    methods = [m["method"] for m in messages]
    assert methods[:2] == ["run.queued", "process.started"]
    outputs = [m["params"]["text"] for m in messages if m["method"] == "process.output"]
    assert outputs == [f"line {i}" for i in range(200)]
    assert messages[-1]["params"]["status"] == "ok"


async def test_execute_claude_run_with_typed_events(service: Service, bed: Any) -> None:
    script = Script([Rule(answers=[Reply([Text("Typed events over JSON-RPC.")], chunk_size=4)])])
    async with bed(script) as b, ws(service) as conn:
        reply = await call(conn, "execute", {"prompt": "hi", "options": b.options()})
        run_id = reply["result"]["run_id"]
        messages = await notifications(conn, run_id)
        status = await call(conn, "status", {"run_id": run_id}, id_=2)
    methods = {m["method"] for m in messages}
    assert {"run.init", "run.text_delta", "run.result", "process.completed"} <= methods
    text = "".join(m["params"]["text"] for m in messages if m["method"] == "run.text_delta")
    assert text == "Typed events over JSON-RPC."
    assert messages[-1]["params"]["result"]["result"] == "Typed events over JSON-RPC."
    assert status["result"]["status"] == "ok"


async def test_control_from_a_second_connection(service: Service) -> None:
    async with ws(service) as first, ws(service) as second:
        reply = await call(first, "execute", {"argv": chatty(2000, 0.01)})
        run_id = reply["result"]["run_id"]
        await call(second, "subscribe", {"run_id": run_id, "after": 0})
        # Pausing needs a live process tree: on a loaded machine the run may still be
        # queued when the subscription answers, so wait for its first output line.
        await first_notification(second, run_id, "process.output")
        paused = await call(second, "control", {"run_id": run_id, "type": "PAUSE"}, id_=2)
        assert "result" in paused, paused
        assert paused["result"]["status"] == "paused", paused
        again = await call(second, "control", {"run_id": run_id, "type": "PAUSE"}, id_=3)
        assert again["error"]["code"] == -32009
        resumed = await call(second, "control", {"run_id": run_id, "type": "RESUME"}, id_=4)
        assert resumed["result"]["status"] == "running"
        cancelled = await call(second, "control", {"run_id": run_id, "type": "CANCEL"}, id_=5)
        assert "result" in cancelled
        messages = await notifications(first, run_id)
    methods = [m["method"] for m in messages]
    assert methods.index("process.paused") < methods.index("process.resumed")
    assert methods.index("process.resumed") < methods.index("process.canceled")
    assert messages[-1]["params"]["status"] == "cancelled"
    seqs = [m["params"]["seq"] for m in messages]
    assert seqs == list(range(1, len(seqs) + 1))


async def test_malformed_json_rpc_gets_errors_and_the_connection_stays_usable(
    service: Service,
) -> None:
    cases: list[tuple[str, int]] = [
        ("{not json", -32700),
        ("[]", -32600),
        ('"just a string"', -32600),
        ('{"jsonrpc": "1.0", "id": 1, "method": "status"}', -32600),
        ('{"jsonrpc": "2.0", "id": 1}', -32600),
        ('{"jsonrpc": "2.0", "id": {"a": 1}, "method": "status"}', -32600),
        ('{"jsonrpc": "2.0", "id": 1, "method": "nope"}', -32601),
        ('{"jsonrpc": "2.0", "id": 1, "method": "status", "params": 5}', -32600),
        ('{"jsonrpc": "2.0", "id": 1, "method": "control", "params": {"run_id": 1}}', -32602),
        ('{"jsonrpc": "2.0", "id": 1, "method": "control", "params": ["a"]}', -32602),
        ('{"jsonrpc": "2.0", "id": 1, "method": "subscribe", "params": {"run_id": "x"}}', -32001),
        ('{"jsonrpc": "2.0", "id": 1, "method": "execute", "params": {"prompt": ""}}', -32602),
        (
            '{"jsonrpc": "2.0", "id": 1, "method": "execute", "params": {"argv": ["/bin/sh"]}}',
            -32003,
        ),
    ]
    async with ws(service) as conn:
        for frame, code in cases:
            await conn.send(frame)
            reply = json.loads(await conn.recv())
            assert reply["error"]["code"] == code, (frame, reply)
            assert reply["jsonrpc"] == "2.0"
        await conn.send(b"\xff\xfe binary garbage")
        assert json.loads(await conn.recv())["error"]["code"] == -32700
        # A notification (no id) gets no reply, even when it fails.
        await conn.send('{"jsonrpc": "2.0", "method": "nope"}')
        batch = [
            {"jsonrpc": "2.0", "id": 1, "method": "status"},
            {"jsonrpc": "2.0", "method": "status"},
            {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        ]
        await conn.send(json.dumps(batch))
        replies = json.loads(await conn.recv())
        assert [r["id"] for r in replies] == [1, 2]
        assert "result" in replies[0]
        assert replies[1]["error"]["code"] == -32601
        status = await call(conn, "status")
        assert status["result"]["max_concurrent"] == 4


def random_frame(rng: random.Random) -> str | bytes:
    choice = rng.randrange(6)
    if choice == 0:
        return rng.randbytes(rng.randrange(0, 200))
    if choice == 1:
        return "".join(chr(rng.randrange(1, 0x2FFF)) for _ in range(rng.randrange(0, 100)))
    values: list[Any] = [None, True, 0, -1, 2**70, 1.5, "", "x" * 50, [], {}, [1, [2]], {"a": {}}]
    if choice == 2:
        return json.dumps(rng.choice(values))
    methods: list[Any] = ["execute", "control", "status", "subscribe", "unsubscribe"]
    methods += ["resume_tasks", "", "x", None, 5]
    request: dict[str, Any] = {
        "jsonrpc": rng.choice(["2.0", "2.0", "1.0", None]),
        "id": rng.choice([1, "a", None, 1.5, [], {}]),
        "method": rng.choice(methods),
    }
    if rng.random() < 0.8:
        request["params"] = rng.choice(
            [
                *values,
                {"run_id": rng.choice([*values, "nope"])},
                {"run_id": "x", "type": rng.choice(["PAUSE", "CANCEL", "??", 3])},
                {"argv": rng.choice(values)},
                {"prompt": rng.choice(values)},
                {"tasks": rng.choice(values)},
            ]
        )
    if choice == 5:
        return json.dumps([request, request])
    return json.dumps(request)


async def test_fuzzed_frames_do_not_take_the_server_down(service: Service) -> None:
    rng = random.Random(7)
    for _ in range(4):
        async with ws(service) as conn:
            for _ in range(300):
                await conn.send(random_frame(rng))
            # Every frame with an id got an answer or none; the connection still works.
            await conn.send(json.dumps({"jsonrpc": "2.0", "id": "last", "method": "status"}))
            while True:
                message = json.loads(await asyncio.wait_for(conn.recv(), 10))
                if isinstance(message, dict) and message.get("id") == "last":
                    break
    async with service.client() as client:
        assert (await client.get("/health")).json()["status"] == "ok"
    assert service.proc.poll() is None


async def test_oversize_message_closes_only_that_connection(start: Any) -> None:
    service = start("--max-message", "10000")
    async with ws(service) as conn:
        await conn.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "x" * 20000}))
        with pytest.raises(ConnectionClosed) as info:
            await conn.recv()
    assert info.value.rcvd is not None
    assert info.value.rcvd.code == 1009
    async with ws(service) as conn:
        assert "result" in await call(conn, "status")
    async with httpx.AsyncClient(base_url=service.url, headers=service.headers()) as client:
        assert (await client.get("/health")).status_code == 200


async def test_unsubscribe_stops_notifications(service: Service) -> None:
    async with ws(service) as conn:
        reply = await call(conn, "execute", {"argv": chatty(100, 0.02), "subscribe": False})
        run_id = reply["result"]["run_id"]
        await call(conn, "subscribe", {"run_id": run_id, "after": 0}, id_=2)
        await asyncio.wait_for(conn.recv(), 10)
        gone = await call(conn, "unsubscribe", {"run_id": run_id}, id_=3)
        assert gone["result"]["unsubscribed"] is True
        await asyncio.sleep(0.3)  # the child keeps printing: notifications would follow
        # Drain what was already in flight, then nothing more arrives.
        while True:
            try:
                await asyncio.wait_for(conn.recv(), 0.5)
            except asyncio.TimeoutError:
                break
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(conn.recv(), 1.0)
        status = await call(conn, "status", {"run_id": run_id}, id_=4)
    assert status["result"]["run_id"] == run_id
