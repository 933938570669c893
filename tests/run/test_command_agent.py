"""The command agent (``agent="command"`` with a TOML spec): real child processes as agents,
and the real Qwen Code CLI described by a spec, offline against the scripted server."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from cc_executor._agents import adapter_for
from cc_executor._agents._types import AgentEvent, RunStatus, ToolKind, ToolUseEvent
from cc_executor._cli._args import flag_message
from cc_executor._run._options import RunOptions
from cc_executor._run._runner import run, start_run
from cc_executor.testing import HttpErrorReply, ModelServer, Reply, Rule, Script, Text, ToolUse
from tests._means import agent_path
from tests._procs import pids_in, running_in
from tests._wait import await_for


def spec(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / f"{name}.toml"
    path.write_text(textwrap.dedent(body))
    return path


def py(code: str) -> str:
    """A TOML array: this interpreter running ``code`` (a literal string: no escapes)."""
    return f"[\"{sys.executable}\", \"-c\", '''{code}''']"


def options(spec_path: Path, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {"agent": "command", "agent_spec": spec_path, "cwd": tmp_path, "heartbeat_s": 0, **extra}


async def test_text_agent_answers_with_its_stdout(tmp_path: Path) -> None:
    upper = spec(
        tmp_path, "upper", f"command = {py('import sys; print(sys.stdin.read().upper())')}\n"
    )
    result = await run("hello\nworld", **options(upper, tmp_path))
    assert result.status is RunStatus.OK, result.error
    assert result.result == "HELLO\nWORLD"  # stdout without its last newline
    assert result.session_id is None
    assert result.cost_usd is None


async def test_a_failing_agent_is_an_error_with_its_stderr(tmp_path: Path) -> None:
    code = "import sys; sys.stderr.write('boom: no model'); sys.exit(3)"
    failing = spec(tmp_path, "failing", f"command = {py(code)}\n")
    result = await run("x", retries=0, **options(failing, tmp_path))
    assert result.status is RunStatus.ERROR
    assert result.exit_code == 3
    assert result.error is not None
    assert "exited with code 3: boom: no model" in result.error


@pytest.mark.slow  # seconds of work: out of the fast tier
async def test_a_timeout_keeps_what_was_printed(tmp_path: Path) -> None:
    code = "import time; print('part one', flush=True); time.sleep(60)"
    slow = spec(tmp_path, "slow", f'name = "slowpoke"\ncommand = {py(code)}\n')
    result = await run("x", timeout=3, grace=1, **options(slow, tmp_path))
    assert result.status is RunStatus.TIMEOUT
    assert result.partial
    assert result.result == "part one"


@pytest.mark.parametrize(
    ("status", "expected", "retryable"),
    [
        (429, RunStatus.RATE_LIMITED, True),
        (500, RunStatus.ERROR, True),
        (400, RunStatus.ERROR, False),
    ],
)
async def test_api_status_in_stderr_maps_the_error(
    tmp_path: Path, status: int, expected: RunStatus, retryable: bool
) -> None:
    code = (
        f"import sys; sys.stderr.write('starting\\nHTTP ERROR {status}: scripted\\nbye\\n');"
        " sys.exit(1)"
    )
    agent = spec(tmp_path, "api", f"command = {py(code)}\napi_status = 'HTTP ERROR (\\d{{3}})'\n")
    result = await run("x", retries=1, retry_initial_delay=0.01, **options(agent, tmp_path))
    assert (result.status, result.api_error_status) == (expected, status), result.error
    assert result.error is not None
    assert f"HTTP ERROR {status}: scripted" in result.error
    assert "bye" not in result.error
    assert result.attempts == (2 if retryable else 1)  # our retry policy decides


async def test_jsonl_mapping_picks_the_answer_and_the_session(tmp_path: Path) -> None:
    code = (
        "import json\n"
        "for o in [{'type': 'init', 'sid': 'S-1'}, {'type': 'msg', 'role': 'user', 'text': 'no'},"
        " {'type': 'msg', 'role': 'assistant', 'data': {'text': 'Hi '}},"
        " {'type': 'msg', 'role': 'assistant', 'data': {'text': 'there.'}}]:\n"
        "    print(json.dumps(o))\n"
    )
    jsonl = spec(
        tmp_path,
        "jsonl",
        f"""\
        command = {py(code)}
        output = "jsonl"
        [jsonl]
        text = "data.text"
        session = "sid"
        match = {{ type = "msg", role = "assistant" }}
        """,
    )
    result = await run("x", **options(jsonl, tmp_path))
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Hi there."
    assert result.session_id == "S-1"


async def test_model_and_base_url_reach_the_agent_as_the_spec_says(tmp_path: Path) -> None:
    code = "import os, sys; print(sys.argv[1:], os.environ['MY_URL'], os.environ['FIXED'])"
    echo = spec(
        tmp_path,
        "echo",
        f"""\
        command = {py(code)}
        model_arg = ["--use-model", "{{model}}"]
        base_url_env = "MY_URL"
        [env]
        FIXED = "yes"
        """,
    )
    result = await run(
        "x", model="m-1", base_url="http://127.0.0.1:9/v1", **options(echo, tmp_path)
    )
    assert result.status is RunStatus.OK, result.error
    assert result.result.strip() == "['--use-model', 'm-1'] http://127.0.0.1:9/v1 yes"


async def test_resume_reaches_the_agent_as_the_spec_says(tmp_path: Path) -> None:
    echo = spec(
        tmp_path,
        "echo",
        f"""\
        command = {py("import sys; print(sys.argv[1:])")}
        resume_arg = ["--resume={{session_id}}"]
        """,
    )
    result = await run("x", resume="S-1", **options(echo, tmp_path))
    assert result.status is RunStatus.OK, result.error
    assert result.result == "['--resume=S-1']"
    adapter = adapter_for(RunOptions(agent="command", agent_spec=echo))
    assert adapter.resume_options("S-2") == {"resume": "S-2"}
    with pytest.raises(ValueError, match="cannot fork"):
        adapter.resume_options("S-2", fork=True)


async def test_two_specs_at_once_keep_their_own_reading(tmp_path: Path) -> None:
    text = spec(tmp_path, "text", f"command = {py('print(1 + 1)')}\n")
    jsonl = spec(
        tmp_path,
        "j",
        f"""\
        command = {py("import json; print(json.dumps({'t': 'from jsonl'}))")}
        output = "jsonl"
        [jsonl]
        text = "t"
        """,
    )
    results = await asyncio.gather(
        *(run("x", **options(s, tmp_path)) for s in [text, jsonl, text, jsonl])
    )
    assert [r.result.strip() for r in results] == ["2", "from jsonl", "2", "from jsonl"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('command = ["x"]\ncolour = "red"\n', "unknown key 'colour'"),
        ('name = "x"\n', r"'command' \(the argv, a list of strings\) is required"),
        ('command = ["x"]\noutput = "xml"\n', "'output' must be one of text, jsonl"),
        ('command = ["x"]\noutput = "jsonl"\n', "needs a \\[jsonl\\] table"),
        ('command = ["x"]\nmodel_arg = ["-m"]\n', "'model_arg' must contain \\{model\\}"),
        ('command = ["x"]\nresume_arg = ["-r"]\n', "'resume_arg' must contain \\{session_id\\}"),
        ('command = ["x"]\napi_status = "("\n', "'api_status' is not a valid regular"),
        ('command = ["x"]\napi_status = "Error"\n', "'api_status' must be a regular .* group"),
        ("command = [\n", "not valid TOML"),
        ("x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        (
            'command = ["x"]\n[tool_kinds]\nrun = "shell"\n',
            r"'tool_kinds': run = 'shell' is not a tool kind \(one of: execute, write",
        ),
    ],
)
def test_bad_specs_are_one_line_errors_naming_the_file(
    tmp_path: Path, body: str, message: str
) -> None:
    path = spec(tmp_path, "bad", body)
    with pytest.raises(ValueError, match=message) as caught:
        RunOptions(agent="command", agent_spec=path)
    assert str(path) in str(caught.value)
    assert "\n" not in str(caught.value)
    # Named as the option, so that the command line names its flag (it said "--agent spec").
    assert flag_message(str(caught.value)).startswith(f"--agent-spec {path}")


def test_a_spec_that_is_a_fifo_or_huge_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Third pass, T11: a FIFO as agent_spec blocked the caller in open() forever."""
    fifo = tmp_path / "spec.toml"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="not a regular file") as caught:
        RunOptions(agent="command", agent_spec=fifo)
    assert str(fifo) in str(caught.value)
    huge = spec(tmp_path, "huge", 'command = ["x"]\n' + "# padding\n" * 200_000)
    with pytest.raises(ValueError, match="bytes: not a spec"):
        RunOptions(agent="command", agent_spec=huge)


