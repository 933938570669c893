"""The test bed of the fleet tests: a private Redis on a unix socket, and nothing on TCP."""

from __future__ import annotations

import psutil
import pytest

from tests.fleet.conftest import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_a_private_redis_answers_on_its_socket_only(redis_server: RedisServer) -> None:
    client = redis_server.client()
    assert client.ping()
    client.set("k", "v")
    assert client.get("k") == b"v"
    listening = [c for c in psutil.Process(redis_server.proc.pid).net_connections("inet")]
    assert listening == []
