"""How a scripted answer looks in the Gemini API, as Gemini CLI consumes it.

Pure functions from script values to JSON-ready data, like :mod:`._sse` for the Messages API.
Gemini CLI calls ``POST /v1beta/models/MODEL:streamGenerateContent?alt=sse`` (and
``:generateContent`` without streaming); each streamed chunk is a ``GenerateContentResponse``
on a ``data:`` line, with no event name. A script's Claude-style tool calls become the calls
Gemini CLI makes for the same effect:

- ``Bash {command}`` -> ``run_shell_command {command}``;
- ``Write {file_path, content}`` -> ``write_file {file_path, content}``;
- ``Edit {file_path, old_string, new_string}`` -> ``replace`` with the same fields and an
  ``instruction`` (the CLI requires one);
- any other name -> a ``functionCall`` of that name with the input as its ``args``.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cc_executor.testing._script import HttpErrorReply, Reply, Text, Thinking, ToolUse
from cc_executor.testing._sse import Event, estimate_tokens

# Google's canonical status names by HTTP status.
_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}
_SESSION_CONTEXT = "<session_context>"


def error_json(error: HttpErrorReply) -> dict[str, Any]:
    """The Google-style error body: ``{"error": {"code", "message", "status"}}``."""
    status = _STATUSES.get(
        error.status, "INTERNAL" if error.status >= 500 else "FAILED_PRECONDITION"
    )
    message = error.message or f"Scripted {error.status} error ({status})"
    return {"error": {"code": error.status, "message": message, "status": status}}


def prompt_of(body: Mapping[str, Any]) -> str | None:
    """The prompt of a Gemini request: the text parts of the first user content, without the
    ``<session_context>`` part Gemini CLI puts before the prompt; None if there is none."""
    contents = body.get("contents")
    if not isinstance(contents, list):
        return None
    for content in contents:
        if not isinstance(content, Mapping) or content.get("role", "user") != "user":
            continue
        parts = content.get("parts")
        texts = [
            part["text"]
            for part in (parts if isinstance(parts, list) else [])
            if isinstance(part, Mapping)
            and isinstance(part.get("text"), str)
            and not part["text"].startswith(_SESSION_CONTEXT)
        ]
        return "\n".join(texts)
    return None


def turn_of(body: Mapping[str, Any]) -> int:
    """How many model answers the request carries (``model`` contents)."""
    contents = body.get("contents")
    if not isinstance(contents, list):
        return 0
    return sum(1 for c in contents if isinstance(c, Mapping) and c.get("role") == "model")


def call_part(block: ToolUse) -> dict[str, Any]:
    """The ``functionCall`` part for a scripted tool call."""
    name, args = block.name, dict(block.input)
    if block.name == "Bash" and isinstance(args.get("command"), str):
        name, args = "run_shell_command", {"command": args["command"]}
    elif block.name == "Write":
        name = "write_file"
    elif block.name == "Edit":
        name = "replace"
        args.setdefault("instruction", "Apply the scripted edit.")
    call: dict[str, Any] = {"name": name, "args": args}
    if block.id:
        call["id"] = block.id
    return {"functionCall": call}


def _parts(block: Text | Thinking | ToolUse) -> dict[str, Any]:
    if isinstance(block, Text):
        return {"text": block.text}
    if isinstance(block, Thinking):
        return {"text": block.thinking, "thought": True}
    return call_part(block)


def _usage(reply: Reply, request_chars: int) -> dict[str, int]:
    usage = reply.usage
    prompt = (
        usage.input_tokens if usage.input_tokens is not None else estimate_tokens(request_chars)
    )
    chars = sum(len(str(_parts(block))) for block in reply.blocks)
    output = usage.output_tokens if usage.output_tokens is not None else estimate_tokens(chars)
    return {
        "promptTokenCount": prompt,
        "candidatesTokenCount": output,
        "totalTokenCount": prompt + output,
        "cachedContentTokenCount": usage.cache_read_input_tokens,
    }


def _chunk(parts: list[dict[str, Any]], model: str, **extra: Any) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if "finishReason" in extra:
        candidate["finishReason"] = extra.pop("finishReason")
    return {"candidates": [candidate], "modelVersion": model, **extra}


def response_json(reply: Reply, *, model: str, request_chars: int) -> dict[str, Any]:
    """The whole answer, as ``:generateContent`` returns it."""
    return _chunk(
        [_parts(block) for block in reply.blocks],
        model,
        finishReason="STOP",
        usageMetadata=_usage(reply, request_chars),
    )


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_events(reply: Reply, *, model: str, request_chars: int) -> Iterator[Event]:
    """The chunks of a streamed answer: text and thoughts in pieces of ``reply.chunk_size``
    characters (the deltas ``delay`` paces and ``drop_after`` counts), each function call
    whole, then a last chunk with ``finishReason: STOP`` and the usage."""
    for block in reply.blocks:
        if isinstance(block, ToolUse):
            yield Event("gemini.call", _chunk([call_part(block)], model), named=False)
            continue
        text = block.text if isinstance(block, Text) else block.thinking
        for piece in _chunks(text, reply.chunk_size):
            part: dict[str, Any] = {"text": piece}
            if isinstance(block, Thinking):
                part["thought"] = True
            yield Event("gemini.delta", _chunk([part], model), named=False)
    yield Event(
        "gemini.done",
        _chunk(
            [{"text": ""}],
            model,
            finishReason="STOP",
            usageMetadata=_usage(reply, request_chars),
        ),
        named=False,
    )
