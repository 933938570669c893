"""How a scripted answer looks in the OpenAI Responses API, as the Codex CLI consumes it.

Pure functions from script values to JSON-ready data, like :mod:`._sse` for the Messages API.
A script is written once, with Claude Code's tool names; each tool call is rendered here as the
call Codex CLI would make for the same effect (docs/agents/codex-0.171.0-observed.md):

- ``Bash {command}`` -> a ``function_call`` of ``exec_command {cmd, yield_time_ms}`` (Codex
  runs it through ``bash -lc`` and reports a ``command_execution`` item). Codex waits at
  most 30 s for it; when it says the command is still running, the server answers with a
  ``write_stdin`` that waits for it again (:func:`still_running`), so the command always
  runs to its end, as Claude Code's Bash does;
- ``Write {file_path, content}`` and ``Edit {file_path, old_string, new_string}`` -> a
  ``custom_tool_call`` of Codex's code-mode tool ``exec`` whose JavaScript calls
  ``tools.apply_patch`` with an ``Add File`` / ``Update File`` patch (a ``file_change`` item);
- ``exec {code}`` -> that ``custom_tool_call`` with ``code`` as it is (any code-mode script);
- any other name -> a ``function_call`` of that name with the input as its JSON arguments.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from cc_executor.testing._playback import WAIT_PREFIX
from cc_executor.testing._script import HttpErrorReply, Reply, Text, Thinking, ToolUse
from cc_executor.testing._sse import Event, estimate_tokens

# How long Codex waits for a scripted Bash command before it answers the model with the
# output so far and leaves the command running (killed when the run ends). Its default is
# about 10 s; Codex 0.171.0 caps what is asked at 30 s, so a slower command is waited for
# again (still_running). A script's Bash call means "run this to the end", as Claude Code's.
_YIELD_MS = 120_000
# An empty write_stdin may wait up to Codex's background_terminal_max_timeout (300 s).
_WAIT_MS = 300_000
# How Codex's answer to exec_command/write_stdin says the command has not ended.
_RUNNING = re.compile(r"^Process running with session ID (\d+)$", re.MULTILINE)


def _is_scripted_wait(call: Mapping[str, Any]) -> bool:
    """Whether ``call`` is a scripted Bash call's exec_command or one of our waits for it."""
    name, call_id = call.get("name"), call.get("call_id")
    if name == "write_stdin":
        return isinstance(call_id, str) and call_id.startswith(WAIT_PREFIX)
    if name != "exec_command" or not isinstance(call.get("arguments"), str):
        return False
    try:
        arguments = json.loads(call["arguments"])
    except ValueError:
        return False
    return isinstance(arguments, dict) and arguments.get("yield_time_ms") == _YIELD_MS


def still_running(body: Mapping[str, Any]) -> int | None:
    """The session id of a scripted Bash command that Codex says is still running, when
    that is what the request ends with; None otherwise."""
    items = body.get("input")
    if not isinstance(items, list) or not items:
        return None
    last = items[-1]
    if not isinstance(last, Mapping) or last.get("type") != "function_call_output":
        return None
    output = last.get("output")
    found = _RUNNING.search(output) if isinstance(output, str) else None
    if found is None:
        return None
    for item in items:
        if (
            isinstance(item, Mapping)
            and item.get("type") == "function_call"
            and item.get("call_id") == last.get("call_id")
            and _is_scripted_wait(item)
        ):
            return int(found.group(1))
    return None


def wait_reply(session_id: int, seed: str) -> Reply:
    """The answer that waits again for the command of ``session_id`` (no input sent)."""
    arguments = {"session_id": session_id, "chars": "", "yield_time_ms": _WAIT_MS}
    return Reply([ToolUse("write_stdin", arguments, id=f"{WAIT_PREFIX}{seed[:24]}")])