def test_options_the_spec_cannot_pass_are_refused(tmp_path: Path) -> None:
    plain = spec(tmp_path, "plain", 'command = ["x"]\n')
    with pytest.raises(ValueError, match=r"model: the agent spec .* has no model_arg"):
        RunOptions(agent="command", agent_spec=plain, model="m")
    with pytest.raises(ValueError, match=r"base_url: the agent spec .* has no base_url_env"):
        RunOptions(agent="command", agent_spec=plain, base_url="http://x")
    with pytest.raises(ValueError, match=r"resume: the agent spec .* has no resume_arg"):
        RunOptions(agent="command", agent_spec=plain, resume="S-1")
    with pytest.raises(ValueError, match="needs agent_spec"):
        RunOptions(agent="command")
    with pytest.raises(ValueError, match="agent_spec is not supported by the claude agent"):
        RunOptions(agent_spec=plain)


def qwen_spec(tmp_path: Path, extra: str = "") -> Path:
    """The spec of docs/agents/command.md for the real Qwen Code CLI (test ``cli`` only)."""
    return spec(
        tmp_path,
        "qwen",
        f"""\
        name = "Qwen Code"
        command = ["{agent_path("qwen")}", "-p", "", "--auth-type", "openai", "--yolo",
                   "-o", "stream-json"]
        output = "claude-stream-json"
        model_arg = ["--model={{model}}"]
        resume_arg = ["--resume", "{{session_id}}"]
        base_url_env = "OPENAI_BASE_URL"
        [file_tools]
        write_file = "file_path"
        edit = "file_path"
        """
        + extra,
    )


