"""What is wrong with a task list: each :class:`TaskListProblem`, located, and the errors
that carry them (defined with every other error in :mod:`cc_executor._errors`)."""

from __future__ import annotations

from dataclasses import dataclass

from cc_executor._errors import TaskListBusy as TaskListBusy
from cc_executor._errors import TaskListError as TaskListError
from cc_executor._errors import TaskListNotFound as TaskListNotFound
from cc_executor._lazy import renamed


@dataclass(frozen=True, slots=True)
class TaskListProblem:
    """One thing wrong with a task list (formerly ``Problem``, a deprecated alias).

    ``line`` is 1-based in the file (None when unknown, e.g. a list built in Python); then
    ``where`` (``tasks[2].timeout``) locates it in the document. ``task`` is the id of the
    task concerned, if any.
    """

    source: str
    message: str
    line: int | None = None
    where: str | None = None
    task: str | None = None

    def __str__(self) -> str:
        location = f"{self.source}:{self.line}" if self.line is not None else self.source
        parts = [location]
        if self.line is None and self.where:
            parts.append(self.where)
        if self.task is not None:
            parts.append(f'task "{self.task}"')
        return ": ".join([*parts, self.message])


__getattr__ = renamed(__name__, {"Problem": "TaskListProblem"}, globals())