# OpenAI's error types by status; ``HttpErrorReply.error_type`` overrides them.
_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "invalid_request_error",
    403: "invalid_request_error",
    404: "invalid_request_error",
    429: "rate_limit_exceeded",
}
# Messages API type names a script may give, and their Responses API equivalents.
_FROM_ANTHROPIC = {
    "rate_limit_error": "rate_limit_exceeded",
    "api_error": "server_error",
    "overloaded_error": "server_error",
    "authentication_error": "invalid_request_error",
    "permission_error": "invalid_request_error",
    "not_found_error": "invalid_request_error",
}


def error_type(error: HttpErrorReply) -> str:
    """The ``error.type`` a Responses API client gets for ``error``."""
    if error.error_type is not None:
        return _FROM_ANTHROPIC.get(error.error_type, error.error_type)
    fallback = "server_error" if error.status >= 500 else "invalid_request_error"
    return _ERROR_TYPES.get(error.status, fallback)


def error_json(error: HttpErrorReply) -> dict[str, Any]:
    """The OpenAI-style error body: ``{"error": {"message", "type", "param", "code"}}``."""
    kind = error_type(error)
    message = error.message or f"Scripted {error.status} error ({kind})"
    code = kind if error.status == 429 else None
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


def _patch_lines(text: str, mark: str) -> list[str]:
    # apply_patch works on lines: a trailing newline does not make an extra empty line.
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [mark + line for line in lines]


def _patch(block: ToolUse) -> str | None:
    """The apply_patch text for a Write or Edit call, or None if its input does not fit."""
    path = block.input.get("file_path")
    if not isinstance(path, str) or not path:
        return None
    if block.name == "Write":
        content = block.input.get("content", "")
        if not isinstance(content, str):
            return None
        body = _patch_lines(content, "+")
        return "\n".join(["*** Begin Patch", f"*** Add File: {path}", *body, "*** End Patch", ""])
    old, new = block.input.get("old_string"), block.input.get("new_string")
    if not isinstance(old, str) or not isinstance(new, str):
        return None
    hunk = ["@@", *_patch_lines(old, "-"), *_patch_lines(new, "+")]
    return "\n".join(["*** Begin Patch", f"*** Update File: {path}", *hunk, "*** End Patch", ""])


def tool_item(block: ToolUse, call_id: str) -> dict[str, Any]:
    """The output item (``function_call`` or ``custom_tool_call``) for a scripted tool call."""
    code: str | None = None
    if block.name in ("Write", "Edit"):
        patch = _patch(block)
        if patch is not None:
            # json.dumps of a str is a valid JavaScript string literal.
            code = f"await tools.apply_patch({json.dumps(patch)});"
    elif block.name == "exec" and isinstance(block.input.get("code"), str):
        code = block.input["code"]
    if code is not None:
        return {
            "type": "custom_tool_call",
            "id": f"ctc_{call_id}",
            "call_id": call_id,
            "name": "exec",
            "input": code,
            "status": "completed",
        }
    name, arguments = block.name, dict(block.input)
    if block.name == "Bash" and isinstance(block.input.get("command"), str):
        name, arguments = (
            "exec_command",
            {"cmd": block.input["command"], "yield_time_ms": _YIELD_MS},
        )
    return {
        "type": "function_call",
        "id": f"fc_{call_id}",
        "call_id": call_id,
        "name": name,
        "arguments": json.dumps(arguments, ensure_ascii=False, separators=(",", ":")),
        "status": "completed",
    }


def _item(block: Text | Thinking | ToolUse, item_id: str) -> dict[str, Any]:
    if isinstance(block, Text):
        return {
            "type": "message",
            "id": f"msg_{item_id}",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": block.text, "annotations": []}],
        }
    if isinstance(block, Thinking):
        return {
            "type": "reasoning",
            "id": f"rs_{item_id}",
            "summary": [{"type": "summary_text", "text": block.thinking}],
        }
    return tool_item(block, block.id or f"call_{item_id}")


def _output_chars(items: list[dict[str, Any]]) -> int:
    return sum(len(json.dumps(item, ensure_ascii=False)) for item in items)