def qwen_options(qwen: Path, work: Path, server: ModelServer, **extra: Any) -> dict[str, Any]:
    """Options running ``qwen`` in ``work`` against ``server``, with a HOME of its own.

    Its settings turn off the memories Qwen Code extracts after a turn: a request no script
    answers, which it retries for about 100 s before it prints its result.
    """
    settings = work.parent / ".qwen" / "settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"memory": {"enableManagedAutoMemory": False}}))
    return {
        "agent": "command",
        "agent_spec": qwen,
        "cwd": work,
        "model": "qwen-test",
        "base_url": f"{server.url}/v1",
        "env": {"HOME": str(work.parent), "OPENAI_API_KEY": "sk-cc-executor-testing"},
        "heartbeat_s": 0,
        **extra,
    }


@pytest.mark.cli
@pytest.mark.slow
async def test_qwen_code_through_a_spec(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    notes = work / "notes.txt"
    qwen = qwen_spec(tmp_path)
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Write", {"file_path": str(notes), "content": "a\n"})]),
                    Reply([Text("Wrote it.")]),
                ]
            )
        ]
    )
    async with ModelServer(script) as server:
        result = await run("write the notes", **qwen_options(qwen, work, server))
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Wrote it."
    assert notes.read_text() == "a\n"
    assert result.files == [str(notes)]
    assert result.session_id
    assert os.path.basename(result.model or "") == "qwen-test"


@pytest.mark.cli
@pytest.mark.slow
async def test_qwen_tool_calls_run_and_carry_their_kind(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # A tool named in [tool_kinds] wins over the built-in names.
    qwen = qwen_spec(tmp_path, '[tool_kinds]\nlist_directory = "read"\n')
    notes = str(work / "notes.txt")
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": "printf ran > shell.txt"})]),
                    Reply([ToolUse("Write", {"file_path": notes, "content": "a\nb\n"})]),
                    Reply(
                        [
                            ToolUse(
                                "Edit", {"file_path": notes, "old_string": "b", "new_string": "B"}
                            )
                        ]
                    ),
                    Reply([ToolUse("read_file", {"file_path": notes})]),
                    Reply([ToolUse("list_directory", {"path": str(work)})]),
                    Reply([Text("Done.")]),
                ]
            )
        ]
    )
    events: list[AgentEvent] = []
    async with ModelServer(script) as server:
        result = await run(
            "use the tools", on_event=events.append, **qwen_options(qwen, work, server)
        )
    assert result.status is RunStatus.OK, result.error
    assert (work / "shell.txt").read_text() == "ran"  # the shell command really ran
    assert (work / "notes.txt").read_text() == "a\nB\n"
    assert result.files == [notes]
    uses = [e for e in events if isinstance(e, ToolUseEvent)]
    assert [(u.name, u.kind) for u in uses] == [
        ("run_shell_command", ToolKind.EXECUTE),
        ("write_file", ToolKind.WRITE),
        ("edit", ToolKind.EDIT),
        ("read_file", ToolKind.READ),
        ("list_directory", ToolKind.READ),
    ]
    assert [u.to_dict()["kind"] for u in uses] == ["execute", "write", "edit", "read", "read"]


