"""How a Codex CLI run ended: from its ``turn.completed``/``turn.failed`` line, the exit
status and our own timeouts. Exit 0 without ``turn.completed`` is a failure, and an agent's
own failed command does not fail the run (Codex exits 0 then)."""

from __future__ import annotations

import re

from cc_executor._agents._types import Outcome, ResultEvent, RunStatus
from cc_executor._engine import ProcessResult, ProcessStatus

_RATE_LIMITED = re.compile(r"\b429\b|rate.?limit|too many requests|quota", re.IGNORECASE)
_RETRYABLE = re.compile(
    r"\b50[0-4]\b|server_error|overloaded|internal server error|temporarily|timed out|"
    r"connection|stream disconnected",
    re.IGNORECASE,
)


def decide_outcome(process: ProcessResult, result: ResultEvent | None) -> Outcome:
    """The outcome of one attempt, from the supervised process and the final turn line."""
    if process.status is ProcessStatus.SPAWN_FAILED:
        return Outcome(RunStatus.SPAWN_FAILED, f"Codex CLI could not be started: {process.error}")
    stopped = {
        ProcessStatus.TIMEOUT: RunStatus.TIMEOUT,
        ProcessStatus.IDLE_TIMEOUT: RunStatus.IDLE_TIMEOUT,
        ProcessStatus.CANCELLED: RunStatus.CANCELLED,
    }
    if process.status in stopped and result is None:
        return Outcome(stopped[process.status], process.error)
    if result is None:
        how = (
            f"exited with code {process.exit_code}"
            if process.exit_code is not None
            else f"was killed by {process.signal}"
        )
        tail = process.stderr_tail.strip()
        detail = f": {tail.splitlines()[-1][:500]}" if tail else " and printed nothing on stderr"
        return Outcome(RunStatus.CRASHED, f"Codex CLI {how} without turn.completed{detail}")
    if result.is_error:
        text = (result.result or "").strip()[:1000]
        if _RATE_LIMITED.search(text):
            return Outcome(RunStatus.RATE_LIMITED, f"rate limited by the API: {text}", True)
        retryable = bool(_RETRYABLE.search(text))
        return Outcome(RunStatus.ERROR, f"Codex CLI reported an error: {text}", retryable)
    return Outcome(RunStatus.OK, None)
