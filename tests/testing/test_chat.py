"""The Chat Completions API of ModelServer: its wire shapes over httpx, and the real Qwen Code
CLI (an OpenAI-compatible client) offline against it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from cc_executor.testing import HttpErrorReply, ModelServer, Reply, Rule, Script, Text, ToolUse
from tests._means import agent_path

pytestmark = pytest.mark.slow


def body(prompt: str = "hi", *, tools: tuple[str, ...] = (), stream: bool = True) -> dict[str, Any]:
    return {
        "model": "qwen-test",
        "stream": stream,
        "messages": [
            {"role": "system", "content": "You are a CLI."},
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "<system-reminder>\ndate\n</system-reminder>"},
                    {"type": "text", "text": prompt},
                ],
            },
        ],
        "tools": [{"type": "function", "function": {"name": n, "parameters": {}}} for n in tools],
    }


def post(server: ModelServer, payload: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{server.url}/v1/chat/completions", json=payload, timeout=30)


def test_stream_of_chunks_ends_with_usage_and_done() -> None:
    script = Script([Rule([Reply([Text("Hello there")], chunk_size=5)])])
    with ModelServer(script) as server:
        response = post(server, body())
        prompts = [r.prompt for r in server.chat_requests]
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    assert frames[-1] == "data: [DONE]"
    chunks = [json.loads(f.removeprefix("data: ")) for f in frames[:-1]]
    deltas = [c["choices"][0]["delta"].get("content", "") for c in chunks if c["choices"]]
    assert "".join(deltas) == "Hello there"
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == []
    assert chunks[-1]["usage"]["completion_tokens"] > 0
    assert prompts == ["hi"]


def test_tool_calls_take_the_names_the_request_declares() -> None:
    reply = Reply(
        [
            ToolUse("Bash", {"command": "ls"}),
            ToolUse("Edit", {"file_path": "/a", "old_string": "x", "new_string": "y"}),
            ToolUse("Write", {"file_path": "/b", "content": "z"}),
        ]
    )
    script = Script([Rule([reply])], when_exhausted="repeat_last")
    with ModelServer(script) as server:
        declared = post(server, body(tools=("run_shell_command", "edit"), stream=False)).json()
        undeclared = post(server, body("other", stream=False)).json()
    calls = declared["choices"][0]["message"]["tool_calls"]
    assert [c["function"]["name"] for c in calls] == ["run_shell_command", "edit", "Write"]
    assert json.loads(calls[0]["function"]["arguments"]) == {"command": "ls"}
    assert declared["choices"][0]["finish_reason"] == "tool_calls"
    names = [c["function"]["name"] for c in undeclared["choices"][0]["message"]["tool_calls"]]
    assert names == ["Bash", "Edit", "Write"]


def test_errors_have_openai_bodies() -> None:
    script = Script([Rule([HttpErrorReply(429, message="slow down")])])
    with ModelServer(script) as server:
        response = post(server, body())
    assert response.status_code == 429
    assert response.json()["error"]["message"] == "slow down"
    assert response.json()["error"]["type"] == "rate_limit_exceeded"


@pytest.mark.cli
def test_real_qwen_code_runs_a_command_and_writes_a_file(tmp_path: Path) -> None:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    notes = work / "notes.txt"
    script = Script(
        [
            Rule(
                answers=[
                    Reply(
                        [Text("Working. "), ToolUse("Bash", {"command": "printf ran > shell.txt"})]
                    ),
                    Reply([ToolUse("Write", {"file_path": str(notes), "content": "a\nb\n"})]),
                    Reply(
                        [
                            ToolUse(
                                "Edit",
                                {"file_path": str(notes), "old_string": "b", "new_string": "B"},
                            )
                        ]
                    ),
                    Reply([Text("All done.")]),
                ]
            )
        ]
    )
    with ModelServer(script) as server:
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "QWEN_"))},
            "HOME": str(home),
            "OPENAI_API_KEY": "sk-cc-executor-testing",
            "OPENAI_BASE_URL": f"{server.url}/v1",
            "OPENAI_MODEL": "qwen-test",
        }
        done = subprocess.run(
            [agent_path("qwen"), "-p", "", "--auth-type", "openai", "--yolo", "-o", "stream-json"],
            input=b"do it",
            capture_output=True,
            env=env,
            cwd=work,
            timeout=120,
            check=False,
        )
        prompts = {r.prompt for r in server.chat_requests if r.prompt}
    lines = [json.loads(x) for x in done.stdout.decode().splitlines() if x.startswith("{")]
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert (work / "shell.txt").read_text() == "ran"
    assert notes.read_text() == "a\nB\n"
    result = lines[-1]
    assert result["type"] == "result"
    assert result["subtype"] == "success"
    assert result["result"] == "All done."
    assert all(p.startswith("do it") for p in prompts)
