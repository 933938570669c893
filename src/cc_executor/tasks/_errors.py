"""The one exception of task lists: an invalid list, with every problem found, each located."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a task list.

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


class TaskListError(ValueError):
    """A task list is invalid (raised before anything runs) or cannot be found or read.

    ``problems`` lists everything found, sorted by line; the message has one per line, as
    ``tasks.yaml:14: task "build": unknown field "dependson" (did you mean depends_on?)``.
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        # The same reference twice on a line is one problem, not two.
        unique = list(dict.fromkeys(problems))
        self.problems = sorted(unique, key=lambda p: (p.line is None, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


class TaskListNotFound(LookupError):
    """No task list run has this id (or unique id prefix), or its folder is gone."""


class TaskListBusy(RuntimeError):
    """The task list is being run by another live process (it holds the list's lock)."""
