"""What the original cc_executor's WebSocket clients send and expect, translated at the edge
of ``/ws`` (and its alias ``/ws/mcp``, the original's path).

Their ``execute`` sends ``{"command": "<a shell command line>", "timeout": N}``. This
server never runs a shell: a command line whose first word is ``claude`` (``claude -p
"<prompt>" --model M ...``, what the original's clients sent for a Claude run) becomes an
agent run with the same prompt and options, read with ``shlex`` and never executed as
text; any other string is refused with the reason. Their notifications read the output
from ``params.data`` and the exit code from ``params.exit_code``: :func:`shaped` adds those
keys to ours, and :func:`text_output` gives a Claude run's text as ``process.output`` too.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Mapping
from typing import Any

from cc_executor._errors import InvalidRequest

#: Flags of ``claude`` that say how its output is framed: the server chooses that itself.
_IGNORED = frozenset({"-p", "--print", "--verbose", "--include-partial-messages"})
_IGNORED_VALUED = frozenset({"--output-format"})


def _number(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def read(text: str) -> Any:
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None

    return read


def _words(text: str) -> list[str]:
    """Tool rules as Claude Code reads them: separated by commas or spaces outside
    parentheses, so ``Bash(rm -rf:*)`` stays one rule; unbalanced parentheses are refused
    rather than guessed (a rule cut in two would restrict nothing)."""
    rules: list[str] = []
    current: list[str] = []
    depth = 0
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced parentheses in {text!r}")
        if depth == 0 and (char == "," or char.isspace()):
            if current:
                rules.append("".join(current))
                current = []
            continue
        current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced parentheses in {text!r}")
    if current:
        rules.append("".join(current))
    return rules


#: ``claude`` flags taking one value: flag -> (run option, how to read the value).
_VALUED: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "--model": ("model", str),
    "--fallback-model": ("fallback_model", str),
    "--max-turns": ("max_turns", _number(int)),
    "--max-budget-usd": ("max_budget_usd", _number(float)),
    "--permission-mode": ("permission_mode", str),
    "--append-system-prompt": ("append_system_prompt", str),
    "--allowedTools": ("allowed_tools", _words),
    "--allowed-tools": ("allowed_tools", _words),
    "--disallowedTools": ("disallowed_tools", _words),
    "--disallowed-tools": ("disallowed_tools", _words),
    "--add-dir": ("add_dirs", lambda text: [text]),
    "--mcp-config": ("mcp_config", str),
    "--resume": ("resume", str),
    "-r": ("resume", str),
    "--session-id": ("session_id", str),
}
#: ``claude`` flags without a value: flag -> (run option, value).
_SWITCHES: Mapping[str, tuple[str, Any]] = {
    "--dangerously-skip-permissions": ("permission_mode", "bypassPermissions"),
    "--continue": ("continue_session", True),
    "-c": ("continue_session", True),
    "--fork-session": ("fork_session", True),
    "--strict-mcp-config": ("strict_mcp_config", True),
}

REFUSED_STRING = (
    "command strings are not run: this server never uses a shell. Send argv (a list of "
    "strings) for a command on its exec allowlist, or prompt and options for a Claude Code "
    "run; a string is accepted only as a claude command line (claude -p PROMPT [flags]), "
    "which becomes a Claude Code run"
)


def translate_command(command: str) -> tuple[str, dict[str, Any]]:
    """The prompt and run options of ``command``, an old client's ``claude -p ...`` command
    line; :class:`InvalidRequest` saying why for anything else (another program, a flag
    this translation does not know, no prompt or more than one). Values are read as
    ``claude`` reads them (``--flag value`` or ``--flag=value``); the options are then
    checked as any remote run's are, so a server-only one (``--mcp-config``) is refused
    by the policy, not here."""
    try:
        words = shlex.split(command)
    except ValueError as exc:
        raise InvalidRequest(
            f"command: cannot be split into words ({exc}); {REFUSED_STRING}"
        ) from None
    if not words or os.path.basename(words[0]) != "claude":
        raise InvalidRequest(REFUSED_STRING)
    options: dict[str, Any] = {}
    prompts: list[str] = []
    rest = iter(words[1:])
    for word in rest:
        flag, has_value, inline = word.partition("=") if word.startswith("--") else (word, "", "")
        if flag in _IGNORED and not has_value:
            continue
        if flag in _IGNORED_VALUED or flag in _VALUED:
            value = inline if has_value else next(rest, None)
            if value is None:
                raise InvalidRequest(f"command: {flag} needs a value")
            if flag in _IGNORED_VALUED:
                continue
            name, read = _VALUED[flag]
            try:
                parsed = read(value)
            except ValueError as exc:
                raise InvalidRequest(f"command: {flag}: {exc}") from None
            if isinstance(parsed, list):
                options[name] = [*options.get(name, []), *parsed]
            else:
                options[name] = parsed
        elif flag in _SWITCHES and not has_value:
            name, switch = _SWITCHES[flag]
            options[name] = switch
        elif word.startswith("-") and word != "-":
            raise InvalidRequest(
                f"command: claude flag {flag} is not translated into a run option; send "
                "prompt and options instead (the options are those of cc-executor run)"
            )
        else:
            prompts.append(word)
    if len(prompts) != 1:
        raise InvalidRequest(
            "command: a claude command line needs exactly one prompt "
            f"(quoted as one word), got {len(prompts)}"
        )
    return prompts[0], options


def shaped(event: Mapping[str, Any]) -> Mapping[str, Any]:
    """``event`` with the keys the original's clients read: ``data`` (the text) on an
    output event, ``exit_code`` at the top of the completion. A new dict when keys are
    added: the event itself is shared by every subscriber."""
    kind = event.get("type")
    if kind == "output" and "data" not in event:
        return {**event, "data": event.get("text", "")}
    if kind == "completed" and "exit_code" not in event:
        result = event.get("result")
        code = result.get("exit_code") if isinstance(result, Mapping) else None
        return {**event, "exit_code": code}
    return event


def text_output(event: Mapping[str, Any], streamed: set[Any]) -> dict[str, Any] | None:
    """The ``process.output`` params that give a Claude run's assistant text the way the
    original's clients read a command's output (``data``), or None. A block is given by
    its ``text_delta`` pieces; a whole ``text`` block only if none of its pieces came
    (``streamed`` remembers the message ids that had pieces). Same ``seq`` as the event."""
    kind = event.get("type")
    if kind == "text_delta":
        streamed.add(event.get("message_id"))
    elif kind != "text" or event.get("message_id") in streamed:
        return None
    text = event.get("text")
    if not isinstance(text, str) or not text:
        return None
    out = {"type": "output", "stream": "stdout", "text": text, "data": text}
    for key in ("run_id", "seq", "task_id"):
        if key in event:
            out[key] = event[key]
    return out
