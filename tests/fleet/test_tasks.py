"""``tasks run FILE --fleet URL``: a task list's dependency graph scheduled from here, each
task a fleet run on whichever worker is free, results passed forward, resumable."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from cc_executor.tasks import resume_tasks, start_tasks
from cc_executor.testing import Reply, Rule, Script, Text
from tests._wait import await_for
from tests.fleet.conftest import CLI

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_ten_tasks_with_dependencies_spread_over_three_workers(fleet_bed: Any) -> None:
    rules = [Rule(match=rf"^do t{i}\b", answers=[Reply([Text(f"out-{i}")])]) for i in range(9)]
    rules.append(Rule(match=r"^join", answers=[Reply([Text("joined")])]))
    spec = {
        "tasks": [
            {"id": "t0", "prompt": "do t0"},
            *({"id": f"t{i}", "prompt": f"do t{i}", "depends_on": ["t0"]} for i in range(1, 9)),
            {
                "id": "t9",
                "prompt": "join " + " ".join(f"{{{{ tasks.t{i}.result }}}}" for i in range(9)),
                "depends_on": [f"t{i}" for i in range(1, 9)],
            },
        ]
    }
    async with fleet_bed(Script(rules)) as bed:
        workers = [bed.start_worker() for _ in range(3)]
        (bed.workdir / "list.json").write_text(json.dumps(spec))
        done = await asyncio.to_thread(
            subprocess.run,
            [CLI, "tasks", "run", "list.json", "--fleet", bed.url, "--max-parallel", "8", "--json"],
            cwd=bed.workdir,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        prompts = [r.prompt for r in bed.server.message_requests]
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    tasks = result["tasks"]
    assert [tasks[f"t{i}"]["status"] for i in range(10)] == ["ok"] * 10
    assert tasks["t9"]["result"] == "joined"
    # Results went forward: the last task's prompt holds every earlier answer.
    (joined,) = [p for p in prompts if p.startswith("join")]
    assert joined == "join " + " ".join(f"out-{i}" for i in range(9))
    # Each task ran on one worker (its run folder is on that machine), and all took some.
    ran_on = {
        tid: [w.name for w in workers if (w.data / "runs" / state["run_id"]).is_dir()]
        for tid, state in tasks.items()
    }
    assert all(len(names) == 1 for names in ran_on.values()), ran_on
    assert {names[0] for names in ran_on.values()} == {"w1", "w2", "w3"}, ran_on


async def test_a_fleet_list_stopped_while_queued_resumes_on_its_fleet(fleet_bed: Any) -> None:
    rules = [Rule(answers=[Reply([Text("fine")])])]
    spec = {"tasks": [{"id": "a", "prompt": "first"}, {"id": "b", "prompt": "second"}]}
    async with fleet_bed(Script(rules)) as bed:
        # No worker yet: the first task's run waits in the queue; stop the list there.
        handle = start_tasks(spec, fleet=bed.url, cwd=str(bed.workdir))
        await await_for(lambda: bed.redis.client().llen("cc-executor:cc-executor-runs"), timeout=60)
        handle.cancel()
        stopped = await handle.wait()
        assert stopped.tasks["a"].status.value == "cancelled"
        bed.start_worker()
        # Resumed without naming the fleet: the list goes on where it ran.
        resumed = await resume_tasks(stopped.list_id)
    assert [resumed.tasks[t].status.value for t in "ab"] == ["ok", "ok"]
    assert len(bed.server.message_requests) == 2


async def test_a_task_the_fleets_budget_refuses_ends_budget_exceeded(fleet_bed: Any) -> None:
    """The worker's budget cannot cover any run: the first task ends budget_exceeded after
    one refused attempt (no retry: the budget would refuse it again, and no agent ran), and
    the task depending on it is skipped."""
    spec = {
        "tasks": [
            {"id": "a", "prompt": "first", "retries": 2},
            {"id": "b", "prompt": "second", "depends_on": ["a"]},
        ]
    }
    async with fleet_bed(Script([Rule(answers=[Reply([Text("fine")])])])) as bed:
        bed.start_worker("--budget-usd", "0.01", "--reserve-usd", "0.02")
        result = await start_tasks(spec, fleet=bed.url, cwd=str(bed.workdir)).wait()
        asked = len(bed.server.message_requests)
    a, b = result.tasks["a"], result.tasks["b"]
    assert a.status.value == "budget_exceeded", result.to_dict()
    assert [r.status for r in a.runs] == ["budget_exceeded"]
    assert (a.error or "").startswith("not started: its reservation $0.0200 is more than")
    assert b.status.value == "skipped"
    assert b.skipped_reason == 'dependency "a" ended budget_exceeded'
    assert result.status.value == "budget_exceeded"
    assert asked == 0
