"""ModelServer: a loopback HTTP server that speaks the model APIs of the agent CLIs from a script.

The Anthropic Messages API (Claude Code), the OpenAI Responses API (Codex CLI) and the Gemini
API (Gemini CLI).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ipaddress
import json
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from cc_executor.testing import _chat, _gemini, _responses
from cc_executor.testing._playback import Choice, Playback, prompt_of, turn_of
from cc_executor.testing._script import HttpErrorReply, Reply, Script, ToolUse, load_script
from cc_executor.testing._sse import (
    Event,
    error_headers,
    error_json,
    estimate_tokens,
    message_json,
    stream_events,
)

__all__ = ["ModelServer", "RecordedRequest"]

_SECRET_HEADERS = frozenset({"x-api-key", "authorization", "proxy-authorization", "cookie"})
_REDACTED = "[redacted]"
_STARTUP_TIMEOUT = 10.0
_NOT_AN_OBJECT = HttpErrorReply(400, message="request body must be a JSON object")
#: The largest request body read (agent CLIs send a few MB at most); more answers 413.
MAX_BODY = 64 * 1024 * 1024
#: What a ``Host`` header (or an ``Origin``'s host) of a loopback client looks like.
_LOOPBACK = re.compile(r"(?:localhost|127(?:\.\d{1,3}){3}|\[::1\])(?::\d{1,5})?", re.IGNORECASE)
_STOP_TIMEOUT = 10.0

# Variables that, inherited from the caller's environment, would send the CLI to another
# endpoint, another credential or another config dir than the ones claude_env() sets.
_CONFLICTING_PREFIXES = (
    "ANTHROPIC_",
    "CLAUDE_CODE_",
    "CLAUDE_CONFIG_DIR",
    "CLOUD_ML_",
)
_HOME_NAMES = frozenset({"HOME", "XDG_CONFIG_HOME"})
# The same for Codex CLI: its provider, key, home and config overrides.
_CODEX_PREFIXES = ("OPENAI_", "CODEX_", "AZURE_OPENAI_")
# The same for Gemini CLI: its endpoint, keys, home and settings.
_GEMINI_PREFIXES = ("GEMINI_", "GOOGLE_")
#: The name of the custom model provider that codex_args() declares.
CODEX_PROVIDER = "cc_executor_testing"
_CONFLICTING_NAMES = frozenset({"CLAUDECODE", "IS_SANDBOX"}) | _HOME_NAMES


class _DropNoise(logging.Filter):
    """Hides uvicorn's complaint about the responses this server cuts off on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != "ASGI callable returned without completing response."


def _install_log_filter() -> None:
    logger = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, _DropNoise) for f in logger.filters):
        logger.addFilter(_DropNoise())


