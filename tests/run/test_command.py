"""The CLI command line built from run options: one argument per flag, nothing injectable."""

from __future__ import annotations

from typing import Any

import pytest

from cc_executor._agents._claude import build_command
from cc_executor._run._options import RunOptions
from cc_executor._run._runner import run, start_run


def test_values_never_become_flags() -> None:
    """``--resume`` takes an optional value: a separate value starting with ``-`` would be
    parsed as a flag of its own (e.g. ``--mcp-config``). Every value is bound with ``=``."""
    argv = build_command(
        "claude",
        RunOptions(
            model="m",
            fallback_model="f1,f2",
            append_system_prompt="--settings={} and more",
            allowed_tools=["--mcp-config=x"],
            permission_mode="default",
            max_turns=3,
        ),
    )
    assert "--append-system-prompt=--settings={} and more" in argv
    assert "--allowedTools=--mcp-config=x" in argv
    assert "--model=m" in argv
    assert "--fallback-model=f1,f2" in argv
    assert "--max-turns=3" in argv
    assert not [a for a in argv if a.startswith(("--settings", "--mcp-config"))]


@pytest.mark.parametrize("field", ["resume", "session_id", "model", "fallback_model"])
def test_ids_starting_with_a_dash_are_refused(field: str) -> None:
    options: dict[str, Any] = {field: "--mcp-config={}"}
    with pytest.raises(ValueError, match="must be a session id or name"):
        RunOptions(**options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        # A string for a list must never become a list of one-letter tools: "Bash" would
        # deny B, a, s and h, and Bash itself would stay allowed.
        (
            {"disallowed_tools": "Bash"},
            r"disallowed_tools must be a list of strings, got 'Bash' \(write \['Bash'\]\)",
        ),
        ({"allowed_tools": "Write"}, "allowed_tools must be a list of strings"),
        ({"allowed_tools": [1]}, "got the item 1"),
        ({"extra_args": "--foo"}, "extra_args must be a list of strings"),
        ({"add_dirs": "sub"}, "add_dirs must be a list of strings"),
        ({"timeout": "5"}, "timeout must be a number or None, got '5'"),
        ({"timeout": True}, "timeout must be a number or None, got True"),
        ({"grace": "1"}, "grace must be a number, got '1'"),
        ({"heartbeat_s": None}, "heartbeat_s must be a number, got None"),
        ({"retries": 1.5}, "retries must be an integer, got 1.5"),
        ({"max_turns": 2.5}, "max_turns must be an integer"),
        ({"json_mode": "yes"}, "json_mode must be True or False"),
        ({"record": "no"}, "record must be True or False"),
        ({"append_system_prompt": 5}, "append_system_prompt must be a string"),
        ({"cwd": 123}, "cwd must be a path, got 123"),
        ({"mcp_config": 5}, "mcp_config must be a file, JSON text or a mapping"),
    ],
)
async def test_option_types_are_checked_before_anything_runs(
    options: dict[str, Any], message: str
) -> None:
    with pytest.raises(TypeError, match=message):
        await run("x", claude_path="/nonexistent/claude", **options)


async def test_a_prompt_of_the_wrong_type_is_a_clear_error() -> None:
    with pytest.raises(TypeError, match="the prompt must be a str or bytes, got NoneType"):
        await run(None, claude_path="/nonexistent/claude")  # type: ignore[arg-type]


def test_start_run_needs_a_running_loop() -> None:
    with pytest.raises(RuntimeError, match="start_run needs a running event loop"):
        start_run("x")


def test_option_types_that_are_accepted() -> None:
    """Paths for path options, sets for tool lists, ints for seconds."""
    from pathlib import Path

    options = RunOptions(
        agent_path=Path("/opt/claude"),
        cwd=Path("/tmp"),
        allowed_tools={"Write"},
        disallowed_tools=frozenset({"Bash"}),
        timeout=30,
        grace=0,
        env={"A": "1"},
    )
    argv = build_command("claude", options)
    assert "--allowedTools=Write" in argv
    assert "--disallowedTools=Bash" in argv


@pytest.mark.parametrize("run_id", ["../../x", "a/b", ".hidden", "-x", "", "x" * 201])
def test_a_run_id_is_a_plain_folder_name(run_id: str) -> None:
    """Issue 18 L12: the run id names the run's folder under runs/; '../../x' must not put
    it elsewhere."""
    with pytest.raises(ValueError, match="run_id must be letters, digits"):
        RunOptions(run_id=run_id)


def test_ids_the_runners_make_are_plain_folder_names() -> None:
    assert RunOptions(run_id="01m95b8g64b4nrjq6c4j61q67h-2").run_id
    assert RunOptions(run_id="list_1.task-a.3").run_id


