"""The validated task list: :class:`TaskListSpec` and its :class:`TaskSpec` tasks.

Every format (Markdown, YAML, JSON, a mapping built in Python) comes down to this one
document, built by :func:`~cc_executor.tasks.parse_task_list`; its JSON form is the spec
kept in a list's folder.
"""

from __future__ import annotations

import heapq
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from cc_executor.tasks._template import Reference

#: Version of the normalized spec kept in a list's folder (``spec.json``).
SPEC_VERSION = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """One task of a validated list.

    ``depends_on`` is the effective list of tasks that must end ``ok`` first: the task's
    own ``depends_on`` (``[]``: none), else nothing when it (or the list) is ``parallel``,
    else the previous task in the file. ``options`` are the run
    options from the file (list ``defaults`` merged under the task's own), by
    :class:`~cc_executor.RunOptions` name, with ``cwd`` and ``add_dirs`` already resolved
    against the file's folder. ``references`` are the ``tasks.<id>`` uses of its template.
    ``line`` and ``prompt_line`` locate it in the file (None for lists built in Python).
    """

    id: str
    prompt: str
    title: str = ""
    depends_on: tuple[str, ...] = ()
    on_error: str = "stop"
    retries: int = 0
    resume_from: str | None = None
    template: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)
    references: tuple[Reference, ...] = ()
    line: int | None = None
    prompt_line: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (the normalized spec kept in the list's folder)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["depends_on"] = list(self.depends_on)
        data["options"] = dict(self.options)
        data["references"] = [[r.task, r.field, r.line] for r in self.references]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskSpec:
        """The inverse of :meth:`to_dict`."""
        values = dict(data)
        values["depends_on"] = tuple(values.get("depends_on") or ())
        values["references"] = tuple(Reference(*r) for r in values.get("references") or ())
        return cls(**values)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskListSpec:
    """A validated task list: tasks in file order, plus list-level settings.

    Build it with :func:`load_task_list` or :func:`parse_task_list`, which check everything
    (unknown fields, types, duplicate ids, missing dependencies, cycles, templates that read
    tasks that are not ancestors) and raise :class:`TaskListError` with every problem.
    ``order`` is a topological order (file order where dependencies allow).
    ``reserve_usd`` maps model names (``"*"``: any other) to what a task of that model
    that sets no ``max_budget_usd`` reserves of ``budget_usd``.
    """

    tasks: tuple[TaskSpec, ...]
    source: str = "<spec>"
    name: str | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None
    reserve_usd: Mapping[str, float] | None = None
    #: ``cancel`` or ``drain`` (None: drain): what the budget's exhaustion does to the
    #: running tasks. No webhook here: where the list's notes go is its caller's choice.
    on_budget_exhausted: str | None = None
    #: The percent of ``budget_usd`` (one or several) whose passing is announced (None:
    #: 80). No webhook here, nor the hosts it may reach: where the list's notes go is its
    #: caller's choice.
    budget_threshold: tuple[float, ...] | None = None

    @property
    def by_id(self) -> dict[str, TaskSpec]:
        """Tasks by id."""
        return {t.id: t for t in self.tasks}

    @property
    def sequential(self) -> bool:
        """True when each task simply follows the previous one."""
        return all(
            t.depends_on == ((self.tasks[i - 1].id,) if i else ()) for i, t in enumerate(self.tasks)
        )

    @property
    def one_at_a_time(self) -> bool:
        """True when no two tasks can run at once (every wave holds one task), whatever
        ``max_parallel`` says."""
        return all(len(wave) == 1 for wave in self.waves())

    def waves(self) -> list[list[str]]:
        """The schedule: wave N holds the tasks whose longest chain of dependencies is N-1
        long, in file order. A task can start once its own dependencies end ``ok``, so a
        wave is not a barrier, but the tasks of one wave never wait for each other."""
        by_id = self.by_id
        level: dict[str, int] = {}
        for tid in self.order():
            level[tid] = 1 + max((level[d] for d in by_id[tid].depends_on), default=-1)
        waves: list[list[str]] = [[] for _ in range(max(level.values(), default=-1) + 1)]
        for task in self.tasks:
            waves[level[task.id]].append(task.id)
        return waves

    def order(self) -> list[str]:
        """Task ids in a topological order, file order breaking ties."""
        position = {t.id: i for i, t in enumerate(self.tasks)}
        waiting = {t.id: len(t.depends_on) for t in self.tasks}
        dependents: dict[str, list[str]] = {t.id: [] for t in self.tasks}
        for t in self.tasks:
            for dep in t.depends_on:
                dependents[dep].append(t.id)
        ready = [(position[t], t) for t, n in waiting.items() if n == 0]
        heapq.heapify(ready)
        out = []
        while ready:
            _, tid = heapq.heappop(ready)
            out.append(tid)
            for child in dependents[tid]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, (position[child], child))
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form, with ``version``; :meth:`from_dict` reads it back."""
        return {
            "version": SPEC_VERSION,
            "source": self.source,
            "name": self.name,
            "max_parallel": self.max_parallel,
            "budget_usd": self.budget_usd,
            "reserve_usd": dict(self.reserve_usd) if self.reserve_usd is not None else None,
            "on_budget_exhausted": self.on_budget_exhausted,
            "budget_threshold": (
                list(self.budget_threshold) if self.budget_threshold is not None else None
            ),
            "tasks": [t.to_dict() for t in self.tasks],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TaskListSpec:
        """The inverse of :meth:`to_dict` (the spec was validated when it was written)."""
        if data.get("version") != SPEC_VERSION:
            raise ValueError(
                f"task list spec version {data.get('version')!r} is not {SPEC_VERSION}: "
                "written by another cc-executor version"
            )
        return cls(
            tasks=tuple(TaskSpec.from_dict(t) for t in data["tasks"]),
            source=data.get("source") or "<spec>",
            name=data.get("name"),
            max_parallel=data.get("max_parallel"),
            budget_usd=data.get("budget_usd"),
            reserve_usd=data.get("reserve_usd"),
            on_budget_exhausted=data.get("on_budget_exhausted"),
            budget_threshold=(
                tuple(data["budget_threshold"]) if data.get("budget_threshold") else None
            ),
        )