@dataclass(frozen=True)
class RecordedRequest:
    """One HTTP request the server received, in arrival order.

    ``path`` excludes the query string (kept in ``query``); ``headers`` have lower-case names, with
    the values of ``x-api-key``, ``authorization``, ``proxy-authorization`` and ``cookie``
    replaced by ``[redacted]``; ``body`` is the parsed JSON body, the body as text if it is not
    JSON, or None if it is empty. ``time`` is ``time.time()`` at arrival.
    """

    method: str
    path: str
    query: str
    headers: Mapping[str, str]
    body: Any
    time: float

    @property
    def prompt(self) -> str | None:
        """For a Messages API request, the text of its first user message, else None."""
        return prompt_of(self.body) if isinstance(self.body, dict) else None

    @property
    def turn(self) -> int | None:
        """For a Messages API request, the number of assistant messages it carries, else None."""
        return turn_of(self.body) if isinstance(self.body, dict) else None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of all fields, as ``GET /_testing/requests`` lists them."""
        return {
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "headers": dict(self.headers),
            "body": self.body,
            "time": self.time,
        }


class _StreamResponse(Response):
    """A server-sent-event response that can be paced, cut off, or stopped by server shutdown."""

    media_type = "text/event-stream"

    def __init__(self, server: ModelServer, reply: Reply, events: Iterator[Event]) -> None:
        super().__init__(
            status_code=200,
            headers={
                "cache-control": "no-cache",
                "request-id": f"req_{uuid.uuid4().hex[:24]}",
            },
            media_type=self.media_type,
        )
        # Starlette declares the length of the (empty) initial body; a stream has none.
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]
        self._server = server
        self._reply = reply
        self._events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        completed = False
        async with anyio.create_task_group() as group:

            async def stop_on_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(stop_on_disconnect)
            completed = await self._send_events(send)
            group.cancel_scope.cancel()
        if completed:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        # Otherwise return with the body unfinished: uvicorn then closes the connection, which is
        # exactly the dropped stream a client must cope with.

    async def _send_events(self, send: Send) -> bool:
        drop_after = self._reply.drop_after
        deltas = 0
        for event in self._events:
            if (
                drop_after is not None
                and deltas >= drop_after
                and (event.is_delta or event.is_closing)
            ):
                return False
            if event.is_delta:
                if self._reply.delay and not await self._server._pause(self._reply.delay):
                    return False
                deltas += 1
            await send({"type": "http.response.body", "body": event.encode(), "more_body": True})
        return True


class _CutOffResponse(JSONResponse):
    """Sends the status line and headers of a JSON answer, then cuts the connection."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers}
        )
        # Returning without the body makes uvicorn close the connection mid-response.


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the embedding program owns SIGINT and SIGTERM;
    and stopping at once when ``wake`` is set."""

    #: Set by :class:`ModelServer` when it stops (its closing event).
    wake: asyncio.Event | None = None

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def main_loop(self) -> None:
        # uvicorn's own loop looks at should_exit every 0.1 s; a test suite stops hundreds of
        # these servers, so the stop also wakes this loop and shutdown begins at once.
        counter = 0
        should_exit = await self.on_tick(counter)
        while not should_exit:
            counter = (counter + 1) % 864000
            wake = self.wake
            if wake is None or wake.is_set():
                await asyncio.sleep(0.1)
            else:
                with anyio.move_on_after(0.1):
                    await wake.wait()
            should_exit = await self.on_tick(counter)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.server_state.connections or self.server_state.tasks:
            await super().shutdown(sockets)
            return
        # Nothing open: uvicorn's fixed 0.1 s pause for connections to finish has nothing
        # to wait for (and lifespan is off), so only the listening sockets are closed.
        for server in self.servers:
            server.close()
        for sock in sockets or []:
            sock.close()
        for server in self.servers:
            await server.wait_closed()


class _Guard:
    """Serve only loopback clients that are not web pages: a ``Host`` that is a loopback
    name (a DNS-rebinding page sends its own name) and no ``Origin`` but a loopback one,
    and read at most :data:`MAX_BODY` bytes of a body. A refusal is answered before the
    request is read or recorded."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v.decode("latin-1") for k, v in scope["headers"]}
        origin = headers.get(b"origin")
        refusal = None
        if not _LOOPBACK.fullmatch(headers.get(b"host", "")):
            refusal = HttpErrorReply(403, message="refused: the Host is not a loopback name")
        elif origin is not None and not _LOOPBACK.fullmatch(origin.removeprefix("http://")):
            refusal = HttpErrorReply(403, message="refused: a web page's request (Origin)")
        length = headers.get(b"content-length", "")
        if refusal is None and length and (not length.isdigit() or int(length) > MAX_BODY):
            refusal = _TOO_LARGE
        if refusal is not None:
            await _error_response(refusal)(scope, receive, send)
            return
        read, too_large = 0, False

        async def bounded() -> Any:
            nonlocal read, too_large
            message = await receive()
            read += len(message.get("body", b""))
            if read > MAX_BODY:
                # The app stops reading as if the client had gone; answered 413 below.
                too_large = True
                return {"type": "http.disconnect"}
            return message

        try:
            await self.app(scope, bounded, send)
        except ClientDisconnect:
            if not too_large:
                raise
            await _error_response(_TOO_LARGE)(scope, receive, send)


