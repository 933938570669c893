"""Security of the network interfaces: the bearer token, Host and Origin checks against DNS
rebinding, and request size limits, as one ASGI middleware in front of everything.

Every HTTP request and WebSocket handshake goes through :class:`Guard`, in this order:

1. ``Host`` must name a loopback address (``localhost``, ``127.0.0.0/8``, ``::1``) or a
   host allowed with ``--allow-host``. A DNS-rebinding page reaches us with its own host
   name in ``Host``, so it stops here (403).
2. A browser's ``Origin``, when present, must be the same origin as ``Host`` or one allowed
   with ``--allow-origin`` (403); ``Origin: null`` is refused.
3. ``Authorization: Bearer <token>`` must match the service token or the read-only token,
   compared in constant time, or the request carries the dashboard's session cookie (and,
   to change anything, its CSRF token in ``X-CSRF-Token``) (401, 403). A dashboard page
   without either redirects to the login page.
4. A read-only caller (the read-only token, or a session opened with it) may only read:
   any other method is refused (403 ``read_only``), and so are the MCP tools that start or
   stop runs; the WebSocket endpoint refuses its ``execute`` and ``control`` methods.
5. HTTP bodies larger than ``max_body`` bytes get 413, whether announced by
   ``Content-Length`` or streamed chunked. (WebSocket messages are limited by the server's
   ``ws_max_size``: an oversize message closes the connection with code 1009.)
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from cc_executor._paths import data_home
from cc_executor._payload import versioned

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any
ASGIApp = Any

#: Name of the token file in the data dir.
TOKEN_FILE = "service-token"  # noqa: S105 (a file name, not a secret)
#: Name of the read-only token file in the data dir.
READONLY_TOKEN_FILE = "service-token-readonly"  # noqa: S105 (a file name, not a secret)

#: What a caller may do: everything, or read only.
FULL = "full"
READ_ONLY = "read"
#: Methods that change nothing.
SAFE_METHODS = frozenset({"GET", "HEAD"})
#: MCP tools a read-only caller may call (the others start or stop runs).
READ_ONLY_TOOLS = frozenset({"get_run", "wait_run", "list_runs", "verify_run"})
#: The dashboard's pages any browser may load: the login form and the static assets.
PUBLIC_PATHS = ("/ui/login", "/ui/static/")

DEFAULT_MAX_BODY = 1 << 20
DEFAULT_MAX_MESSAGE = 1 << 20


def token_path() -> Path:
    """Where the service token is kept: ``service-token`` in the data dir."""
    return data_home() / TOKEN_FILE


def readonly_token_path() -> Path:
    """Where the read-only token is kept: ``service-token-readonly`` in the data dir."""
    return data_home() / READONLY_TOKEN_FILE


def session_cookie_name(port: int | None) -> str:
    """The dashboard's session cookie: its name carries the server's port, since a
    browser shares a host's cookies between all its ports (docs/security.md)."""
    return f"cc_executor_session_{port or 0}"


@dataclass(slots=True)
class Session:
    """A dashboard login: its role, its CSRF token and when it ends."""

    role: str
    csrf: str
    expires: float
    idle_until: float


