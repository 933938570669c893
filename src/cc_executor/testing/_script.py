"""The script a ModelServer plays: rules, answers, content blocks, and loading them from files.

Everything here is an immutable value. Validation happens in ``__post_init__`` for objects built in
Python and in :func:`parse_script` for data read from JSON or YAML, where each error names the
place in the document (``rules[0].answers[1].error.status``) that is wrong.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeAlias, cast

from cc_executor._errors import ScriptError
from cc_executor._lazy import renamed

__all__ = [
    "Answer",
    "Block",
    "HttpErrorReply",
    "Reply",
    "Rule",
    "Script",
    "ScriptError",
    "Text",
    "Thinking",
    "ToolUse",
    "Usage",
    "load_script",
    "parse_script",
]


def _fail(where: str, message: str) -> ScriptError:
    return ScriptError(f"{where}: {message}" if where else message)


@dataclass(frozen=True)
class Text:
    """A text content block. Streamed as ``text_delta`` events of ``Reply.chunk_size`` chars."""

    text: str

    def __post_init__(self) -> None:
        if not isinstance(self.text, str):
            raise _fail("Text.text", f"expected a string, got {type(self.text).__name__}")


@dataclass(frozen=True)
class Thinking:
    """An extended-thinking content block, streamed as ``thinking_delta`` then ``signature_delta``.

    The signature is opaque to the CLI; the server never checks signatures it is sent back.
    """

    thinking: str
    signature: str = "c2NyaXB0ZWQtdGhpbmtpbmc="

    def __post_init__(self) -> None:
        if not isinstance(self.thinking, str):
            raise _fail(
                "Thinking.thinking", f"expected a string, got {type(self.thinking).__name__}"
            )
        if not isinstance(self.signature, str):
            raise _fail(
                "Thinking.signature", f"expected a string, got {type(self.signature).__name__}"
            )


@dataclass(frozen=True)
class ToolUse:
    """A tool call: the CLI runs tool ``name`` with ``input`` and sends the result back.

    ``input`` must be JSON-serialisable; it is streamed as ``input_json_delta`` fragments.
    ``id`` defaults to a deterministic ``toolu_...`` value derived from the conversation, the turn
    and the block's position, so reruns of a script produce the same ids.
    """

    name: str
    input: Mapping[str, Any] = field(default_factory=dict)
    id: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise _fail("ToolUse.name", "expected a non-empty string")
        if not isinstance(self.input, Mapping):
            raise _fail("ToolUse.input", f"expected a mapping, got {type(self.input).__name__}")
        try:
            json.dumps(self.input)
        except (TypeError, ValueError) as exc:
            raise _fail("ToolUse.input", f"not JSON-serialisable: {exc}") from None
        if self.id is not None and (not isinstance(self.id, str) or not self.id):
            raise _fail("ToolUse.id", "expected a non-empty string or None")


Block: TypeAlias = Text | Thinking | ToolUse


@dataclass(frozen=True)
class Usage:
    """Token counts reported for one reply.

    ``None`` for ``input_tokens`` or ``output_tokens`` means estimated: about one token per four
    characters of the request body or of the reply's content.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0

    def __post_init__(self) -> None:
        for name in (
            "input_tokens",
            "output_tokens",
            "cache_creation_input_tokens",
            "cache_read_input_tokens",
        ):
            value = getattr(self, name)
            if value is None and name in ("input_tokens", "output_tokens"):
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _fail(f"Usage.{name}", f"expected an integer >= 0, got {value!r}")


_ERROR_TYPES: Mapping[int, str] = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}


