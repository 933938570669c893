"""The WebSocket endpoint ``/ws`` (also at ``/ws/mcp``, the original cc_executor's path):
JSON-RPC 2.0 over text frames.

Methods (params are objects):

- ``execute``: ``{prompt, options}`` (Claude Code run), ``{argv | command, options}`` (a
  command, if allowed; ``command`` as a string only as an old client's ``claude -p ...``
  line, which becomes a Claude Code run: see ``_legacy``) or ``{tasks}``; a top-level
  ``timeout`` is the option's (the original's place for it); returns ``{run_id, status}``,
  then streams the run's events as notifications on this connection (``"subscribe":
  false`` to skip that).
- ``control``: ``{run_id, type: PAUSE | RESUME | CANCEL}``; returns ``{run_id, status}``.
  Without ``run_id`` (the original's clients: one run per connection), the run this
  connection started last.
- ``resume_tasks``: ``{list_id, options?}`` resumes a finished or interrupted task list as
  ``POST /tasks/{list_id}/resume`` does; returns ``{run_id, status}`` and streams its
  events like ``execute`` (``"subscribe": false`` to skip that).
- ``status``: ``{run_id}`` returns the run; without ``run_id``, the server's load.
- ``permissions``: ``{run_id}`` returns ``{permissions: [...]}``, the run's tool calls
  waiting for a decision (its permission policy asked; each also came as a
  ``run.permission_request`` notification); ``decide_permission``: ``{run_id, request_id,
  decision: allow | deny, message?}`` answers one.
- ``subscribe``: ``{run_id, after?}`` streams events with ``seq > after`` (default 0: all
  kept events) then live ones; ``unsubscribe``: ``{run_id}``.

Notifications carry the event as ``params`` (with ``run_id`` and ``seq``). The method names
are those of the original cc_executor service for the lifecycle (``process.started``,
``process.output``, ``process.paused``, ``process.resumed``, ``process.canceled``,
``process.completed``) and ``run.<type>`` for the typed agent events (``run.text_delta``,
``run.tool_use``, ``run.result``, ...). As the original's clients read them,
``process.output`` also has the text under ``data``, ``process.completed`` has
``exit_code`` at the top, and a Claude run's assistant text also comes as
``process.output`` (with the ``seq`` of the ``run.text_delta`` it repeats).

Errors: -32700 unparsable JSON, -32600 not a valid request, -32601 unknown method, -32602
bad params, -32603 internal error, and -32001 (not found), -32003 (forbidden), -32009
(conflict), -32029 (queue full), -32050 (not available) from the run manager, with
``data: {code, http_status}``. The connection stays usable after any of them. Runs do not
depend on the connection: closing it only stops the notifications.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Callable
from typing import Any

import orjson
from starlette.websockets import WebSocket, WebSocketDisconnect

from cc_executor._errors import CCExecutorError
from cc_executor._payload import versioned
from cc_executor._service._legacy import shaped, text_output, translate_command
from cc_executor._service._manager import (
    Conflict,
    Forbidden,
    InvalidRequest,
    NotFound,
    QueueFull,
    RunManager,
    ServiceError,
    Unavailable,
)
from cc_executor._service._security import READ_ONLY

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
#: A read-only caller (the read-only token) asked for a change.
READ_ONLY_ERROR = -32003
#: The methods a read-only caller may not call.
_CHANGING_METHODS = frozenset({"execute", "control", "decide_permission", "resume_tasks"})
INTERNAL_ERROR = -32603

_SERVICE_CODES: dict[type[ServiceError], int] = {
    InvalidRequest: INVALID_PARAMS,
    NotFound: -32001,
    Forbidden: -32003,
    Conflict: -32009,
    QueueFull: -32029,
    Unavailable: -32050,
}

#: Notification method of each lifecycle event type (the original service's names).
LIFECYCLE_METHODS = {
    "started": "process.started",
    "output": "process.output",
    "paused": "process.paused",
    "resumed": "process.resumed",
    "cancelled": "process.canceled",
    "completed": "process.completed",
}

#: Outgoing frames buffered per connection; past that, its subscriptions wait (the runs
#: never do: they only append to their logs).
OUTBOX_SIZE = 1024
#: Subscriptions one connection may hold.
MAX_SUBSCRIPTIONS = 256

_SAFE_TYPE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")


class _RpcError(CCExecutorError):
    """A JSON-RPC error reply (internal: the connection's loop sends it to the client)."""

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


def notification_method(event_type: Any) -> str:
    """The JSON-RPC method of a notification for an event of type ``event_type``."""
    if isinstance(event_type, str):
        method = LIFECYCLE_METHODS.get(event_type)
        if method is not None:
            return method
        if _SAFE_TYPE.match(event_type):
            return f"run.{event_type}"
    return "run.event"


def _error(id_: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": id_, "error": error}


def _params(params: Any) -> dict[str, Any]:
    if params is None:
        return {}
    if not isinstance(params, dict):
        raise _RpcError(INVALID_PARAMS, "params must be an object")
    return params


def _options(spec: dict[str, Any]) -> dict[str, Any]:
    options = {} if spec.get("options") is None else spec["options"]
    if not isinstance(options, dict):
        raise _RpcError(INVALID_PARAMS, "options must be an object")
    return options


def _run_id(params: dict[str, Any]) -> str:
    run_id = params.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        raise _RpcError(INVALID_PARAMS, "run_id (a string) is required")
    return run_id


class _Session:
    def __init__(self, ws: WebSocket, manager: RunManager, *, read_only: bool = False) -> None:
        self.ws = ws
        self.manager = manager
        self.read_only = read_only
        self.outbox: asyncio.Queue[bytes | None] = asyncio.Queue(OUTBOX_SIZE)
        self.subscriptions: dict[str, asyncio.Task[None]] = {}
        self.after_reply: list[Callable[[], None]] = []
        self.last_run: str | None = None
        self.methods: dict[str, Callable[[dict[str, Any]], Any]] = {
            "execute": self.execute,
            "control": self.control,
            "resume_tasks": self.resume_tasks,
            "status": self.status,
            "subscribe": self.subscribe,
            "unsubscribe": self.unsubscribe,
            "permissions": self.permissions,
            "decide_permission": self.decide_permission,
        }

    async def serve(self) -> None:
        writer = asyncio.ensure_future(self._write())
        try:
            while True:
                message = await self.ws.receive()
                if message["type"] == "websocket.disconnect":
                    return
                text = message.get("text")
                if text is None:
                    data = message.get("bytes") or b""
                    try:
                        text = data.decode("utf-8")
                    except UnicodeDecodeError:
                        await self._send(_error(None, PARSE_ERROR, "Parse error: not UTF-8"))
                        continue
                await self._handle_frame(text)
                if writer.done():
                    return
        except WebSocketDisconnect:
            return
        finally:
            for task in self.subscriptions.values():
                task.cancel()
            writer.cancel()
            for task in [*self.subscriptions.values(), writer]:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _write(self) -> None:
        while True:
            frame = await self.outbox.get()
            if frame is None:
                return
            await self.ws.send_text(frame.decode("utf-8"))

    async def _send(self, message: Any) -> None:
        await self.outbox.put(orjson.dumps(message))

    async def _handle_frame(self, text: str) -> None:
        try:
            request = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            await self._send(_error(None, PARSE_ERROR, f"Parse error: {exc}"))
            return
        if isinstance(request, list):
            if not request:
                await self._send(_error(None, INVALID_REQUEST, "Invalid Request: empty batch"))
                return
            replies = [r for r in [await self._handle(item) for item in request] if r]
            if replies:
                await self._send(replies)
        else:
            reply = await self._handle(request)
            if reply is not None:
                await self._send(reply)
        actions, self.after_reply = self.after_reply, []
        for action in actions:
            action()

    async def _handle(self, request: Any) -> dict[str, Any] | None:
        if not isinstance(request, dict):
            return _error(None, INVALID_REQUEST, "Invalid Request: expected an object")
        id_ = request.get("id")
        has_id = "id" in request
        if has_id and not (id_ is None or isinstance(id_, str) or type(id_) is int):
            return _error(None, INVALID_REQUEST, "Invalid Request: id must be a string or integer")
        method = request.get("method")
        if request.get("jsonrpc") != "2.0" or not isinstance(method, str):
            return _error(id_, INVALID_REQUEST, 'Invalid Request: needs jsonrpc "2.0" and method')
        handler = self.methods.get(method)
        try:
            if handler is None:
                raise _RpcError(METHOD_NOT_FOUND, f"Method not found: {method}")
            if self.read_only and method in _CHANGING_METHODS:
                raise _RpcError(READ_ONLY_ERROR, f"{method}: this token may only read")
            params = request.get("params")
            if params is not None and not isinstance(params, (dict, list)):
                raise _RpcError(INVALID_REQUEST, "Invalid Request: params must be structured")
            result = handler(_params(params))
            if asyncio.iscoroutine(result):
                result = await result
        except _RpcError as exc:
            reply = _error(id_, exc.code, str(exc), exc.data)
        except ServiceError as exc:
            code = _SERVICE_CODES.get(type(exc), INTERNAL_ERROR)
            reply = _error(id_, code, str(exc), {"code": exc.code, "http_status": exc.status})
        except Exception as exc:  # one bad request must not end the connection
            reply = _error(id_, INTERNAL_ERROR, f"Internal error: {type(exc).__name__}")
        else:
            reply = {"jsonrpc": "2.0", "id": id_, "result": versioned(result)}
        return reply if has_id else None

    # ---------------------------------------------------------------- methods

    async def execute(self, params: dict[str, Any]) -> dict[str, Any]:
        spec = dict(params)
        follow = spec.pop("subscribe", True)
        if not isinstance(follow, bool):
            raise _RpcError(INVALID_PARAMS, "subscribe must be a boolean")
        if "command" in spec and "argv" not in spec:
            command = spec.pop("command")
            if isinstance(command, str):
                spec["prompt"], translated = translate_command(command)
                spec["options"] = {**translated, **_options(spec)}
            else:
                spec["argv"] = command
        if "timeout" in spec:
            timeout = spec.pop("timeout")
            options = _options(spec)
            if timeout is not None and options.get("timeout", timeout) != timeout:
                raise _RpcError(
                    INVALID_PARAMS, "timeout is given twice, at the top and in options, differently"
                )
            if timeout is not None:
                spec["options"] = {**options, "timeout": timeout}
        await self.manager.check_fleet(spec)
        run = self.manager.submit(spec)
        self.last_run = run.id
        if follow:
            self._check_room(run.id)
            self.after_reply.append(lambda: self._start_subscription(run.id, 0))
        return {"run_id": run.id, "status": run.status}

    def resume_tasks(self, params: dict[str, Any]) -> dict[str, Any]:
        spec = dict(params)
        follow = spec.pop("subscribe", True)
        if not isinstance(follow, bool):
            raise _RpcError(INVALID_PARAMS, "subscribe must be a boolean")
        list_id = spec.pop("list_id", None)
        if not isinstance(list_id, str):
            raise _RpcError(INVALID_PARAMS, "list_id must be a string")
        run = self.manager.resume_tasks(list_id, spec)
        self.last_run = run.id
        if follow:
            self._check_room(run.id)
            self.after_reply.append(lambda: self._start_subscription(run.id, 0))
        return {"run_id": run.id, "status": run.status}

    def control(self, params: dict[str, Any]) -> dict[str, Any]:
        if "run_id" not in params and self.last_run is not None:
            params = {**params, "run_id": self.last_run}
        run_id = _run_id(params)
        action = params.get("type")
        actions = {"PAUSE": self.manager.pause, "RESUME": self.manager.resume}
        actions["CANCEL"] = self.manager.cancel
        if not isinstance(action, str) or action.upper() not in actions:
            raise _RpcError(INVALID_PARAMS, "type must be PAUSE, RESUME or CANCEL")
        run = actions[action.upper()](run_id)
        return {"run_id": run.id, "status": run.status}

    async def status(self, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("run_id") is None:
            return self.manager.stats()
        return await self.manager.describe(_run_id(params))

    def permissions(self, params: dict[str, Any]) -> dict[str, Any]:
        return {"permissions": self.manager.permissions(_run_id(params))}

    def decide_permission(self, params: dict[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(params) - {"run_id", "request_id", "decision", "message"})
        if unknown:
            raise _RpcError(INVALID_PARAMS, f"unknown param(s): {', '.join(unknown)}")
        request_id = params.get("request_id")
        if not isinstance(request_id, str):
            raise _RpcError(INVALID_PARAMS, "request_id must be a string")
        return self.manager.decide_permission(
            _run_id(params),
            request_id,
            params.get("decision"),
            params.get("message"),
            by="service (WebSocket)",
        )

    def subscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        run_id = _run_id(params)
        after = params.get("after", 0)
        if type(after) is not int or after < 0:
            raise _RpcError(INVALID_PARAMS, "after must be an integer >= 0")
        run = self.manager.get(run_id)
        self._check_room(run_id)
        self.after_reply.append(lambda: self._start_subscription(run_id, after))
        return {"run_id": run_id, "subscribed": True, "last_seq": run.last_seq}

    def unsubscribe(self, params: dict[str, Any]) -> dict[str, Any]:
        run_id = _run_id(params)
        task = self.subscriptions.pop(run_id, None)
        if task is not None:
            task.cancel()
        return {"run_id": run_id, "unsubscribed": task is not None}

    def _check_room(self, run_id: str) -> None:
        # Subscriptions start after the reply, so a batch's pending ones count too.
        pending = len(self.after_reply)
        if (
            run_id not in self.subscriptions
            and len(self.subscriptions) + pending >= MAX_SUBSCRIPTIONS
        ):
            raise _RpcError(INVALID_PARAMS, f"at most {MAX_SUBSCRIPTIONS} subscriptions")

    def _start_subscription(self, run_id: str, after: int) -> None:
        previous = self.subscriptions.pop(run_id, None)
        if previous is not None:
            previous.cancel()
        task = asyncio.ensure_future(self._forward(run_id, after))
        self.subscriptions[run_id] = task

    async def _forward(self, run_id: str, after: int) -> None:
        run = self.manager.get(run_id)
        source = run.follow(after)
        streamed: set[Any] = set()
        try:
            async for event in source:
                method = notification_method(event.get("type"))
                params = versioned(shaped(event))
                await self.outbox.put(
                    orjson.dumps({"jsonrpc": "2.0", "method": method, "params": params})
                )
                output = text_output(event, streamed)
                if output is not None:
                    await self.outbox.put(
                        orjson.dumps(
                            {
                                "jsonrpc": "2.0",
                                "method": "process.output",
                                "params": versioned(output),
                            }
                        )
                    )
        finally:
            await source.aclose()
            if self.subscriptions.get(run_id) is asyncio.current_task():
                del self.subscriptions[run_id]


async def websocket_endpoint(ws: WebSocket) -> None:
    """Accept the connection (the guard already checked it) and serve JSON-RPC on it."""
    await ws.accept()
    read_only = ws.scope.get("state", {}).get("role") == READ_ONLY
    await _Session(ws, ws.app.state.manager, read_only=read_only).serve()
