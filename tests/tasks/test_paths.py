"""One rule for relative paths: a task list's values are relative to the list file's folder,
the command line's flags to the process's cwd; an error names the folder searched."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor.tasks import TaskListError, load_task_list, parse_task_list
from cc_executor.tasks._task_options import task_options
from cc_executor.testing import Reply, Rule, Script, Text
from tests.tasks.conftest import CLI, Served

SCHEMA = {"type": "object", "properties": {"n": {"type": "integer"}}}


def a_list(folder: Path, **task: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "plan.json"
    path.write_text(json.dumps({"tasks": [{"id": "a", "prompt": "x", **task}]}))
    return path


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_values_in_a_list_are_relative_to_its_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists = tmp_path / "lists"
    (lists / "sub").mkdir(parents=True)
    (lists / "other").mkdir()
    (lists / "mcp.json").write_text('{"mcpServers": {}}')
    (lists / "schema.json").write_text(json.dumps(SCHEMA))
    path = a_list(
        lists,
        cwd="sub",
        add_dirs=["other"],
        mcp_config="mcp.json",
        json_schema="schema.json",
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # where the list is run from changes nothing
    spec = load_task_list(os.path.relpath(path))
    options = spec.tasks[0].options
    assert options["cwd"] == str(lists / "sub")
    assert options["add_dirs"] == [str(lists / "other")]
    assert options["mcp_config"] == str(lists / "mcp.json")
    assert options["json_schema"] == SCHEMA
    task_options(spec, {})  # every file found: the run options' checks pass
    done = subprocess.run(
        [CLI, "tasks", "validate", str(path)],
        cwd=elsewhere,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_a_missing_file_names_the_folder_searched(tmp_path: Path) -> None:
    lists = tmp_path / "lists"
    with pytest.raises(TaskListError) as caught:
        load_task_list(a_list(lists, json_schema="nope.json"))
    assert str(caught.value) == (
        f'{lists / "plan.json"}:1: task "a": json_schema: no such file: '
        f"nope.json (looked in {lists}; paths in a list are relative to its folder)"
    )
    spec = load_task_list(a_list(lists, mcp_config="nope.json"))
    with pytest.raises(TaskListError) as caught:
        task_options(spec, {})
    assert f"mcp_config: no such file: {lists / 'nope.json'}: give a file or JSON text" in str(
        caught.value
    )
    done = subprocess.run(
        [CLI, "tasks", "validate", "missing.yaml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        f"missing.yaml: cannot read: No such file or directory (looked in {tmp_path})\n"
    )


def test_a_list_without_a_file_reads_no_file() -> None:
    """A list given as data (the service's, a Python caller's) may hold JSON text, not the
    name of a file to read."""
    spec = parse_task_list(
        {"tasks": [{"id": "a", "prompt": "x", "json_schema": '{"type": "object"}'}]}
    )
    assert spec.tasks[0].options["json_schema"] == {"type": "object"}
    with pytest.raises(TaskListError, match="a file is read only from a list file"):
        parse_task_list({"tasks": [{"id": "a", "prompt": "x", "json_schema": "/etc/passwd"}]})


@pytest.mark.cli
def test_flags_are_relative_to_the_process_cwd(serve: Callable[[Script], Served]) -> None:
    """`run --cwd sub --mcp-config m.json` reads ./m.json, as every flag's path is read;
    it looked in sub/ before."""
    served = serve(Script([Rule(answers=[Reply([Text("fine")])])]))
    sub = served.work / "sub"
    (sub / "other").mkdir(parents=True)
    (sub / "m.json").write_text('{"mcpServers": {}}')
    cases = [
        (["--mcp-config", "m.json"], f"--mcp-config: no such file: {served.work / 'm.json'}"),
        (["--add-dir", "other"], f"--add-dir: {served.work / 'other'} is not a directory"),
    ]
    for flags, message in cases:
        done = served.cli("run", "hi", "--cwd", "sub", *flags)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
    assert served.prompts() == []
    (served.work / "m.json").write_text('{"mcpServers": {}}')
    done = served.cli("run", "hi", "--cwd", "sub", "--mcp-config", "m.json")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "fine\n"
