"""The permission-prompt MCP server of one run: a small stdio JSON-RPC server for one tool.

Started as ``python -I -S .../_permission_server.py SOCKET`` (by path, standard library
only: see :func:`command`).

Claude Code starts it over stdio (``--mcp-config``) and calls its one tool, ``decide``,
through ``--permission-prompt-tool``. Each call is passed as one JSON line to the run's
:class:`~cc_executor._run._permissions.PermissionBroker` on the unix socket ``SOCKET`` and
its answer returned as the tool's single text block, which is what the CLI reads
(``{"behavior": "allow", "updatedInput": {...}}`` or ``{"behavior": "deny", "message":
...}``). Anything going wrong on the way is a deny, never a hang of the CLI: the broker
bounds each decision with the policy's ``ask_timeout_s``.

Why not the ``mcp`` SDK: importing it takes about 0.6 s of a 0.8 s start on a quiet
machine (its pydantic models), which every run with a policy paid before the CLI's first
request (BENCHMARKS.md, "Permission prompt server start"). This server speaks exactly the
MCP subset the pinned Claude Code uses (``initialize``, ``notifications/initialized``,
``tools/list``, ``tools/call``, ``ping``; other notifications are ignored, other requests
answered "method not found") over the stdio transport's newline-delimited JSON-RPC 2.0,
and starts in tens of milliseconds. Every incoming message is untrusted data: it is
parsed as JSON, checked field by field, and anything not exactly as expected is refused
with a JSON-RPC error (or, for a call's arguments, a deny).

It must import nothing but the standard library: it runs without ``site`` (``-S``),
in isolated mode (``-I``), so that neither the run's cwd, where the agent writes files,
nor the environment can put a module on its path.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading

# Not `from typing import TYPE_CHECKING`: importing typing is a tenth of this server's start.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, BinaryIO

#: The MCP server's name in the CLI's config, and so the tool's full name.
SERVER_NAME = "cc_executor_permissions"
#: The one tool's name.
TOOL = "decide"
#: The largest message read from the CLI or the channel (a Write's content travels in it).
MAX_REQUEST_BYTES = 64 << 20
#: Protocol versions whose subset used here is the same; an unknown one gets the newest.
PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05")
#: At most this many calls are decided at once; beyond it a call is denied at once.
MAX_CONCURRENT_CALLS = 64

_TOOL_SPEC = {
    "name": TOOL,
    "description": "Decide whether Claude Code may run a tool call (cc-executor policy).",
    "inputSchema": {
        "type": "object",
        "properties": {
            "tool_name": {"type": "string"},
            "input": {"type": "object"},
            "tool_use_id": {"type": ["string", "null"]},
        },
        "required": ["tool_name", "input"],
    },
}

# JSON-RPC 2.0 error codes.
_PARSE_ERROR = -32700
_INVALID_REQUEST = -32600
_METHOD_NOT_FOUND = -32601
_INVALID_PARAMS = -32602


class _Refused(Exception):
    """A message answered with a JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def command(path: str) -> list[str]:
    """The argv (after the interpreter) that starts this server for the socket ``path``.

    By file path rather than ``-m``: ``-m`` puts the cwd first on ``sys.path``, and the
    cwd is the agent's; ``-I -S`` also skips ``site`` and the environment (a third of the
    interpreter's start), which this stdlib-only module does not need."""
    return ["-I", "-S", os.path.abspath(__file__), path]


