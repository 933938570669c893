"""Typed events of an agent run, and how a run can end.

The agent adapters turn each CLI's output into these events; everything above them (the
Python API, the command line, the servers) sees only these. Every event has ``t``, the
``time.monotonic()`` at which its bytes were read, and ``raw``, the JSON object it came from
(None for events we make ourselves, such as heartbeats). Events are immutable.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

from cc_executor._payload import SCHEMA_VERSION
from cc_executor._status import Status

#: How an agent run ended: the one status vocabulary (see :mod:`cc_executor._status`). A
#: run ends ok, error, rate_limited, max_turns, budget_exceeded, timeout, idle_timeout,
#: cancelled, crashed, spawn_failed, or oom_killed / limit_exceeded (a resource limit).
RunStatus = Status


class ToolKind(str, enum.Enum):
    """What a tool call does, in one vocabulary for every agent (``ToolUseEvent.kind``).

    The names are the Agent Client Protocol's ``ToolKind`` where one fits; ``write`` and
    ``mcp`` are ours (ACP calls them ``edit`` and ``other``: see :attr:`acp`). Which tool
    of which agent has which kind is in docs/events.md.
    """

    EXECUTE = "execute"
    """Runs a command (a shell)."""
    WRITE = "write"
    """Creates or overwrites a whole file."""
    EDIT = "edit"
    """Changes part of a file."""
    DELETE = "delete"
    """Removes a file."""
    READ = "read"
    """Reads a file."""
    SEARCH = "search"
    """Looks for files or text on this machine (glob, grep, a folder listing)."""
    FETCH = "fetch"
    """Reaches the web (fetches a page or searches the web)."""
    MCP = "mcp"
    """Calls a tool of an MCP server."""
    THINK = "think"
    """Plans or delegates: a todo list, a memory note, a sub-agent."""
    SWITCH_MODE = "switch_mode"
    """Enters or leaves the agent's plan mode."""
    OTHER = "other"
    """Anything else, or a tool this version does not know."""

    @property
    def acp(self) -> str:
        """The Agent Client Protocol's ``ToolKind`` for this kind."""
        return _ACP_KINDS.get(self, self.value)


_ACP_KINDS = {ToolKind.WRITE: "edit", ToolKind.MCP: "other"}


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt of a run ended, as its agent adapter decided: the status, a specific
    error message (None when ok), whether another attempt could help, and the HTTP status of
    the API error it ended on when the adapter found one beyond the result line (an exit
    code, an error message)."""

    status: RunStatus
    error: str | None
    retryable: bool = False
    api_error_status: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class AgentEvent:
    """Base of every event. ``type`` names the kind in JSON form (``to_dict``)."""

    type: ClassVar[str] = "event"
    t: float
    raw: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: ``{"type": ..., "schema_version": ..., fields...}`` without
        ``raw``."""
        data = asdict(self)
        data.pop("raw", None)
        for key, value in data.items():
            if isinstance(value, enum.Enum):
                data[key] = value.value
        return {"type": self.type, "schema_version": SCHEMA_VERSION, **data}


