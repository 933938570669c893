"""Permission decisions for a run's tool calls: the policy, the decider and the channel.

Claude Code asks its ``--permission-prompt-tool`` (an MCP tool) about every tool call it
would otherwise prompt a person for. cc-executor gives each run with a policy a small stdio
MCP server of its own (:mod:`cc_executor._run._permission_server`, started by the CLI,
inside the run's process tree), which passes each request over a unix socket in the run
folder to the :class:`PermissionBroker` of the run. The broker applies the policy's rules
and hands an ``ask`` to the decider (``on_permission``), denying it when the decider does
not answer in ``ask_timeout_s``. Requests are untrusted data: they are parsed as JSON,
never run, and a malformed one is denied. docs/permissions.md has what was observed of
the CLI's side of the protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import os
import secrets
import socket
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._types import (
    AgentEvent,
    PermissionDecisionEvent,
    PermissionRequestEvent,
)
from cc_executor._run import _permission_server
from cc_executor._run._permission_server import MAX_REQUEST_BYTES, SERVER_NAME, TOOL
from cc_executor._run._policy import Policy

#: The permission tool's full name, as the CLI knows it.
TOOL_NAME = f"mcp__{SERVER_NAME}__{TOOL}"
#: The longest the quiet clocks wait for a CLI's permission server to start (tens of ms on
#: an idle machine, more on a loaded one, while the CLI prints nothing). A server that
#: never says it is ready stops holding them then.
STARTUP_HOLD_S = 60.0
#: Longest unix socket path Linux takes (108 bytes with the NUL).
_MAX_SOCKET_PATH = 107


@dataclass(frozen=True, slots=True)
class PermissionRequest:
    """A tool call waiting for a decision: what ``on_permission`` receives."""

    id: str
    run_id: str
    tool_name: str
    input: Mapping[str, Any]
    tool_use_id: str | None = None
    #: The rule that asked (None: the policy's default).
    rule: str | None = None
    requested_at: float = 0.0
    timeout_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the service's pending list)."""
        return {
            "request_id": self.id,
            "run_id": self.run_id,
            "tool_name": self.tool_name,
            "tool_input": dict(self.input),
            "tool_use_id": self.tool_use_id,
            "rule": self.rule,
            "requested_at": self.requested_at,
            "timeout_s": self.timeout_s,
        }


@dataclass(frozen=True, slots=True)
class PermissionDecision:
    """What a decider may return instead of ``"allow"``/``"deny"``/a bool: the decision,
    a message for the model when denied, and who decided (kept in the history)."""

    behavior: str
    message: str | None = None
    decided_by: str | None = None
    updated_input: Mapping[str, Any] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.behavior not in ("allow", "deny"):
            raise ValueError(f"a permission decision is allow or deny, got {self.behavior!r}")


#: ``on_permission(request) -> "allow" | "deny" | bool | PermissionDecision`` (sync or async).
Decider = Callable[[PermissionRequest], Any]


def as_decision(answer: object, default_by: str) -> PermissionDecision:
    """A decider's answer as a :class:`PermissionDecision`; anything else is a deny."""
    if isinstance(answer, PermissionDecision):
        if answer.decided_by is None:
            return PermissionDecision(
                answer.behavior, answer.message, default_by, answer.updated_input
            )
        return answer
    if answer is True or answer == "allow":
        return PermissionDecision("allow", decided_by=default_by)
    if answer is False or answer == "deny":
        return PermissionDecision("deny", decided_by=default_by)
    return PermissionDecision(
        "deny", f"the decider answered {answer!r}, not allow or deny", default_by
    )


def socket_path(run_dir: str) -> tuple[str, str | None]:
    """Where the channel listens: ``permissions.sock`` in the run folder, or in a private
    temporary folder (returned second, to remove) when that path is too long for a socket."""
    path = os.path.join(run_dir, "permissions.sock")
    if len(os.fsencode(path)) <= _MAX_SOCKET_PATH:
        return path, None
    folder = tempfile.mkdtemp(prefix="ccx-perm-")
    return os.path.join(folder, "s"), folder