class Sessions:
    """The dashboard's sessions, in the server's memory only (a restart logs everyone
    out): each lasts at most ``lifetime`` seconds, and ends after ``idle`` seconds
    unused. Their ids are 256-bit random values."""

    def __init__(self, lifetime: float = 8 * 3600, idle: float = 3600, limit: int = 1000):
        self.lifetime = lifetime
        self.idle = idle
        self.limit = limit
        self._sessions: dict[str, Session] = {}

    def open(self, role: str) -> tuple[str, Session]:
        """A new session for ``role``: its id (the cookie's value) and itself."""
        now = time.monotonic()
        self._expire(now)
        if len(self._sessions) >= self.limit:
            # The oldest goes: a flood of logins cannot grow the server's memory.
            self._sessions.pop(next(iter(self._sessions)))
        session_id = secrets.token_urlsafe(32)
        session = Session(role, secrets.token_urlsafe(32), now + self.lifetime, now + self.idle)
        self._sessions[session_id] = session
        return session_id, session

    def get(self, session_id: str | None) -> Session | None:
        """The live session ``session_id`` (its idle time restarts), or None."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        now = time.monotonic()
        if session is None or now >= session.expires or now >= session.idle_until:
            self._sessions.pop(session_id, None)
            return None
        session.idle_until = now + self.idle
        return session

    def close(self, session_id: str | None) -> None:
        """End ``session_id`` (log out)."""
        if session_id:
            self._sessions.pop(session_id, None)

    def _expire(self, now: float) -> None:
        for key in [k for k, s in self._sessions.items() if now >= min(s.expires, s.idle_until)]:
            del self._sessions[key]


def load_or_create_token(path: str | os.PathLike[str] | None = None) -> tuple[str, bool]:
    """The service token and whether it was just created.

    On first use a token is generated with :func:`secrets.token_urlsafe` (32 bytes) and
    written to ``path`` (default :func:`token_path`) with mode 0600, in a folder created
    with mode 0700; the file is created exclusively, so two servers starting at once agree
    on one token. An existing file readable by others is refused (``PermissionError``):
    the token would not be secret.
    """
    target = Path(path) if path is not None else token_path()
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    try:
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        mode = target.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(
                f"{target} is readable by other users (mode {mode:o}); "
                "fix with chmod 600 or delete it to get a new token"
            ) from None
        existing = target.read_text(encoding="utf-8").strip()
        if not existing:
            raise PermissionError(f"{target} is empty; delete it to get a new token") from None
        return existing, False
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, True


def is_loopback(host: str) -> bool:
    """True for ``localhost`` (and ``*.localhost``), 127.0.0.0/8 and ::1."""
    name = host.strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


#: ``name[:port]`` or ``[IPv6][:port]`` as browsers send them: a DNS name or dotted IPv4
#: address, or an IPv6 address in brackets, then an optional decimal port.
_HOST_FORM = re.compile(
    r"(?:(?P<name>[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?\.?)|\[(?P<ipv6>[0-9A-Fa-f:.]+)\])"
    r"(?::(?P<port>[1-9][0-9]{0,4}))?"
)
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def _split_host(value: str) -> str:
    """The host of a ``Host`` header value (``[::1]:8000`` -> ``::1``), or "" unless the
    value is exactly a form a browser sends: a DNS name or dotted IPv4 address, or an IPv6
    address in brackets, each with an optional port 1-65535 (``[::1]evil.com``,
    ``[127.0.0.1]``, ``[::1]:99999`` and ``evil.com#.localhost`` are refused)."""
    match = _HOST_FORM.fullmatch(value.strip())
    if match is None:
        return ""
    port = match.group("port")
    if port is not None and int(port) > 65535:
        return ""
    ipv6 = match.group("ipv6")
    if ipv6 is not None:
        try:
            ipaddress.IPv6Address(ipv6)
        except ValueError:
            return ""
        return ipv6.lower()
    name = match.group("name").lower()
    if ".." in name:
        return ""
    return name


def _is_loopback_host(host: str) -> bool:
    """True for a host from :func:`_split_host` naming this machine: ``localhost`` or a
    name under it made of DNS labels, an IPv4 address in 127.0.0.0/8 written as four
    decimal numbers, or the IPv6 loopback address."""
    name = host.rstrip(".") if ":" not in host else host
    if ":" in name:
        return ipaddress.IPv6Address(name).is_loopback
    try:
        return ipaddress.IPv4Address(name).is_loopback
    except ValueError:
        pass
    labels = name.split(".")
    return labels[-1] == "localhost" and all(_LABEL.fullmatch(label) for label in labels)


@dataclass(frozen=True, slots=True)
class SecurityPolicy:
    """What :class:`Guard` enforces.

    ``token`` None turns the token check off (the CLI allows that only on loopback).
    ``readonly_token``: a second token that may only read. ``sessions``: the dashboard's
    logins. ``allowed_hosts``: extra host names accepted in ``Host``; ``allowed_origins``: extra
    origins (``scheme://host[:port]``) accepted in ``Origin``.
    """

    token: str | None
    allowed_hosts: frozenset[str] = field(default_factory=frozenset)
    allowed_origins: frozenset[str] = field(default_factory=frozenset)
    max_body: int = DEFAULT_MAX_BODY
    max_message: int = DEFAULT_MAX_MESSAGE
    readonly_token: str | None = None
    sessions: Sessions = field(default_factory=Sessions, compare=False)

    @classmethod
    def build(
        cls,
        token: str | None,
        *,
        allowed_hosts: Iterable[str] = (),
        allowed_origins: Iterable[str] = (),
        max_body: int = DEFAULT_MAX_BODY,
        max_message: int = DEFAULT_MAX_MESSAGE,
        readonly_token: str | None = None,
    ) -> SecurityPolicy:
        """A policy with host names and origins normalised (lower case, no trailing /)."""
        return cls(
            token=token,
            allowed_hosts=frozenset(h.strip("[]").lower() for h in allowed_hosts),
            allowed_origins=frozenset(o.lower().rstrip("/") for o in allowed_origins),
            max_body=max_body,
            max_message=max_message,
            readonly_token=readonly_token,
        )

    def role_of_token(self, given: str) -> str | None:
        """:data:`FULL` or :data:`READ_ONLY` for a token that matches, else None (both
        compared in constant time)."""
        if self.token is None:
            return FULL
        raw = given.strip().encode("utf-8", "replace")
        if hmac.compare_digest(raw, self.token.encode("utf-8")):
            return FULL
        if self.readonly_token is not None and hmac.compare_digest(
            raw, self.readonly_token.encode("utf-8")
        ):
            return READ_ONLY
        return None

    def access(
        self,
        headers: dict[str, str],
        method: str,
        path: str,
        port: int | None,
        *,
        websocket: bool = False,
    ) -> tuple[int, str, str] | str | None:
        """The caller's role (:data:`FULL` or :data:`READ_ONLY`), None for an anonymous
        request to a public dashboard path, or ``(status, code, message)`` to refuse.
        ``websocket``: the handshake of a WebSocket (see docs/security.md on its cookie)."""
        problem = self.check_origin(headers)
        if problem is not None:
            return problem
        if self.token is None:
            return FULL
        authorization = headers.get("authorization")
        if authorization is not None:
            scheme, _, given = authorization.partition(" ")
            role = self.role_of_token(given) if scheme.lower() == "bearer" else None
            if role is None:
                return 401, "unauthorized", "a valid bearer token is required"
            return role
        session = self.sessions.get(_cookie(headers, session_cookie_name(port)))
        if session is not None:
            if websocket and "origin" not in headers:
                # A browser always sends Origin on a WebSocket handshake, and the check
                # above refused another origin's: that check is the handshake's CSRF
                # defence (it cannot carry X-CSRF-Token), so it may not be skipped.
                return 403, "bad_origin", "a WebSocket opened with the session cookie needs Origin"
            # EventSource and page loads cannot send headers, so the cookie serves reads;
            # a change also needs the session's CSRF token, which only our pages know.
            if method not in SAFE_METHODS and path != "/ui/login":
                given = headers.get("x-csrf-token", "")
                if not hmac.compare_digest(given.encode("utf-8", "replace"), session.csrf.encode()):
                    return 403, "bad_csrf", "the X-CSRF-Token header does not match the session"
            return session.role
        if path.startswith(PUBLIC_PATHS):
            return None
        return 401, "unauthorized", "a valid bearer token is required"

    def check(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """None if the request may pass (the service token), else ``(status, code,
        message)``."""
        problem = self.check_origin(headers)
        if problem is not None:
            return problem
        if self.token is not None:
            scheme, _, given = headers.get("authorization", "").partition(" ")
            if scheme.lower() != "bearer" or self.role_of_token(given) != FULL:
                return 401, "unauthorized", "a valid bearer token is required"
        return None

    def check_origin(self, headers: dict[str, str]) -> tuple[int, str, str] | None:
        """None if ``Host`` and ``Origin`` are acceptable, else the refusal."""
        host_header = headers.get("host", "")
        host = _split_host(host_header).lower()
        if not host or not (_is_loopback_host(host) or host in self.allowed_hosts):
            return 403, "bad_host", "Host is not a loopback name or an allowed host"
        origin = headers.get("origin")
        if origin is not None:
            normalised = origin.lower().rstrip("/")
            parts = urlsplit(normalised)
            same_origin = parts.scheme in ("http", "https") and parts.netloc == host_header.lower()
            if not (same_origin or normalised in self.allowed_origins):
                return 403, "bad_origin", "Origin does not match the server"
        return None


def _cookie(headers: dict[str, str], name: str) -> str | None:
    from http.cookies import SimpleCookie

    raw = headers.get("cookie")
    if not raw:
        return None
    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(raw)
    except Exception:  # a malformed Cookie header is no session, not an error
        return None
    morsel = jar.get(name)
    return morsel.value if morsel is not None else None


def _headers(scope: Scope) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in scope.get("headers", ()):
        key = name.decode("latin-1").lower()
        # A repeated Host/Origin/Authorization is suspicious: keep the first, refuse below.
        if key in out and key in ("host", "origin", "authorization"):
            out[key] = "\0duplicate"
            continue
        out.setdefault(key, value.decode("latin-1"))
    return out


async def _send_json(send: Send, status: int, body: dict[str, Any], extra: list[Any]) -> None:
    payload = orjson.dumps(versioned(body))
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


class Guard:
    """ASGI middleware applying a :class:`SecurityPolicy` to HTTP and WebSocket scopes.

    Refused HTTP requests get a JSON body ``{"error": {"code", "message"}}``; refused
    WebSocket handshakes get the same as an HTTP response when the server supports the
    WebSocket denial extension, else a plain 403.
    """

    def __init__(self, app: ASGIApp, policy: SecurityPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        method = scope.get("method", "GET")
        path = scope.get("path", "/")
        server = scope.get("server")
        port = server[1] if server and len(server) > 1 else None
        access = self.policy.access(headers, method, path, port, websocket=kind == "websocket")
        writes = kind == "http" and method not in SAFE_METHODS
        if (
            access == READ_ONLY
            and writes
            and not (path.endswith("/mcp") or path in ("/ui/logout", "/ui/login"))
        ):
            access = 403, "read_only", "this token may only read"
        if isinstance(access, tuple):
            status, code, message = access
            if kind == "http" and status == 401 and path.startswith("/ui") and method == "GET":
                # A person opening a page: to the login form rather than a JSON error.
                await send(
                    {
                        "type": "http.response.start",
                        "status": 303,
                        "headers": [(b"location", b"/ui/login"), (b"content-length", b"0")],
                    }
                )
                await send({"type": "http.response.body", "body": b""})
                return
            body = {"error": {"code": code, "message": message}}
            extra = [(b"www-authenticate", b"Bearer")] if status == 401 else []
            if kind == "http":
                await _send_json(send, status, body, extra)
            else:
                await self._deny_websocket(scope, send, status, body)
            return
        scope = {**scope, "state": {**scope.get("state", {}), "role": access}}
        if kind == "websocket":
            await self.app(scope, receive, send)
            return
        await self._limited(scope, receive, send, headers, access == READ_ONLY)

    async def _deny_websocket(
        self, scope: Scope, send: Send, status: int, body: dict[str, Any]
    ) -> None:
        if "websocket.http.response" in scope.get("extensions", {}):
            payload = orjson.dumps(versioned(body))
            await send(
                {
                    "type": "websocket.http.response.start",
                    "status": status,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "websocket.http.response.body", "body": payload})
        else:
            await send({"type": "websocket.close", "code": 1008})

    async def _limited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
        read_only: bool = False,
    ) -> None:
        limit = self.policy.max_body
        declared = headers.get("content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(
                    send, 400, {"error": {"code": "bad_request", "message": "bad length"}}, []
                )
                return
            if int(declared) > limit:
                await _send_json(send, 413, _too_large(limit), [])
                return
        # Bodies are small (a prompt, options): read the whole body here, counting, and
        # hand it to the app in one piece.
        chunks: list[bytes] = []
        received = 0
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                await _send_json(send, 413, _too_large(limit), [])
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        if read_only and scope.get("method") == "POST" and scope.get("path", "").endswith("/mcp"):
            tool = _mcp_tool_called(b"".join(chunks))
            if tool is not None and tool not in READ_ONLY_TOOLS:
                body = {"error": {"code": "read_only", "message": "this token may only read"}}
                await _send_json(send, 403, body, [])
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            result: Message = await receive()
            return result

        await self.app(scope, replay, send)


def _mcp_tool_called(body: bytes) -> str | None:
    """The tool an MCP request calls (the first of a batch that calls one that is not
    read-only), or None when it calls no tool; a body we cannot read counts as calling
    the unknown tool ``""``, which a read-only caller may not."""
    try:
        message = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    for item in message if isinstance(message, list) else [message]:
        if not isinstance(item, dict):
            return ""
        if item.get("method") == "tools/call":
            params = item.get("params")
            name = params.get("name") if isinstance(params, dict) else None
            if not isinstance(name, str) or name not in READ_ONLY_TOOLS:
                return name if isinstance(name, str) else ""
    return None


def _too_large(limit: int) -> dict[str, Any]:
    return {"error": {"code": "too_large", "message": f"the request body exceeds {limit} bytes"}}
