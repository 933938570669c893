"""How a Codex CLI run ended: from its ``turn.completed``/``turn.failed`` line, the exit
status and our own timeouts. Exit 0 without ``turn.completed`` is a failure, and an agent's
own failed command does not fail the run (Codex exits 0 then)."""

from __future__ import annotations

import re

from cc_executor._agents._outcome import ended_without, not_run_or_stopped
from cc_executor._agents._types import Outcome, ResultEvent, RunStatus
from cc_executor._engine import ProcessResult

_RATE_LIMITED = re.compile(r"\b429\b|rate.?limit|too many requests|quota", re.IGNORECASE)
_RETRYABLE = re.compile(
    r"\b50[0-4]\b|server_error|overloaded|internal server error|temporarily|timed out|"
    r"connection|stream disconnected",
    re.IGNORECASE,
)


def decide_outcome(process: ProcessResult, result: ResultEvent | None) -> Outcome:
    """The outcome of one attempt, from the supervised process and the final turn line."""
    early = not_run_or_stopped(process, "Codex CLI", final=result is not None)
    if early is not None:
        return early
    if result is None:
        return ended_without(process, "Codex CLI", "turn.completed")
    if result.is_error:
        text = (result.result or "").strip()[:1000]
        if _RATE_LIMITED.search(text):
            return Outcome(RunStatus.RATE_LIMITED, f"rate limited by the API: {text}", True)
        retryable = bool(_RETRYABLE.search(text))
        return Outcome(RunStatus.ERROR, f"Codex CLI reported an error: {text}", retryable)
    return Outcome(RunStatus.OK, None)
