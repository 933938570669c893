"""How a Gemini CLI run ended: from its ``result`` line, its exit status (which carries an
API error's HTTP status modulo 256: 400 -> 144, 429 -> 173, 500 -> 244) and our timeouts."""

from __future__ import annotations

from cc_executor._agents._outcome import api_error, ended_without, not_run_or_stopped, search_status
from cc_executor._agents._types import Outcome, ResultEvent, RunStatus
from cc_executor._engine import ProcessResult

#: Exit codes Gemini CLI gives before any request, and what they mean.
_SETUP_EXITS = {
    41: "no usable authentication: its settings must select an auth type (for an API key, "
    '"security": {"auth": {"selectedType": "gemini-api-key"}} in GEMINI_CLI_HOME/.gemini/'
    "settings.json; cc-executor writes one when --base-url is given)",
    55: "the folder is not trusted (cc-executor passes --skip-trust; is an extra argument "
    "overriding it?)",
}
#: The status in its error message: ``[API Error: {"error":{"code":400,...`` (the JSON body).
_CODE = r'"code":\s*(\d{3})\b'


def _http_status(exit_code: int | None) -> int | None:
    """The HTTP status an exit code stands for (Gemini CLI exits with it modulo 256)."""
    if exit_code is None or exit_code < 144:
        return None
    status = exit_code + 256
    return status if 400 <= status <= 599 else None


def decide_outcome(process: ProcessResult, result: ResultEvent | None) -> Outcome:
    """The outcome of one attempt, from the supervised process and the result line."""
    early = not_run_or_stopped(process, "Gemini CLI", final=result is not None)
    if early is not None:
        return early
    code = process.exit_code
    if code in _SETUP_EXITS:
        return Outcome(RunStatus.ERROR, f"Gemini CLI exited {code}: {_SETUP_EXITS[code]}")
    if result is None:
        return ended_without(process, "Gemini CLI", "a result line")
    if result.is_error:
        text = result.result or ""
        status = _http_status(code) or search_status(_CODE, text)
        return api_error(status, text, "Gemini CLI")
    return Outcome(RunStatus.OK, None)
