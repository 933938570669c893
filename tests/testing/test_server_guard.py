"""Issue 18, third pass: the scripted model server answers its agent CLIs only. It served
any ``Host`` and any browser ``Origin`` (a DNS-rebinding page could read
``/_testing/requests``: every prompt and every file an agent read through it) and read
bodies of any size into memory (400 MB took it to 850 MB)."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import httpx
import pytest

from cc_executor.testing import ModelServer, Reply, Rule, Script

pytestmark = pytest.mark.slow

#: The server's limit on a request body (``cc_executor.testing._server.MAX_BODY``).
MAX_BODY = 64 * 1024 * 1024
SCRIPT = Script([Rule([Reply(["x"])])])
PROMPT = {"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "private"}]}


@pytest.mark.parametrize(
    "headers",
    [
        {"Host": "evil.example"},
        {"Host": "evil.example:8765"},
        {"Host": "127.0.0.1.evil.example"},
        {"Host": "[::1]evil.example"},
        {"Origin": "http://evil.example"},
        {"Origin": "null"},
    ],
)
def test_other_hosts_and_browser_origins_are_refused(headers: dict[str, str]) -> None:
    with ModelServer(SCRIPT) as server:
        httpx.post(f"{server.url}/v1/messages", json=PROMPT)
        refused = httpx.get(f"{server.url}/_testing/requests", headers=headers)
        sent = httpx.post(f"{server.url}/v1/messages", json=PROMPT, headers=headers)
        recorded = len(server.requests)
    assert refused.status_code == 403, refused.text
    assert "private" not in refused.text
    assert refused.json()["error"]["message"].startswith("refused: ")
    assert sent.status_code == 403, sent.text
    assert recorded == 1  # a refused request is not recorded


@pytest.mark.parametrize(
    "headers",
    [{}, {"Host": "localhost"}, {"Origin": "http://127.0.0.1:9"}, {"Host": "127.0.0.1:1"}],
)
def test_loopback_hosts_and_origins_are_served(headers: dict[str, str]) -> None:
    with ModelServer(SCRIPT) as server:
        listed = httpx.get(f"{server.url}/_testing/requests", headers=headers)
    assert listed.status_code == 200, listed.text


def _chunks(total: int) -> Iterator[bytes]:
    piece = b" " * (1 << 20)
    for _ in range(total // len(piece)):
        yield piece


@pytest.mark.parametrize("chunked", [False, True])
def test_a_body_over_the_limit_is_refused(chunked: bool) -> None:
    size = MAX_BODY + (1 << 20)
    with ModelServer(SCRIPT) as server:
        if chunked:  # no Content-Length: counted as it arrives
            answer = httpx.post(f"{server.url}/v1/messages", content=_chunks(size))
        else:  # refused on the Content-Length alone, before any of the body is sent
            answer = _head_only(server.url, size)
        after = httpx.post(f"{server.url}/v1/messages", json=PROMPT)
    assert answer.status_code == 413, answer.text
    assert answer.json()["error"]["message"] == f"refused: a request body over {MAX_BODY} bytes"
    assert after.status_code == 200


def _head_only(url: str, length: int) -> httpx.Response:
    """The answer to a request head announcing ``length`` bytes, none of them sent."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port))) as conn:
        conn.sendall(
            f"POST /v1/messages HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received or not received.rstrip().endswith(b"}"):
            piece = conn.recv(65536)
            if not piece:
                break
            received += piece
    head, _, content = received.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    return httpx.Response(status, content=content)
