"""How a command agent's run ended: its exit status and our own timeouts."""

from __future__ import annotations

from cc_executor._agents._outcome import ended_without, not_run_or_stopped
from cc_executor._agents._types import Outcome, RunStatus
from cc_executor._engine import ProcessResult


def decide_outcome(process: ProcessResult, name: str) -> Outcome:
    """ok on exit 0; the exit code and the last stderr line otherwise."""
    early = not_run_or_stopped(process, name, final=False)
    if early is not None:
        return early
    if process.exit_code == 0:
        return Outcome(RunStatus.OK, None)
    if process.exit_code is None:
        return ended_without(process, name, "finishing")
    tail = process.stderr_tail.strip()
    detail = f": {tail.splitlines()[-1][:500]}" if tail else " and printed nothing on stderr"
    return Outcome(RunStatus.ERROR, f"{name} exited with code {process.exit_code}{detail}")
