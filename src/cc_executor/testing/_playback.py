"""Choosing the scripted answer for a Messages API or Responses API request.

A request belongs to a conversation, named by its prompt (the text of the first user message;
in a Responses API request, of the last one), and sits at a turn (the number of model answers it
carries). Both come from the request body alone, which is what keeps parallel runs on one server
deterministic.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cc_executor.testing._script import Answer, HttpErrorReply, Reply, Script

_REMINDER = "<system-reminder>"


# Responses API input items that the model produced: one answer is a run of them.
_MODEL_ITEMS = frozenset(
    {"function_call", "custom_tool_call", "reasoning", "local_shell_call", "web_search_call"}
)


#: Call ids of the server's own ``write_stdin`` waits for a command Codex left running
#: (:func:`cc_executor.testing._responses.still_running`): not an answer of the script.
WAIT_PREFIX = "ccwait_"


def _is_model_item(item: object) -> bool:
    if not isinstance(item, Mapping):
        return False
    call_id = item.get("call_id")
    if isinstance(call_id, str) and call_id.startswith(WAIT_PREFIX):
        return False
    kind = item.get("type")
    return kind in _MODEL_ITEMS or (kind in ("message", None) and item.get("role") == "assistant")


def _responses_prompt(items: list[Any]) -> str:
    # Codex sends its environment as an earlier user message; the prompt comes last.
    for item in reversed(items):
        if not isinstance(item, Mapping) or item.get("role") != "user":
            continue
        content = item.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                part["text"]
                for part in content
                if isinstance(part, Mapping)
                and part.get("type") == "input_text"
                and isinstance(part.get("text"), str)
            )
        return ""
    return ""


def prompt_of(body: Mapping[str, Any]) -> str | None:
    """The prompt of a request body, or None if there is none.

    A Gemini body (``contents``): the first user content's text, without Gemini CLI's
    ``<session_context>`` part. A Responses API body (``input``): a string ``input`` is the
    prompt; for a list of items, the ``input_text`` of the last ``user`` message (Codex CLI
    puts its environment context in an earlier one). A Messages API body: the text of the
    first ``user`` message, as below.

    A string content is the prompt itself. For a list of blocks, the ``text`` of its text blocks
    joined with newlines, leaving out the blocks that start with ``<system-reminder>``: the CLI
    puts such reminders in blocks of their own before the prompt, so the prompt given to the CLI
    comes back byte for byte.
    """
    if "contents" in body:
        from cc_executor.testing._gemini import prompt_of as gemini_prompt

        return gemini_prompt(body)
    items = body.get("input")
    if "messages" not in body and isinstance(items, (str, list)):
        return items if isinstance(items, str) else _responses_prompt(items)
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            return content
        if isinstance(content, list):
            return "\n".join(
                block["text"]
                for block in content
                if isinstance(block, Mapping)
                and block.get("type") == "text"
                and isinstance(block.get("text"), str)
                and not block["text"].startswith(_REMINDER)
            )
        return ""
    return None


def turn_of(body: Mapping[str, Any]) -> int:
    """How many model answers the request carries: 0 for the first request of a run.

    In a Messages API body, the assistant messages; in a Gemini body, the ``model``
    contents; in a Responses API body, the runs of
    consecutive items the model produced (messages, tool calls, reasoning), since one answer
    may hold several items and each tool result follows its answer.
    """
    if "contents" in body:
        from cc_executor.testing._gemini import turn_of as gemini_turn

        return gemini_turn(body)
    items = body.get("input")
    if "messages" not in body and isinstance(items, list):
        runs, inside = 0, False
        for item in items:
            model = _is_model_item(item)
            runs += model and not inside
            inside = model
        return runs
    messages = body.get("messages")
    if not isinstance(messages, list):
        return 0
    return sum(1 for m in messages if isinstance(m, Mapping) and m.get("role") == "assistant")


@dataclass(frozen=True)
class Choice:
    """The answer for one request and where it came from.

    ``rule`` is the index of the rule used (None when no rule matched), ``turn`` the conversation
    turn, ``attempt`` how many times this rule, prompt and turn had been answered before, and
    ``seed`` a stable hex string for deterministic message and tool ids.
    """

    answer: Answer
    rule: int | None
    turn: int
    attempt: int
    seed: str


def _prompt_head(prompt: str) -> str:
    return prompt if len(prompt) <= 80 else prompt[:77] + "..."


class Playback:
    """Chooses answers from a script. Not thread-safe: used from the server's event loop only."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self._attempts: dict[tuple[int, str, int], int] = {}

    def choose(self, body: Mapping[str, Any]) -> Choice:
        """The answer to a ``POST /v1/messages`` or ``/v1/responses`` body; see :class:`Script`.

        Never raises for odd bodies: a request without a user message has the prompt ``""``,
        and a script error (no rule matches, answers exhausted) becomes an HTTP 500 answer.
        """
        prompt = prompt_of(body) or ""
        turn = turn_of(body)
        seed = hashlib.sha256(f"{turn}\0{prompt}".encode()).hexdigest()
        index = next((i for i, r in enumerate(self.script.rules) if r.matches(prompt)), None)
        if index is None:
            error = HttpErrorReply(
                500,
                message=(
                    f"cc_executor.testing: no rule of the script matches the prompt "
                    f"{_prompt_head(prompt)!r}"
                ),
            )
            return Choice(error, None, turn, 0, seed)

        key = (index, prompt, turn)
        attempt = self._attempts.get(key, 0)
        self._attempts[key] = attempt + 1

        answers = self.script.rules[index].answers
        if turn < len(answers):
            answer = answers[turn]
        elif self.script.when_exhausted == "repeat_last":
            answer = answers[-1]
        else:
            answer = HttpErrorReply(
                500,
                message=(
                    f"cc_executor.testing: script exhausted: rule {index} has {len(answers)} "
                    f"answer(s), this request is turn {turn} (0-based) of the conversation "
                    f"with prompt {_prompt_head(prompt)!r}"
                ),
            )
        if isinstance(answer, Reply) and attempt < len(answer.errors_before):
            answer = answer.errors_before[attempt]
        return Choice(answer, index, turn, attempt, seed)
