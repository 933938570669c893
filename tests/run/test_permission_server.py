"""The permission prompt server on its own: its JSON-RPC over stdio, its checks of every
message, and its start (standard library only, nothing from the agent's cwd), against a
real run broker in this process. Through the real CLI: tests/run/test_permissions.py."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor._run import _permission_server
from cc_executor._run._permissions import PermissionBroker, PermissionRequest
from cc_executor._run._policy import parse_policy


class Peer:
    """The CLI's side: writes lines to the server's stdin, reads its answers."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.count = 0

    async def send(self, message: dict[str, Any] | bytes) -> None:
        assert self.proc.stdin is not None
        data = message if isinstance(message, bytes) else json.dumps(message).encode()
        self.proc.stdin.write(data + b"\n")
        await self.proc.stdin.drain()

    async def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = await self.proc.stdout.readline()
        assert line, "the server closed its stdout"
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def call(self, method: str, params: Any = None) -> dict[str, Any]:
        self.count += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.count, "method": method}
        if params is not None:
            message["params"] = params
        await self.send(message)
        answer = await self.read()
        assert answer["id"] == self.count, answer
        return answer

    async def decide(self, tool_name: Any, tool_input: Any) -> Any:
        params = {"name": "decide", "arguments": {"tool_name": tool_name, "input": tool_input}}
        answer = await self.call("tools/call", params)
        (block,) = answer["result"]["content"]
        assert block["type"] == "text"
        return json.loads(block["text"])


Decide = Callable[[PermissionRequest], Any]


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    brokers: list[PermissionBroker] = []
    procs: list[asyncio.subprocess.Process] = []

    async def start(decider: Decide | None = None, cwd: Path = tmp_path) -> Peer:
        async def emit(event: object) -> None:
            return None

        broker = PermissionBroker(
            policy=parse_policy(
                {"rules": [{"allow": "Write"}, {"deny": "Bash(rm:*)"}, {"ask": "Bash"}]}
            ),
            run_id="r1",
            cwd=str(tmp_path),
            run_dir=str(tmp_path),
            decider=decider,
            decider_name="callback",
            emit=emit,
            record=lambda entry: None,
            hold=lambda: None,
            release=lambda: None,
        )
        await broker.start()
        brokers.append(broker)
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            *_permission_server.command(broker.path),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=cwd,
            limit=1 << 20,
        )
        procs.append(proc)
        return Peer(proc)

    yield start
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()
    for broker in brokers:
        await broker.close()


def _current_umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


async def test_brokers_starting_at_once_leave_the_process_umask_alone(tmp_path: Path) -> None:
    """The socket is private (0600) without touching the umask, which is the whole
    process's: two starts interleaving at their await once left it at 0177, and every
    later folder of the process (run folders, workspaces, a test's tmp_path) was made
    0600, where Codex's sandboxed commands cannot even enter."""

    async def emit(event: object) -> None:
        return None

    brokers = []
    for name in ("r1", "r2"):
        (tmp_path / name).mkdir()
        brokers.append(
            PermissionBroker(
                policy=parse_policy({"rules": [{"allow": "Write"}]}),
                run_id=name,
                cwd=str(tmp_path),
                run_dir=str(tmp_path / name),
                decider=None,
                decider_name="callback",
                emit=emit,
                record=lambda entry: None,
                hold=lambda: None,
                release=lambda: None,
            )
        )
    before = _current_umask()
    try:
        await asyncio.gather(*(broker.start() for broker in brokers))
        after = _current_umask()
        modes = [stat.S_IMODE(os.stat(broker.path).st_mode) for broker in brokers]
    finally:
        os.umask(before)
        for broker in brokers:
            await broker.close()
    assert oct(after) == oct(before)
    assert modes == [0o600, 0o600]


async def test_the_handshake_the_pinned_cli_makes(start: Callable[..., Any]) -> None:
    peer = await start()
    # Claude Code 2.1.330 probes a newer protocol first, then falls back to initialize.
    probe = await peer.call("server/discover", {"_meta": {}})
    assert probe["error"]["code"] == -32601
    init = await peer.call("initialize", {"protocolVersion": "2025-11-25", "capabilities": {}})
    assert init["result"]["protocolVersion"] == "2025-11-25"
    assert init["result"]["capabilities"] == {"tools": {"listChanged": False}}
    newer = await peer.call("initialize", {"protocolVersion": "2099-01-01", "capabilities": {}})
    assert newer["result"]["protocolVersion"] == _permission_server.PROTOCOL_VERSIONS[0]
    # Notifications are not answered: the next line is the ping's.
    await peer.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
    await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {}})
    assert (await peer.call("ping"))["result"] == {}
    (tool,) = (await peer.call("tools/list"))["result"]["tools"]
    assert tool["name"] == "decide"
    assert tool["inputSchema"]["required"] == ["tool_name", "input"]


async def test_calls_go_to_the_broker_and_come_back_as_one_text_block(
    start: Callable[..., Any],
) -> None:
    peer = await start(decider=lambda r: "deny")
    allowed = await peer.decide("Write", {"file_path": "/x/a", "content": "é\n"})
    assert allowed == {"behavior": "allow", "updatedInput": {"file_path": "/x/a", "content": "é\n"}}
    denied = await peer.decide("Bash", {"command": "rm -rf x"})
    assert denied["behavior"] == "deny"
    assert "Bash(rm:*)" in denied["message"]
    asked = await peer.decide("Bash", {"command": "ls"})
    assert asked == {"behavior": "deny", "message": "denied by callback"}