def ask_broker(path: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """One decision from the run's broker over its unix socket; any failure is a deny."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(json.dumps(arguments).encode() + b"\n")
            with s.makefile("rb") as reader:
                line = reader.readline(MAX_REQUEST_BYTES + 1)
        answer = json.loads(line)  # the run's own broker wrote it
        behavior = answer.get("behavior") if isinstance(answer, dict) else None
        if behavior == "allow" and isinstance(answer.get("updatedInput"), dict):
            return {"behavior": "allow", "updatedInput": answer["updatedInput"]}
        if behavior == "deny" and isinstance(answer.get("message"), str):
            return {"behavior": "deny", "message": answer["message"]}
        raise ValueError("no decision")
    except (OSError, ValueError) as exc:
        return {"behavior": "deny", "message": f"cc-executor could not decide: {exc}"}


def call_arguments(params: object) -> dict[str, Any]:
    """The ``decide`` call's arguments, checked; a wrong tool or shape is refused."""
    if not isinstance(params, dict) or params.get("name") != TOOL:
        raise _Refused(_INVALID_PARAMS, f"unknown tool: only {TOOL!r} exists")
    arguments = params.get("arguments")
    if not isinstance(arguments, dict):
        raise _Refused(_INVALID_PARAMS, "arguments must be an object")
    return arguments


def checked_request(arguments: dict[str, Any]) -> dict[str, Any] | None:
    """What goes to the broker, or None when the arguments are not a permission request."""
    tool_name = arguments.get("tool_name")
    tool_input = arguments.get("input")
    tool_use_id = arguments.get("tool_use_id")
    if not isinstance(tool_name, str) or not tool_name or not isinstance(tool_input, dict):
        return None
    if tool_use_id is not None and not isinstance(tool_use_id, str):
        return None
    return {"tool_name": tool_name, "input": tool_input, "tool_use_id": tool_use_id}


def text_result(answer: dict[str, Any]) -> dict[str, Any]:
    # Exactly one text block: the CLI refuses a result with anything else (2.1.330).
    return {"content": [{"type": "text", "text": json.dumps(answer)}]}


class Server:
    """The JSON-RPC loop: reads ``stdin`` a line at a time, answers on ``stdout``.

    Calls of ``decide`` run in threads of their own (the CLI may ask about parallel tool
    calls, and a person may take a minute), so ``ping`` and other calls are answered
    meanwhile; one lock keeps each answer's line whole."""

    def __init__(self, path: str, stdin: BinaryIO, stdout: BinaryIO) -> None:
        self.path = path
        self.stdin = stdin
        self.stdout = stdout
        self._write = threading.Lock()
        self._calls = threading.BoundedSemaphore(MAX_CONCURRENT_CALLS)

    def send(self, message: dict[str, Any]) -> None:
        # ensure_ascii: no raw line separator can end up inside the line.
        data = json.dumps(message, separators=(",", ":")).encode() + b"\n"
        with self._write:
            try:
                self.stdout.write(data)
                self.stdout.flush()
            except (OSError, ValueError):
                pass  # the CLI is gone; stdin's end stops the loop

    def error(self, id_: object, code: int, message: str) -> None:
        self.send({"jsonrpc": "2.0", "id": id_, "error": {"code": code, "message": message}})

    def serve(self) -> None:
        while True:
            line = self.stdin.readline(MAX_REQUEST_BYTES + 1)
            if not line:
                return
            if len(line) > MAX_REQUEST_BYTES and not line.endswith(b"\n"):
                self._skip_line()
                self.error(None, _INVALID_REQUEST, "message too large")
                continue
            if line.strip():
                self.handle(line)

    def _skip_line(self) -> None:
        while True:
            rest = self.stdin.readline(1 << 20)
            if not rest or rest.endswith(b"\n"):
                return

    def handle(self, line: bytes) -> None:
        try:
            message = json.loads(line)
        except (ValueError, RecursionError):  # RecursionError: nested deeper than it parses
            self.error(None, _PARSE_ERROR, "not JSON")
            return
        if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
            self.error(None, _INVALID_REQUEST, "not a JSON-RPC 2.0 message")
            return
        method = message.get("method")
        if "id" not in message:
            # A notification (initialized, cancelled, ...) or junk: nothing to answer.
            return
        id_ = message["id"]
        if isinstance(id_, bool) or not isinstance(id_, (int, str)):
            self.error(None, _INVALID_REQUEST, "id must be a string or an integer")
            return
        if method is None and ("result" in message or "error" in message):
            return  # a response: this server sends no requests, so it has nobody waiting
        if not isinstance(method, str):
            self.error(id_, _INVALID_REQUEST, "method must be a string")
            return
        params = message.get("params", {})
        try:
            if method == "tools/call":
                self.start_call(id_, call_arguments(params))
                return
            result = self.answer(method, params)
        except _Refused as refused:
            self.error(id_, refused.code, str(refused))
            return
        self.send({"jsonrpc": "2.0", "id": id_, "result": result})

    def answer(self, method: str, params: object) -> dict[str, Any]:
        if not isinstance(params, dict):
            raise _Refused(_INVALID_PARAMS, "params must be an object")
        if method == "initialize":
            asked = params.get("protocolVersion")
            if not isinstance(asked, str):
                raise _Refused(_INVALID_PARAMS, "protocolVersion must be a string")
            return {
                "protocolVersion": asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0],
                "capabilities": {"tools": {"listChanged": False}},
                "serverInfo": {"name": SERVER_NAME, "version": "1"},
            }
        if method == "ping":
            return {}
        if method == "tools/list":
            return {"tools": [_TOOL_SPEC]}
        raise _Refused(_METHOD_NOT_FOUND, f"method not found: {method[:100]}")

    def start_call(self, id_: int | str, arguments: dict[str, Any]) -> None:
        request = checked_request(arguments)
        if request is None:
            answer = {"behavior": "deny", "message": "cc-executor: malformed permission request"}
            self.send({"jsonrpc": "2.0", "id": id_, "result": text_result(answer)})
            return
        if not self._calls.acquire(blocking=False):
            answer = {"behavior": "deny", "message": "cc-executor: too many pending requests"}
            self.send({"jsonrpc": "2.0", "id": id_, "result": text_result(answer)})
            return
        threading.Thread(target=self._call, args=(id_, request), daemon=True).start()

    def _call(self, id_: int | str, request: dict[str, Any]) -> None:
        try:
            answer = ask_broker(self.path, request)
            self.send({"jsonrpc": "2.0", "id": id_, "result": text_result(answer)})
        finally:
            self._calls.release()


def _say_ready(path: str) -> None:
    """Tell the run this server is up (the run holds its idle clock until then)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(b'{"ready": true}\n')
    except OSError:
        pass  # the run's clock hold ends on its own


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -I -S _permission_server.py SOCKET", file=sys.stderr)
        return 2
    _say_ready(argv[0])
    Server(argv[0], sys.stdin.buffer, sys.stdout.buffer).serve()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
