"""Script validation: Python objects, plain data, JSON and YAML files, and their error messages."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import (
    HttpErrorReply,
    Reply,
    Rule,
    Script,
    ScriptError,
    Text,
    Thinking,
    ToolUse,
    Usage,
    load_script,
    parse_script,
)

FULL_YAML = """\
when_exhausted: repeat_last
rules:
  - match: "(?i)write"
    answers:
      - tool_use: {name: Write, input: {file_path: a.txt, content: "A\\n"}, id: toolu_1}
        chunk_size: 8
      - text: done
        delay: 0.5
        latency: 1
        usage: {input_tokens: 10, output_tokens: 2, cache_read_input_tokens: 5}
  - answers:
      - content:
          - thinking: hmm
            signature: sig
          - text: hello
          - tool_use: {name: Bash, input: {command: ls}}
        stop_reason: max_tokens
        drop_after: 2
        drop_non_streaming: true
        errors_before:
          - error: {status: 529}
          - error: {status: 429, retry_after: 0}
            latency: 0.1
      - error: {status: 500, message: boom, type: api_error, headers: {x-should-retry: "false"}}
        latency: 2
"""

FULL_SCRIPT = Script(
    [
        Rule(
            [
                Reply(
                    [ToolUse("Write", {"file_path": "a.txt", "content": "A\n"}, id="toolu_1")],
                    chunk_size=8,
                ),
                Reply(
                    ["done"],
                    delay=0.5,
                    latency=1.0,
                    usage=Usage(input_tokens=10, output_tokens=2, cache_read_input_tokens=5),
                ),
            ],
            match="(?i)write",
        ),
        Rule(
            [
                Reply(
                    [Thinking("hmm", "sig"), Text("hello"), ToolUse("Bash", {"command": "ls"})],
                    stop_reason="max_tokens",
                    drop_after=2,
                    drop_non_streaming=True,
                    errors_before=[
                        HttpErrorReply(529),
                        HttpErrorReply(429, retry_after=0, latency=0.1),
                    ],
                ),
                HttpErrorReply(
                    500,
                    message="boom",
                    error_type="api_error",
                    headers={"x-should-retry": "false"},
                    latency=2.0,
                ),
            ]
        ),
    ],
    when_exhausted="repeat_last",
)


def test_yaml_file_gives_the_same_script_as_python_objects(tmp_path: Path) -> None:
    path = tmp_path / "script.yaml"
    path.write_text(FULL_YAML)
    assert load_script(path) == FULL_SCRIPT


def test_json_file(tmp_path: Path) -> None:
    import yaml

    path = tmp_path / "script.json"
    path.write_text(json.dumps(yaml.safe_load(FULL_YAML)))
    assert load_script(path) == FULL_SCRIPT


def test_shipped_example_is_valid() -> None:
    example = resources.files("cc_executor.testing") / "examples" / "write_file.yaml"
    with resources.as_file(example) as path:
        script = load_script(path)
    first = script.rules[0].answers[0]
    assert isinstance(first, Reply)
    assert first.blocks[0] == ToolUse(
        "Write", {"file_path": "hello.txt", "content": "Hello from the scripted model.\n"}
    )


def test_defaults() -> None:
    reply = Reply(["hi"])
    assert reply.blocks == (Text("hi"),)
    assert reply.resolved_stop_reason == "end_turn"
    assert Reply([ToolUse("Bash")]).resolved_stop_reason == "tool_use"
    assert Reply([]).resolved_stop_reason == "end_turn"
    assert HttpErrorReply(429).resolved_type == "rate_limit_error"
    assert HttpErrorReply(503).resolved_type == "api_error"
    assert HttpErrorReply(400).resolved_message == "Scripted 400 error (invalid_request_error)"
    assert Script([Rule([reply])]).when_exhausted == "error"
    assert Rule([reply]).matches("anything")
    assert not Rule([reply], match="^x").matches("anything")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "script: expected a mapping, got list"),
        ({}, "script: missing key 'rules'"),
        ({"rules": [], "extra": 1}, "script: unknown key 'extra' (allowed: rules, when_exhausted)"),
        ({"rules": {}}, "rules: expected a list, got mapping"),
        ({"rules": []}, "rules: expected at least one rule"),
        ({"rules": [{"answer": []}]}, "rules[0]: unknown key 'answer' (allowed: match, answers)"),
        ({"rules": [{"match": "x"}]}, "rules[0]: missing key 'answers'"),
        ({"rules": [{"answers": []}]}, "rules[0].answers: expected at least one answer"),
        (
            {"rules": [{"match": "(", "answers": [{"text": "x"}]}]},
            "rules[0].match: invalid regular expression '(': "
            "missing ), unterminated subpattern at position 0",
        ),
        (
            {"rules": [{"match": 3, "answers": [{"text": "x"}]}]},
            "rules[0].match: expected a string, got int",
        ),
        (
            {"rules": [{"answers": [{}]}]},
            "rules[0].answers[0]: an answer needs exactly one of: "
            "text, thinking, tool_use, content, error",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "tool_use": {"name": "X"}}]}]},
            "rules[0].answers[0]: an answer needs exactly one of: "
            "text, thinking, tool_use, content, error (got text, tool_use)",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "chunk": 3}]}]},
            "rules[0].answers[0]: unknown key 'chunk' (allowed: text, stop_reason, chunk_size, "
            "delay, latency, drop_after, drop_non_streaming, usage, errors_before)",
        ),
        (
            {"rules": [{"answers": [{"text": 5}]}]},
            "rules[0].answers[0].text: expected a string, got int",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "chunk_size": 0}]}]},
            "rules[0].answers[0].chunk_size: expected an integer >= 1, got 0",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "delay": -1}]}]},
            "rules[0].answers[0].delay: expected a finite number of seconds >= 0, got -1",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "delay": float("inf")}]}]},
            "rules[0].answers[0].delay: expected a finite number of seconds >= 0, got inf",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "drop_after": "3"}]}]},
            "rules[0].answers[0].drop_after: expected an integer >= 0, got '3'",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "drop_non_streaming": "yes"}]}]},
            "rules[0].answers[0].drop_non_streaming: expected true or false, got 'yes'",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "usage": {"input_tokens": -2}}]}]},
            "rules[0].answers[0].usage.input_tokens: expected an integer >= 0, got -2",
        ),
        (
            {"rules": [{"answers": [{"tool_use": {"input": {}}}]}]},
            "rules[0].answers[0].tool_use: missing key 'name'",
        ),
        (
            {"rules": [{"answers": [{"tool_use": {"name": "Bash", "input": ["ls"]}}]}]},
            "rules[0].answers[0].tool_use.input: expected a mapping, got list",
        ),
        (
            {"rules": [{"answers": [{"content": [{"text": "a"}, {"image": "x"}]}]}]},
            "rules[0].answers[0].content[1]: "
            "a block needs exactly one of: text, thinking, tool_use",
        ),
        (
            {"rules": [{"answers": [{"error": {"status": 200}}]}]},
            "rules[0].answers[0].error.status: expected an HTTP error status 400-599, got 200",
        ),
        (
            {"rules": [{"answers": [{"error": {"message": "x"}}]}]},
            "rules[0].answers[0].error: missing key 'status'",
        ),
        (
            {"rules": [{"answers": [{"error": {"status": 500, "retry": 1}}]}]},
            "rules[0].answers[0].error: unknown key 'retry' "
            "(allowed: status, message, type, retry_after, headers)",
        ),
        (
            {"rules": [{"answers": [{"error": {"status": 500, "headers": {"a": 1}}}]}]},
            "rules[0].answers[0].error.headers.a: expected a string, got int",
        ),
        (
            {"rules": [{"answers": [{"error": {"status": 500}, "delay": 1}]}]},
            "rules[0].answers[0]: unknown key 'delay' (allowed: error, latency)",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "errors_before": [{"status": 529}]}]}]},
            "rules[0].answers[0].errors_before[0]: unknown key 'status' (allowed: error, latency)",
        ),
        (
            {"rules": [{"answers": [{"text": "a"}]}], "when_exhausted": "loop"},
            "when_exhausted: expected 'error' or 'repeat_last', got 'loop'",
        ),
        (
            {"rules": [{"answers": [{"text": "a", "stop_reason": None}]}]},
            "rules[0].answers[0].stop_reason: expected a string, got null",
        ),
    ],
)
def test_parse_errors_name_the_place(data: Any, message: str) -> None:
    with pytest.raises(ScriptError) as caught:
        parse_script(data)
    assert str(caught.value) == message


def test_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules:\n  - answers:\n      - text: [1, 2]\n")
    with pytest.raises(ScriptError) as caught:
        load_script(bad)
    assert str(caught.value) == f"{bad}: rules[0].answers[0].text: expected a string, got list"


def test_unparsable_files(tmp_path: Path) -> None:
    yaml_file = tmp_path / "broken.yml"
    yaml_file.write_text("rules: [\n")
    json_file = tmp_path / "broken.json"
    json_file.write_text("{'rules': []}")
    with pytest.raises(ScriptError, match=r"broken\.yml: invalid YAML"):
        load_script(yaml_file)
    with pytest.raises(ScriptError, match=r"broken\.json: invalid JSON"):
        load_script(json_file)
    with pytest.raises(ScriptError, match=r"missing\.yaml: cannot read script"):
        load_script(tmp_path / "missing.yaml")


def test_python_objects_are_validated() -> None:
    with pytest.raises(ScriptError, match=r"^Reply\.content: expected a sequence of blocks"):
        Reply("just a string")
    with pytest.raises(ScriptError, match=r"^Reply\.content\[1\]: expected Text, Thinking"):
        Reply(["ok", 3])  # type: ignore[list-item]
    with pytest.raises(ScriptError, match=r"^Reply\.chunk_size: expected an integer >= 1, got 0"):
        Reply(["x"], chunk_size=0)
    with pytest.raises(ScriptError, match=r"^Reply\.errors_before\[0\]: expected HttpErrorReply"):
        Reply(["x"], errors_before=[Reply(["y"])])  # type: ignore[list-item]
    with pytest.raises(
        ScriptError, match=r"^HttpErrorReply\.status: expected an HTTP error status"
    ):
        HttpErrorReply(302)
    with pytest.raises(ScriptError, match=r"^ToolUse\.input: not JSON-serialisable"):
        ToolUse("Bash", {"command": object()})
    with pytest.raises(ScriptError, match=r"^Rule\.answers: expected at least one answer"):
        Rule([])
    with pytest.raises(ScriptError, match=r"^Rule\.match: invalid regular expression"):
        Rule([Reply(["x"])], match="[")
    with pytest.raises(ScriptError, match=r"^Script\.rules: expected at least one rule"):
        Script([])
    with pytest.raises(ScriptError, match=r"^Script\.when_exhausted: expected 'error' or"):
        Script([Rule([Reply(["x"])])], when_exhausted="never")  # type: ignore[arg-type]
    with pytest.raises(ScriptError, match=r"^Usage\.output_tokens: expected an integer >= 0"):
        Usage(output_tokens=-1)


def test_error_type_defaults_follow_the_status_class() -> None:
    from cc_executor.testing import HttpErrorReply

    assert HttpErrorReply(400).resolved_type == "invalid_request_error"
    assert HttpErrorReply(418).resolved_type == "invalid_request_error"  # unlisted 4xx
    assert HttpErrorReply(502).resolved_type == "api_error"  # unlisted 5xx
    assert HttpErrorReply(529).resolved_type == "overloaded_error"
    assert HttpErrorReply(418, error_type="custom").resolved_type == "custom"
