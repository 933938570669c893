"""The dependency graph of a task list: unknown tasks, cycles, and what a task may read
(``resume_from`` and ``tasks.<id>`` in its template name an ancestor)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from cc_executor.tasks._errors import TaskListProblem
from cc_executor.tasks._fields import suggest
from cc_executor.tasks._spec import TaskSpec
from cc_executor.tasks._template import TASK_FIELDS


def graph_problems(
    specs: Sequence[TaskSpec], source: str, implicit: Collection[str] = ()
) -> list[TaskListProblem]:
    """Every problem of the dependencies among ``specs`` (tasks of the list ``source``), in
    task order; in a list with a cycle, the cycles and unknown tasks only. ``implicit``:
    the tasks that wait for the one before them only because they name no
    ``depends_on`` (a cycle through one says so: the user never wrote that edge)."""
    found: list[TaskListProblem] = []

    def problem(
        message: str, line: int | None, *, where: str | None = None, task: str | None = None
    ) -> None:
        found.append(TaskListProblem(source, message, line, where, task))

    ids = {t.id: t for t in specs}
    for t in specs:
        for dep in t.depends_on:
            if dep == t.id:
                problem("depends on itself", t.line, task=t.id)
            elif dep not in ids:
                problem(f'depends on unknown task "{dep}"{suggest(dep, ids)}', t.line, task=t.id)
    cycles = [c for c in _cycles(specs) if len(c) > 2]
    for cycle in cycles:
        first = min(cycle[:-1], key=lambda tid: specs.index(ids[tid]))
        unwritten = [tid for tid in cycle[:-1] if tid in implicit]
        why = (
            f' (task "{unwritten[0]}" names no depends_on, so it waits for the task before '
            "it: give it depends_on, [] for none)"
            if unwritten
            else ""
        )
        problem(f"dependency cycle: {' -> '.join(cycle)}{why}", ids[first].line, task=first)
    if cycles:
        return found  # "ancestor" means nothing in a cycle
    ancestors = _Ancestors(ids)
    for t in specs:
        if t.resume_from is not None:
            if t.resume_from not in ids:
                problem(
                    f'resume_from: unknown task "{t.resume_from}"{suggest(t.resume_from, ids)}',
                    t.line,
                    task=t.id,
                )
            elif not ancestors.has(t.id, t.resume_from):
                problem(
                    f'resume_from: "{t.resume_from}" is not an ancestor of this task '
                    f"(add it to depends_on): its session must be finished first",
                    t.line,
                    task=t.id,
                )
        for ref in t.references:
            line = (t.prompt_line + ref.line - 1) if t.prompt_line else None
            where = "prompt"
            if ref.task not in ids:
                problem(
                    f"template refers to unknown task tasks.{ref.task}{suggest(ref.task, ids)}",
                    line,
                    where=where,
                    task=t.id,
                )
            elif ref.task == t.id:
                problem("template refers to the task itself", line, where=where, task=t.id)
            elif not ancestors.has(t.id, ref.task):
                problem(
                    f"template refers to tasks.{ref.task}, which is not an ancestor of "
                    f'this task (add "{ref.task}" to depends_on)',
                    line,
                    where=where,
                    task=t.id,
                )
            if ref.field is not None and ref.field not in TASK_FIELDS:
                problem(
                    f"template: tasks.{ref.task}.{ref.field}: unknown field"
                    f"{suggest(ref.field, TASK_FIELDS)} (known: {', '.join(TASK_FIELDS)})",
                    line,
                    where=where,
                    task=t.id,
                )
    return found


class _Ancestors:
    """Is X an ancestor of Y? A search per question: memory stays linear in the list size
    (a chain of 1,000 tasks would need half a million entries as closure sets)."""

    def __init__(self, ids: Mapping[str, TaskSpec]) -> None:
        self._ids = ids

    def has(self, task: str, ancestor: str) -> bool:
        stack = list(self._ids[task].depends_on)
        seen: set[str] = set()
        while stack:
            current = stack.pop()
            if current == ancestor:
                return True
            if current not in seen and current in self._ids:
                seen.add(current)
                stack.extend(self._ids[current].depends_on)
        return False


def _cycles(specs: Sequence[TaskSpec]) -> list[list[str]]:
    """Each dependency cycle once, as ``[a, b, c, a]`` (a depends on b, ...)."""
    ids = {t.id: t for t in specs}
    color: dict[str, int] = {}
    found: list[list[str]] = []
    for root in ids:
        if root in color:
            continue
        stack: list[tuple[str, int]] = [(root, 0)]
        path: list[str] = []
        while stack:
            node, index = stack.pop()
            if index == 0:
                color[node] = 1
                path.append(node)
            deps = ids[node].depends_on
            if index < len(deps):
                stack.append((node, index + 1))
                child = deps[index]
                if child not in ids:
                    pass  # reported as an unknown task
                elif color.get(child) == 1:
                    found.append([*path[path.index(child) :], child])
                elif child not in color:
                    stack.append((child, 0))
            else:
                color[node] = 2
                path.pop()
    return found
