"""One status vocabulary: the enums of every layer are one, docs/statuses.md lists every
status with its exit code, and results serialise from their fields with a schema version."""

from __future__ import annotations

import re
from pathlib import Path

from cc_executor._agents._types import RunStatus
from cc_executor._engine import ProcessResult, ProcessStatus
from cc_executor._payload import SCHEMA_VERSION
from cc_executor._run._result import RunResult
from cc_executor._status import Status
from cc_executor.tasks import ListStatus, TaskListResult, TaskResult, TaskStatus
from cc_executor.tasks._result import total_cost

DOC = Path(__file__).resolve().parents[1] / "docs" / "statuses.md"


def test_every_layer_speaks_the_one_vocabulary() -> None:
    assert RunStatus is ProcessStatus is TaskStatus is ListStatus is Status


def test_the_documented_table_is_the_enum() -> None:
    rows = re.findall(r"^\| `(\w+)` \| (yes|no) \| (-|\d+) \|", DOC.read_text(), re.M)
    assert [name for name, _final, _code in rows] == [s.value for s in Status]
    for name, final, code in rows:
        status = Status(name)
        assert (final == "yes") is status.final
        assert code == (str(status.exit_code()) if status.final else "-")


def test_exit_codes_follow_the_settled_table() -> None:
    codes = {s.value: s.exit_code() for s in Status if s.final}
    assert codes["ok"] == 0
    assert codes["usage_error"] == 2
    assert codes["denied"] == 3
    assert codes["timeout"] == codes["idle_timeout"] == 124
    assert codes["spawn_failed"] == 125
    assert codes["cancelled"] == 130
    assert Status.CANCELLED.exit_code(by_user=False) == 1
    assert codes["oom_killed"] == 137
    for name in ("error", "crashed", "interrupted", "limit_exceeded", "failed"):
        assert codes[name] == 1


def test_results_carry_the_schema_version_and_every_field() -> None:
    run = RunResult(run_id="r", status=Status.OK, usage={"input_tokens": 1}).to_dict()
    assert run["schema_version"] == SCHEMA_VERSION
    assert run["status"] == "ok"
    assert run["usage"] == {"input_tokens": 1}
    assert run["cost_usd"] is None
    assert {"stdout_sha256", "stderr_sha256"} <= set(run)
    assert "process" not in run
    process = ProcessResult(run_id="p", argv=["x"], cwd="/", status=Status.FAILED).to_dict()
    assert process["schema_version"] == SCHEMA_VERSION
    assert process["status"] == "failed"
    assert not [key for key in process if key.startswith("_")]


def test_a_list_whose_tasks_reported_no_cost_has_no_cost() -> None:
    """``cost_usd`` is None when nothing reported a cost, never a made-up 0."""
    tasks = {"a": TaskResult(id="a"), "b": TaskResult(id="b", cost_usd=0.5)}
    result = TaskListResult(list_id="l", status=Status.OK, tasks=tasks).to_dict()
    assert result["schema_version"] == SCHEMA_VERSION
    assert result["tasks"]["a"]["cost_usd"] is None
    assert "schema_version" not in result["tasks"]["a"]
    assert result["tasks"]["b"]["cost_usd"] == 0.5
    assert total_cost(tasks.values()) == 0.5
    assert total_cost([TaskResult(id="a")]) is None