@dataclass(frozen=True)
class HttpErrorReply:
    """An HTTP error answer with an Anthropic-style body: the other kind of answer than a
    :class:`Reply` (a value the server sends, not an exception; formerly ``HttpError``, a
    deprecated alias).

    The body is ``{"type": "error", "error": {"type": error_type, "message": message}}``.
    ``error_type`` defaults by status (400 ``invalid_request_error``, 429 ``rate_limit_error``,
    500 ``api_error``, 529 ``overloaded_error``, ...; for unlisted statuses
    ``invalid_request_error`` below 500 and ``api_error`` from 500, as Anthropic's API does) and
    ``message`` to a sentence naming the status. ``retry_after`` (seconds) becomes a
    ``retry-after`` header; when it is None, a 429 still gets ``retry-after: 1`` and other statuses
    get none. ``headers`` are added as given. ``latency`` delays the answer (seconds).
    """

    status: int
    message: str | None = None
    error_type: str | None = None
    retry_after: float | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    latency: float = 0.0

    def __post_init__(self) -> None:
        if isinstance(self.status, bool) or not isinstance(self.status, int):
            raise _fail("HttpErrorReply.status", f"expected an integer, got {self.status!r}")
        if not 400 <= self.status <= 599:
            raise _fail(
                "HttpErrorReply.status", f"expected an HTTP error status 400-599, got {self.status}"
            )
        for name in ("message", "error_type"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise _fail(
                    f"HttpErrorReply.{name}", f"expected a string, got {type(value).__name__}"
                )
        if self.retry_after is not None:
            _check_seconds("HttpErrorReply.retry_after", self.retry_after)
        if not isinstance(self.headers, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in self.headers.items()
        ):
            raise _fail("HttpErrorReply.headers", "expected a mapping of strings to strings")
        _check_seconds("HttpErrorReply.latency", self.latency)

    @property
    def resolved_type(self) -> str:
        """The ``error.type`` sent: ``error_type`` or the default for the status."""
        fallback = "invalid_request_error" if self.status < 500 else "api_error"
        return self.error_type or _ERROR_TYPES.get(self.status, fallback)

    @property
    def resolved_message(self) -> str:
        """The ``error.message`` sent: ``message`` or a default naming the status."""
        return self.message or f"Scripted {self.status} error ({self.resolved_type})"


@dataclass(frozen=True)
class Reply:
    """A successful model answer: a message made of ``content`` blocks.

    - ``content``: blocks in order; a plain string stands for ``Text(string)``. May be empty.
    - ``stop_reason``: defaults to ``"tool_use"`` if any block is a ToolUse, else ``"end_turn"``.
    - ``chunk_size``: characters per ``*_delta`` event (text, thinking, tool input JSON); >= 1.
    - ``delay``: seconds to wait before each delta event (a slow stream).
    - ``latency``: seconds to wait before the response starts (the status line and headers).
    - ``drop_after``: close the connection after this many delta events, without
      ``content_block_stop``/``message_stop`` (a dropped stream); 0 drops before the first delta.
      Applies to streaming requests only: a non-streaming request (the CLI's fallback after a
      broken stream) gets the whole reply, unless ``drop_non_streaming``.
    - ``drop_non_streaming``: cut off non-streaming requests for this turn too: the status line
      and headers are sent, then the connection is closed before the body, so the CLI's
      fallback fails as well.
    - ``usage``: token counts reported in ``message_start``/``message_delta``.
    - ``errors_before``: HTTP errors answered, in order, to the first attempts of this turn before
      the reply itself is served; retries are counted per rule, prompt and turn (the one piece of
      state in the server, see :class:`Script`).
    """

    content: Sequence[Block | str]
    stop_reason: str | None = None
    chunk_size: int = 64
    delay: float = 0.0
    latency: float = 0.0
    drop_after: int | None = None
    drop_non_streaming: bool = False
    usage: Usage = field(default_factory=Usage)
    errors_before: Sequence[HttpErrorReply] = ()

    def __post_init__(self) -> None:
        if isinstance(self.content, (str, bytes)) or not isinstance(self.content, Sequence):
            raise _fail("Reply.content", "expected a sequence of blocks (Text, Thinking, ToolUse)")
        blocks: list[Block] = []
        for i, block in enumerate(self.content):
            if isinstance(block, str):
                blocks.append(Text(block))
            elif isinstance(block, (Text, Thinking, ToolUse)):
                blocks.append(block)
            else:
                raise _fail(
                    f"Reply.content[{i}]",
                    f"expected Text, Thinking, ToolUse or str, got {type(block).__name__}",
                )
        # Frozen: normalise through object.__setattr__ so equality and hashing see tuples.
        object.__setattr__(self, "content", tuple(blocks))
        if self.stop_reason is not None and not isinstance(self.stop_reason, str):
            raise _fail("Reply.stop_reason", "expected a string or None")
        if isinstance(self.chunk_size, bool) or not isinstance(self.chunk_size, int):
            raise _fail("Reply.chunk_size", f"expected an integer >= 1, got {self.chunk_size!r}")
        if self.chunk_size < 1:
            raise _fail("Reply.chunk_size", f"expected an integer >= 1, got {self.chunk_size}")
        _check_seconds("Reply.delay", self.delay)
        _check_seconds("Reply.latency", self.latency)
        if self.drop_after is not None and (
            isinstance(self.drop_after, bool)
            or not isinstance(self.drop_after, int)
            or self.drop_after < 0
        ):
            raise _fail(
                "Reply.drop_after", f"expected an integer >= 0 or None, got {self.drop_after!r}"
            )
        if not isinstance(self.drop_non_streaming, bool):
            raise _fail(
                "Reply.drop_non_streaming", f"expected a boolean, got {self.drop_non_streaming!r}"
            )
        if not isinstance(self.usage, Usage):
            raise _fail("Reply.usage", f"expected Usage, got {type(self.usage).__name__}")
        errors = tuple(self.errors_before)
        for i, error in enumerate(errors):
            if not isinstance(error, HttpErrorReply):
                raise _fail(
                    f"Reply.errors_before[{i}]",
                    f"expected HttpErrorReply, got {type(error).__name__}",
                )
        object.__setattr__(self, "errors_before", errors)

    @property
    def blocks(self) -> tuple[Block, ...]:
        """``content`` with strings already turned into :class:`Text` blocks."""
        return cast("tuple[Block, ...]", self.content)  # normalised in __post_init__

    @property
    def resolved_stop_reason(self) -> str:
        """``stop_reason``, or ``tool_use``/``end_turn`` depending on the blocks."""
        if self.stop_reason is not None:
            return self.stop_reason
        return "tool_use" if any(isinstance(b, ToolUse) for b in self.blocks) else "end_turn"


Answer: TypeAlias = Reply | HttpErrorReply


@dataclass(frozen=True)
class Rule:
    """Answers for the conversations whose prompt matches ``match``.

    ``match`` is a regular expression searched (``re.search``) in the prompt, i.e. the text of the
    first user message of the conversation; None matches every prompt. ``answers[n]`` answers
    turn ``n`` of a conversation, where the turn is the number of assistant messages in the
    request: the first request gets ``answers[0]``, the follow-up after a tool call
    ``answers[1]``, and so on. At least one answer is required.
    """

    answers: Sequence[Answer]
    match: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.answers, Sequence):
            raise _fail("Rule.answers", "expected a sequence of Reply or HttpErrorReply")
        answers = tuple(self.answers)
        if not answers:
            raise _fail("Rule.answers", "expected at least one answer")
        for i, answer in enumerate(answers):
            if not isinstance(answer, (Reply, HttpErrorReply)):
                raise _fail(
                    f"Rule.answers[{i}]",
                    f"expected Reply or HttpErrorReply, got {type(answer).__name__}",
                )
        object.__setattr__(self, "answers", answers)
        if self.match is not None:
            if not isinstance(self.match, str):
                raise _fail(
                    "Rule.match", f"expected a regular expression string, got {self.match!r}"
                )
            try:
                re.compile(self.match)
            except re.error as exc:
                raise _fail(
                    "Rule.match", f"invalid regular expression {self.match!r}: {exc}"
                ) from None

    def matches(self, prompt: str) -> bool:
        """Whether this rule applies to a conversation whose prompt is ``prompt``."""
        return self.match is None or re.search(self.match, prompt) is not None


