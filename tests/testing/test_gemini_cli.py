"""The Gemini API of ModelServer: its wire shapes over httpx, and the real Gemini CLI offline.

The CLI tests run the pinned ``gemini -p`` with ``--output-format stream-json`` against the
scripted server (``ModelServer.gemini_env()``) and check what it printed and did to the disk.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
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
from tests._means import gemini_path

pytestmark = pytest.mark.slow

MODEL = "gemini-2.5-flash"


def body(prompt: str = "hi", *, answers: int = 0) -> dict[str, Any]:
    """A Gemini request as the CLI sends it: its session context, then the prompt, then
    ``answers`` model turns with their function responses."""
    contents: list[dict[str, Any]] = [
        {
            "role": "user",
            "parts": [{"text": "<session_context>\nctx\n</session_context>"}, {"text": prompt}],
        }
    ]
    for n in range(answers):
        contents.append({"role": "model", "parts": [{"functionCall": {"name": "x", "args": {}}}]})
        contents.append(
            {"role": "user", "parts": [{"functionResponse": {"name": "x", "response": {"n": n}}}]}
        )
    return {"contents": contents, "generationConfig": {}}


def url(server: ModelServer, method: str) -> str:
    return f"{server.url}/v1beta/models/{MODEL}:{method}"


def data_lines(response: httpx.Response) -> list[dict[str, Any]]:
    frames = [f for f in response.text.split("\n\n") if f.strip()]
    assert all(f.startswith("data: ") and "\n" not in f for f in frames), frames[:2]
    return [json.loads(f.removeprefix("data: ")) for f in frames]


def test_stream_is_data_lines_of_candidates() -> None:
    script = Script(
        [Rule([Reply([Thinking("hm"), "Hello there"], chunk_size=5, usage=Usage(input_tokens=9))])]
    )
    with ModelServer(script) as server:
        response = httpx.post(url(server, "streamGenerateContent") + "?alt=sse", json=body())
        recorded = server.gemini_requests
    chunks = data_lines(response)
    parts = [c["candidates"][0]["content"]["parts"][0] for c in chunks]
    assert parts[0] == {"text": "hm", "thought": True}
    assert "".join(p["text"] for p in parts[1:]) == "Hello there"
    assert chunks[-1]["candidates"][0]["finishReason"] == "STOP"
    assert chunks[-1]["usageMetadata"]["promptTokenCount"] == 9
    assert all(c["candidates"][0]["content"]["role"] == "model" for c in chunks)
    assert [r.prompt for r in recorded] == ["hi"]


def test_tools_become_gemini_cli_calls_and_turns_count_model_contents() -> None:
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": "ls"})]),
                    Reply([ToolUse("Write", {"file_path": "a", "content": "x"})]),
                    Reply(
                        [ToolUse("Edit", {"file_path": "a", "old_string": "x", "new_string": "y"})]
                    ),
                ]
            )
        ]
    )
    with ModelServer(script) as server:
        calls = [
            httpx.post(url(server, "generateContent"), json=body(answers=n)).json()["candidates"][
                0
            ]["content"]["parts"][0]["functionCall"]
            for n in range(3)
        ]
        turns = [r.turn for r in server.gemini_requests]
    assert calls[0] == {"name": "run_shell_command", "args": {"command": "ls"}}
    assert calls[1] == {"name": "write_file", "args": {"file_path": "a", "content": "x"}}
    assert calls[2]["name"] == "replace"
    assert calls[2]["args"]["new_string"] == "y"
    assert calls[2]["args"]["instruction"]
    assert turns == [0, 1, 2]


def test_errors_have_google_bodies() -> None:
    script = Script([Rule([HttpErrorReply(429, message="quota", retry_after=2)])])
    with ModelServer(script) as server:
        response = httpx.post(url(server, "streamGenerateContent"), json=body())
        tokens = httpx.post(url(server, "countTokens"), json=body())
        other = httpx.post(url(server, "embedContent"), json=body())
    assert response.status_code == 429
    assert response.json() == {
        "error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}
    }
    assert response.headers["retry-after"] == "2"
    assert tokens.json()["totalTokens"] >= 1
    assert other.status_code == 404


def test_gemini_env_and_settings(tmp_path: Path) -> None:
    with ModelServer(Script([Rule([Reply(["x"])])])) as server:
        env = server.gemini_env(tmp_path, base={"PATH": "/bin", "GOOGLE_API_KEY": "real"})
        server_url = server.url
    assert env == {
        "PATH": "/bin",
        "GOOGLE_GEMINI_BASE_URL": server_url,
        "GEMINI_API_KEY": "cc-executor-testing",
        "GEMINI_CLI_HOME": str(tmp_path),
        "GEMINI_CLI_NO_RELAUNCH": "true",
    }
    settings = Path(ModelServer.write_gemini_settings(tmp_path))
    assert json.loads(settings.read_text())["security"]["auth"]["selectedType"] == "gemini-api-key"


def run_gemini(
    server: ModelServer, prompt: str, tmp_path: Path
) -> tuple[int, list[dict[str, Any]]]:
    workdir, home = tmp_path / "work", tmp_path / "gemini-home"
    workdir.mkdir(exist_ok=True)
    ModelServer.write_gemini_settings(home)
    done = subprocess.run(
        [
            gemini_path(),
            "-p",
            "",
            "--skip-trust",
            "-m",
            MODEL,
            "--approval-mode",
            "yolo",
            "--output-format",
            "stream-json",
        ],
        input=prompt.encode(),
        capture_output=True,
        check=False,
        env=server.gemini_env(home, base=os.environ),
        cwd=workdir,
        timeout=120,
    )
    lines = [json.loads(line) for line in done.stdout.decode().splitlines() if line.startswith("{")]
    return done.returncode, lines


@pytest.mark.cli
def test_real_cli_text_shell_write_and_edit(tmp_path: Path) -> None:
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": "printf ran > shell.txt"})]),
                    Reply([ToolUse("Write", {"file_path": "notes.txt", "content": "a\nb\n"})]),
                    Reply(
                        [
                            ToolUse(
                                "Edit",
                                {"file_path": "notes.txt", "old_string": "b", "new_string": "B"},
                            )
                        ]
                    ),
                    Reply(["All done."]),
                ]
            )
        ]
    )
    with ModelServer(script) as server:
        code, lines = run_gemini(server, "do it", tmp_path)
        prompts = {r.prompt for r in server.gemini_requests}
    assert code == 0, lines
    work = tmp_path / "work"
    assert (work / "shell.txt").read_text() == "ran"
    assert (work / "notes.txt").read_text() == "a\nB\n"
    assert [x["tool_name"] for x in lines if x["type"] == "tool_use"] == [
        "run_shell_command",
        "write_file",
        "replace",
    ]
    assert [x["status"] for x in lines if x["type"] == "tool_result"] == ["success"] * 3
    answer = "".join(
        x["content"] for x in lines if x["type"] == "message" and x["role"] == "assistant"
    )
    assert answer == "All done."
    assert lines[-1]["type"] == "result"
    assert lines[-1]["status"] == "success"
    assert prompts == {"do it"}


@pytest.mark.cli
def test_real_cli_api_error_exits_with_the_status(tmp_path: Path) -> None:
    script = Script([Rule([HttpErrorReply(400, message="bad scripted request")])])
    with ModelServer(script) as server:
        code, lines = run_gemini(server, "anything", tmp_path)
    assert code == 400 % 256  # Gemini CLI exits with the HTTP status modulo 256
    assert lines[-1]["status"] == "error"
    assert "bad scripted request" in lines[-1]["error"]["message"]
