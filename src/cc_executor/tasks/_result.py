"""What a task list run produces: per-task results, the list's result, and task events."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from cc_executor._agents._types import AgentEvent
from cc_executor._payload import payload
from cc_executor._status import Status

#: Where a task is: the one status vocabulary (see :mod:`cc_executor._status`). A task is
#: pending, running, ok (a resumed list never runs it again), failed (its last attempt did
#: not end ok: ``run_status`` and ``error`` say how), budget_exceeded (never started: the
#: list's budget, or a fleet's, could not cover its reservation; ``error`` says why; a
#: resumed list tries it again), skipped (a dependency did not end ok, or the list stopped:
#: ``skipped_reason``), cancelled (Ctrl-C, SIGTERM or ``cancel()``; resuming the list
#: continues it) or interrupted (the process running the list died; resuming continues it).
TaskStatus = Status

#: How a task list run ended (the same vocabulary): running, ok (every task ended ok),
#: failed (a task failed, and dependents were skipped or the list stopped),
#: budget_exceeded (``budget_usd`` was reached, so no further task was started), cancelled
#: or interrupted (both resumable).
ListStatus = Status


@dataclass(slots=True, kw_only=True)
class TaskAttempt:
    """One run of a task (a task re-run after a failure or an interruption has several).

    ``resumed_session`` is the Claude session it continued (an interrupted attempt's, or the
    ``resume_from`` task's), ``status`` the run's status (``running`` while it runs,
    ``interrupted`` if the list's process died during it). ``reason`` says which attempt it
    was and why it ran: ``attempt 2 of 3 after timeout`` (a task with ``retries: N`` has at
    most N+1 attempts each time the list runs or resumes). ``reserved_usd`` is what it
    reserved of the list's budget (its ``max_budget_usd``), None without a budget.
    """

    run_id: str
    status: str = "running"
    session_id: str | None = None
    resumed_session: str | None = None
    cost_usd: float | None = None
    num_turns: int | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    error: str | None = None
    reason: str | None = None
    reserved_usd: float | None = None

    @property
    def charged_usd(self) -> float:
        """What it counts against the list's budget: its reported cost; with none, its whole
        reservation if it reached the agent's session (the cost of a run stopped before
        the CLI reported it is unknown, not nothing), else 0."""
        if self.cost_usd is not None:
            return self.cost_usd
        if self.reserved_usd is not None and self.session_id is not None:
            return self.reserved_usd
        return 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return payload(self, versioned=False)


@dataclass(slots=True, kw_only=True)
class TaskResult:
    """The state, then the outcome, of one task.

    ``run_id`` is its last run (in the history, with the list as parent); ``result``,
    ``json``, ``files``, ``session_id`` come from its successful run. ``cost_usd`` adds up
    every attempt that reported a cost (None when none did). ``started_at``/``ended_at``
    are wall-clock times (``time.time()``).
    """

    id: str
    title: str = ""
    status: TaskStatus = TaskStatus.PENDING
    run_id: str | None = None
    run_status: str | None = None
    result: str = ""
    json: Any = None
    files: list[str] = field(default_factory=list)
    session_id: str | None = None
    cost_usd: float | None = None
    num_turns: int | None = None
    duration_s: float | None = None
    error: str | None = None
    skipped_reason: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    runs: list[TaskAttempt] = field(default_factory=list)
    #: The change receipt of its last run with a workspace (``workspace: worktree``).
    workspace: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """True when ``status`` is ``ok``."""
        return self.status is TaskStatus.OK

    @property
    def attempts(self) -> int:
        """How many runs the task has had."""
        return len(self.runs)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = payload(self, versioned=False)
        data["runs"] = [r.to_dict() for r in self.runs]
        data["attempts"] = self.attempts
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskResult:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["status"] = TaskStatus(values.get("status", "pending"))
        values["runs"] = [TaskAttempt(**r) for r in values.get("runs") or []]
        return cls(**values)


@dataclass(slots=True, kw_only=True)
class TaskListResult:
    """The outcome of a task list run (or its state so far, from ``get_task_list``).

    ``tasks`` maps ids to :class:`TaskResult` in file order. ``cost_usd`` adds up every
    attempt of every task that reported a cost (None when none did), over all the sessions
    that ran the list (a resumed list counts what was spent before); ``duration_s`` is
    this session's wall time.
    ``stopped_reason`` says why tasks were not started (budget reached, a task failed with
    ``on_error: stop``, cancelled). ``run_dir`` holds ``spec.json``, ``list.json`` and one
    state file per task.

    ``budget_usd`` is the list's budget (None: none) and ``budget_spent_usd`` what was
    spent against it: the reported costs, plus the whole reservation of each run stopped
    before it reported one. No task starts unless what is left covers its reservation, so
    the total exceeds the budget by at most what running tasks spent past their own caps
    (the CLI learns a cost only once it is billed, and stops a run after the turn that
    went past its cap).
    """

    list_id: str
    status: ListStatus
    tasks: dict[str, TaskResult]
    cost_usd: float | None = None
    duration_s: float = 0.0
    run_dir: str | None = None
    source: str | None = None
    name: str | None = None
    stopped_reason: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    warnings: list[str] = field(default_factory=list)
    budget_usd: float | None = None
    budget_spent_usd: float | None = None
    #: With tasks in workspaces: the branch holding every ok task's changes, merged in file
    #: order (``cc-executor/<list id>``); None when no task had a workspace.
    workspace_branch: str | None = None

    @property
    def ok(self) -> bool:
        """True when every task ended ``ok``."""
        return self.status is ListStatus.OK

    def counts(self) -> dict[str, int]:
        """How many tasks are in each status."""
        out: dict[str, int] = {}
        for task in self.tasks.values():
            out[task.status.value] = out.get(task.status.value, 0) + 1
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (what ``cc-executor tasks run --json`` prints), with
        ``schema_version``."""
        data = payload(self, skip=("tasks",))
        data["counts"] = self.counts()
        data["tasks"] = {tid: t.to_dict() for tid, t in self.tasks.items()}
        return data


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStateEvent(AgentEvent):
    """Made by the task runner when a task changes state: ``running`` (attempt ``attempt``
    started as run ``run_id``; ``reason``: ``attempt 2 of 3 after timeout``), ``retrying``,
    ``ok``, ``failed``, ``budget_exceeded``, ``skipped``, ``cancelled``. ``reason`` says
    why for the last five; ``cost_usd`` is the task's total."""

    type: ClassVar[str] = "task_state"
    task_id: str = ""
    state: str = ""
    attempt: int = 0
    run_id: str | None = None
    reason: str | None = None
    cost_usd: float | None = None


def charged(tasks: Iterable[TaskResult]) -> float:
    """What the tasks' attempts count against a list's budget (see
    :attr:`TaskAttempt.charged_usd`)."""
    return sum(attempt.charged_usd for task in tasks for attempt in task.runs)


def total_cost(tasks: Iterable[TaskResult]) -> float | None:
    """The sum of the tasks' costs; None when no task reported one."""
    costs = [t.cost_usd for t in tasks if t.cost_usd is not None]
    return sum(costs) if costs else None