def mcp_config(path: str) -> dict[str, Any]:
    """The ``--mcp-config`` JSON that starts the permission server of a run."""
    return {
        "mcpServers": {
            SERVER_NAME: {
                "type": "stdio",
                "command": sys.executable,
                "args": _permission_server.command(path),
                "env": {},
            }
        }
    }


class PermissionBroker:
    """One run's side of the channel: applies the policy, asks the decider, records.

    ``emit`` sends an event to the run's listeners; ``record`` keeps a decision in the
    history (called in a thread); ``hold``/``release`` pause and restart the run's idle and
    first-output clocks while a decider is asked."""

    def __init__(
        self,
        *,
        policy: Policy,
        run_id: str,
        cwd: str,
        run_dir: str,
        decider: Decider | None,
        decider_name: str,
        emit: Callable[[AgentEvent], Awaitable[None]],
        record: Callable[[dict[str, Any]], None],
        hold: Callable[[], None],
        release: Callable[[], None],
    ) -> None:
        self.policy = policy
        self.run_id = run_id
        self.cwd = cwd
        self.decider = decider
        self.decider_name = decider_name
        self._emit = emit
        self._record = record
        self._hold = hold
        self._release = release
        self.path, self._temp_folder = socket_path(run_dir)
        self._server: asyncio.AbstractServer | None = None
        self._count = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._records: set[asyncio.Future[None]] = set()
        self._startup_hold: asyncio.TimerHandle | None = None

    def cli_started(self) -> None:
        """A CLI was just started: hold the quiet clocks until its permission server says it
        is ready (its start is ours, not the agent's silence), at most STARTUP_HOLD_S."""
        self._end_startup_hold()
        self._hold()
        self._startup_hold = asyncio.get_running_loop().call_later(
            STARTUP_HOLD_S, self._end_startup_hold
        )

    def _end_startup_hold(self) -> None:
        if self._startup_hold is not None:
            self._startup_hold.cancel()
            self._startup_hold = None
            self._release()

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        # Only this account may connect: the socket is made private before it listens
        # (nobody can connect to it until then). Not with os.umask: the umask is the whole
        # process's, and it would stay 0177 for every later file and folder of the process
        # when two runs' starts interleave at their await.
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(self.path)
            os.chmod(self.path, 0o600)
            self._server = await asyncio.start_unix_server(
                self._serve, sock=sock, limit=MAX_REQUEST_BYTES
            )
        except BaseException:
            sock.close()
            raise

    async def close(self) -> None:
        self._end_startup_hold()
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in list(self._tasks):
            task.cancel()
        if self._records:
            await asyncio.gather(*self._records, return_exceptions=True)
        with contextlib.suppress(OSError):
            os.unlink(self.path)
        if self._temp_folder is not None:
            with contextlib.suppress(OSError):
                os.rmdir(self._temp_folder)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            line = await reader.readline()
            if line.strip() == b'{"ready": true}':
                self._end_startup_hold()
                return
            answer = await self.handle(line)
            writer.write(json.dumps(answer).encode() + b"\n")
            await writer.drain()
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass  # the server side denies a call whose answer never came
        finally:
            if task is not None:
                self._tasks.discard(task)
            writer.close()

    async def handle(self, line: bytes) -> dict[str, Any]:
        """One request line in, the answer for the CLI out (``behavior`` allow or deny)."""
        try:
            request = json.loads(line)
            tool_name = request["tool_name"]
            tool_input = request.get("input") or {}
            tool_use_id = request.get("tool_use_id")
            if not isinstance(tool_name, str) or not isinstance(tool_input, dict):
                raise TypeError
            if tool_use_id is not None and not isinstance(tool_use_id, str):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            return {"behavior": "deny", "message": "cc-executor: malformed permission request"}
        decision = await self.decide(tool_name, tool_input, tool_use_id)
        if decision["decision"] == "allow":
            updated = decision.pop("_updated_input", None)
            return {
                "behavior": "allow",
                "updatedInput": updated if updated is not None else tool_input,
            }
        return {"behavior": "deny", "message": decision.get("message") or "denied"}

    async def decide(
        self, tool_name: str, tool_input: dict[str, Any], tool_use_id: str | None
    ) -> dict[str, Any]:
        self._count += 1
        request_id = f"p{self._count}-{secrets.token_hex(3)}"
        requested = time.time()
        began = time.monotonic()
        action, rule = self.policy.decide(tool_name, tool_input, self.cwd)
        rule_text = str(rule.pattern) if rule is not None else None
        updated: Mapping[str, Any] | None = None
        if action != "ask":
            decision = action
            decided_by = "rule" if rule is not None else "default"
            message = (
                None
                if action == "allow"
                else (
                    f"denied by the permission policy ({rule})"
                    if rule is not None
                    else "denied by the permission policy's default"
                )
            )
        else:
            decision, decided_by, message, updated = await self._ask(
                request_id,
                tool_name=tool_name,
                tool_input=tool_input,
                tool_use_id=tool_use_id,
                rule=rule_text,
                requested=requested,
            )
        entry: dict[str, Any] = {
            "request_id": request_id,
            "tool_name": tool_name,
            "tool_input": tool_input,
            "decision": decision,
            "decided_by": decided_by,
            "rule": rule_text,
            "message": message,
            "requested_at": requested,
            "decided_at": time.time(),
        }
        await self._emit(
            PermissionDecisionEvent(
                t=time.monotonic(),
                request_id=request_id,
                tool_name=tool_name,
                tool_input=tool_input,
                decision=decision,
                decided_by=decided_by,
                rule=rule_text,
                message=message,
                waited_s=time.monotonic() - began,
            )
        )
        # Kept in the history after the CLI has its answer: a write (and its fsync) is not
        # on the call's path. close() waits for them, before the run's end is recorded.
        record = asyncio.ensure_future(asyncio.to_thread(self._record, dict(entry)))
        self._records.add(record)
        record.add_done_callback(self._records.discard)
        if updated is not None:
            entry["_updated_input"] = dict(updated)
        return entry

    async def _ask(
        self,
        request_id: str,
        *,
        tool_name: str,
        tool_input: dict[str, Any],
        tool_use_id: str | None,
        rule: str | None,
        requested: float,
    ) -> tuple[str, str, str | None, Mapping[str, Any] | None]:
        timeout = self.policy.ask_timeout_s
        if self.decider is None:
            return (
                "deny",
                "no decider",
                "the permission policy asks, and nobody can answer (no on_permission, "
                "no terminal, no service)",
                None,
            )
        request = PermissionRequest(
            request_id, self.run_id, tool_name, tool_input, tool_use_id, rule, requested, timeout
        )
        await self._emit(
            PermissionRequestEvent(
                t=time.monotonic(),
                request_id=request_id,
                tool_name=tool_name,
                tool_input=tool_input,
                tool_use_id=tool_use_id,
                timeout_s=timeout,
                rule=rule,
            )
        )
        self._hold()
        try:
            answer = await asyncio.wait_for(self._call(request), timeout)
        except asyncio.TimeoutError:
            return "deny", "timeout", f"no decision within {timeout:g} s", None
        except Exception as exc:  # the caller's decider failed: its call is denied
            return (
                "deny",
                self.decider_name,
                f"the decider failed: {type(exc).__name__}: {exc}",
                None,
            )
        finally:
            self._release()
        decision = as_decision(answer, self.decider_name)
        message = decision.message
        if decision.behavior == "deny" and not message:
            message = f"denied by {decision.decided_by}"
        return (
            decision.behavior,
            decision.decided_by or self.decider_name,
            message,
            decision.updated_input,
        )

    async def _call(self, request: PermissionRequest) -> Any:
        assert self.decider is not None
        return await call_decider(self.decider, request)


async def call_decider(decider: Decider, request: PermissionRequest) -> Any:
    """``decider``'s answer to ``request``: awaited when async, else called in a thread (a
    callback that blocks, a prompt, neither stalls the run's loop nor escapes a timeout)."""
    if inspect.iscoroutinefunction(decider):
        answer = await decider(request)
    else:
        answer = await asyncio.to_thread(decider, request)
    if inspect.isawaitable(answer):
        answer = await answer
    return answer
