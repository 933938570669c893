"""JSON answers: find, repair and validate the JSON value in a model's free-text answer.

A model asked for JSON answers with JSON most of the time, but not always with *only*
JSON: it wraps it in a Markdown fence, puts prose around it, shows an example first,
leaves a trailing comma, or is cut off mid-object by a timeout. :func:`extract_json`
finds the value anyway, repairs the usual damage, and says precisely why when it cannot.

The answer is untrusted data: it is only ever parsed (``json`` and ``json_repair``),
never evaluated, and all the work on it is linear in its length: a value cut off by the
end of the answer is closed by a linear scan, and ``json_repair`` (pure Python, and
quadratic on a long string) is given at most :data:`MAX_REPAIR_CHARS` characters. Async callers
use :func:`extract_from_answer_async`, which does the work in a worker thread so that a
huge answer never stalls the event loop.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import itertools
import json
import math
import re
import reprlib
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple, NoReturn

from cc_executor._errors import CCExecutorError

__all__ = [
    "MAX_CANDIDATES",
    "MAX_REPAIR_CHARS",
    "PATTERN_BUDGET_SECONDS",
    "JsonExtraction",
    "extract_from_answer",
    "extract_from_answer_async",
    "extract_json",
    "merge_json_result",
]

#: At most this many fenced blocks, and this many bracketed spans of prose, are parsed
#: per answer. Spans never overlap, so parsing costs at most about twice the answer's
#: length however many candidates there are; the bound caps the per-candidate overhead
#: for answers with thousands of ``{...}`` placeholders or ``[1]`` citations.
MAX_CANDIDATES = 20

#: Bracket nesting deeper than this is taken for noise rather than JSON (the ``json``
#: module itself gives up near Python's recursion limit); it also keeps a run of 100,000
#: ``{`` from being scanned as one ever-deepening candidate.
_MAX_DEPTH = 512

#: Spans nesting deeper than this are not repaired: json_repair refuses deep input anyway
#: (at a few hundred levels), and before refusing it can take time quadratic in the span.
_MAX_REPAIR_DEPTH = 100

#: json_repair is given at most this many characters per answer, all damaged spans
#: together: its time grows with the square of a string's length (2 MB cut off inside a
#: string took 49 s; 100,000 chars take about 0.3 s). A value cut off by the end of the
#: answer is closed without it, at any size.
MAX_REPAIR_CHARS = 100_000

_PREVIEW_CHARS = 80
_SCHEMA_MESSAGE_CHARS = 300

_OPENER = re.compile(r"[{\[]")
# One match per bracket or per whole double-quoted string, so strings cost one step
# however long. A string left open stops before a raw newline: JSON strings cannot hold
# one, so the quote was prose, and matching goes on after it.
_TOKEN = re.compile(r'[{}\[\]]|"[^"\\\n]*(?:\\.[^"\\\n]*)*"?')
_CLOSER = {"{": "}", "[": "]"}
_JSON_ENDS = frozenset('}]"0123456789el')  # the last character of any JSON text
_NON_SPACE = re.compile(r"\S")
# CommonMark fence lines: at most three spaces of indent, then ``` or ~~~ or longer. The
# leading newline is a literal prefix, which makes the search C-fast over megabytes.
_FENCE_LINE = re.compile(r"\n[ \t]{0,3}(```+|~~~+)")
_FENCE_FIRST_LINE = re.compile(r"[ \t]{0,3}(```+|~~~+)")

# What may follow the opening bracket of JSON that was cut off; anything else (``[a)``,
# ``{name``) is a stray bracket in prose and the scan looks inside it instead.
_JSONISH_START = re.compile(
    r"""\{\s*(?:["'}]|[^\W\d]\w*\s*:|\Z)
      | \[\s*(?:[\[{"'\]\d-]|true\b|false\b|null\b|\Z)""",
    re.VERBOSE,
)

# Tokens of relaxed JSON, used to refuse repair of prose: a bare word that is neither an
# unquoted key nor a literal means the brackets hold text, which json_repair would turn
# into a plausible-looking but invented value ("[see above]" -> ["see above"]).
_RELAXED_TOKEN = re.compile(
    r"""
      "[^"\\\n]*(?:\\.[^"\\\n]*)*"?
    | '[^'\\\n]*(?:\\.[^'\\\n]*)*'?
    | //[^\n]* | \#[^\n]* | /\*.*?(?:\*/|\Z)
    | -?\d[\w.+-]*
    | ([^\W\d]\w*)(\s*:)?
    """,
    re.VERBOSE | re.DOTALL,
)
_LITERAL_WORDS = frozenset(
    {"true", "false", "null", "True", "False", "None", "NaN", "Infinity", "undefined"}
)


class _NonFinite(CCExecutorError, ValueError):
    """A JSON span holds NaN, Infinity or a number too large for a float (an internal
    signal: the span's failure, never raised to a caller)."""


def _reject_constant(name: str) -> Any:
    raise _NonFinite(f"holds {name}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NonFinite(f"holds the number {_preview(text)} (too large for a float)")
    return value


# Strict means RFC 8259: Python's json would otherwise accept NaN and Infinity, and turn
# 1e999 into inf; a value the caller cannot tell from a real number must not pass.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)
# JSON but for raw control characters (a newline) inside strings: models write multi-line
# code into a string unescaped, and the stdlib's non-strict mode reads it, in C.
_LENIENT = json.JSONDecoder(
    strict=False, parse_constant=_reject_constant, parse_float=_finite_float
)


@dataclass(frozen=True, slots=True)
class JsonExtraction:
    """What :func:`extract_json` found in an answer.

    ``value`` is the parsed JSON value (dict, list, str, int, float, bool or None), or None
    when nothing was found; ``found`` tells a JSON ``null`` apart from "not found".
    ``repaired`` is True when the value only parsed after repair (raw newlines or other
    control characters inside strings, trailing commas, comments, single quotes, unquoted
    keys, truncation). ``source`` is the exact substring
    of the answer the value came from ("" when not found). ``error`` is None on success,
    a specific reason when nothing was found, or ``"JSON does not match the schema: ..."``
    when a value was found (``found`` stays True) but failed the schema, in which case
    ``schema_errors`` holds every violation as ``"$.path: message"``, sorted by path.
    """

    value: Any
    found: bool
    repaired: bool
    source: str
    error: str | None
    schema_errors: list[str]


class _Match(Enum):
    CLOSED = "closed"
    OPEN = "open"  # the text ran out before the matching closing bracket
    TOO_DEEP = "too deep"
    EXHAUSTED = "exhausted"  # the scanning budget ran out


class _Candidate(NamedTuple):
    start: int
    end: int
    complete: bool  # the brackets balance
    trailing: bool  # incomplete because the answer (not just a fence) ends inside it
    depth: int  # deepest bracket nesting seen; 0 when strict JSON matched it in one go


class _Parsed(NamedTuple):
    value: Any
    repaired: bool
    source: str


class _Failure(NamedTuple):
    candidate: _Candidate
    reason: str
    needs_partial: bool
    non_finite: bool = False  # refuses the whole answer, not just this span


def extract_json(
    text: str, *, schema: Mapping[str, Any] | None = None, partial: bool = False
) -> JsonExtraction:
    """Find, parse and optionally validate the JSON value in a model's answer ``text``.

    Where the value is looked for, first match wins:

    1. The whole answer (stripped), if it is strict JSON of any type (``"42"`` is 42).
    2. Fenced Markdown blocks (```` ``` ````, ```` ```json ````, ``~~~``; other info
       strings such as ``python`` are skipped) whose content starts with ``{`` or ``[``,
       the **last** block first: a model that shows an example and then its answer puts
       the answer last. Only the first bracketed span of a block is used.
    3. Bracketed spans in prose, found by a string-aware bracket matcher. The
       **largest** span is tried first, the later of equal ones first: the answer is
       usually the biggest structure, while prose holds small things like ``[1]``. A
       bracket that never closes (``(see [a)``) is skipped and the search goes on inside
       it, unless what follows it looks like JSON that was cut off (then see ``partial``).

    Each candidate is parsed with strict ``json`` first, then as JSON whose strings may
    hold raw control characters (a model writing code into a string leaves its newlines
    unescaped); only if both fail is it repaired with ``json_repair`` (``repaired=True``
    either way). Repair is refused when the span holds prose
    (a bare word that is neither an unquoted key nor a literal), and its result is refused
    unless it is a non-empty object for ``{`` or a non-empty array for ``[``, so brackets
    in ordinary text are never turned into an invented value.

    ``partial=True`` declares ``text`` a truncated answer (salvage after a timeout): an
    object or array that the end of the answer cuts off may then be repaired, keeping
    every complete key and element. Without it such a value is not found, and ``error``
    says where it starts and to pass ``partial=True``; complete values before it may
    still be found, but never fragments from inside it.

    A value cut off by the end of the answer is first closed in linear time: an open string
    and the open brackets are closed, and if that is not JSON, the incomplete last member
    or element is dropped. Other damage is repaired by ``json_repair``, which is given at
    most :data:`MAX_REPAIR_CHARS` characters per answer; a span that does not fit is
    reported as too large to repair.

    At most :data:`MAX_CANDIDATES` fenced blocks and as many prose spans are parsed, and
    bracket nesting deeper than 512 is not searched. All of it is linear in ``len(text)``
    (20 MB of prose takes milliseconds); it holds the calling thread, so async code calls
    :func:`extract_from_answer_async`.

    ``schema`` is a JSON Schema (its ``$schema`` picks the draft, the latest by default;
    ``format`` is not asserted). A schema that is itself invalid, or whose ``$ref``
    cannot be resolved, raises :class:`ValueError`: that is a programming error, not bad
    model output. Nothing else raises for any ``text``.
    """
    return _extract(text, schema, partial=partial, salvage=False)[0]


def _extract(
    text: str, schema: Mapping[str, Any] | None, *, partial: bool, salvage: bool
) -> tuple[JsonExtraction, bool]:
    """:func:`extract_json`; with ``salvage``, a value found only as ``partial=True`` would
    find it is returned too, and the flag says so."""
    validator = _compile_schema(schema) if schema is not None else None
    found, salvaged = _find(text, partial=partial, salvage=salvage)
    if isinstance(found, str):
        return JsonExtraction(None, False, False, "", found, []), False
    errors = _schema_errors(validator, found.value) if validator is not None else []
    error = f"JSON does not match the schema: {errors[0]}" if errors else None
    return JsonExtraction(found.value, True, found.repaired, found.source, error, errors), salvaged


#: Why :func:`extract_from_answer` returned a value repaired from a cut-off answer.
CUT_OFF_WARNING = (
    "json_mode: the JSON in the answer is cut off before its closing bracket (the model may "
    "have hit its output limit); it was repaired: complete keys and elements are kept, what "
    "was cut off is missing"
)


def extract_from_answer(
    text: str, *, schema: Mapping[str, Any] | None = None, stopped: bool = False
) -> tuple[JsonExtraction, str | None]:
    """:func:`extract_json` for a run's answer. A value cut off by the end of the answer is
    repaired whether or not the run was stopped: a finished answer can be cut off too (the
    model's output limit). Returns the extraction and, when a finished answer's JSON had to
    be repaired that way, :data:`CUT_OFF_WARNING`; otherwise None."""
    extraction, salvaged = _extract(text, schema, partial=stopped, salvage=not stopped)
    return extraction, CUT_OFF_WARNING if salvaged else None


async def extract_from_answer_async(
    text: str, *, schema: Mapping[str, Any] | None = None, stopped: bool = False
) -> tuple[JsonExtraction, str | None]:
    """:func:`extract_from_answer` in a worker thread: a huge answer (seconds of work for
    tens of megabytes of brackets) leaves the event loop free for other runs' timeouts,
    cancels and clients. Raises the same :class:`ValueError` for a bad schema."""
    return await asyncio.to_thread(extract_from_answer, text, schema=schema, stopped=stopped)


def merge_json_result(base: dict[str, Any], extraction: JsonExtraction) -> dict[str, Any]:
    """Merge a found JSON value into a result dict; keys of ``base`` always win.

    A found object is merged key by key (``{**value, **base}``); any other found value,
    including ``null``, goes under ``"json"``; when nothing was found the result is a
    copy of ``base``. ``base`` itself is never modified.
    """
    if not extraction.found:
        return dict(base)
    if isinstance(extraction.value, dict):
        return {**extraction.value, **base}
    return {"json": extraction.value, **base}


def _find(text: str, *, partial: bool, salvage: bool) -> tuple[_Parsed | str, bool]:
    """The value found in ``text``, or the reason nothing was; and whether it was found
    only by salvaging (``salvage``: when nothing else is found, the candidates cut off by
    the end of the answer are tried as ``partial=True`` would, without scanning again)."""
    stripped = text.strip()
    if not stripped:
        empty = "the answer is empty" if not text else "the answer is empty (whitespace only)"
        return empty, False
    # Only text ending the way JSON can is parsed whole: a failed parse of a huge cut-off
    # answer would build (and hold the GIL for) everything before the cut, for nothing.
    if stripped[-1] in _JSON_ENDS:
        try:
            return _Parsed(_DECODER.decode(stripped), False, stripped), False
        except _NonFinite as exc:
            return _non_finite_error(text, str(exc)), False
        except (ValueError, RecursionError):
            pass

    scanner = _Scanner(text)
    failures: list[_Failure] = []
    for candidates in (_fence_candidates(scanner), _prose_candidates(scanner)):
        for candidate in candidates:
            outcome = _attempt(scanner, candidate, partial=partial)
            if isinstance(outcome, _Parsed):
                return outcome, False
            if outcome.non_finite:
                # Another span (one nested inside this one) would be a value cut out of
                # the answer's JSON: the whole answer is refused instead.
                return _non_finite_error(text, outcome.reason, outcome.candidate), False
            failures.append(outcome)
    for failure in failures if salvage else []:
        if failure.needs_partial:
            outcome = _attempt(scanner, failure.candidate, partial=True)
            if isinstance(outcome, _Parsed):
                return outcome, True
    return _not_found(text, failures), False


def _attempt(scanner: _Scanner, candidate: _Candidate, *, partial: bool) -> _Parsed | _Failure:
    source = scanner.text[candidate.start : candidate.end]
    if candidate.complete:
        try:
            return _Parsed(_DECODER.decode(source), False, source)
        except RecursionError:
            return _Failure(candidate, "is nested too deeply to parse", False)
        except _NonFinite as exc:
            return _Failure(candidate, str(exc), False, non_finite=True)
        except ValueError as exc:
            strict_error = str(exc)
        try:
            return _Parsed(_LENIENT.decode(source), True, source)
        except _NonFinite as exc:
            return _Failure(candidate, str(exc), False, non_finite=True)
        except (ValueError, RecursionError):
            pass
    elif not candidate.trailing:
        return _Failure(candidate, "has brackets that do not balance", False)
    elif not partial:
        return _Failure(candidate, "is cut off before its closing bracket", True)
    else:
        strict_error = "cut off before its closing bracket"

    if candidate.depth > _MAX_REPAIR_DEPTH:
        return _Failure(
            candidate,
            f"is not JSON ({strict_error}) and nests too deeply "
            f"(over {_MAX_REPAIR_DEPTH} levels) to repair",
            False,
        )
    non_finite = _non_finite_token(source)
    if non_finite is not None:
        return _Failure(candidate, non_finite, False, non_finite=True)
    refusal = _prose_word(source, truncated=not candidate.complete)
    if refusal is not None:
        return _Failure(
            candidate,
            f"is not JSON ({strict_error}) and was not repaired: "
            f"the bare word {refusal!r} is prose",
            False,
        )
    value = _close_cut_off(source) if not candidate.complete else _UNCLOSED
    if value is _UNCLOSED and len(source) > scanner.repair_left:
        why = (
            f"is too large to repair ({len(source):,} chars; damaged JSON is repaired up "
            f"to {MAX_REPAIR_CHARS:,})"
            if len(source) > MAX_REPAIR_CHARS
            else f"was not repaired: earlier spans used the answer's repair budget "
            f"({MAX_REPAIR_CHARS:,} chars)"
        )
        return _Failure(candidate, f"is not JSON ({strict_error}) and {why}", False)
    if value is _UNCLOSED:
        import json_repair

        scanner.repair_left -= len(source)
        try:
            value = json_repair.loads(source, skip_json_loads=True)
        # A third-party parser fed untrusted text: any failure just means "not repairable".
        except Exception as exc:
            return _Failure(
                candidate, f"is not JSON ({strict_error}) and repair failed: {exc!r}", False
            )
    expected = dict if source.startswith("{") else list
    if not isinstance(value, expected) or not value:
        empty = isinstance(value, expected)
        what = f"an empty {expected.__name__}" if empty else reprlib.repr(value)
        return _Failure(
            candidate,
            f"is not JSON ({strict_error}) and repair gave {what} instead",
            False,
        )
    return _Parsed(value, True, source)


#: What :func:`_close_cut_off` returns when closing does not give JSON.
_UNCLOSED: Any = object()

# A whole string (group 1 is its closing quote, empty for a string the end cuts off: only
# the last one can lack it), or one bracket or comma. One match per string however long.
_CUT_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*("?)|[{}\[\],]', re.DOTALL)


def _close_cut_off(source: str) -> Any:
    """The value of ``source``, a JSON value cut off at its end, closed in linear time.

    First the open string (if any) and every open bracket are closed as they stand
    (``{"a": "hal`` -> ``{"a": "hal"}``); if that is not JSON, the innermost container
    holding a comma is cut back to its last comma and everything closed (``{"a": 1, "b":
    tr`` -> ``{"a": 1}``), then the next one out. Only strict JSON that is not an empty
    container is accepted, so nothing is invented; :data:`_UNCLOSED` when no attempt
    gives one (three attempts at most, each one C-speed parse).
    """
    closers: list[str] = []
    commas: list[int | None] = []  # per open container: where its last comma is
    end = len(source)
    for token in _CUT_TOKEN.finditer(source):
        char = source[token.start()]
        if char == '"':
            if not token.group(1):
                end = token.end()
                suffix = '"'
                break
        elif char in _CLOSER:
            closers.append(_CLOSER[char])
            commas.append(None)
        elif char == ",":
            if commas:
                commas[-1] = token.start()
        elif not closers or char != closers.pop():
            return _UNCLOSED  # brackets that do not match: not JSON cut off, leave it be
        else:
            commas.pop()
    else:
        suffix = ""
    if not closers:
        return _UNCLOSED
    # A lone backslash at the very end is half an escape sequence.
    body = source[:end]
    if suffix and (len(body) - len(body.rstrip("\\"))) % 2:
        body = body[:-1]
    # Cut right after a comma or colon, closing as it stands cannot be JSON.
    doomed = not suffix and body.rstrip().endswith((",", ":"))
    attempts = [] if doomed else [body + suffix + "".join(reversed(closers))]
    for level in reversed(range(len(commas))):
        comma = commas[level]
        if comma is not None and len(attempts) < 3:  # each attempt parses the whole span
            attempts.append(source[:comma] + "".join(reversed(closers[: level + 1])))
    for attempt in attempts:
        try:
            value = _DECODER.decode(attempt)
        except (ValueError, RecursionError):
            continue
        if value:
            return value
    return _UNCLOSED


def _prose_word(source: str, *, truncated: bool) -> str | None:
    """The first bare word in ``source`` that relaxed JSON cannot contain, if any.

    In a truncated span, a word at the very end may be a literal or key cut in half.
    """
    for token in _RELAXED_TOKEN.finditer(source):
        word = token.group(1)
        if word is None or token.group(2) is not None or word in _LITERAL_WORDS:
            continue
        if truncated and token.end() == len(source):
            continue
        return word
    return None


def _non_finite_token(source: str) -> str | None:
    """Why ``source`` holds a number that is not finite, if it does: a bare ``NaN`` or
    ``Infinity`` (which json_repair would turn into a string) or a number too large for a
    float (which it would turn into inf)."""
    for token in _RELAXED_TOKEN.finditer(source):
        word = token.group(1)
        if word is not None:
            if token.group(2) is None and word in _NON_FINITE_WORDS:
                return f"holds {word}"
            continue
        text = token.group(0)
        if text[0] in "-0123456789":
            try:
                value = float(text)
            except ValueError:
                continue
            if not math.isfinite(value):
                return f"holds the number {_preview(text)} (too large for a float)"
    return None


_NON_FINITE_WORDS = frozenset({"NaN", "Infinity"})


class _Scanner:
    """Bracket matching over one answer, with the work for the whole answer bounded.

    Two budgets keep any input linear. A failed ``raw_decode`` costs up to its error
    position (the error counts the lines before it), so failures may cost four times the
    answer's length in all, then only the Python matcher is used. The Python matcher may
    take about three passes over the answer's brackets and strings in all, enough to
    restart after a few stray brackets; then scanning stops with what it has found.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._decode_budget = 4 * len(text) + (1 << 20)
        tokens = sum(text.count(c) for c in "{}[]") + text.count('"') // 2
        self._token_budget = 3 * tokens + 10_000
        #: Characters json_repair may still be given (see MAX_REPAIR_CHARS).
        self.repair_left = MAX_REPAIR_CHARS

    def match(self, start: int, end: int) -> tuple[int, _Match, int]:
        """Match the bracket at ``text[start]`` within ``text[:end]``.

        Returns the position just past the closing bracket (CLOSED); ``end`` (OPEN); the
        position just past the bracket that exceeded the nesting bound (TOO_DEEP); or
        ``end`` when the budget ran out (EXHAUSTED); and the deepest nesting seen (0 when
        the span is strict JSON, matched by the C parser). Brackets in double-quoted
        strings do not count; a closing bracket of the wrong kind is ignored, so the span
        stays open and the caller looks inside it.
        """
        text = self.text
        if self._decode_budget > 0:
            try:
                # Valid JSON is matched by the C parser in one call.
                stop = _LENIENT.raw_decode(text, start)[1]
            except json.JSONDecodeError as exc:
                self._decode_budget -= exc.pos
            except (ValueError, RecursionError):
                self._decode_budget -= start
            else:
                if stop <= end:
                    return stop, _Match.CLOSED, 0
        closers = [_CLOSER[text[start]]]
        deepest = 1
        pos = start + 1
        while (token := _TOKEN.search(text, pos, end)) is not None:
            self._token_budget -= 1
            if self._token_budget < 0:
                return end, _Match.EXHAUSTED, deepest
            pos = token.end()
            char = text[token.start()]
            if char in _CLOSER:
                if len(closers) >= _MAX_DEPTH:
                    return pos, _Match.TOO_DEEP, _MAX_DEPTH
                closers.append(_CLOSER[char])
                deepest = max(deepest, len(closers))
            elif char == closers[-1]:
                closers.pop()
                if not closers:
                    return pos, _Match.CLOSED, deepest
        return end, _Match.OPEN, deepest


def _fence_candidates(scanner: _Scanner) -> Iterator[_Candidate]:
    """The bracketed content of JSON-ish fenced blocks, last block first."""
    text = scanner.text
    blocks = _fenced_blocks(text)
    for content_start, content_end, fence_closed in reversed(blocks[-MAX_CANDIDATES:]):
        lead = _NON_SPACE.search(text, content_start, content_end)
        if lead is None or lead.group() not in _CLOSER:
            continue
        stop, state, depth = scanner.match(lead.start(), content_end)
        if state is _Match.CLOSED:
            yield _Candidate(lead.start(), stop, True, False, depth)
        elif state is not _Match.EXHAUSTED:
            end = len(text[lead.start() : content_end].rstrip()) + lead.start()
            yield _Candidate(lead.start(), end, False, not fence_closed, depth)


def _fenced_blocks(text: str) -> list[tuple[int, int, bool]]:
    """``(content_start, content_end, closed)`` of every fence whose info string is empty
    or starts with ``json`` (json, jsonc, json5), per CommonMark's fence rules: a run of
    three or more backticks or tildes indented at most three spaces, closed by a run of
    the same character at least as long with nothing after it. A fence left open runs to
    the end of the answer.
    """
    blocks: list[tuple[int, int, bool]] = []
    opener: tuple[str, int, bool, int] | None = None  # char, length, is JSON, content start
    first = _FENCE_FIRST_LINE.match(text)
    runs = _FENCE_LINE.finditer(text)
    for line in itertools.chain([first] if first else [], runs):
        fence = line.group(1)
        line_start = line.start() if line is first else line.start() + 1
        line_end = text.find("\n", line.end())
        if line_end < 0:
            line_end = len(text)
        info = text[line.end() : line_end].strip()
        if opener is None:
            if fence[0] == "`" and "`" in info:
                continue
            language = info.split()[0].lower() if info else ""
            is_json = language == "" or language.startswith("json")
            opener = (fence[0], len(fence), is_json, min(line_end + 1, len(text)))
        elif fence[0] == opener[0] and len(fence) >= opener[1] and not info:
            if opener[2]:
                blocks.append((opener[3], line_start, True))
            opener = None
    if opener is not None and opener[2]:
        blocks.append((opener[3], len(text), False))
    return blocks


def _prose_candidates(scanner: _Scanner) -> list[_Candidate]:
    """Up to :data:`MAX_CANDIDATES` bracketed spans of the answer, largest (then last) first.

    Spans are outermost and never overlap. When a bracket never closes, the scan starts
    again just after it, unless what follows it looks like JSON: then it is the cut-off
    tail of the answer and one candidate, and whatever lies inside it is a fragment, not
    a candidate.
    """
    text = scanner.text
    spans: list[_Candidate] = []
    pos = 0
    end = len(text)
    while (opener := _OPENER.search(text, pos)) is not None:
        stop, state, depth = scanner.match(opener.start(), end)
        if state is _Match.EXHAUSTED:
            break
        if state is _Match.OPEN:
            if _JSONISH_START.match(text, opener.start()):
                tail_end = len(text.rstrip())
                spans.append(_Candidate(opener.start(), tail_end, False, True, depth))
                break
            stop = opener.start() + 1
        elif state is _Match.CLOSED:
            spans.append(_Candidate(opener.start(), stop, True, False, depth))
        pos = stop
    return heapq.nlargest(MAX_CANDIDATES, spans, key=lambda c: (c.end - c.start, c.start))


_CUT_OFF = "the answer ends inside a JSON"


def _not_found(text: str, failures: list[_Failure]) -> str:
    about = f"({len(text):,} chars; starts with: {_preview(text.lstrip())})"
    cut_off = next((f for f in failures if f.needs_partial), None)
    if cut_off is not None:
        where = cut_off.candidate
        kind = "object" if text[where.start] == "{" else "array"
        return (
            f"{_CUT_OFF} {kind} that is cut off before its closing "
            f"bracket (it starts at char {where.start:,}: "
            f"{_preview(text[where.start : where.start + _PREVIEW_CHARS + 1])}); "
            f"pass partial=True to salvage it {about}"
        )
    if not failures:
        return f"no JSON object or array found in the answer {about}"
    first = failures[0]
    span = first.candidate
    count = len(failures)
    return (
        f"no valid JSON object or array found in the answer: {count} candidate "
        f"span{'s' if count != 1 else ''} tried; the first (chars {span.start:,}-"
        f"{span.end:,}) {first.reason} {about}"
    )


def _non_finite_error(text: str, reason: str, where: _Candidate | None = None) -> str:
    about = f"({len(text):,} chars; starts with: {_preview(text.lstrip())})"
    span = f"the JSON at chars {where.start:,}-{where.end:,}" if where else "the JSON answer"
    return f"{span} {reason}: JSON has no NaN or infinite numbers, so the answer is refused {about}"


def _preview(text: str) -> str:
    """``text``'s start as a quoted, escaped literal, elided after ~80 characters."""
    if len(text) <= _PREVIEW_CHARS:
        return repr(text)
    quoted = repr(text[:_PREVIEW_CHARS])
    return f"{quoted[:-1]}...{quoted[-1]}"


def _shorten(message: str) -> str:
    if len(message) <= _SCHEMA_MESSAGE_CHARS:
        return message
    return message[: _SCHEMA_MESSAGE_CHARS - 3] + "..."


def check_schema(schema: Any) -> None:
    """``ValueError`` with the reason if ``schema`` is not a valid JSON Schema, or refers
    to anything outside itself: checked before a run starts, not after it answered."""
    _compile_schema(schema)


# The keywords that make jsonschema look a schema up by URI.
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


def _check_unbounded_patterns(schema: Any) -> None:
    """``ValueError`` for a schema using ``unevaluatedProperties`` beside
    ``patternProperties``: jsonschema then matches property names with ``re`` in its own
    code, where no time budget applies (a hostile key could hold the process)."""
    stack: list[Any] = [schema]
    keywords: set[str] = set()
    while stack:
        node = stack.pop()
        if isinstance(node, Mapping):
            keywords.update(k for k in ("unevaluatedProperties", "patternProperties") if k in node)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    if len(keywords) == 2:
        raise ValueError(
            "invalid JSON schema: unevaluatedProperties together with patternProperties is "
            "not supported (their pattern matching cannot be bounded in time); use "
            "additionalProperties instead"
        )


def _check_local_refs(schema: Any) -> None:
    """``ValueError`` for the first reference that does not point inside ``schema``.

    Only ``#...`` references (``#/$defs/...``, ``#/definitions/...``, ``#anchor``) are
    resolved: an ``http(s)://`` or ``file://`` one would be fetched synchronously, without a
    timeout, on the caller's event loop, and a file's content could end up in an error. The
    walk keeps its own stack, so a deeply nested schema cannot exhaust Python's.
    """
    stack: list[tuple[Any, tuple[str | int, ...]]] = [(schema, ())]
    while stack:
        node, path = stack.pop()
        if isinstance(node, Mapping):
            for key in _REF_KEYWORDS:
                ref = node.get(key)
                if isinstance(ref, str) and not ref.startswith("#"):
                    raise ValueError(
                        f"invalid JSON schema: {key} {_preview(ref)} at {_json_path(path)} is "
                        "not a reference inside the schema: only local ones (#/$defs/...) are "
                        "resolved; remote and file references are refused"
                    )
            stack.extend((value, (*path, str(key))) for key, value in node.items())
        elif isinstance(node, list):
            stack.extend((value, (*path, i)) for i, value in enumerate(node))


def _refuse_retrieval(uri: str) -> NoReturn:
    # jsonschema's default would fetch the URI; refusing keeps validation offline.
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs-made __init__


def _compile_schema(schema: Any) -> Any:
    """A jsonschema validator for ``schema``; ValueError if the schema is invalid."""
    # jsonschema ships no type information; it is only ever used through this module.
    from jsonschema.exceptions import SchemaError  # type: ignore[import-untyped]
    from jsonschema.validators import validator_for  # type: ignore[import-untyped]

    if isinstance(schema, bool):
        as_dict: Any = schema  # true and false are schemas too (accept all, accept none)
    elif isinstance(schema, Mapping):
        # The meta-schema checks "type": "object" with isinstance(dict), so a read-only
        # Mapping would be reported as an invalid schema.
        as_dict = dict(schema)
    else:
        raise ValueError(
            "invalid JSON schema: a schema is a JSON object (or true/false), "
            f"got {type(schema).__name__}: {reprlib.repr(schema)}"
        )
    from referencing import Registry

    cls = _bounded_patterns(validator_for(as_dict))
    try:
        cls.check_schema(as_dict)
    except SchemaError as exc:
        raise ValueError(f"invalid JSON schema: {exc.message}") from exc
    except RecursionError:
        raise ValueError(
            "invalid JSON schema: nested too deeply to be checked (use $defs and $ref for "
            "deep structures)"
        ) from None
    _check_local_refs(as_dict)
    _check_unbounded_patterns(as_dict)
    registry: Any = Registry(retrieve=_refuse_retrieval)  # type: ignore[call-arg]  # attrs
    return cls(as_dict, registry=registry)


#: All the ``pattern``, ``patternProperties`` and ``additionalProperties`` matching of one
#: answer's validation shares this many seconds; a match still running when it is spent
#: stops and is reported as a schema error instead of holding the process.
PATTERN_BUDGET_SECONDS = 1.0

# When the current validation's pattern budget runs out; a ContextVar because validators
# are shared between threads (asyncio.to_thread copies the context into the worker).
_PATTERN_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "cc_executor_pattern_deadline", default=None
)
# regex raises TimeoutError for timeout=0, so a spent budget still allows this much.
_MIN_MATCH_SECONDS = 0.001


@functools.lru_cache(maxsize=256)
def _compile_pattern(pattern: str) -> Any:
    # The regex module can stop a match after a timeout and, with concurrent=True, runs it
    # without the GIL; the stdlib's re can do neither, so one backtracking pattern froze the
    # whole service.
    import regex  # type: ignore[import-untyped]  # no stubs; used only in this module

    return regex.compile(pattern)


def _search(pattern: str, text: str) -> bool:
    """Whether ``pattern`` matches somewhere in ``text``, within the validation's budget.

    Raises ``TimeoutError`` when the budget runs out, and ``regex.error`` for a pattern the
    regex module cannot compile.
    """
    deadline = _PATTERN_DEADLINE.get()
    remaining = PATTERN_BUDGET_SECONDS if deadline is None else deadline - time.monotonic()
    found = _compile_pattern(pattern).search(
        text, timeout=max(remaining, _MIN_MATCH_SECONDS), concurrent=True
    )
    return found is not None


def _too_slow(what: str, pattern: str) -> str:
    return (
        f"{what}: matching the pattern {_preview(pattern)} took too long (over the "
        f"{PATTERN_BUDGET_SECONDS:g} s budget for an answer's patterns); treated as not matching"
    )


def _bad_pattern(pattern: str, exc: Exception) -> str:
    return f"the pattern {_preview(pattern)} cannot be compiled: {exc}"


@functools.lru_cache(maxsize=16)
def _bounded_patterns(cls: Any) -> Any:
    """``cls`` with ``pattern``, ``patternProperties`` and ``additionalProperties`` matched
    by :func:`_search`; every other keyword is jsonschema's own."""
    import regex
    from jsonschema.exceptions import ValidationError
    from jsonschema.validators import extend

    def pattern(validator: Any, patrn: Any, instance: Any, schema: Any) -> Iterator[Any]:
        if not validator.is_type(instance, "string"):
            return
        try:
            matched = _search(patrn, instance)
        except TimeoutError:
            yield ValidationError(_too_slow(_preview(instance), patrn))
        except regex.error as exc:
            yield ValidationError(_bad_pattern(patrn, exc))
        else:
            if not matched:
                yield ValidationError(f"{_preview(instance)} does not match {patrn!r}")

    def pattern_properties(
        validator: Any, patterns: Any, instance: Any, schema: Any
    ) -> Iterator[Any]:
        if not validator.is_type(instance, "object"):
            return
        for patrn, subschema in patterns.items():
            for key, value in instance.items():
                try:
                    matched = _search(patrn, key)
                except TimeoutError:
                    yield ValidationError(_too_slow(f"property name {_preview(key)}", patrn))
                    continue
                except regex.error as exc:
                    yield ValidationError(_bad_pattern(patrn, exc))
                    return
                if matched:
                    yield from validator.descend(value, subschema, path=key, schema_path=patrn)

    def additional_properties(
        validator: Any, allowed: Any, instance: Any, schema: Any
    ) -> Iterator[Any]:
        # jsonschema's own version matches the patternProperties keys with the stdlib's re.
        if not validator.is_type(instance, "object"):
            return
        properties = schema.get("properties", {})
        patterns = list(schema.get("patternProperties", {}))
        extras: list[str] = []
        for key in instance:
            if key in properties:
                continue
            try:
                if any(_search(patrn, key) for patrn in patterns):
                    continue
            except TimeoutError:
                yield ValidationError(
                    _too_slow(f"property name {_preview(key)}", "|".join(patterns))
                )
                continue
            except regex.error:
                continue  # patternProperties reports the pattern itself
            extras.append(key)
        if validator.is_type(allowed, "object"):
            for extra in extras:
                yield from validator.descend(instance[extra], allowed, path=extra)
        elif not allowed and extras:
            if patterns:
                listed = ", ".join(repr(p) for p in sorted(patterns))
                verb = "does" if len(extras) == 1 else "do"
                names = ", ".join(repr(e) for e in sorted(extras))
                yield ValidationError(f"{names} {verb} not match any of the regexes: {listed}")
            else:
                verb = "was" if len(extras) == 1 else "were"
                names = ", ".join(repr(e) for e in sorted(extras))
                yield ValidationError(
                    f"Additional properties are not allowed ({names} {verb} unexpected)"
                )

    replaced = {
        "pattern": pattern,
        "patternProperties": pattern_properties,
        "additionalProperties": additional_properties,
    }
    return extend(cls, {k: v for k, v in replaced.items() if k in cls.VALIDATORS})


#: The schema error of an answer nested deeper than the validator can descend.
_TOO_DEEP = "the JSON is nested too deeply to be checked against the schema"


def _schema_errors(validator: Any, value: Any) -> list[str]:
    """Every violation of ``value`` as ``"$.path: message"``, sorted by path."""
    # jsonschema >= 4.18 resolves $ref through `referencing` (its own dependency) and
    # documents this as the exception to catch for a $ref that cannot be resolved.
    from referencing.exceptions import Unresolvable

    token = _PATTERN_DEADLINE.set(time.monotonic() + PATTERN_BUDGET_SECONDS)
    try:
        errors = list(validator.iter_errors(value))
    except Unresolvable as exc:
        raise ValueError(f"invalid JSON schema: cannot resolve $ref: {exc}") from exc
    except RecursionError:
        # jsonschema descends one Python call per level: a model's deeply nested answer
        # checked against a recursive schema ($ref: "#") would escape as a traceback.
        return [f"$: {_TOO_DEEP}"]
    finally:
        _PATTERN_DEADLINE.reset(token)

    def order(error: Any) -> tuple[list[tuple[int, int | str]], str]:
        # Indexes and keys in one path sort apart, and indexes numerically.
        path: list[tuple[int, int | str]] = [
            (0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path
        ]
        return path, str(error.message)

    return [
        f"{_json_path(error.absolute_path)}: {_shorten(str(error.message))}"
        for error in sorted(errors, key=order)
    ]


def _json_path(parts: Any) -> str:
    path = "$"
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += f"[{json.dumps(str(part), ensure_ascii=False)}]"
    return path
