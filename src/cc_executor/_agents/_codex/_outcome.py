"""How a Codex CLI run ended: from its ``turn.completed``/``turn.failed`` line, the exit
status and our own timeouts. Exit 0 without ``turn.completed`` is a failure, and an agent's
own failed command does not fail the run (Codex exits 0 then).

Codex 0.171.0 names an API error's status in its message in three ways (observed against
the scripted server, its own retries off): ``unexpected status 503 Service Unavailable:
...`` (most statuses), ``exceeded retry limit, last status: 429 Too Many Requests``, and, for
a 500, only the sentence of :data:`_HTTP_500`.
"""

from __future__ import annotations

import re

from cc_executor._agents._outcome import api_error, ended_without, not_run_or_stopped, search_status
from cc_executor._agents._types import Outcome, ResultEvent, RunStatus
from cc_executor._engine import ProcessResult

_STATUS = re.compile(r"\b(?:unexpected status|last status:)\s*(\d{3})\b", re.IGNORECASE)
#: What Codex says for an HTTP 500 (its InternalServerError), without the status.
_HTTP_500 = "currently experiencing high demand"
_RATE_LIMITED = re.compile(r"\b429\b|rate.?limit|too many requests|quota", re.IGNORECASE)
_RETRYABLE = re.compile(
    r"\b50[0-4]\b|server_error|overloaded|internal server error|temporar|timed out|"
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
        text = result.result or ""
        status = search_status(_STATUS, text) or (500 if _HTTP_500 in text else None)
        if status is not None:
            return api_error(status, text, "Codex CLI")
        outcome = api_error(None, text, "Codex CLI")
        if _RATE_LIMITED.search(text):
            return Outcome(RunStatus.RATE_LIMITED, f"rate limited by the API: {text[:1000]}", True)
        return Outcome(outcome.status, outcome.error, bool(_RETRYABLE.search(text)))
    return Outcome(RunStatus.OK, None)
