"""ModelServer's OpenAI Responses API over real HTTP (httpx): the shapes Codex CLI consumes."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from cc_executor.testing import (
    HttpErrorReply,
    ModelServer,
    Reply,
    Rule,
    Script,
    Thinking,
    ToolUse,
    Usage,
)
from tests.testing.test_server import sse_events

# Each test starts the scripted model server: not for the fast tier (no servers).
pytestmark = pytest.mark.slow


def user(text: str) -> dict[str, Any]:
    return {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}


def body(prompt: str = "hi", *, answers: int = 0, stream: bool = True) -> dict[str, Any]:
    """A Responses API body as Codex sends it: environment first, the prompt last, then
    ``answers`` model answers (a tool call each) with their outputs."""
    items: list[dict[str, Any]] = [
        {"type": "additional_tools", "role": "developer", "tools": []},
        user("<environment_context>\n  <cwd>/w</cwd>\n</environment_context>"),
        user(prompt),
    ]
    for n in range(answers):
        items.append({"type": "reasoning", "id": f"rs_{n}", "summary": []})
        items.append(
            {"type": "function_call", "call_id": f"c{n}", "name": "exec_command", "arguments": "{}"}
        )
        items.append({"type": "function_call_output", "call_id": f"c{n}", "output": "ok"})
    return {"model": "gpt-test", "stream": stream, "input": items}


def post(server: ModelServer, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/responses", json=payload, timeout=30)


def test_streamed_text_has_the_responses_event_sequence() -> None:
    script = Script([Rule([Reply(["Hello there"], chunk_size=4, usage=Usage(input_tokens=7))])])
    with ModelServer(script) as server:
        response = post(server, body())
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    names = [name for name, _ in events]
    assert names[:3] == ["response.created", "response.in_progress", "response.output_item.added"]
    assert names[-2:] == ["response.output_item.done", "response.completed"]
    deltas = [data["delta"] for name, data in events if name == "response.output_text.delta"]
    assert deltas == ["Hell", "o th", "ere"]
    done = events[-1][1]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"][0]["text"] == "Hello there"
    assert done["output"][0]["role"] == "assistant"
    usage = done["usage"]
    assert usage["input_tokens"] == 7
    assert usage["total_tokens"] == 7 + usage["output_tokens"]


def test_scripted_tools_become_the_calls_codex_makes() -> None:
    reply = Reply(
        [
            Thinking("plan"),
            ToolUse("Bash", {"command": "echo hi > a.txt"}),
            ToolUse("Write", {"file_path": "b.txt", "content": "one\ntwo\n"}),
            ToolUse("Edit", {"file_path": "b.txt", "old_string": "two", "new_string": "2"}),
            ToolUse("view_image", {"path": "x.png"}),
        ]
    )
    with ModelServer(Script([Rule([reply])])) as server:
        output = post(server, body(stream=False)).json()["output"]
    reasoning, bash, write, edit, other = output
    assert reasoning["type"] == "reasoning"
    assert reasoning["summary"] == [{"type": "summary_text", "text": "plan"}]
    assert bash["type"] == "function_call"
    assert bash["name"] == "exec_command"
    assert json.loads(bash["arguments"]) == {"cmd": "echo hi > a.txt", "yield_time_ms": 120_000}
    assert write["type"] == "custom_tool_call"
    assert write["name"] == "exec"
    patch = "*** Begin Patch\n*** Add File: b.txt\n+one\n+two\n*** End Patch\n"
    assert write["input"] == f"await tools.apply_patch({json.dumps(patch)});"
    assert json.dumps("*** Update File: b.txt\n@@\n-two\n+2\n")[1:-1] in edit["input"]
    assert other["name"] == "view_image"
    assert json.loads(other["arguments"]) == {"path": "x.png"}
    assert len({item["call_id"] for item in (bash, write, edit, other)}) == 4


def test_prompt_is_the_last_user_message_and_turns_count_answers() -> None:
    script = Script(
        [
            Rule(match="^first", answers=[Reply(["one-0"]), Reply(["one-1"]), Reply(["one-2"])]),
            Rule(answers=[Reply(["other"])]),
        ]
    )
    with ModelServer(script) as server:
        texts = [
            post(server, body("first task", answers=n, stream=False)).json()["output"][0]
            for n in range(3)
        ]
        assert [t["content"][0]["text"] for t in texts] == ["one-0", "one-1", "one-2"]
        # The environment message (an earlier user message) never names the conversation.
        other = post(server, body("second", stream=False)).json()["output"][0]
        assert other["content"][0]["text"] == "other"
        recorded = server.responses_requests
    assert [r.prompt for r in recorded] == ["first task"] * 3 + ["second"]
    assert [r.turn for r in recorded] == [0, 1, 2, 0]


def test_a_scripted_command_codex_left_running_is_waited_for_to_its_end() -> None:
    """Codex 0.171.0 waits at most 30 s for exec_command, then says the process is still
    running and kills it when the run ends: the server waits for it again (write_stdin)
    instead of going on with the script, whose next answer comes once it has ended."""
    script = Script([Rule([Reply([ToolUse("Bash", {"command": "make"})]), Reply(["Built."])])])
    with ModelServer(script) as server:
        (bash,) = post(server, body("build", stream=False)).json()["output"]
        items = body("build")["input"]
        running = "Chunk ID: 1\nWall time: 30.0 seconds\nProcess running with session ID 4242\n"
        items += [
            bash,
            {"type": "function_call_output", "call_id": bash["call_id"], "output": running},
        ]
        (wait,) = post(server, {"stream": False, "input": items}).json()["output"]
        assert wait["name"] == "write_stdin"
        assert json.loads(wait["arguments"]) == {
            "session_id": 4242,
            "chars": "",
            "yield_time_ms": 300_000,
        }
        items += [
            wait,
            {"type": "function_call_output", "call_id": wait["call_id"], "output": running},
        ]
        (again,) = post(server, {"stream": False, "input": items}).json()["output"]
        assert json.loads(again["arguments"])["session_id"] == 4242
        assert again["call_id"] != wait["call_id"]
        ended = "Wall time: 2.0 seconds\nProcess exited with code 0\n"
        items += [
            again,
            {"type": "function_call_output", "call_id": again["call_id"], "output": ended},
        ]
        (text,) = post(server, {"stream": False, "input": items}).json()["output"]
        # A function call the script made itself is its own business: no wait.
        other = {
            "type": "function_call",
            "call_id": "c9",
            "name": "exec_command",
            "arguments": "{}",
        }
        mine = [*body("build")["input"], other]
        mine.append({"type": "function_call_output", "call_id": "c9", "output": running})
        (not_waited,) = post(server, {"stream": False, "input": mine}).json()["output"]
        turns = [r.turn for r in server.responses_requests]
    assert text["content"][0]["text"] == "Built."
    assert not_waited["content"][0]["text"] == "Built."
    assert turns == [0, 1, 1, 1, 1]


def test_errors_have_openai_bodies() -> None:
    script = Script(
        [
            Rule(match="limit", answers=[HttpErrorReply(429, retry_after=3)]),
            Rule(match="bad", answers=[HttpErrorReply(400, message="context too long")]),
            Rule(answers=[HttpErrorReply(500, error_type="overloaded_error")]),
        ]
    )
    with ModelServer(script) as server:
        limited = post(server, body("limit"))
        bad = post(server, body("bad"))
        broken = post(server, body("x"))
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3"
    assert limited.json()["error"]["type"] == "rate_limit_exceeded"
    assert limited.json()["error"]["code"] == "rate_limit_exceeded"
    assert bad.json() == {
        "error": {
            "message": "context too long",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }
    assert broken.status_code == 500
    assert broken.json()["error"]["type"] == "server_error"


def test_dropped_stream_stops_before_the_item_is_done() -> None:
    script = Script([Rule([Reply(["abcdefgh"], chunk_size=2, drop_after=2)])])
    with ModelServer(script) as server, pytest.raises(httpx.RemoteProtocolError):
        post(server, body())
    with ModelServer(script) as server:
        frames = []
        try:
            with httpx.stream("POST", f"{server.url}/v1/responses", json=body()) as stream:
                for line in stream.iter_lines():
                    frames.append(line)
        except httpx.RemoteProtocolError:
            pass
    kinds = [f.removeprefix("event: ") for f in frames if f.startswith("event: ")]
    assert kinds.count("response.output_text.delta") == 2
    assert "response.output_item.done" not in kinds
    assert "response.completed" not in kinds


def test_codex_env_and_args_point_at_the_server() -> None:
    with ModelServer(Script([Rule([Reply(["x"])])])) as server:
        env = server.codex_env(
            "/data/codex-home",
            base={"PATH": "/bin", "OPENAI_BASE_URL": "http://elsewhere", "CODEX_HOME": "/u"},
        )
        args = server.codex_args(retries=2)
        url = server.url
    assert env == {
        "PATH": "/bin",
        "CODEX_HOME": "/data/codex-home",
        "OPENAI_API_KEY": "sk-cc-executor-testing",
    }
    overrides = args[1::2]
    assert set(args[0::2]) == {"-c"}
    assert f'model_providers.cc_executor_testing.base_url="{url}/v1"' in overrides
    assert 'model_providers.cc_executor_testing.wire_api="responses"' in overrides
    assert "model_providers.cc_executor_testing.request_max_retries=2" in overrides
