"""A PostgreSQL history that cannot be reached costs a process one connection attempt per
retry window, not one per opening of the history (each run's start opens it: a database
that hangs would hold every run's start for the connection timeout)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

from cc_executor._store import open_store

pytestmark = [pytest.mark.postgres]


@pytest.fixture
def refusing() -> Iterator[tuple[str, list[object]]]:
    """A TCP server that takes each connection and closes it at once (a database that is
    unreachable), counting them."""
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]
    accepted: list[object] = []

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"postgresql://nobody@127.0.0.1:{port}/history?sslmode=disable", accepted
    server.shutdown(socket.SHUT_RDWR)
    server.close()
    thread.join()


def test_stores_of_one_process_share_the_wait_before_trying_again(
    refusing: tuple[str, list[object]],
) -> None:
    url, accepted = refusing
    first = open_store(url)
    try:
        assert getattr(first, "remote", "") is None
        tried = len(accepted)
        assert tried >= 1
        # A run starting a moment later opens the history again: no new attempt, and it
        # says why its record waits.
        second = open_store(url)
        try:
            assert len(accepted) == tried
            assert any("unreachable" in w or "cannot open" in w for w in second.warnings)
        finally:
            second.close()
    finally:
        first.close()
