"""How a command agent's run ended: its exit status, the API error status its spec's
``api_status`` finds in its error message, and our own timeouts."""

from __future__ import annotations

from cc_executor._agents._command._spec import AgentSpec
from cc_executor._agents._outcome import (
    api_error,
    ended_without,
    not_run_or_stopped,
    search_status,
)
from cc_executor._agents._types import Outcome, RunStatus
from cc_executor._engine import ProcessResult


def api_status_outcome(spec: AgentSpec, text: str) -> Outcome | None:
    """The outcome of an API error whose status the spec's ``api_status`` finds in
    ``text``; None without a spec pattern or a match."""
    status = search_status(spec.api_status, text) if spec.api_status else None
    return api_error(status, text, spec.name) if status is not None else None


def decide_outcome(process: ProcessResult, spec: AgentSpec | None) -> Outcome:
    """ok on exit 0; an API error when the spec's ``api_status`` finds its status in the
    stderr; otherwise the exit code and the last stderr line."""
    name = spec.name if spec is not None else "the command agent"
    early = not_run_or_stopped(process, name, final=False)
    if early is not None:
        return early
    if process.exit_code == 0:
        return Outcome(RunStatus.OK, None)
    if process.exit_code is None:
        return ended_without(process, name, "finishing")
    tail = process.stderr_tail.strip()
    if spec is not None and spec.api_status:
        # The last line naming a status is the error; the lines around it are noise.
        for line in reversed(tail.splitlines()):
            found = api_status_outcome(spec, line)
            if found is not None:
                return found
    detail = f": {tail.splitlines()[-1][:500]}" if tail else " and printed nothing on stderr"
    return Outcome(RunStatus.ERROR, f"{name} exited with code {process.exit_code}{detail}")
