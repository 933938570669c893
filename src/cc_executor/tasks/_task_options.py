"""The run options of a list's tasks: the caller's checked, merged under each task's own and
checked again as a whole, before anything runs."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from cc_executor._run._options import RunOptions
from cc_executor.tasks._errors import TaskListError, TaskListProblem
from cc_executor.tasks._spec import TaskListSpec

#: Run options the task runner sets itself for every task run.
_SET_BY_RUNNER = frozenset(
    {"run_id", "run_dir", "parent_id", "resume", "continue_session", "session_id", "fork_session"}
)


def check_run_defaults(run_defaults: Mapping[str, Any]) -> None:
    """Raise ``TypeError`` for an unknown run option or one the runner sets itself."""
    known = {o.name for o in RunOptions.options} | set(RunOptions.alias_of)
    unknown = sorted(set(run_defaults) - known)
    if unknown:
        raise TypeError(
            f"unknown run option(s): {', '.join(unknown)} (known: {', '.join(sorted(known))})"
        )
    reserved = sorted(set(run_defaults) & _SET_BY_RUNNER)
    if reserved:
        raise TypeError(
            f"{', '.join(reserved)}: set by the task runner for each task "
            "(use resume_from in the list to continue a task's session)"
        )


def task_options(spec: TaskListSpec, run_defaults: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The run options of every task: ``run_defaults`` under the list's (``defaults``
    merged under each task's own), ``env`` merged key by key. Raises :class:`TaskListError`
    for options :class:`~cc_executor.RunOptions` refuses, and for templates reading
    ``tasks.<id>.json`` of a task that asks for no JSON."""
    problems: list[TaskListProblem] = []
    out: dict[str, dict[str, Any]] = {}
    for task in spec.tasks:
        merged = {**run_defaults, **task.options}
        if task.options.get("repo") is not None and "cwd" not in task.options:
            merged.pop("cwd", None)  # the run works in its clone, not the list's folder
        env = {**run_defaults.get("env", {}), **task.options.get("env", {})}
        if env:
            merged["env"] = env
        try:
            RunOptions.from_kwargs(merged)
        except (TypeError, ValueError) as exc:
            problems.append(TaskListProblem(spec.source, str(exc), task.line, task=task.id))
        out[task.id] = merged
    for task in spec.tasks:
        for ref in task.references:
            options = out.get(ref.task)
            if ref.field != "json" or options is None:
                continue
            if not options.get("json_mode") and options.get("json_schema") is None:
                line = task.prompt_line + ref.line - 1 if task.prompt_line else task.line
                problems.append(
                    TaskListProblem(
                        spec.source,
                        f'template reads tasks.{ref.task}.json, but task "{ref.task}" sets '
                        "neither json_mode nor json_schema (its json would be null)",
                        line,
                        task=task.id,
                    )
                )
    if problems:
        raise TaskListError(problems)
    return out


def saved_defaults(run_defaults: Mapping[str, Any]) -> dict[str, Any]:
    """What of the caller's run options is kept for a resume: everything but ``env``
    (it may hold API keys, which are never written to disk)."""
    out: dict[str, Any] = {}
    for key, value in run_defaults.items():
        if key == "env":
            continue
        if isinstance(value, os.PathLike):
            out[key] = os.fspath(value)
        elif isinstance(value, (tuple, list)):
            out[key] = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        else:
            out[key] = value
    return out


def check_reserve(reserve_usd: float | Mapping[str, float] | None) -> dict[str, float] | None:
    """A caller's ``reserve_usd`` (a number for every model, or ``{model: usd}`` with
    ``"*"`` for any other) as a mapping; ``ValueError`` saying what was expected."""
    from cc_executor.tasks._fields import BadValue
    from cc_executor.tasks._validate import reservations

    if reserve_usd is None:
        return None
    try:
        return reservations(reserve_usd)
    except BadValue as exc:
        raise ValueError(f"reserve_usd: {exc}") from None


def check_limits(max_parallel: int | None, budget_usd: float | None) -> None:
    """Raise ``ValueError`` for a ``max_parallel`` below 1 or a ``budget_usd`` not above 0."""
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise ValueError(f"max_parallel must be an integer >= 1, got {max_parallel!r}")
    if budget_usd is not None and not budget_usd > 0:
        raise ValueError(f"budget_usd must be positive, got {budget_usd!r}")