def test_base_url_reaches_each_agent_its_own_way() -> None:
    from cc_executor._agents import get_adapter
    from cc_executor._agents._codex._flags import build_command as codex_command

    claude = RunOptions(base_url="http://127.0.0.1:9/")
    assert claude.process_env()["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:9/"
    codex = RunOptions(agent="codex", base_url='http://h/v1" x="y', model="gpt-x")
    argv = codex_command("codex", codex)
    # A TOML string: the quote in the URL cannot end it and add a key of its own.
    assert '--config=model_providers.cc_executor.base_url="http://h/v1\\" x=\\"y"' in argv
    assert '--config=model_provider="cc_executor"' in argv
    assert "--model=gpt-x" in argv
    assert '--config=sandbox_mode="read-only"' in argv
    assert argv[-1] == "-"
    assert get_adapter("codex").process_env(codex) == {}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sandbox": "yolo"}, "sandbox must be one of read-only, workspace-write"),
        ({"max_turns": 3}, "max_turns is not supported by the codex agent"),
        ({"fork_session": True, "resume": "t"}, "fork_session is not supported by the codex"),
        ({"model": "-x"}, "model must be a session id or a model name"),
    ],
)
def test_codex_refuses_what_it_cannot_do(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunOptions(agent="codex", **options)


def test_sandbox_is_for_codex_only() -> None:
    with pytest.raises(ValueError, match="sandbox is not supported by the claude agent"):
        RunOptions(sandbox="read-only")


def test_gemini_command_env_and_home(tmp_path: Any) -> None:
    from cc_executor._agents._gemini._flags import build_command as gemini_command

    options = RunOptions(
        agent="gemini", base_url="http://127.0.0.1:9", model="m", permission_mode="yolo"
    )
    argv = gemini_command("gemini", options)
    assert argv[1:] == [
        "--prompt=",
        "--output-format=stream-json",
        "--skip-trust",
        "--model=m",
        "--approval-mode=yolo",
    ]
    env = options.process_env(str(tmp_path / "run"))
    assert env["GOOGLE_GEMINI_BASE_URL"] == "http://127.0.0.1:9"
    assert env["GEMINI_CLI_NO_RELAUNCH"] == "true"
    settings = tmp_path / "run" / "agent-home" / ".gemini" / "settings.json"
    assert env["GEMINI_CLI_HOME"] == str(tmp_path / "run" / "agent-home")
    assert "gemini-api-key" in settings.read_text()
    # The caller's own home wins, and nothing is written for it.
    mine = RunOptions(agent="gemini", base_url="http://x", env={"GEMINI_CLI_HOME": "/mine"})
    assert mine.process_env(str(tmp_path / "other"))["GEMINI_CLI_HOME"] == "/mine"
    assert not (tmp_path / "other").exists()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"permission_mode": "acceptEdits"}, "permission_mode for Gemini CLI must be one of"),
        ({"resume": "abc"}, "resume for Gemini CLI must be a session id"),
        ({"sandbox": "read-only"}, "sandbox is not supported by the gemini agent"),
    ],
)
def test_gemini_refuses_what_it_cannot_do(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RunOptions(agent="gemini", **options)


def test_codex_reconnect_notices_are_retries_and_quiet() -> None:
    from cc_executor._agents import get_adapter
    from cc_executor._agents._codex._parse import CodexStreamParser
    from cc_executor._agents._types import ApiRetryEvent

    quiet = get_adapter("codex").quiet_line
    assert quiet is not None
    assert get_adapter("claude").quiet_line is None
    counted = b'{"type":"error","message":"Reconnecting... 2/5 (stream disconnected)"}'
    waiting = b'{"type":"error","message":"Reconnecting... waiting for network (refused)"}'
    assert quiet(counted)
    assert quiet(waiting)
    for line in (b'{"type":"error","message":"HTTP 500"}', b"Reconnecting... text", b"[1]"):
        assert not quiet(line)
    (event,) = CodexStreamParser().parse(counted, 0.0)
    assert isinstance(event, ApiRetryEvent)
    assert (event.attempt, event.max_retries) == (2, 5)


def test_use_login_is_the_servers_choice_only() -> None:
    from cc_executor._service._policy import SERVER_ONLY_OPTIONS

    assert "use_login" in SERVER_ONLY_OPTIONS
    claude = RunOptions(use_login=True)  # what Claude Code always does: accepted
    assert "CODEX_HOME" not in claude.process_env("/nowhere")
    codex = RunOptions(agent="codex", use_login=True)
    assert "CODEX_HOME" not in codex.process_env("/nowhere")
