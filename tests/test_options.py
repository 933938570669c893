"""The run options' declarations are the one source of every view of them: the README's
table, the ``run`` flags, the task-list keys and the service's policy."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from cc_executor._cli._args import RUN_OPTIONS, flag_reference
from cc_executor._run._options import RunOptions
from cc_executor._service._policy import SERVER_ONLY_OPTIONS
from cc_executor.tasks._fields import RUN_FIELDS

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_table_is_generated_from_the_declarations() -> None:
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- run-options:begin[^\n]*-->\n(.*?)<!-- run-options:end -->", text, re.S)
    assert found, "README.md lost its generated table of run options"
    assert found.group(1) == flag_reference(), (
        "README.md's table of run options is stale: run "
        "`python -m cc_executor._cli._args README.md`"
    )


def test_every_view_derives_from_the_declarations() -> None:
    declared = {o.name: o for o in RunOptions.options}
    flags = {o.dest: o for o in RUN_OPTIONS if o.dest not in ("json", "quiet")}
    assert set(flags) == {name for name, o in declared.items() if o.flag}
    for name, flag in flags.items():
        assert (flag.flag, *flag.aliases) == (declared[name].flag, *declared[name].flag_aliases)
    assert {name for name, _check in RUN_FIELDS.values()} == {
        name for name, o in declared.items() if o.task_key
    }
    assert {o for o in SERVER_ONLY_OPTIONS if o in declared} == {
        name for name, o in declared.items() if o.remote == "server_only"
    }
    assert "claude_path" in SERVER_ONLY_OPTIONS  # the older name is refused alike


def test_every_option_is_documented() -> None:
    assert [o.name for o in RunOptions.options if not o.help] == []


def test_claude_path_is_the_older_name_of_agent_path() -> None:
    older: dict[str, Any] = {"claude_path": "/x"}  # accepted at run time, not typed
    assert RunOptions(**older).agent_path == "/x"
    assert RunOptions(agent_path="/x").claude_path == "/x"
    with pytest.raises(TypeError, match="claude_path and agent_path are the same option"):
        RunOptions(**older, agent_path="/y")
    assert RunOptions().replace(**older).agent_path == "/x"  # found by a review


def test_an_unknown_agent_is_refused_naming_the_known_ones() -> None:
    known = "claude, codex, gemini, command"
    with pytest.raises(ValueError, match=f"agent must be one of {known}, got 'nope'"):
        RunOptions(agent="nope")


def test_options_are_immutable_and_compare_by_value() -> None:
    options = RunOptions(timeout=5)
    with pytest.raises(AttributeError, match="immutable"):
        options.timeout = 6  # type: ignore[misc]
    assert options == RunOptions(timeout=5)
    assert options != RunOptions(timeout=6)
    assert options.replace(timeout=7).timeout == 7
    assert "timeout=5" in repr(options)
    with pytest.raises(ValueError, match="timeout must be positive"):
        options.replace(timeout=-1)


def test_unknown_options_are_named() -> None:
    with pytest.raises(TypeError, match=r"unknown run option\(s\): colour \(known: "):
        RunOptions(colour="red")  # type: ignore[call-arg]


@pytest.mark.parametrize("name", ["model", "resume", "cwd", "agent_path", "base_url"])
def test_an_empty_text_option_is_refused_not_taken_for_unset(name: str) -> None:
    # `--model "$UNSET"` used to run the default model, `--resume ""` a fresh session.
    with pytest.raises(ValueError, match=f"^{name} is empty: give a value, or leave"):
        RunOptions(**{name: ""})  # type: ignore[arg-type]  # a text option, by name


def test_mcp_config_json_text_must_parse() -> None:
    # Claude Code took '{bad' for a file name: "MCP config file not found: .../{bad".
    with pytest.raises(ValueError, match=r"^mcp_config is not valid JSON: Expecting property"):
        RunOptions(mcp_config="{bad")
    assert RunOptions(mcp_config=' {"mcpServers": {}}').mcp_config == ' {"mcpServers": {}}'


def test_a_claude_session_id_must_be_a_uuid() -> None:
    # Claude Code exited 1 ("Invalid session ID. Must be a valid UUID."): a crashed run.
    for bad in (
        "notauuid",
        "0f0e0d0c000040008000000000000abc",
        "0f0e0d0c-0000-4000-8000-00000000abcg",
    ):
        with pytest.raises(ValueError, match=r"^session_id must be a UUID"):
            RunOptions(session_id=bad)
    assert RunOptions(session_id="0F0E0D0C-0000-4000-8000-00000000ABCD").session_id
