"""The JSON Schema of the run options and of task lists, derived from the declarations."""

from __future__ import annotations

from typing import Any

import jsonschema  # type: ignore[import-untyped]  # it ships no type information
import pytest

from cc_executor import RunOptions
from cc_executor._run._options import SERVER_ONLY
from cc_executor._run._options_schema import options_json_schema
from cc_executor.tasks._fields import DEFAULT_KEYS, LIST_KEYS, TASK_KEYS
from cc_executor.tasks._schema import task_list_json_schema


def valid(schema: dict[str, Any], value: Any) -> bool:
    return bool(jsonschema.Draft202012Validator(schema).is_valid(value))


@pytest.mark.parametrize("remote", [False, True])
@pytest.mark.parametrize("task", [False, True])
def test_the_schemas_are_valid_json_schemas(remote: bool, task: bool) -> None:
    jsonschema.Draft202012Validator.check_schema(options_json_schema(remote=remote, task=task))
    jsonschema.Draft202012Validator.check_schema(task_list_json_schema(remote=remote))


def test_every_option_is_in_the_schema_and_remote_leaves_out_server_only_ones() -> None:
    everything = options_json_schema()["properties"]
    remote = options_json_schema(remote=True)["properties"]
    assert set(everything) == {o.name for o in RunOptions.options}
    assert set(remote) == {o.name for o in RunOptions.options if o.remote != SERVER_ONLY}
    assert {"agent_path", "run_id", "run_dir", "record", "parent_id", "extra_args"}.isdisjoint(
        remote
    )
    for option in RunOptions.options:
        schema = everything[option.name]
        assert schema.get("description"), option.name
        # The default the schema states is a value it accepts.
        assert valid(schema, schema.get("default")), option.name


def test_types_and_ranges_follow_the_kinds() -> None:
    props = options_json_schema()["properties"]
    assert props["model"]["type"] == ["string", "null"]
    assert props["agent"]["type"] == "string"
    assert props["max_turns"] == {**props["max_turns"], "type": ["integer", "null"], "minimum": 1}
    assert props["timeout"]["exclusiveMinimum"] == 0
    assert props["grace"]["minimum"] == 0
    assert props["json_mode"]["type"] == "boolean"
    assert props["allowed_tools"]["type"] == "array"
    assert props["add_dirs"]["items"] == {"type": "string"}
    assert props["env"]["additionalProperties"] == {"type": "string"}
    assert props["json_schema"]["type"] == ["object", "null"]
    assert props["mcp_config"]["type"] == ["string", "object", "null"]
    assert props["include_partial_messages"]["description"].startswith(
        "false (--no-partial-messages): "
    )


def test_unknown_keys_and_bad_values_are_refused() -> None:
    schema = options_json_schema(remote=True)
    assert valid(schema, {"cwd": "/tmp", "timeout": 5, "allowed_tools": ["Edit"]})
    assert not valid(schema, {"cwdd": "/tmp"})
    assert not valid(schema, {"record": False})
    assert not valid(schema, {"timeout": 0})
    assert not valid(schema, {"allowed_tools": "Edit"})
    assert not valid(schema, {"env": {"A": 1}})


def test_task_lists_use_their_own_keys() -> None:
    tasks = options_json_schema(task=True)["properties"]
    assert "api_retries" in tasks
    assert "retries" not in tasks
    assert "resume" not in tasks  # not settable in a task list
    assert tasks["allowed_tools"]["type"] == ["array", "string"]  # "Edit,Write" too
    assert tasks["model"]["type"] == "string"  # no null in a task list


def test_the_task_list_schema_lists_every_key_the_parser_knows() -> None:
    schema = task_list_json_schema()
    assert set(schema["properties"]) == set(LIST_KEYS)
    task = schema["properties"]["tasks"]["items"]
    assert set(task["properties"]) == set(TASK_KEYS)
    assert set(schema["properties"]["defaults"]["properties"]) == set(DEFAULT_KEYS)
    remote = task_list_json_schema(remote=True)
    assert "extra_args" not in remote["properties"]["tasks"]["items"]["properties"]
    assert valid(
        remote,
        {
            "max_parallel": 2,
            "defaults": {"model": "sonnet", "on_error": "continue"},
            "tasks": [{"id": "a", "prompt": "x"}, {"prompt": "y", "depends_on": ["a"]}],
        },
    )
    assert not valid(remote, {"tasks": [{"promt": "x"}]})
    assert not valid(remote, {"tasks": [{"prompt": "x", "extra_args": ["--x"]}]})
    assert not valid(remote, {"tasks": [{"prompt": "x"}], "cwd": "/tmp"})
