"""How a command agent's run ended: its exit status and our own timeouts."""

from __future__ import annotations

from cc_executor._agents._types import Outcome, RunStatus
from cc_executor._engine import ProcessResult, ProcessStatus


def decide_outcome(process: ProcessResult, name: str) -> Outcome:
    """ok on exit 0; the exit code and the last stderr line otherwise."""
    if process.status is ProcessStatus.SPAWN_FAILED:
        return Outcome(RunStatus.SPAWN_FAILED, f"{name} could not be started: {process.error}")
    stopped = {
        ProcessStatus.TIMEOUT: RunStatus.TIMEOUT,
        ProcessStatus.IDLE_TIMEOUT: RunStatus.IDLE_TIMEOUT,
        ProcessStatus.CANCELLED: RunStatus.CANCELLED,
    }
    if process.status in stopped:
        return Outcome(stopped[process.status], process.error)
    if process.exit_code == 0:
        return Outcome(RunStatus.OK, None)
    tail = process.stderr_tail.strip()
    detail = f": {tail.splitlines()[-1][:500]}" if tail else " and printed nothing on stderr"
    if process.exit_code is None:
        return Outcome(RunStatus.CRASHED, f"{name} was killed by {process.signal}{detail}")
    return Outcome(RunStatus.ERROR, f"{name} exited with code {process.exit_code}{detail}")