@dataclass(frozen=True, slots=True, kw_only=True)
class InitEvent(AgentEvent):
    """The CLI started a session."""

    type: ClassVar[str] = "init"
    session_id: str | None = None
    model: str | None = None
    cwd: str | None = None
    tools: Sequence[str] = ()
    mcp_servers: Sequence[Mapping[str, Any]] = ()
    permission_mode: str | None = None
    agent_version: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusEvent(AgentEvent):
    """A status notice from the CLI (for example ``requesting``)."""

    type: ClassVar[str] = "status"
    status: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextDeltaEvent(AgentEvent):
    """A piece of assistant text as the model generates it (token-level streaming)."""

    type: ClassVar[str] = "text_delta"
    text: str = ""
    message_id: str | None = None
    index: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamEvent(AgentEvent):
    """Any other raw streaming event of the model API (message_start, input_json_delta,
    thinking deltas, message_delta, ...); ``event`` is the API event object."""

    type: ClassVar[str] = "stream"
    event: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None
    abandoned_from: int | None = None
    """Set when the CLI retracts a broken stream: the blocks of ``message_id`` from this
    index on were abandoned and will be streamed again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TextEvent(AgentEvent):
    """A complete block of assistant text."""

    type: ClassVar[str] = "text"
    text: str = ""
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ThinkingEvent(AgentEvent):
    """A complete block of the model's visible thinking."""

    type: ClassVar[str] = "thinking"
    text: str = ""
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolUseEvent(AgentEvent):
    """The model called a tool: ``name`` and ``input`` as the agent gave them, ``kind``
    what the call does in the vocabulary every agent shares (:class:`ToolKind`)."""

    type: ClassVar[str] = "tool_use"
    id: str = ""
    name: str = ""
    kind: ToolKind = ToolKind.OTHER
    input: Mapping[str, Any] = field(default_factory=dict)
    message_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ToolResultEvent(AgentEvent):
    """A tool's result went back to the model. ``content`` is its text."""

    type: ClassVar[str] = "tool_result"
    tool_use_id: str = ""
    content: str = ""
    is_error: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionDeniedEvent(AgentEvent):
    """A tool call was refused for lack of permission (the run goes on without it)."""

    type: ClassVar[str] = "permission_denied"
    tool_name: str = ""
    tool_use_id: str = ""
    message: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiRetryEvent(AgentEvent):
    """The CLI is retrying a failed API request."""

    type: ClassVar[str] = "api_retry"
    attempt: int | None = None
    max_retries: int | None = None
    retry_delay_ms: float | None = None
    error_status: int | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimitEvent(AgentEvent):
    """The CLI reported rate-limit information."""

    type: ClassVar[str] = "rate_limit"
    status: str | None = None
    resets_at: float | None = None
    limit_type: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResultEvent(AgentEvent):
    """The CLI's final report. Its presence alone does not mean success: see ``is_error``,
    ``subtype`` and ``api_error_status``."""

    type: ClassVar[str] = "result"
    subtype: str = ""
    is_error: bool = False
    result: str | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    num_turns: int | None = None
    duration_ms: float | None = None
    api_error_status: int | None = None
    permission_denials: Sequence[Mapping[str, Any]] = ()
    stop_reason: str | None = None
    terminal_reason: str | None = None
    structured_output: Any = None
    #: What the agent itself warned about during the run (Gemini CLI's ``error`` lines),
    #: added to the result's warnings.
    warnings: Sequence[str] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class StderrEvent(AgentEvent):
    """A line the CLI wrote to stderr."""

    type: ClassVar[str] = "stderr"
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatEvent(AgentEvent):
    """Made by cc-executor every few seconds, so a long silent run never looks frozen."""

    type: ClassVar[str] = "heartbeat"
    elapsed_s: float = 0.0
    idle_s: float = 0.0
    turns: int = 0
    tool_calls: int = 0
    output_tokens: int = 0
    last_activity: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent(AgentEvent):
    """A JSON line of a type this version does not know; passed through untouched."""

    type: ClassVar[str] = "unknown"
    event_type: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class NoiseEvent(AgentEvent):
    """A stdout line that is not a JSON object (banners, debug prints, garbage)."""

    type: ClassVar[str] = "noise"
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandOutputEvent(AgentEvent):
    """A line a plain command (an ``exec`` run on a fleet worker) wrote: ``stream`` is
    ``stdout`` or ``stderr``; the same fields as the service's ``output`` events."""

    type: ClassVar[str] = "output"
    stream: str = "stdout"
    text: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class RunStartedEvent(AgentEvent):
    """Made by cc-executor when an attempt's process has started."""

    type: ClassVar[str] = "run_started"
    run_id: str = ""
    attempt: int = 1
    pid: int | None = None
    argv: Sequence[str] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionRequestEvent(AgentEvent):
    """Made by cc-executor when a tool call's permission is asked of a decider (a policy's
    ``ask``): the run waits for a :class:`PermissionDecisionEvent` with the same
    ``request_id``."""

    type: ClassVar[str] = "permission_request"
    request_id: str = ""
    tool_name: str = ""
    tool_input: Mapping[str, Any] = field(default_factory=dict)
    tool_use_id: str | None = None
    timeout_s: float = 0.0
    #: The rule that asked (None: the policy's default).
    rule: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class PermissionDecisionEvent(AgentEvent):
    """Made by cc-executor for every tool call its permission policy decided: ``decision``
    is ``allow`` or ``deny``; ``decided_by`` is ``rule`` (then ``rule`` names it),
    ``default``, ``callback``, ``console``, ``service`` (with who answered), ``timeout`` or
    ``no decider``."""

    type: ClassVar[str] = "permission_decision"
    request_id: str = ""
    tool_name: str = ""
    tool_input: Mapping[str, Any] = field(default_factory=dict)
    decision: str = ""
    decided_by: str = ""
    rule: str | None = None
    message: str | None = None
    waited_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class LimitWaitEvent(AgentEvent):
    """Made by a fleet worker when a run's start waits for a rate limit shared by the fleet:
    ``why`` is ``paused`` (a 429 or overload was seen for the run's ``credential``, a hash
    prefix; ``reason`` says which, ``wait_s`` how long is left) or ``full`` (the
    credential's runs in flight are at ``cap``, fleet-wide)."""

    type: ClassVar[str] = "limit_wait"
    why: str = ""
    credential: str = ""
    wait_s: float | None = None
    reason: str = ""
    cap: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class BudgetEvent(AgentEvent):
    """Made by cc-executor when a shared budget (a fleet's ``worker --budget-usd``) passes a
    soft threshold as this run ends (``what="threshold"``, ``threshold`` a fraction of the
    total), or is exhausted by this run's refusal (``what="exhausted"``); once per budget."""

    type: ClassVar[str] = "budget"
    what: str = "threshold"
    budget: str = "default"
    threshold: float | None = None
    total_usd: float = 0.0
    spent_usd: float = 0.0
    held_usd: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryEvent(AgentEvent):
    """Made by cc-executor before it retries a failed attempt."""

    type: ClassVar[str] = "retry"
    attempt: int = 1
    delay_s: float = 0.0
    reason: str = ""
