"""The original cc_executor's users' code, run against the compat client unchanged: its
import paths, json_mode, return_dict, cc_execute_task_list and export_execution_history."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time
from typing import Any

import pytest

from cc_executor._ids import new_run_id
from cc_executor._store import RunRecord, open_store
from cc_executor.client import (
    CCExecuteError,
    CCExecutorConfig,
    cc_execute,
    cc_execute_task_list,
    export_execution_history,
    export_history_sync,
)
from cc_executor.testing import HttpErrorReply, Reply, Rule, Script, Text


@pytest.mark.slow  # over 0.3 s: fresh interpreters
def test_the_original_import_paths_work_in_any_order() -> None:
    """The paths the original's README and examples use, in a fresh interpreter each, in
    both orders (the module cc_execute shares its name with the function)."""
    snippets = [
        "from cc_executor.client import cc_execute, CCExecutorConfig",
        "from cc_executor.client.cc_execute import cc_execute, CCExecutorConfig\n"
        "from cc_executor.client import cc_execute",
        "from cc_executor import cc_execute, cc_execute_task_list, CCExecutorConfig",
        "from cc_executor.client import cc_execute_task_list, export_execution_history\n"
        "from cc_executor.client.cc_execute import export_execution_history, export_history_sync\n"
        "from cc_executor.client import cc_execute",
    ]
    for snippet in snippets:
        code = snippet + "\nimport inspect\nassert inspect.iscoroutinefunction(cc_execute)\n"
        done = subprocess.run(
            [sys.executable, "-c", code], check=False, capture_output=True, text=True
        )
        assert done.returncode == 0, (snippet, done.stderr)
    # Importing the package stays light: cc_execute is loaded on first use.
    code = "import sys, cc_executor; print('cc_executor.client' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert done.stdout.strip() == "False", done.stderr


def _record(prompt_sha: str, status: str, duration: float, started: float) -> RunRecord:
    return RunRecord(
        id=new_run_id(),
        kind="run",
        agent="claude",
        prompt_sha256=prompt_sha,
        prompt_preview=f"prompt {prompt_sha[:4]}",
        started_at=started,
        ended_at=started + duration,
        status=status,
        duration_s=duration,
    )


async def test_a_config_that_is_not_a_ccexecutorconfig_is_a_typeerror() -> None:
    # It failed deep inside with "'str' object has no attribute 'options'".
    with pytest.raises(TypeError, match="config must be a CCExecutorConfig, got dict"):
        await cc_execute("x", {"timeout": 5})  # type: ignore[arg-type]  # the mistake tested


async def test_export_execution_history_in_the_original_shapes() -> None:
    store = open_store()
    now = time.time()
    try:
        for record in [
            _record("a" * 64, "ok", 2.0, now - 30),
            _record("a" * 64, "error", 4.0, now - 20),
            _record("b" * 64, "ok", 10.0, now - 10),
        ]:
            store.start(record)
            store.finish(record)
    finally:
        store.close()
    data = json.loads(await export_execution_history(format="json", limit=10))
    assert set(data) == {"execution_history", "total_records", "export_time"}
    assert data["total_records"] == 2
    slow, fast = data["execution_history"]  # slowest first, as the original sorted them
    assert slow["task_hash"] == "b" * 64
    assert slow["avg_time_seconds"] == 10.0
    assert fast["avg_time_seconds"] == 3.0
    assert fast["success_rate"] == 0.5
    assert fast["runs"] == 2
    rows = list(csv.reader(io.StringIO(await export_execution_history(format="csv"))))
    assert rows[0] == ["task_hash", "avg_time_seconds", "last_run", "success_rate"]
    assert [r[0] for r in rows[1:]] == ["b" * 64, "a" * 64]
    assert json.loads(export_history_sync())["total_records"] == 2
    # limit counts the newest runs
    newest = json.loads(await export_execution_history(limit=1))
    assert [r["task_hash"] for r in newest["execution_history"]] == ["b" * 64]
    with pytest.warns(UserWarning, match="redis_client is ignored") as caught:
        await export_execution_history(redis_client=object())
    assert caught[0].filename == __file__
    with pytest.raises(ValueError, match="format must be 'json' or 'csv', got 'xml'"):
        await export_execution_history(format="xml")


def answer(text: str) -> Script:
    return Script([Rule(answers=[Reply([Text(text)])])])


async def test_json_mode_asks_for_the_original_object(bed: Any) -> None:
    """json_mode appends the instruction (the schema's keys and the run's id as
    execution_uuid, last) and returns the object, execution_uuid being the run's id."""
    reply = (
        'Here it is:\n```json\n{"result": "def f():\n    return 1", "files_created": '
        '["f.py"], "summary": "wrote f", "execution_uuid": "made-up"}\n```'
    )
    async with bed(answer(reply)) as b:
        config = CCExecutorConfig(options=b.options())
        data = await cc_execute("Write f", config, json_mode=True)
        prompt = b.server.message_requests[-1].prompt or ""
        text = await cc_execute("Write f", config, json_mode=True, return_dict=False)
        as_dict = await cc_execute("Write f", config, return_dict=True)
    assert data["result"] == "def f():\n    return 1"  # a raw newline in the string
    assert data["files_created"] == ["f.py"]
    assert data["summary"] == "wrote f"
    assert list(data)[-1] == "execution_uuid"
    assert prompt.startswith("Write f\n\nIMPORTANT: answer with one JSON object")
    for key in ("result", "files_created", "summary", "execution_uuid"):
        assert f'"{key}"' in prompt
    assert f'"execution_uuid" to "{data["execution_uuid"]}"' in prompt
    # the id is the run's: the history knows it
    store = open_store()
    try:
        assert store.get(data["execution_uuid"]) is not None
    finally:
        store.close()
    assert text == "def f():\n    return 1"
    assert as_dict["summary"] == "wrote f"


