"""A list's budget with the in-process ledger: 30 tasks with a scripted cost each, a
budget for 10 of them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cc_executor import run
from cc_executor._agents._types import AgentEvent, BudgetEvent
from cc_executor.tasks import ListStatus, run_tasks
from cc_executor.testing import Reply, Rule, Script, Text, Usage
from tests.tasks.conftest import Served

Serve = Callable[[Script], Served]


async def test_thirty_tasks_start_only_the_ten_the_budget_covers(serve: Serve) -> None:
    usage = Usage(input_tokens=1000, output_tokens=1000)
    served = serve(Script([Rule(answers=[Reply([Text("done")], usage=usage)])]))
    # What one run costs, as the CLI reports it.
    probe = await run("probe", **served.options())
    assert probe.cost_usd, probe
    # A reservation a little above the cost: the CLI stops a run that reaches its cap, and
    # the list stops at such a run. What 10 runs give back (10 x 5%) covers no 11th.
    cost = round(probe.cost_usd, 6)
    reserve = round(cost * 1.05, 6)
    budget = round(10 * reserve, 6)
    events: list[tuple[str, AgentEvent]] = []

    def on_event(task_id: str, event: AgentEvent) -> None:
        if isinstance(event, BudgetEvent):
            events.append((task_id, event))

    spec: dict[str, Any] = {
        "parallel": True,
        "tasks": [{"id": f"t{i}", "prompt": f"Task {i}"} for i in range(30)],
    }
    result = await run_tasks(
        spec,
        max_parallel=4,
        budget_usd=budget,
        reserve_usd=reserve,
        on_event=on_event,
        **served.options(),
    )
    started = [t for t in result.tasks.values() if t.runs]
    refused = [t for t in result.tasks.values() if not t.runs]
    assert len(started) == 10, result.to_dict()
    assert result.status is ListStatus.BUDGET_EXCEEDED
    # Not started (no run, no process): budget_exceeded, saying why.
    assert all(t.status.value == "budget_exceeded" for t in refused)
    assert all((t.error or "").startswith("not started: ") for t in refused)
    assert all(t.skipped_reason is None and t.run_id is None for t in refused)
    spent = result.budget_spent_usd or 0.0
    assert spent <= budget + 1e-9
    assert spent == sum(t.cost_usd or 0.0 for t in started)
    assert all(t.status.value == "ok" for t in started)
    # The soft threshold (80%) is announced once, by the task whose end passed it, then
    # the budget exhausted once, by the first task it could not cover.
    (task_id, event), (refused_id, exhausted) = events
    assert isinstance(exhausted, BudgetEvent)
    assert exhausted.what == "exhausted"
    assert refused_id in {t.id for t in refused}
    assert isinstance(event, BudgetEvent)
    assert (event.what, event.threshold) == ("threshold", 0.8)
    assert task_id in {t.id for t in started}
    assert event.spent_usd >= 0.8 * budget - 1e-9


async def test_once_the_budget_is_spent_ready_tasks_end_budget_exceeded(serve: Serve) -> None:
    """Tasks without a cap reserve the whole remainder: the first spends two thirds of the
    budget, the second is stopped at its cap past the rest; then nothing is left, the tasks
    ready to start end budget_exceeded without a run, and one depending on them is skipped."""
    usage = Usage(input_tokens=1000, output_tokens=1000)
    served = serve(Script([Rule(answers=[Reply([Text("done")], usage=usage)])]))
    probe = await run("probe", **served.options())
    assert probe.cost_usd, probe
    budget = round(1.5 * probe.cost_usd, 6)
    spec: dict[str, Any] = {
        "parallel": True,
        "tasks": [
            *({"id": f"t{i}", "prompt": f"Task {i}", "on_error": "continue"} for i in range(4)),
            {"id": "after", "prompt": "After t3", "depends_on": ["t3"]},
        ],
    }
    result = await run_tasks(spec, max_parallel=2, budget_usd=budget, **served.options())
    tasks = result.tasks
    statuses = [tasks[f"t{i}"].status.value for i in range(4)]
    assert statuses == ["ok", "failed", "budget_exceeded", "budget_exceeded"], result.to_dict()
    assert tasks["t1"].run_status == "budget_exceeded"  # started, stopped at its cap
    spent = result.budget_spent_usd or 0.0
    reason = f"not started: budget_usd ${budget:g} reached (${spent:.4f} spent)"
    assert (tasks["t3"].error or "").startswith(reason), tasks["t3"].error
    assert tasks["t3"].runs == []
    assert tasks["after"].status.value == "skipped"
    assert tasks["after"].skipped_reason == 'dependency "t3" ended budget_exceeded'
    assert result.status is ListStatus.BUDGET_EXCEEDED
    assert served.count("Task 2") == served.count("Task 3") == served.count("After t3") == 0
