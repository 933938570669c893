"""The parts of deciding an outcome that every agent shares: a CLI that could not start, a
run our own timeouts or a cancel stopped, and a CLI that ended without its final line."""

from __future__ import annotations

import re

from cc_executor._agents._types import Outcome, RunStatus
from cc_executor._engine import ProcessResult, ProcessStatus

#: How the engine stopped a process, and the run status that says so.
STOPPED = {
    ProcessStatus.TIMEOUT: RunStatus.TIMEOUT,
    ProcessStatus.IDLE_TIMEOUT: RunStatus.IDLE_TIMEOUT,
    ProcessStatus.CANCELLED: RunStatus.CANCELLED,
    ProcessStatus.OOM_KILLED: RunStatus.OOM_KILLED,
    ProcessStatus.LIMIT_EXCEEDED: RunStatus.LIMIT_EXCEEDED,
}

#: HTTP statuses worth another attempt (timeouts, conflicts, rate limits, server errors).
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})


def not_run_or_stopped(process: ProcessResult, title: str, *, final: bool) -> Outcome | None:
    """``spawn_failed`` when the CLI could not be started; our stop (``timeout``,
    ``idle_timeout``, ``cancelled``, a resource limit's ``oom_killed`` or ``limit_exceeded``)
    when we stopped it before its final line (``final`` False); None otherwise, for the
    agent's own rules. A resource limit wins over a final line: whether the CLI printed it
    before the engine stopped the tree (or the kernel killed part of it) is a race, and
    work the tree was doing was lost either way."""
    if process.status is ProcessStatus.SPAWN_FAILED:
        return Outcome(RunStatus.SPAWN_FAILED, f"{title} could not be started: {process.error}")
    if stopped_by_limit(process) or (process.status in STOPPED and not final):
        return Outcome(STOPPED[process.status], process.error)
    return None


def stopped_by_limit(process: ProcessResult) -> bool:
    """Whether a resource limit stopped the tree or the kernel enforced one on it: not a
    ``limit_exceeded`` that only says the output files could not be kept whole (a full
    disk; the child exited by itself), which the run reports after the agent's outcome."""
    if process.status is ProcessStatus.OOM_KILLED:
        return True
    if process.status is not ProcessStatus.LIMIT_EXCEEDED:
        return False
    return not process.incomplete_files or process.kill_signal is not None


def ended_without(process: ProcessResult, title: str, line: str) -> Outcome:
    """``crashed``: the CLI exited (or was killed) without its final ``line``; the message
    gives the exit and the last line of stderr."""
    how = (
        f"exited with code {process.exit_code}"
        if process.exit_code is not None
        else f"was killed by {process.signal}"
    )
    tail = process.stderr_tail.strip()
    detail = f": {tail.splitlines()[-1][:500]}" if tail else " and printed nothing on stderr"
    return Outcome(RunStatus.CRASHED, f"{title} {how} without {line}{detail}")


def api_error(status: int | None, text: str, title: str) -> Outcome:
    """The outcome of an API error with HTTP ``status`` (None: unknown) and the agent's
    message ``text``: ``rate_limited`` for 429, else ``error``; retryable for the statuses
    of :data:`RETRYABLE_STATUSES`, so that our own retry policy decides another attempt."""
    text = text.strip()[:1000]
    if status == 429:
        return Outcome(RunStatus.RATE_LIMITED, f"rate limited by the API: {text}", True, 429)
    prefix = f"API error {status}" if status else f"{title} reported an error"
    return Outcome(RunStatus.ERROR, f"{prefix}: {text}", status in RETRYABLE_STATUSES, status)


def search_status(pattern: re.Pattern[str] | str, text: str) -> int | None:
    """The HTTP status (400-599) that ``pattern``'s first group finds in ``text``, if any."""
    match = re.search(pattern, text)
    if match is None:
        return None
    try:
        status = int(match.group(1))
    except (IndexError, ValueError):
        return None
    return status if 400 <= status <= 599 else None