@pytest.mark.parametrize(
    ("tool_name", "tool_input"),
    [(7, {}), ("", {}), ("Bash", "ls"), ("Bash", None), ("Bash", [1])],
)
async def test_malformed_arguments_are_denied(
    start: Callable[..., Any], tool_name: Any, tool_input: Any
) -> None:
    peer = await start(decider=lambda r: "allow")
    answer = await peer.decide(tool_name, tool_input)
    assert answer == {"behavior": "deny", "message": "cc-executor: malformed permission request"}


async def test_every_malformed_message_gets_an_error_and_the_server_goes_on(
    start: Callable[..., Any],
) -> None:
    peer = await start()
    bad: list[tuple[bytes, int, Any]] = [
        (b"not json", -32700, None),
        (b"\xff\xfe{", -32700, None),
        (b"[" * 100_000 + b"]" * 100_000, -32700, None),  # deeper than the parser goes
        (b'[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', -32600, None),  # no batches
        (b'{"id": 1, "method": "ping"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": true, "method": "ping"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": null, "method": "ping"}', -32600, None),
        (b'{"jsonrpc": "2.0", "id": 5, "method": 3}', -32600, 5),
        (b'{"jsonrpc": "2.0", "id": 6, "method": "initialize", "params": []}', -32602, 6),
        (b'{"jsonrpc": "2.0", "id": 7, "method": "initialize", "params": {}}', -32602, 7),
        (b'{"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": "x"}', -32602, 8),
        (
            b'{"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "rm"}}',
            -32602,
            9,
        ),
        (
            b'{"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "decide"}}',
            -32602,
            10,
        ),
        (b'{"jsonrpc": "2.0", "id": "s", "method": "resources/list"}', -32601, "s"),
    ]
    for line, code, id_ in bad:
        await peer.send(line)
        answer = await peer.read()
        assert (answer["id"], answer["error"]["code"]) == (id_, code), (line[:80], answer)
    # Responses and notifications of any shape are dropped without an answer.
    await peer.send(b'{"jsonrpc": "2.0", "id": 3, "result": {}}')
    await peer.send(b'{"jsonrpc": "2.0", "method": ["x"]}')
    await peer.send(b"")
    assert (await peer.call("ping"))["result"] == {}


async def test_a_message_over_the_size_limit_is_refused_and_skipped(
    start: Callable[..., Any],
) -> None:
    peer = await start()
    size = _permission_server.MAX_REQUEST_BYTES + 10
    assert peer.proc.stdin is not None
    peer.proc.stdin.write(b'{"jsonrpc": "2.0", "id": 1, "method": "ping", "x": "')
    chunk = b"a" * (1 << 20)
    for _ in range(size // len(chunk) + 1):
        peer.proc.stdin.write(chunk)
        await peer.proc.stdin.drain()
    await peer.send(b'"}')
    answer = await peer.read()
    assert (answer["id"], answer["error"]["code"]) == (None, -32600)
    assert (await peer.call("ping"))["result"] == {}


async def test_a_waiting_call_does_not_hold_up_the_others(start: Callable[..., Any]) -> None:
    release = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def slow(request: PermissionRequest) -> str:
        await release.wait()
        return "allow"

    peer = await start(decider=slow)
    call = {"name": "decide", "arguments": {"tool_name": "Bash", "input": {"command": "ls"}}}
    await peer.send({"jsonrpc": "2.0", "id": "wait", "method": "tools/call", "params": call})
    assert (await peer.call("ping"))["result"] == {}
    ok = await peer.decide("Write", {"file_path": "/x", "content": ""})
    assert ok["behavior"] == "allow"
    loop.call_soon(release.set)
    answer = await peer.read()
    assert answer["id"] == "wait"
    assert json.loads(answer["result"]["content"][0]["text"])["behavior"] == "allow"


async def test_a_broker_that_is_gone_is_a_deny(start: Callable[..., Any], tmp_path: Path) -> None:
    peer = await start()
    await peer.call("ping")
    (tmp_path / "permissions.sock").unlink()
    answer = await peer.decide("Write", {"file_path": "/x", "content": ""})
    assert answer["behavior"] == "deny"
    assert answer["message"].startswith("cc-executor could not decide: ")


async def test_it_imports_only_the_standard_library_and_nothing_from_the_cwd(
    tmp_path: Path,
) -> None:
    # The CLI starts the server in the run's cwd, where the agent writes files.
    cwd = tmp_path / "work"
    cwd.mkdir()
    for name in ("json", "socket", "threading", "cc_executor"):
        (cwd / f"{name}.py").write_text("open('pwned', 'w').close()\n")
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-X",
        "importtime",
        *_permission_server.command(str(tmp_path / "no.sock")),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=cwd,
        env={"PYTHONPATH": str(cwd), "PATH": "/usr/bin:/bin"},
    )
    request = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    out, err = await proc.communicate(json.dumps(request).encode() + b"\n")
    assert json.loads(out) == {"jsonrpc": "2.0", "id": 1, "result": {}}
    assert not (cwd / "pwned").exists()
    imported = {
        line.split("|")[-1].strip()
        for line in err.decode().splitlines()
        if line.startswith("import time:")
    }
    heavy = {m for m in imported if m.split(".")[0] in ("mcp", "pydantic", "anyio", "typing")}
    assert not heavy
    assert "site" not in imported