_TOO_LARGE = HttpErrorReply(413, message=f"refused: a request body over {MAX_BODY} bytes")


def _check_loopback(host: str) -> str:
    if host == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"ModelServer binds loopback addresses only; {host!r} is not an IP address "
            "(use 127.0.0.1, ::1 or localhost)"
        ) from None
    if not address.is_loopback:
        raise ValueError(
            f"ModelServer binds loopback addresses only; {host} is not a loopback address "
            "(use 127.0.0.1, ::1 or localhost)"
        )
    return str(address)


class ModelServer:
    """A scripted stand-in for the Anthropic API that the real Claude Code CLI can talk to.

    ``script`` is a :class:`Script` or the path of a JSON or YAML script file (loaded and
    validated at construction, raising :class:`ScriptError`). ``host`` must be a loopback address
    (``ValueError`` otherwise); ``port`` 0 picks a free port, known as :attr:`port` once
    started.

    Use it as a context manager, from sync code (``with``: uvicorn runs in a background thread)
    or from async code (``async with``: it runs as a task of the current event loop). Entering
    binds the socket and returns once the server accepts requests; leaving stops it, cutting off
    any answer still streaming (clients see a closed connection), within about 0.2 s. A server
    runs once: entering it a second time raises ``RuntimeError``.

    Endpoints: ``GET``/``HEAD /`` (200), ``POST /v1/messages`` (query ignored; SSE when the body
    says ``"stream": true``, JSON otherwise), ``POST /v1/messages/count_tokens`` (an estimate),
    ``POST /v1/responses`` (the OpenAI Responses API, for Codex CLI: the same script rendered
    as Responses events, see :meth:`codex_args`), ``POST /v1beta/models/MODEL:METHOD`` (the
    Gemini API's ``streamGenerateContent``, ``generateContent`` and ``countTokens``, for
    Gemini CLI, see :meth:`gemini_env`), ``POST /v1/chat/completions`` (OpenAI Chat
    Completions, for Qwen Code, aider and other OpenAI-compatible clients),
    ``GET /_testing/requests`` (the recorded requests as JSON). Other paths answer 404 with
    an Anthropic-style ``not_found_error``. A body that is not a JSON object answers 400.
    """

    def __init__(
        self,
        script: Script | str | os.PathLike[str],
        *,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self._host = _check_loopback(host)
        if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
            raise ValueError(f"port must be an integer in 0-65535, got {port!r}")
        self._requested_port = port
        self.script = script if isinstance(script, Script) else load_script(script)
        self._playback = Playback(self.script)
        self._records: list[RecordedRequest] = []
        self._records_lock = threading.Lock()
        self._port: int | None = None
        self._entered = False
        self._uvicorn: _EmbeddedServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._thread_error: BaseException | None = None
        self._task: asyncio.Task[None] | None = None

    # --- public surface ---------------------------------------------------------------------

    @property
    def host(self) -> str:
        """The loopback address the server binds."""
        return self._host

    @property
    def port(self) -> int:
        """The TCP port; ``RuntimeError`` before the server has been started."""
        if self._port is None:
            raise RuntimeError("ModelServer has not been started: use it in a with block")
        return self._port

    @property
    def url(self) -> str:
        """The base URL, e.g. ``http://127.0.0.1:41234`` (what ANTHROPIC_BASE_URL should be)."""
        host = f"[{self._host}]" if ":" in self._host else self._host
        return f"http://{host}:{self.port}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A snapshot of every request received so far (except ``/_testing/*``), oldest first."""
        with self._records_lock:
            return list(self._records)

    @property
    def message_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/messages`` requests among :attr:`requests`."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/messages"]

    @property
    def responses_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/responses`` requests (OpenAI Responses API) among :attr:`requests`."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/responses"]

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """The ``POST /v1/chat/completions`` requests (OpenAI Chat Completions)."""
        return [r for r in self.requests if r.method == "POST" and r.path == "/v1/chat/completions"]

    @property
    def gemini_requests(self) -> list[RecordedRequest]:
        """The Gemini API requests (``POST /v1beta/models/...``) among :attr:`requests`."""
        return [
            r for r in self.requests if r.method == "POST" and r.path.startswith("/v1beta/models/")
        ]

    def gemini_env(
        self,
        gemini_home: str | os.PathLike[str],
        *,
        base: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Environment variables that point Gemini CLI at this server.

        ``GOOGLE_GEMINI_BASE_URL`` (this server), a dummy ``GEMINI_API_KEY``,
        ``GEMINI_CLI_HOME=gemini_home`` (a throwaway folder; its ``.gemini/settings.json``
        must select the ``gemini-api-key`` auth type, which :meth:`write_gemini_settings`
        writes, or the CLI exits 41) and ``GEMINI_CLI_NO_RELAUNCH=true`` (no re-launch of
        itself as a child). With ``base`` (typically ``os.environ``) the result is a complete
        environment: ``base`` minus ``GEMINI_*`` and ``GOOGLE_*``, plus the above; ``extra``
        is applied last. Run the CLI with ``--skip-trust`` and an explicit ``-m MODEL``
        (the default ``auto`` asks a routing model first).
        """
        ours = {
            "GOOGLE_GEMINI_BASE_URL": self.url,
            "GEMINI_API_KEY": "cc-executor-testing",
            "GEMINI_CLI_HOME": os.fspath(gemini_home),
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
        env: dict[str, str] = {}
        if base is not None:
            env = {k: v for k, v in base.items() if not k.startswith(_GEMINI_PREFIXES)}
        env.update(ours)
        if extra:
            env.update(extra)
        return env

    @staticmethod
    def write_gemini_settings(gemini_home: str | os.PathLike[str]) -> str:
        """Write ``gemini_home/.gemini/settings.json`` selecting API-key auth; its path."""
        folder = os.path.join(os.fspath(gemini_home), ".gemini")
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "settings.json")
        with open(path, "w", encoding="utf-8") as file:
            json.dump({"security": {"auth": {"selectedType": "gemini-api-key"}}}, file)
        return path

    def codex_args(self, *, retries: int = 0) -> list[str]:
        """The ``codex exec`` arguments that point Codex CLI at this server.

        Codex ignores ``OPENAI_BASE_URL``; only a custom model provider reaches another
        endpoint, declared with ``-c`` overrides: name, ``base_url`` (this server's ``/v1``),
        ``wire_api = "responses"``, ``env_key = "OPENAI_API_KEY"`` and the provider's own
        request and stream retries (``retries``; the default 0 makes error tests quick).
        Needs a started server (for the port).
        """
        provider = f"model_providers.{CODEX_PROVIDER}"
        return [
            "-c", f"model_provider={CODEX_PROVIDER}",
            "-c", f'{provider}.name="{CODEX_PROVIDER}"',
            "-c", f'{provider}.base_url="{self.url}/v1"',
            "-c", f'{provider}.wire_api="responses"',
            "-c", f'{provider}.env_key="OPENAI_API_KEY"',
            "-c", f"{provider}.request_max_retries={retries}",
            "-c", f"{provider}.stream_max_retries={retries}",
        ]  # fmt: skip

    def write_codex_config(self, codex_home: str | os.PathLike[str], *, retries: int = 0) -> str:
        """Write ``codex_home/config.toml`` declaring this server as Codex CLI's model provider
        (what :meth:`codex_args` says with ``-c`` overrides), so that a plain ``codex exec``
        with ``CODEX_HOME=codex_home`` reaches it; its path. Needs a started server."""
        lines = [
            f'model_provider = "{CODEX_PROVIDER}"',
            "",
            f"[model_providers.{CODEX_PROVIDER}]",
            f'name = "{CODEX_PROVIDER}"',
            f"base_url = {json.dumps(self.url + '/v1')}",
            'wire_api = "responses"',
            'env_key = "OPENAI_API_KEY"',
            f"request_max_retries = {retries}",
            f"stream_max_retries = {retries}",
        ]
        os.makedirs(os.fspath(codex_home), exist_ok=True)
        path = os.path.join(os.fspath(codex_home), "config.toml")
        with open(path, "w", encoding="utf-8") as file:
            file.write("\n".join(lines) + "\n")
        return path

    def codex_env(
        self,
        codex_home: str | os.PathLike[str],
        *,
        base: Mapping[str, str] | None = None,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Environment variables for Codex CLI run with :meth:`codex_args`.

        ``CODEX_HOME=codex_home`` (a throwaway folder, so the CLI never reads or writes the
        user's own config and sessions; not under ``/tmp``, where Codex refuses its helper
        binaries with a warning) and a dummy ``OPENAI_API_KEY``. With ``base`` (typically
        ``os.environ``) the result is a complete environment: ``base`` minus ``OPENAI_*``,
        ``CODEX_*`` and ``AZURE_OPENAI_*``, plus the above; ``extra`` is applied last.
        """
        ours = {"CODEX_HOME": os.fspath(codex_home), "OPENAI_API_KEY": "sk-cc-executor-testing"}
        env: dict[str, str] = {}
        if base is not None:
            env = {k: v for k, v in base.items() if not k.startswith(_CODEX_PREFIXES)}
        env.update(ours)
        if extra:
            env.update(extra)
        return env

    def claude_env(
        self,
        home: str | os.PathLike[str] | None = None,
        *,
        config_dir: str | os.PathLike[str] | None = None,
        base: Mapping[str, str] | None = None,
        max_retries: int = 1,
        extra: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Environment variables that point the Claude Code CLI at this server.

        Sets ``ANTHROPIC_BASE_URL``, a dummy ``ANTHROPIC_API_KEY``,
        ``CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1``, ``DISABLE_TELEMETRY=1``,
        ``DISABLE_AUTOUPDATER=1``, ``CLAUDE_CODE_MAX_RETRIES`` (``max_retries``; the CLI's default
        of 10 retries with back-off makes error tests slow) and ``CLAUDE_CONFIG_DIR``, so the CLI
        never reads or writes the user's own config:

        - with ``home``: ``HOME=home`` and ``CLAUDE_CONFIG_DIR=home/.claude`` (unless
          ``config_dir`` is given), for the environment of one child process;
        - with ``config_dir`` alone: ``CLAUDE_CONFIG_DIR=config_dir`` and no ``HOME``, which is
          what an interactive shell should load: moving ``HOME`` would also move everything kept
          under it, cc-executor's history included.

        One of the two is required (``ValueError``). Neither directory is created here.

        Without ``base`` only those variables are returned. With ``base`` (typically
        ``os.environ``) the result is a complete environment: ``base`` minus the variables that
        would point the CLI elsewhere (``ANTHROPIC_*``, ``CLAUDE_CODE_*``, ``CLAUDECODE``,
        ``CLAUDE_CONFIG_DIR``, ``IS_SANDBOX``, and ``HOME`` and ``XDG_CONFIG_HOME`` when
        ``home`` is given), plus the above. ``extra`` is applied last and wins. Needs a started
        server (for the port).
        """
        if home is None and config_dir is None:
            raise ValueError("claude_env needs home or config_dir (a throwaway directory)")
        ours = {
            "ANTHROPIC_BASE_URL": self.url,
            "ANTHROPIC_API_KEY": "sk-ant-cc-executor-testing",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": str(max_retries),
        }
        if home is not None:
            ours["HOME"] = os.fspath(home)
            ours["CLAUDE_CONFIG_DIR"] = os.path.join(ours["HOME"], ".claude")
        if config_dir is not None:
            ours["CLAUDE_CONFIG_DIR"] = os.fspath(config_dir)
        dropped = _CONFLICTING_NAMES if home is not None else _CONFLICTING_NAMES - _HOME_NAMES
        env: dict[str, str] = {}
        if base is not None:
            env = {
                name: value
                for name, value in base.items()
                if not name.startswith(_CONFLICTING_PREFIXES) and name not in dropped
            }
        env.update(ours)
        if extra:
            env.update(extra)
        return env

    # --- sync lifecycle ---------------------------------------------------------------------

    def __enter__(self) -> ModelServer:
        sock = self._bind()
        try:
            server = self._uvicorn = self._make_uvicorn()
        except BaseException:
            sock.close()
            raise
        self._thread = threading.Thread(
            target=self._thread_main,
            args=(server, sock),
            name=f"cc-executor-model-server-{self._port}",
            daemon=True,
        )
        self._thread.start()
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if not self._thread.is_alive():
                raise RuntimeError("ModelServer failed to start") from self._thread_error
            if time.monotonic() > deadline:
                self._request_stop()
                raise RuntimeError(f"ModelServer did not start within {_STARTUP_TIMEOUT} s")
            time.sleep(0.002)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._request_stop()
        if self._thread is not None:
            self._thread.join(_STOP_TIMEOUT)

    def _thread_main(self, server: _EmbeddedServer, sock: socket.socket) -> None:
        try:
            asyncio.run(self._serve(server, sock))
        except BaseException as exc:  # reported by __enter__, which waits on this thread
            self._thread_error = exc

    # --- async lifecycle --------------------------------------------------------------------

    async def __aenter__(self) -> ModelServer:
        sock = self._bind()
        try:
            server = self._uvicorn = self._make_uvicorn()
        except BaseException:
            sock.close()
            raise
        task = self._task = asyncio.create_task(self._serve(server, sock))
        deadline = time.monotonic() + _STARTUP_TIMEOUT
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("ModelServer failed to start")
            if time.monotonic() > deadline:
                self._request_stop()
                raise RuntimeError(f"ModelServer did not start within {_STARTUP_TIMEOUT} s")
            await asyncio.sleep(0.002)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._request_stop()
        if self._task is not None:
            await self._task

    # --- internals --------------------------------------------------------------------------

    def _bind(self) -> socket.socket:
        if self._entered:
            raise RuntimeError("a ModelServer runs once; create a new one to serve again")
        self._entered = True
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # so: TCP_NODELAY
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.listen(128)
        except OSError as exc:
            sock.close()
            raise OSError(
                exc.errno, f"{self._host}:{self._requested_port}: {exc.strerror or exc}"
            ) from None
        self._port = sock.getsockname()[1]
        return sock

    def _make_uvicorn(self) -> _EmbeddedServer:
        _install_log_filter()
        config = uvicorn.Config(
            self._build_app(),
            http="h11",
            loop="asyncio",
            lifespan="off",
            ws="none",
            log_config=None,
            access_log=False,
            timeout_graceful_shutdown=2,
        )
        return _EmbeddedServer(config)

    async def _serve(self, server: _EmbeddedServer, sock: socket.socket) -> None:
        self._loop = asyncio.get_running_loop()
        self._closing = server.wake = asyncio.Event()
        await server.serve(sockets=[sock])

    def _request_stop(self) -> None:
        # should_exit first: the closing event wakes uvicorn's loop, which then reads it.
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        loop, closing = self._loop, self._closing
        if loop is not None and closing is not None and not loop.is_closed():
            # Wakes every paced or delayed answer so shutdown does not wait for slow streams.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(closing.set)

    async def _pause(self, seconds: float) -> bool:
        """Sleeps ``seconds``; False if the server began shutting down meanwhile."""
        assert self._closing is not None
        with anyio.move_on_after(seconds):
            await self._closing.wait()
            return False
        return True

    def _record(self, request: Request, body: Any) -> None:
        headers = {
            name: (_REDACTED if name in _SECRET_HEADERS else value)
            for name, value in request.headers.items()
        }
        record = RecordedRequest(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers=headers,
            body=body,
            time=time.time(),
        )
        with self._records_lock:
            self._records.append(record)

    @staticmethod
    def _parse_body(raw: bytes) -> Any:
        if not raw:
            return None
        text = raw.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except json.JSONDecodeError:
            return text

    def _build_app(self) -> Starlette:
        async def root(request: Request) -> Response:
            self._record(request, None)
            return PlainTextResponse("cc_executor.testing model server\n")

        async def received(request: Request) -> tuple[Any, int]:
            """The request's body (parsed) and size, recorded."""
            raw = await request.body()
            body = self._parse_body(raw)
            self._record(request, body)
            return body, len(raw)

        def endpoint(
            answer: Callable[[dict[str, Any], int], Awaitable[Response]],
            error_body: Callable[[HttpErrorReply], dict[str, Any]] = error_json,
        ) -> Callable[[Request], Awaitable[Response]]:
            """A POST endpoint of one API: a JSON object body, answered by ``answer``."""

            async def handle(request: Request) -> Response:
                body, size = await received(request)
                if not isinstance(body, dict):
                    return _error_response(_NOT_AN_OBJECT, error_body)
                return await answer(body, size)

            return handle

        async def gemini(request: Request) -> Response:
            body, size = await received(request)
            model, _, method = request.path_params["target"].rpartition(":")
            if method == "countTokens":
                return JSONResponse({"totalTokens": estimate_tokens(size)})
            if method not in ("generateContent", "streamGenerateContent") or not model:
                return _error_response(
                    HttpErrorReply(404, message=f"{request.url.path} is not served here"),
                    _gemini.error_json,
                )
            if not isinstance(body, dict):
                return _error_response(_NOT_AN_OBJECT, _gemini.error_json)
            stream = method == "streamGenerateContent"
            return await self._answer_gemini(body, size, model, stream=stream)

        async def count_tokens(request: Request) -> Response:
            _, size = await received(request)
            return JSONResponse({"input_tokens": estimate_tokens(size)})

        async def recorded(request: Request) -> Response:
            return JSONResponse([r.to_json() for r in self.requests])

        async def not_found(request: Request) -> Response:
            self._record(request, self._parse_body(await request.body()))
            return _error_response(
                HttpErrorReply(
                    404, message=f"{request.method} {request.url.path} is not served here"
                )
            )

        every_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
        return Starlette(
            middleware=[Middleware(_Guard)],
            routes=[
                Route("/", root, methods=["GET", "HEAD"]),
                Route("/v1/messages", endpoint(self._answer), methods=["POST"]),
                Route(
                    "/v1/responses",
                    endpoint(self._answer_responses, _responses.error_json),
                    methods=["POST"],
                ),
                Route(
                    "/v1/chat/completions",
                    endpoint(self._answer_chat, _responses.error_json),
                    methods=["POST"],
                ),
                Route("/v1beta/models/{target:path}", gemini, methods=["POST"]),
                Route("/v1/messages/count_tokens", count_tokens, methods=["POST"]),
                Route("/_testing/requests", recorded, methods=["GET"]),
                Route("/{path:path}", not_found, methods=every_method),
            ],
        )

    async def _play(
        self,
        body: dict[str, Any],
        *,
        stream: bool,
        events: Callable[[Choice, Reply, str], Iterator[Event]],
        whole: Callable[[Choice, Reply, str], dict[str, Any]],
        error_body: Callable[[HttpErrorReply], dict[str, Any]],
        id_header: str | None = None,
        model: str | None = None,
        choice: Choice | None = None,
    ) -> Response:
        """The scripted answer to ``body`` in one API's shape: ``events`` renders it streamed,
        ``whole`` as one JSON body, ``error_body`` an HTTP error; pacing, latency and drops
        are the same for every API. ``choice`` answers instead of the script."""
        if choice is None:
            choice = self._playback.choose(body)
        answer = choice.answer
        if answer.latency and not await self._pause(answer.latency):
            answer = HttpErrorReply(503, message="model server shutting down")
        if isinstance(answer, HttpErrorReply):
            return _error_response(answer, error_body)
        if model is None:
            named = body.get("model")
            model = named if isinstance(named, str) and named else "scripted-model"
        if stream:
            return _StreamResponse(self, answer, events(choice, answer, model))
        headers = {id_header: f"req_{uuid.uuid4().hex[:24]}"} if id_header else None
        data = whole(choice, answer, model)
        if answer.drop_non_streaming:
            return _CutOffResponse(data, headers=headers)
        return JSONResponse(data, headers=headers)

    async def _answer(self, body: dict[str, Any], request_chars: int) -> Response:
        def ids(choice: Choice, answer: Reply) -> dict[str, Any]:
            return {
                "message_id": f"msg_{choice.seed[:24]}",
                "tool_ids": [
                    (block.id or f"toolu_{choice.seed[24:46]}{index:02d}")
                    if isinstance(block, ToolUse)
                    else ""
                    for index, block in enumerate(answer.blocks)
                ],
                "request_chars": request_chars,
            }

        return await self._play(
            body,
            stream=body.get("stream") is True,
            events=lambda c, a, m: stream_events(a, model=m, **ids(c, a)),
            whole=lambda c, a, m: message_json(a, model=m, **ids(c, a)),
            error_body=error_json,
            id_header="request-id",
        )

    async def _answer_responses(self, body: dict[str, Any], request_chars: int) -> Response:
        choice = None
        session = _responses.still_running(body)
        if session is not None:
            # Not the script's turn: Codex stopped waiting for a scripted Bash command.
            seed = hashlib.sha256(json.dumps(body["input"][-1], sort_keys=True).encode())
            wait = _responses.wait_reply(session, seed.hexdigest())
            choice = Choice(wait, None, turn_of(body), 0, seed.hexdigest())
        return await self._play(
            body,
            choice=choice,
            stream=body.get("stream") is True,
            events=lambda c, a, m: _responses.stream_events(
                a, seed=c.seed, model=m, request_chars=request_chars
            ),
            whole=lambda c, a, m: _responses.response_json(
                a, seed=c.seed, model=m, request_chars=request_chars
            ),
            error_body=_responses.error_json,
            id_header="x-request-id",
        )

    async def _answer_chat(self, body: dict[str, Any], request_chars: int) -> Response:
        declared = _chat.declared_tools(body)
        return await self._play(
            body,
            stream=body.get("stream") is True,
            events=lambda c, a, m: _chat.stream_events(
                a, seed=c.seed, model=m, request_chars=request_chars, declared=declared
            ),
            whole=lambda c, a, m: _chat.response_json(
                a, seed=c.seed, model=m, request_chars=request_chars, declared=declared
            ),
            error_body=_responses.error_json,
        )

    async def _answer_gemini(
        self, body: dict[str, Any], request_chars: int, model: str, *, stream: bool
    ) -> Response:
        return await self._play(
            body,
            stream=stream,
            events=lambda c, a, m: _gemini.stream_events(a, model=m, request_chars=request_chars),
            whole=lambda c, a, m: _gemini.response_json(a, model=m, request_chars=request_chars),
            error_body=_gemini.error_json,
            model=model,
        )


def _error_response(
    error: HttpErrorReply,
    body: Callable[[HttpErrorReply], dict[str, Any]] = error_json,
) -> Response:
    """An HTTP error answer, its body in one API's shape (Anthropic's by default)."""
    return JSONResponse(
        body(error),
        status_code=error.status,
        headers=error_headers(error, f"req_{uuid.uuid4().hex[:24]}"),
    )
