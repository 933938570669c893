"""The servers' connections: TCP_NODELAY on every accepted socket, a header-read timeout and a
connection cap against clients that never finish a request (slowloris), token or not."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
from collections.abc import Callable

import httpx
import pytest

from cc_executor._cli._serve import _bind
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text
from tests.service.conftest import CLI, Service

HALF_SENT = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: "


def server_side_nodelay(client: socket.socket) -> int:
    """TCP_NODELAY of the socket this process accepted for ``client`` (found by its address
    pair among the process's descriptors)."""
    want = (client.getpeername(), client.getsockname())
    for name in os.listdir("/proc/self/fd"):
        try:
            accepted = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with accepted:
            try:
                pair = (accepted.getsockname(), accepted.getpeername())
            except OSError:
                continue
            if pair == want:
                return accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    raise AssertionError(f"no accepted socket for {want}")


def exchange(port: int, request: bytes) -> tuple[socket.socket, bytes]:
    """Connect, send ``request`` and read the start of the answer; the connection stays open."""
    client = socket.create_connection(("127.0.0.1", port), timeout=30)
    client.sendall(request)
    return client, client.recv(65536)


async def test_serve_socket_sets_tcp_nodelay_on_accepted_connections() -> None:
    # The listening socket of `serve` and `mcp`, served the way uvicorn serves it.
    sock = _bind("127.0.0.1", 0)
    port = sock.getsockname()[1]
    accepted = asyncio.Event()

    class Accepting(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            accepted.set()

    server = await asyncio.get_running_loop().create_server(Accepting, sock=sock)
    try:
        client = await asyncio.to_thread(socket.create_connection, ("127.0.0.1", port))
        with client:
            # The transport (which sets the option, or not) exists once this is called.
            await accepted.wait()
            assert server_side_nodelay(client) != 0
    finally:
        server.close()
        await server.wait_closed()


def test_model_server_sets_tcp_nodelay_on_accepted_connections() -> None:
    with ModelServer(Script([Rule(answers=[Reply([Text("hi")])])])) as model:
        client, answer = exchange(model.port, b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        with client:
            assert answer.startswith(b"HTTP/1.1 ")
            assert server_side_nodelay(client) != 0


def wait_closed(client: socket.socket) -> bytes:
    """Everything the server sends until it closes ``client`` (30 s at most, then fails).
    A connection closed before the server read what it was sent ends with a reset."""
    client.settimeout(30)
    data = b""
    try:
        while chunk := client.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.slow
def test_half_sent_requests_are_closed_after_the_header_timeout(
    start: Callable[..., Service],
) -> None:
    service = start("--header-timeout", "0.3", "--no-token", token=False)
    port = int(service.url.rsplit(":", 1)[1])
    slow = [socket.create_connection(("127.0.0.1", port)) for _ in range(5)]
    for client in slow:
        client.sendall(HALF_SENT)
    for client in slow:
        with client:
            assert wait_closed(client) == b""
    # The timeout is per request head: a complete request is answered and kept alive.
    with httpx.Client(base_url=service.url) as http:
        assert http.get("/health").status_code == 200
        assert http.get("/health").status_code == 200


@pytest.mark.slow
def test_more_half_sent_connections_than_the_cap_leave_room_for_a_request(
    start: Callable[..., Service],
) -> None:
    # The timeout is long: only the cap can make room for the request.
    service = start("--max-connections", "8", "--header-timeout", "600")
    port = int(service.url.rsplit(":", 1)[1])
    slow = []
    for _ in range(20):
        client = socket.create_connection(("127.0.0.1", port), timeout=30)
        client.sendall(HALF_SENT)
        slow.append(client)
    with httpx.Client(base_url=service.url, headers=service.headers(), timeout=30) as http:
        assert http.get("/runs").status_code == 200
    # Each connection past the cap closed one that was waiting longest for its headers.
    for client in slow[:13]:
        with client:
            assert wait_closed(client) == b""
    for client in slow[13:]:
        client.close()


@pytest.mark.slow
def test_a_full_server_refuses_a_new_connection_with_503(start: Callable[..., Service]) -> None:
    service = start("--max-connections", "1", "--no-token", token=False)
    port = int(service.url.rsplit(":", 1)[1])
    # A request being served (its head read, its body awaited) is never closed for a newcomer.
    busy = socket.create_connection(("127.0.0.1", port), timeout=30)
    with busy:
        busy.sendall(
            b"POST /runs HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\nExpect: 100-continue\r\n\r\n"
        )
        assert busy.recv(65536).startswith(b"HTTP/1.1 100 ")
        refused = socket.create_connection(("127.0.0.1", port), timeout=30)
        with refused:
            answer = wait_closed(refused)
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert answer.endswith(b"too many connections (the limit is 1); retry later\n")


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--header-timeout", "0", "must be positive, got '0'"),
        ("--header-timeout", "nan", "must be positive, got 'nan'"),
        ("--max-connections", "-1", "must be positive, got '-1'"),
        ("--max-connections", "many", "not a number: 'many'"),
    ],
)
def test_bad_limits_are_refused_in_one_line(flag: str, value: str, message: str) -> None:
    done = subprocess.run(
        [CLI, "serve", flag, value], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    assert f"argument {flag}: {message}" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_body_never_sent_after_the_answer_does_not_hold_the_connection(
    start: Callable[..., Service],
) -> None:
    """Found by the review of issue 18's fix: a head with a Content-Length, answered 401
    before its body came, then one byte: the byte stopped the header timer though no new
    request had started, and nothing closed the connection again. The cap then refused
    every newcomer with 503."""
    service = start("--max-connections", "4", "--header-timeout", "0.3")
    port = int(service.url.rsplit(":", 1)[1])
    head = (
        f"POST /runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 100000\r\n\r\n"
    ).encode()
    held = []
    for _ in range(4):
        client, answer = exchange(port, head)
        assert answer.startswith(b"HTTP/1.1 401"), answer
        client.sendall(b"x")
        held.append(client)
    for client in held:
        with client:
            # Closed by the server (the rest of the 401 may still come first); before the
            # fix the read timed out after 30 s.
            assert b"HTTP/1.1" not in wait_closed(client)
    with httpx.Client(base_url=service.url, headers=service.headers(), timeout=30) as http:
        assert http.get("/health").status_code == 200


@pytest.mark.slow
async def test_a_quiet_websocket_outlives_the_header_timeout(
    start: Callable[..., Service],
) -> None:
    from tests.service.test_ws import call, ws

    service = start("--header-timeout", "0.5")
    port = int(service.url.rsplit(":", 1)[1])
    async with ws(service) as conn:
        # Connected after the WebSocket: once its header timer has fired, the WebSocket's has.
        late = socket.create_connection(("127.0.0.1", port))
        late.sendall(HALF_SENT)
        with late:
            assert await asyncio.to_thread(wait_closed, late) == b""
        reply = await call(conn, "status", {"run_id": "none"})
    assert reply["error"]["data"]["code"] == "not_found"