def usage_json(reply: Reply, items: list[dict[str, Any]], request_chars: int) -> dict[str, Any]:
    """The ``usage`` object of a response, with estimates where the script gives none."""
    usage = reply.usage
    inputs = (
        usage.input_tokens if usage.input_tokens is not None else estimate_tokens(request_chars)
    )
    outputs = (
        usage.output_tokens
        if usage.output_tokens is not None
        else estimate_tokens(_output_chars(items))
    )
    return {
        "input_tokens": inputs,
        "input_tokens_details": {"cached_tokens": usage.cache_read_input_tokens},
        "output_tokens": outputs,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": inputs + outputs,
    }


def _items(reply: Reply, seed: str) -> list[dict[str, Any]]:
    return [_item(block, f"{seed[:24]}{index:02d}") for index, block in enumerate(reply.blocks)]


def _response(
    response_id: str, model: str, status: str, output: list[dict[str, Any]]
) -> dict[str, Any]:
    return {
        "id": response_id,
        "object": "response",
        "status": status,
        "model": model,
        "output": output,
    }


def response_json(reply: Reply, *, seed: str, model: str, request_chars: int) -> dict[str, Any]:
    """The whole response, as a non-streaming ``POST /v1/responses`` returns it."""
    items = _items(reply, seed)
    body = _response(f"resp_{seed[:24]}", model, "completed", items)
    body["usage"] = usage_json(reply, items, request_chars)
    return body


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def _deltas(item: Mapping[str, Any], index: int, size: int) -> Iterator[dict[str, Any]]:
    base = {"item_id": item["id"], "output_index": index}
    if item["type"] == "message":
        for part in _chunks(item["content"][0]["text"], size):
            yield {"type": "response.output_text.delta", **base, "content_index": 0, "delta": part}
    elif item["type"] == "reasoning":
        for part in _chunks(item["summary"][0]["text"], size):
            yield {
                "type": "response.reasoning_summary_text.delta",
                **base,
                "summary_index": 0,
                "delta": part,
            }
    elif item["type"] == "function_call":
        for part in _chunks(item["arguments"], size):
            yield {"type": "response.function_call_arguments.delta", **base, "delta": part}
    else:
        for part in _chunks(item["input"], size):
            yield {"type": "response.custom_tool_call_input.delta", **base, "delta": part}


def _started(item: Mapping[str, Any]) -> dict[str, Any]:
    """The item as ``response.output_item.added`` announces it: no content yet."""
    kind = item["type"]
    if kind == "reasoning":
        return {**item, "summary": []}
    empty = {"message": "content", "function_call": "arguments", "custom_tool_call": "input"}
    field = empty[kind]
    return {**item, field: [] if field == "content" else "", "status": "in_progress"}


def stream_events(reply: Reply, *, seed: str, model: str, request_chars: int) -> Iterator[Event]:
    """The events of a streamed response, in order, as the Responses API sends them.

    ``response.created``, ``response.in_progress``, then per output item
    ``response.output_item.added``, its deltas of ``reply.chunk_size`` characters (text,
    reasoning summary, function arguments or custom tool input), ``response.output_item.done``;
    then ``response.completed`` with the output and usage. The deltas are what
    ``Reply.delay`` paces and ``Reply.drop_after`` counts.
    """
    response_id = f"resp_{seed[:24]}"
    items = _items(reply, seed)
    yield Event(
        "response.created",
        {"type": "response.created", "response": _response(response_id, model, "in_progress", [])},
    )
    yield Event(
        "response.in_progress",
        {
            "type": "response.in_progress",
            "response": _response(response_id, model, "in_progress", []),
        },
    )
    for index, item in enumerate(items):
        yield Event(
            "response.output_item.added",
            {"type": "response.output_item.added", "output_index": index, "item": _started(item)},
        )
        for delta in _deltas(item, index, reply.chunk_size):
            yield Event(delta["type"], delta)
        yield Event(
            "response.output_item.done",
            {"type": "response.output_item.done", "output_index": index, "item": item},
        )
    done = _response(response_id, model, "completed", items)
    done["usage"] = usage_json(reply, items, request_chars)
    yield Event("response.completed", {"type": "response.completed", "response": done})
