"""The parts of deciding an outcome that every agent shares: a CLI that could not start, a
run our own timeouts or a cancel stopped, and a CLI that ended without its final line."""

from __future__ import annotations

from cc_executor._agents._types import Outcome, RunStatus
from cc_executor._engine import ProcessResult, ProcessStatus

#: How the engine stopped a process, and the run status that says so.
STOPPED = {
    ProcessStatus.TIMEOUT: RunStatus.TIMEOUT,
    ProcessStatus.IDLE_TIMEOUT: RunStatus.IDLE_TIMEOUT,
    ProcessStatus.CANCELLED: RunStatus.CANCELLED,
}


def not_run_or_stopped(process: ProcessResult, title: str, *, final: bool) -> Outcome | None:
    """``spawn_failed`` when the CLI could not be started; our stop (``timeout``,
    ``idle_timeout``, ``cancelled``) when we stopped it before its final line (``final``
    False); None otherwise, for the agent's own rules."""
    if process.status is ProcessStatus.SPAWN_FAILED:
        return Outcome(RunStatus.SPAWN_FAILED, f"{title} could not be started: {process.error}")
    if process.status in STOPPED and not final:
        return Outcome(STOPPED[process.status], process.error)
    return None


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
