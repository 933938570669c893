"""How a Claude Code run ended: from the result line, the exit status and our own timeouts
together. Exit 0 can hide an error (``is_error``), exit 1 can come with a clean result,
and no result line at all means the CLI crashed or was killed."""

from __future__ import annotations

import os
from collections.abc import Mapping

from cc_executor._agents._outcome import ended_without, not_run_or_stopped
from cc_executor._agents._types import Outcome, ResultEvent, RunStatus
from cc_executor._engine import ProcessResult

#: HTTP statuses worth another attempt (overload, server errors).
RETRYABLE_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})

_ROOT_REFUSAL = "cannot be used with root/sudo privileges"
_ROOT_HINT = (
    "Claude Code refuses bypassPermissions/--dangerously-skip-permissions as root: set "
    "IS_SANDBOX=1 in the run's env if this machine is a sandbox, or run as a normal user, or "
    "grant the tools it needs with allowed_tools (e.g. ['Write', 'Bash']) instead"
)


#: Claude Code's warning when its stdin stays empty for 3 s (it then exits 1).
_NO_PROMPT = "no stdin data received"
_NO_PROMPT_ERROR = (
    "Claude Code received no prompt: its stdin stayed empty for the 3 s it waits, because "
    "cc-executor could not write the prompt in time (its event loop was busy); nothing ran. "
    "This is cc-executor's failure, not the agent's: the prompt normally goes as a file "
    "saved in the run folder, which could not be written"
)


_CONTEXT_HINT = (
    "Claude Code refused the prompt itself, before any request: its estimate of the prompt "
    "is over the context window it assumes for the model. Shorten the prompt, give large "
    "inputs as files for the agent to read, or, if the model's window really is larger, say "
    "so with max_context_tokens (--max-context-tokens)"
)


def _api_error(result: ResultEvent) -> Outcome:
    status_code = result.api_error_status
    text = (result.result or "").strip()
    if not text:
        # An error before any request has no "result", only "errors" (--resume of an unknown
        # session: "No conversation found with session ID: ..."), which say what went wrong.
        errors = result.raw.get("errors") if isinstance(result.raw, Mapping) else None
        if isinstance(errors, list):
            text = "; ".join(e.strip() for e in errors if isinstance(e, str) and e.strip())
    lowered = text.lower()
    if result.terminal_reason == "blocking_limit" and status_code is None:
        return Outcome(RunStatus.ERROR, f"{text[:200] or 'Prompt is too long'}: {_CONTEXT_HINT}")
    if status_code == 429 or "rate limit" in lowered or "rate_limit" in lowered:
        return Outcome(RunStatus.RATE_LIMITED, f"rate limited by the API: {text[:500]}", True)
    connection = status_code is None and ("connection" in lowered or "econnrefused" in lowered)
    retryable = status_code in RETRYABLE_STATUSES or connection
    prefix = f"API error {status_code}" if status_code else "Claude Code reported an error"
    return Outcome(RunStatus.ERROR, f"{prefix}: {text[:1000] or result.subtype}", retryable)


def decide_outcome(process: ProcessResult, result: ResultEvent | None) -> Outcome:
    """The outcome of one attempt, from the supervised process and the result line (if any)."""
    early = not_run_or_stopped(process, "Claude Code", final=result is not None)
    if early is not None:
        return early
    if result is None:
        tail = process.stderr_tail
        if _NO_PROMPT in tail:
            # Ours, not the agent's: the prompt was piped and not written within the CLI's
            # wait. Nothing ran, so another attempt is safe.
            return Outcome(RunStatus.SPAWN_FAILED, _NO_PROMPT_ERROR, True)
        if _ROOT_REFUSAL in tail:
            return Outcome(RunStatus.CRASHED, _ROOT_HINT)
        return ended_without(process, "Claude Code", "a result line")
    if result.subtype == "error_max_turns":
        turns = f" ({result.num_turns} turns)" if result.num_turns else ""
        return Outcome(RunStatus.MAX_TURNS, f"stopped at the turn limit{turns}")
    if result.subtype == "error_max_budget_usd":
        cost = f" (${result.cost_usd:.4f} spent)" if result.cost_usd is not None else ""
        return Outcome(RunStatus.BUDGET_EXCEEDED, f"stopped at the budget limit{cost}")
    if result.is_error:
        return _api_error(result)
    if result.subtype != "success":
        return Outcome(RunStatus.ERROR, f"Claude Code ended with {result.subtype or 'an error'}")
    return Outcome(RunStatus.OK, None)


def running_as_root() -> bool:
    """True when this process runs as root (the CLI then refuses bypass permissions)."""
    return hasattr(os, "geteuid") and os.geteuid() == 0