Exhausted: TypeAlias = Literal["error", "repeat_last"]


@dataclass(frozen=True)
class Script:
    """What the server answers, as an ordered list of rules.

    For each ``POST /v1/messages`` the server takes the prompt (text of the first user message)
    and uses the first rule that matches it. The answer is the rule's ``answers[turn]`` (see
    :class:`Rule`), so the choice depends only on the request: parallel runs sharing one server
    get the same answers whatever the interleaving, and a retried request gets the same answer
    again. The only exception is ``Reply.errors_before``, which counts attempts.

    When no rule matches, or a conversation goes past the last answer and ``when_exhausted`` is
    ``"error"`` (the default), the server answers HTTP 500 ``api_error`` with a message that says
    so; the CLI then reports ``API Error: 500 ...`` with that message. With ``"repeat_last"`` the
    last answer is served again for every later turn.
    """

    rules: Sequence[Rule]
    when_exhausted: Exhausted = "error"

    def __post_init__(self) -> None:
        if not isinstance(self.rules, Sequence):
            raise _fail("Script.rules", "expected a sequence of Rule")
        rules = tuple(self.rules)
        if not rules:
            raise _fail("Script.rules", "expected at least one rule")
        for i, rule in enumerate(rules):
            if not isinstance(rule, Rule):
                raise _fail(f"Script.rules[{i}]", f"expected Rule, got {type(rule).__name__}")
        object.__setattr__(self, "rules", rules)
        if self.when_exhausted not in ("error", "repeat_last"):
            raise _fail(
                "Script.when_exhausted",
                f"expected 'error' or 'repeat_last', got {self.when_exhausted!r}",
            )


