"""The result of an agent run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._types import RunStatus
from cc_executor._engine import ProcessResult

#: Statuses where cc-executor stopped the run before the agent finished.
STOPPED = frozenset({RunStatus.TIMEOUT, RunStatus.IDLE_TIMEOUT, RunStatus.CANCELLED})


@dataclass(slots=True, kw_only=True)
class RunResult:
    """Everything known about an agent run once it is over.

    ``result`` is the final answer; when the run was stopped early (timeout, cancel) or the
    CLI died without a result line, it is the assistant text produced so far, assembled
    from the token-level stream, and ``partial`` is True. ``session_id`` lets a stopped run
    be resumed (``resume=session_id``). ``error`` is specific (API status, stderr tail, the
    limit that stopped it). ``event_log`` is the CLI's full stream-json output;
    ``process`` is the supervised process of the last attempt.
    """

    run_id: str
    status: RunStatus
    # Not in repr: an answer can be tens of MB (asyncio formats results in some paths).
    result: str = field(default="", repr=False)
    partial: bool = False
    timeout_after: float | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    usage: Mapping[str, Any] = field(default_factory=dict)
    num_turns: int | None = None
    duration_s: float = 0.0
    exit_code: int | None = None
    error: str | None = None
    api_error_status: int | None = None
    json: Any = field(default=None, repr=False)
    json_error: str | None = None
    files: list[str] = field(default_factory=list)
    permission_denials: list[Mapping[str, Any]] = field(default_factory=list)
    tool_calls: int = 0
    model: str | None = None
    attempts: int = 1
    event_log: str | None = None
    run_dir: str | None = None
    stderr_tail: str = ""
    warnings: list[str] = field(default_factory=list)
    process: ProcessResult | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when ``status`` is ``ok``."""
        return self.status is RunStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the public fields (``process`` summarised by its receipts)."""
        proc = self.process
        return {
            "run_id": self.run_id,
            "status": self.status.value,
            "result": self.result,
            "partial": self.partial,
            "timeout_after": self.timeout_after,
            "session_id": self.session_id,
            "cost_usd": self.cost_usd,
            "usage": dict(self.usage),
            "num_turns": self.num_turns,
            "duration_s": round(self.duration_s, 6),
            "exit_code": self.exit_code,
            "error": self.error,
            "api_error_status": self.api_error_status,
            "json": self.json,
            "json_error": self.json_error,
            "files": list(self.files),
            "permission_denials": [dict(d) for d in self.permission_denials],
            "tool_calls": self.tool_calls,
            "model": self.model,
            "attempts": self.attempts,
            "event_log": self.event_log,
            "run_dir": self.run_dir,
            "stderr_tail": self.stderr_tail,
            "warnings": list(self.warnings),
            "stdout_sha256": proc.stdout_sha256 if proc else None,
            "stderr_sha256": proc.stderr_sha256 if proc else None,
        }


def join_texts(texts: Sequence[str]) -> str:
    """Assistant text blocks as one answer."""
    return "\n\n".join(t for t in texts if t)