async def test_json_mode_asks_for_a_given_schema_instead(bed: Any) -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    async with bed(answer('{"n": 3}')) as b:
        config = CCExecutorConfig(options=b.options())
        data = await cc_execute("Count", config, json_mode=True, json_schema=schema)
        prompt = b.server.message_requests[-1].prompt or ""
    assert data["n"] == 3
    assert '"required": [\n    "n"\n  ]' in prompt
    assert "files_created" not in prompt


async def test_json_mode_without_json_returns_the_text_and_why(bed: Any) -> None:
    """The original's fallback: a dict with the answer under result and the reason under
    error, with a warning at the caller's line; strict_json=True raises instead and sends
    the prompt as given."""
    async with bed(answer("Sorry, I only speak prose.")) as b:
        config = CCExecutorConfig(options=b.options())
        with pytest.warns(UserWarning, match="json_mode: no JSON object") as caught:
            data = await cc_execute("Describe it", config, json_mode=True)
        with pytest.warns(UserWarning, match="json_mode"):
            text = await cc_execute("Describe it", config, json_mode=True, return_dict=False)
        with pytest.raises(CCExecuteError, match="json_mode: no JSON object"):
            await cc_execute("Describe it", config, strict_json=True)
        strict_prompt = b.server.message_requests[-1].prompt
    assert caught[0].filename == __file__
    assert data["result"] == "Sorry, I only speak prose."
    assert data["error"].startswith("json_mode: no JSON object or array found")
    assert list(data) == ["result", "error", "execution_uuid"]
    assert text == "Sorry, I only speak prose."
    assert strict_prompt == "Describe it"


async def test_cc_execute_task_list_reports_each_task(bed: Any) -> None:
    """One fresh run per task, in order; a failed task is reported and the next runs."""
    script = Script(
        [
            Rule(match="^Task 2", answers=[HttpErrorReply(400, "bad request for task 2")]),
            Rule(match="^Task", answers=[Reply([Text("done")])]),
        ]
    )
    async with bed(script) as b:
        config = CCExecutorConfig(options={**b.options(), "retries": 0})
        results = await cc_execute_task_list(["Task 1: a", "Task 2: b", "Task 3: c"], config)
        with pytest.raises(TypeError, match="list of prompts"):
            await cc_execute_task_list("Task 1: a")
    assert [r["task_num"] for r in results] == [1, 2, 3]
    assert [r["success"] for r in results] == [True, False, True]
    assert results[0] == {
        "task_num": 1,
        "task": "Task 1: a",
        "output": "done",
        "success": True,
        "error": None,
    }
    assert results[1]["output"] is None
    assert "bad request for task 2" in results[1]["error"]