@pytest.mark.cli
@pytest.mark.slow
async def test_qwen_timeout_keeps_the_text_so_far_and_the_session(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    slow = Reply([Text("First part. " + "more " * 400)], chunk_size=12, delay=0.5)
    async with ModelServer(Script([Rule(answers=[slow])])) as server:
        result = await run(
            "a long answer", timeout=20, grace=1, **qwen_options(qwen_spec(tmp_path), work, server)
        )
        left = pids_in(work)
    assert result.status is RunStatus.TIMEOUT
    assert result.partial
    assert result.result.startswith("First part.")
    assert result.session_id
    assert left == []
    # The session id resumes the session: the model sees the first prompt and the part of
    # the answer saved, so the request is the conversation's second turn.
    resumed_script = Script([Rule(answers=[Reply([Text("unused")]), Reply([Text("Resumed.")])])])
    async with ModelServer(resumed_script) as server:
        again = await run(
            "go on",
            resume=result.session_id,
            **qwen_options(qwen_spec(tmp_path), work, server),
        )
        sent = json.dumps(server.chat_requests[-1].body["messages"])
    assert again.status is RunStatus.OK, again.error
    assert again.result == "Resumed."
    assert again.session_id == result.session_id
    assert "a long answer" in sent
    assert "go on" in sent


@pytest.mark.cli
@pytest.mark.slow
async def test_qwen_cancel_mid_shell_command_leaves_no_process(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    # Qwen Code refuses a bare long sleep unless a comment says it is meant.
    sleep = ToolUse("Bash", {"command": "sleep 60 # intentional-sleep: cancelled by the test"})
    script = Script([Rule(answers=[Reply([sleep]), Reply([Text("never")])])])
    async with ModelServer(script) as server:
        handle = start_run("sleep", grace=1, **qwen_options(qwen_spec(tmp_path), work, server))
        await await_for(lambda: running_in(work, "sleep 60"), timeout=60, what="the sleep command")
        handle.cancel()
        result = await handle.wait()
        left = pids_in(work)
    assert result.status is RunStatus.CANCELLED
    assert result.session_id
    assert left == []


@pytest.mark.cli
@pytest.mark.slow
async def test_qwen_code_api_errors_map_through_the_spec(tmp_path: Path) -> None:
    """The spec's api_status finds the HTTP status in Qwen Code's error message; its system
    settings (from the spec's env) turn off its inner retries, so each error ends within
    its outer seven attempts."""
    settings = tmp_path / "qwen-settings.json"
    settings.write_text('{"model": {"generationConfig": {"maxRetries": 0}}}')
    qwen = spec(
        tmp_path,
        "qwen",
        f"""\
        name = "Qwen Code"
        command = ["{agent_path("qwen")}", "-p", "", "--auth-type", "openai", "-o", "stream-json"]
        output = "claude-stream-json"
        model_arg = ["--model={{model}}"]
        base_url_env = "OPENAI_BASE_URL"
        api_status = 'API Error: (\\d{{3}})'
        [env]
        QWEN_CODE_SYSTEM_SETTINGS_PATH = "{settings}"
        """,
    )
    script = Script(
        [
            Rule(match="bad", answers=[HttpErrorReply(400, message="bad scripted request")]),
            Rule(match="busy", answers=[HttpErrorReply(429, message="slow down")]),
            Rule(match="broken", answers=[HttpErrorReply(500, message="scripted outage")]),
        ]
    )
    results = {}
    async with ModelServer(script) as server:
        for prompt in ("bad request", "busy now", "broken server"):
            results[prompt] = await run(
                prompt,
                agent="command",
                agent_spec=qwen,
                cwd=tmp_path,
                model="qwen-test",
                base_url=f"{server.url}/v1",
                env={"HOME": str(tmp_path), "OPENAI_API_KEY": "sk-cc-executor-testing"},
                heartbeat_s=0,
                retries=0,
            )
        bodies = [str(r.body) for r in server.requests]
    bad, busy, broken = results.values()
    assert (bad.status, bad.api_error_status) == (RunStatus.ERROR, 400), bad.error
    assert "API error 400: [API Error: 400 bad scripted request]" in (bad.error or "")
    assert (busy.status, busy.api_error_status) == (RunStatus.RATE_LIMITED, 429), busy.error
    assert "slow down" in (busy.error or "")
    assert (broken.status, broken.api_error_status) == (RunStatus.ERROR, 500), broken.error
    assert "API error 500: [API Error: 500 scripted outage]" in (broken.error or "")
    # Qwen Code 0.24.4's own outer retries (seven attempts) remain; its inner ones are off.
    assert [sum(p in body for body in bodies) for p in results] == [1, 7, 7]
