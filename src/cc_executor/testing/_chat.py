"""How a scripted answer looks in the OpenAI Chat Completions API (Qwen Code, aider, ...).

Pure functions from script values to JSON-ready data, like :mod:`._sse` for the Messages API.
The request's prompt and turn are read as for the Messages API (``messages``, text parts,
assistant messages). Chat Completions clients name their tools as they like, so a script's
Claude-style tool call becomes the first tool the request declares among its equivalents:
``Bash`` -> ``run_shell_command``, ``shell`` or ``bash``; ``Write`` -> ``write_file``;
``Edit`` -> ``edit`` or ``replace``; otherwise the name as it is.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Mapping
from typing import Any

from cc_executor.testing._script import Reply, Text, Thinking, ToolUse
from cc_executor.testing._sse import Event, estimate_tokens

_EQUIVALENTS = {
    "Bash": ("run_shell_command", "shell", "bash"),
    "Write": ("write_file",),
    "Edit": ("edit", "replace"),
}


def declared_tools(body: Mapping[str, Any]) -> frozenset[str]:
    """The function names a Chat Completions request declares in ``tools``."""
    names = set()
    tools = body.get("tools")
    for tool in tools if isinstance(tools, list) else []:
        function = tool.get("function") if isinstance(tool, Mapping) else None
        if isinstance(function, Mapping) and isinstance(function.get("name"), str):
            names.add(function["name"])
    return frozenset(names)


def tool_name(block: ToolUse, declared: frozenset[str]) -> str:
    """The name the client knows for the scripted tool ``block.name``."""
    if block.name in declared:
        return block.name
    return next((n for n in _EQUIVALENTS.get(block.name, ()) if n in declared), block.name)


def _call(block: ToolUse, index: int, call_id: str, declared: frozenset[str]) -> dict[str, Any]:
    arguments = json.dumps(block.input, ensure_ascii=False, separators=(",", ":"))
    return {
        "index": index,
        "id": block.id or call_id,
        "type": "function",
        "function": {"name": tool_name(block, declared), "arguments": arguments},
    }


def _usage(reply: Reply, request_chars: int) -> dict[str, int]:
    usage = reply.usage
    prompt = (
        usage.input_tokens if usage.input_tokens is not None else estimate_tokens(request_chars)
    )
    chars = sum(
        len(b.text) if isinstance(b, Text) else len(b.thinking) if isinstance(b, Thinking) else 64
        for b in reply.blocks
    )
    output = usage.output_tokens if usage.output_tokens is not None else estimate_tokens(chars)
    return {"prompt_tokens": prompt, "completion_tokens": output, "total_tokens": prompt + output}


def _finish(reply: Reply) -> str:
    return "tool_calls" if any(isinstance(b, ToolUse) for b in reply.blocks) else "stop"


def response_json(
    reply: Reply, *, seed: str, model: str, request_chars: int, declared: frozenset[str]
) -> dict[str, Any]:
    """The whole answer, as a non-streaming ``POST /v1/chat/completions`` returns it."""
    text = "".join(b.text for b in reply.blocks if isinstance(b, Text))
    calls = [
        _call(b, i, f"call_{seed[:20]}{i:02d}", declared)
        for i, b in enumerate(x for x in reply.blocks if isinstance(x, ToolUse))
    ]
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
    return {
        "id": f"chatcmpl-{seed[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "message": message, "finish_reason": _finish(reply)}],
        "usage": _usage(reply, request_chars),
    }


def _chunks(text: str, size: int) -> Iterator[str]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


def stream_events(
    reply: Reply, *, seed: str, model: str, request_chars: int, declared: frozenset[str]
) -> Iterator[Event]:
    """The chunks of a streamed answer on ``data:`` lines: the role, text (and thinking as
    ``reasoning_content``) in pieces of ``reply.chunk_size``, each tool call whole, a chunk
    with the ``finish_reason``, one with the usage, then ``data: [DONE]``."""
    base = {
        "id": f"chatcmpl-{seed[:24]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    yield Event("chat.start", chunk({"role": "assistant", "content": ""}), named=False)
    calls = 0
    for block in reply.blocks:
        if isinstance(block, ToolUse):
            call = _call(block, calls, f"call_{seed[:20]}{calls:02d}", declared)
            calls += 1
            yield Event("chat.call", chunk({"tool_calls": [call]}), named=False)
            continue
        key = "content" if isinstance(block, Text) else "reasoning_content"
        text = block.text if isinstance(block, Text) else block.thinking
        for piece in _chunks(text, reply.chunk_size):
            yield Event("chat.delta", chunk({key: piece}), named=False)
    yield Event("chat.finish", chunk({}, _finish(reply)), named=False)
    usage = {**base, "choices": [], "usage": _usage(reply, request_chars)}
    yield Event("chat.usage", usage, named=False)
    yield Event("chat.done", {}, named=False, raw=b"data: [DONE]\n\n")
