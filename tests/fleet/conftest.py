"""Fixtures: a private Redis on a unix socket (no TCP), for the fleet tests."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from tests._means import starts_server
from tests._wait import wait_for


@dataclass
class RedisServer:
    """A started ``redis-server``: its socket, its fleet URL and its process."""

    socket: Path
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))


def _ping(server: RedisServer) -> bool:
    if server.proc.poll() is not None:
        raise AssertionError(f"redis-server exited with {server.proc.returncode}")
    try:
        return bool(server.client().ping())
    except redis.RedisError:
        return False


@pytest.fixture
@starts_server
def redis_server() -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own: a unix socket in a private folder (short: a
    socket path has at most 107 bytes), ``--port 0`` (no TCP), no persistence."""
    executable = shutil.which("redis-server")
    assert executable is not None  # the redis marker's probe skipped the test otherwise
    folder = Path(tempfile.mkdtemp(prefix="ccx-redis-"))
    sock = folder / "redis.sock"
    argv = [
        executable,
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "no",
        "--daemonize", "no",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = RedisServer(sock, proc)
    try:
        wait_for(lambda: _ping(server), what="redis-server answers PING")
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)
