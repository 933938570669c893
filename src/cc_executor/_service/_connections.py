"""Connection limits for the HTTP servers (``serve``, ``mcp --transport http``); the
defaults (10 s, 256 connections) are the command line's.

uvicorn bounds neither how long a client may take to send a request's headers (its
``timeout_keep_alive`` starts only once a response is complete, and is cancelled by the
first byte of the next request) nor how many connections it holds open
(``limit_concurrency`` answers 503, but only once a request has arrived: a connection that
never finishes its headers is held forever). So anyone reaching the port, token or not,
could take every file descriptor with half-sent requests (slowloris) and keep the service
down for as long as they liked. :func:`guarded_h11` is uvicorn's h11 protocol with both
bounds:

- **Header-read timeout.** From the moment a connection is accepted, and again after each
  response on a kept-alive connection, the client has ``header_timeout`` seconds to send a
  complete request head (request line and headers); otherwise the connection is closed.
  Time spent on a request's body, on the response, or on a WebSocket is not limited here.
- **Connection cap.** At most ``max_connections`` connections (HTTP and WebSocket) are
  held. A connection accepted beyond the cap closes the connection that has been waiting
  longest for a request head (slowloris connections, idle kept-alive ones); a request
  being served or a WebSocket is never closed for it. When every held connection is busy,
  the new one gets a one-line ``503`` and is closed.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["guarded_h11"]

# Orders connections by when they started waiting; the loop's clock can tie within a burst.
_ticket = itertools.count()


def guarded_h11(header_timeout: float, max_connections: int) -> type[H11Protocol]:
    """uvicorn's h11 protocol with a header-read timeout and a connection cap, to pass as
    ``uvicorn.Config(http=...)``. ``ValueError`` if either bound is not positive."""
    if not header_timeout > 0:
        raise ValueError(f"the header timeout must be positive seconds, got {header_timeout!r}")
    if max_connections < 1:
        raise ValueError(f"the connection cap must be at least 1, got {max_connections!r}")

    class GuardedH11Protocol(_GuardedH11):
        pass

    GuardedH11Protocol.header_timeout = header_timeout
    GuardedH11Protocol.max_connections = max_connections
    return GuardedH11Protocol


class _GuardedH11(H11Protocol):
    header_timeout: ClassVar[float]
    max_connections: ClassVar[int]

    _header_timer: asyncio.TimerHandle | None = None
    _waiting_since = 0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = len(self.connections) >= self.max_connections
        super().connection_made(transport)
        self._await_request_head()
        if full and not self._close_longest_waiting():
            self._refuse()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        cycle = self.cycle
        super().handle_events()
        # Stopped only by a new request head (a new cycle): bytes after a response that went
        # out before its request's body had arrived (a 401 to a head with a Content-Length)
        # keep h11 out of IDLE without being a request, and must not hold the connection.
        if self._header_timer is not None and self.cycle is not cycle:
            self._stop_header_timer()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        # The connection is a WebSocket from here on: the timer armed for this request's
        # head would otherwise close it once the header timeout has passed.
        self._stop_header_timer()
        super().handle_websocket_upgrade(event)

    def on_response_complete(self) -> None:
        # Armed first: the base class may go straight on to a pipelined request.
        if not self.transport.is_closing():
            self._await_request_head()
        super().on_response_complete()

    def _await_request_head(self) -> None:
        self._stop_header_timer()
        self._waiting_since = next(_ticket)
        self._header_timer = self.loop.call_later(self.header_timeout, self._drop)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _drop(self) -> None:
        """Close this connection, which is waiting for a request head."""
        self._stop_header_timer()
        # Out of the count now, not when the loop gets to connection_lost: a burst of
        # connections would otherwise close more than one waiting connection each.
        self.connections.discard(self)
        self.transport.close()

    def _close_longest_waiting(self) -> bool:
        waiting = [
            c
            for c in self.connections
            if isinstance(c, _GuardedH11) and c is not self and c._header_timer is not None
        ]
        if not waiting:
            return False
        min(waiting, key=lambda c: c._waiting_since)._drop()
        return True

    def _refuse(self) -> None:
        body = f"too many connections (the limit is {self.max_connections}); retry later\n"
        self.transport.write(
            b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\n"
            b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body.encode())
        )
        self._drop()