def _check_seconds(where: str, value: object) -> None:
    # "not 0 <= value < inf": NaN and infinity (YAML's .inf) are refused too.
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1e300:
        raise _fail(where, f"expected a finite number of seconds >= 0, got {value!r}")


# --- parsing plain data (from JSON or YAML) -------------------------------------------------------

_REPLY_KINDS = ("text", "thinking", "tool_use", "content")
_REPLY_OPTIONS = (
    "stop_reason",
    "chunk_size",
    "delay",
    "latency",
    "drop_after",
    "drop_non_streaming",
    "usage",
    "errors_before",
)
_ERROR_KEYS = ("status", "message", "type", "retry_after", "headers")


def _describe(value: object) -> str:
    names = {dict: "mapping", list: "list", str: "string", type(None): "null", bool: "boolean"}
    return names.get(type(value), type(value).__name__)


def _mapping(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(where, f"expected a mapping, got {_describe(value)}")
    for key in value:
        if not isinstance(key, str):
            raise _fail(where, f"keys must be strings, got {key!r}")
    return value


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    unknown = [key for key in data if key not in allowed]
    if unknown:
        raise _fail(
            where,
            f"unknown key {unknown[0]!r} (allowed: {', '.join(allowed)})",
        )


def _list(value: object, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise _fail(where, f"expected a list, got {_describe(value)}")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, f"expected a string, got {_describe(value)}")
    return value


def _integer(value: object, where: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise _fail(where, f"expected an integer >= {minimum}, got {value!r}")
    return value


def _seconds(value: object, where: str) -> float:
    _check_seconds(where, value)
    assert isinstance(value, (int, float))
    return float(value)


def _parse_block(data: object, where: str) -> Block:
    block = _mapping(data, where)
    kinds = [key for key in ("text", "thinking", "tool_use") if key in block]
    if len(kinds) != 1:
        raise _fail(where, "a block needs exactly one of: text, thinking, tool_use")
    kind = kinds[0]
    if kind == "text":
        _check_keys(block, ("text",), where)
        return Text(_string(block["text"], f"{where}.text"))
    if kind == "thinking":
        _check_keys(block, ("thinking", "signature"), where)
        thinking = _string(block["thinking"], f"{where}.thinking")
        if "signature" in block:
            return Thinking(thinking, _string(block["signature"], f"{where}.signature"))
        return Thinking(thinking)
    _check_keys(block, ("tool_use",), where)
    return _parse_tool_use(block["tool_use"], f"{where}.tool_use")


def _parse_tool_use(data: object, where: str) -> ToolUse:
    call = _mapping(data, where)
    _check_keys(call, ("name", "input", "id"), where)
    if "name" not in call:
        raise _fail(where, "missing key 'name'")
    name = _string(call["name"], f"{where}.name")
    if not name:
        raise _fail(f"{where}.name", "expected a non-empty string")
    tool_input = _mapping(call.get("input", {}), f"{where}.input")
    tool_id = call.get("id")
    if tool_id is not None:
        tool_id = _string(tool_id, f"{where}.id")
    return ToolUse(name=name, input=dict(tool_input), id=tool_id)


def _parse_usage(data: object, where: str) -> Usage:
    usage = _mapping(data, where)
    allowed = (
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
    )
    _check_keys(usage, allowed, where)
    values = {key: _integer(usage[key], f"{where}.{key}", 0) for key in allowed if key in usage}
    return Usage(**values)


def _parse_error(data: object, where: str, latency: float) -> HttpErrorReply:
    error = _mapping(data, where)
    _check_keys(error, _ERROR_KEYS, where)
    if "status" not in error:
        raise _fail(where, "missing key 'status'")
    status = _integer(error["status"], f"{where}.status", 0)
    if not 400 <= status <= 599:
        raise _fail(f"{where}.status", f"expected an HTTP error status 400-599, got {status}")
    headers = _mapping(error.get("headers", {}), f"{where}.headers")
    for key, value in headers.items():
        _string(value, f"{where}.headers.{key}")
    message = error.get("message")
    error_type = error.get("type")
    retry_after = error.get("retry_after")
    return HttpErrorReply(
        status=status,
        message=None if message is None else _string(message, f"{where}.message"),
        error_type=None if error_type is None else _string(error_type, f"{where}.type"),
        retry_after=None if retry_after is None else _seconds(retry_after, f"{where}.retry_after"),
        headers=dict(headers),
        latency=latency,
    )


def _parse_answer(data: object, where: str) -> Answer:
    answer = _mapping(data, where)
    if "error" in answer:
        _check_keys(answer, ("error", "latency"), where)
        latency = _seconds(answer.get("latency", 0.0), f"{where}.latency")
        return _parse_error(answer["error"], f"{where}.error", latency)
    kinds = [key for key in _REPLY_KINDS if key in answer]
    if len(kinds) != 1:
        raise _fail(
            where,
            "an answer needs exactly one of: text, thinking, tool_use, content, error"
            + (f" (got {', '.join(kinds)})" if kinds else ""),
        )
    _check_keys(answer, (kinds[0], *_REPLY_OPTIONS), where)
    kind = kinds[0]
    if kind == "content":
        items = _list(answer["content"], f"{where}.content")
        blocks = [_parse_block(item, f"{where}.content[{i}]") for i, item in enumerate(items)]
    else:
        blocks = [_parse_block({kind: answer[kind]}, where)]
    options: dict[str, Any] = {}
    if "stop_reason" in answer:
        options["stop_reason"] = _string(answer["stop_reason"], f"{where}.stop_reason")
    if "chunk_size" in answer:
        options["chunk_size"] = _integer(answer["chunk_size"], f"{where}.chunk_size", 1)
    for key in ("delay", "latency"):
        if key in answer:
            options[key] = _seconds(answer[key], f"{where}.{key}")
    if answer.get("drop_after") is not None:
        options["drop_after"] = _integer(answer["drop_after"], f"{where}.drop_after", 0)
    if "drop_non_streaming" in answer:
        value = answer["drop_non_streaming"]
        if not isinstance(value, bool):
            raise _fail(f"{where}.drop_non_streaming", f"expected true or false, got {value!r}")
        options["drop_non_streaming"] = value
    if "usage" in answer:
        options["usage"] = _parse_usage(answer["usage"], f"{where}.usage")
    if "errors_before" in answer:
        errors = _list(answer["errors_before"], f"{where}.errors_before")
        parsed: list[HttpErrorReply] = []
        for i, item in enumerate(errors):
            item_where = f"{where}.errors_before[{i}]"
            error = _mapping(item, item_where)
            _check_keys(error, ("error", "latency"), item_where)
            if "error" not in error:
                raise _fail(item_where, "missing key 'error'")
            latency = _seconds(error.get("latency", 0.0), f"{item_where}.latency")
            parsed.append(_parse_error(error["error"], f"{item_where}.error", latency))
        options["errors_before"] = parsed
    return Reply(content=blocks, **options)


def parse_script(data: object, *, source: str = "") -> Script:
    """Build a :class:`Script` from plain data, as read from JSON or YAML.

    The document is a mapping with ``rules`` (a non-empty list) and optionally ``when_exhausted``
    (``error`` or ``repeat_last``). Each rule has ``answers`` (a non-empty list) and optionally
    ``match`` (a regular expression). Each answer is one of::

        {text: STR}                 # a text reply
        {thinking: STR}             # a thinking-only reply (rarely useful alone)
        {tool_use: {name: STR, input: {...}, id: STR}}   # a tool call; input and id optional
        {content: [BLOCK, ...]}     # several blocks: {text: ..}, {thinking: .., signature: ..},
                                    # {tool_use: {...}}
        {error: {status: INT, message: STR, type: STR, retry_after: NUM, headers: {..}}}

    Replies also take ``stop_reason``, ``chunk_size``, ``delay``, ``latency``, ``drop_after``,
    ``drop_non_streaming``,
    ``usage`` ({input_tokens, output_tokens, cache_creation_input_tokens,
    cache_read_input_tokens}) and ``errors_before`` (a list of ``{error: {...}}``); errors take
    ``latency``. Their meaning is documented on :class:`Reply` and :class:`HttpErrorReply`.

    Raises :class:`ScriptError` naming the first offending place (prefixed by ``source`` if
    given); unknown keys are errors, so typos do not pass silently.
    """
    prefix = f"{source}: " if source else ""
    try:
        document = _mapping(data, "script")
        _check_keys(document, ("rules", "when_exhausted"), "script")
        if "rules" not in document:
            raise _fail("script", "missing key 'rules'")
        rules: list[Rule] = []
        for i, item in enumerate(_list(document["rules"], "rules")):
            where = f"rules[{i}]"
            rule = _mapping(item, where)
            _check_keys(rule, ("match", "answers"), where)
            if "answers" not in rule:
                raise _fail(where, "missing key 'answers'")
            answers = _list(rule["answers"], f"{where}.answers")
            if not answers:
                raise _fail(f"{where}.answers", "expected at least one answer")
            parsed = [_parse_answer(a, f"{where}.answers[{j}]") for j, a in enumerate(answers)]
            match = rule.get("match")
            if match is not None:
                match = _string(match, f"{where}.match")
                try:
                    re.compile(match)
                except re.error as exc:
                    raise _fail(
                        f"{where}.match", f"invalid regular expression {match!r}: {exc}"
                    ) from None
            rules.append(Rule(answers=parsed, match=match))
        if not rules:
            raise _fail("rules", "expected at least one rule")
        when_exhausted = document.get("when_exhausted", "error")
        if when_exhausted not in ("error", "repeat_last"):
            raise _fail(
                "when_exhausted", f"expected 'error' or 'repeat_last', got {when_exhausted!r}"
            )
        return Script(rules=rules, when_exhausted=when_exhausted)
    except ScriptError as exc:
        raise ScriptError(f"{prefix}{exc}") from None


def load_script(path: str | os.PathLike[str]) -> Script:
    """Read and validate a script file: JSON if the name ends in ``.json``, YAML otherwise.

    Raises :class:`ScriptError` for a file that cannot be read or parsed, or whose content is not a
    valid script (see :func:`parse_script`); the message starts with the file name.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ScriptError(f"{file}: cannot read script: {exc}") from None
    if file.suffix.lower() == ".json":
        try:
            data: object = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ScriptError(f"{file}: invalid JSON: {exc}") from None
    else:
        import yaml  # only YAML scripts pay for importing PyYAML

        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ScriptError(f"{file}: invalid YAML: {exc}") from None
    return parse_script(data, source=str(file))


__getattr__ = renamed(__name__, {"HttpError": "HttpErrorReply"}, globals())
