"""A task list as written: its tasks and list settings before validation, with the line of
each part in the file. The Markdown parser builds one; so does :func:`from_document` from a
YAML or JSON document or a mapping."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_executor.tasks._errors import TaskListError, TaskListProblem
from cc_executor.tasks._fields import describe


@dataclass
class RawTask:
    """One task as written, before validation, with where its parts are in the file."""

    position: int
    data: Any
    where: str
    line: int | None = None
    key_lines: dict[str, int] = field(default_factory=dict)
    prompt_line: int | None = None
    number: int | None = None


@dataclass
class RawList:
    """A whole list as written: its list-level settings (``data``), its tasks, the line of
    each key by path, and the problems found while reading it. ``base_dir`` anchors its
    relative paths; ``list_file``: it was read from a file, whose values may name other
    files to read (a ``json_schema``)."""

    source: str
    base_dir: Path
    data: dict[str, Any]
    key_lines: dict[tuple[Any, ...], int]
    tasks: list[RawTask]
    problems: list[TaskListProblem]
    list_file: bool = False


def from_document(
    data: Any,
    *,
    source: str,
    base_dir: Path,
    key_lines: dict[tuple[Any, ...], int],
    value_lines: dict[tuple[Any, ...], int],
    problems: list[TaskListProblem],
) -> RawList:
    """A YAML-shaped document (a mapping with a ``tasks`` list) as a raw list. Raises
    :class:`TaskListError` when it is not a mapping; other problems are collected."""
    if not isinstance(data, Mapping):
        raise TaskListError(
            [
                TaskListProblem(
                    source,
                    f"expected a mapping with a 'tasks' list, got {describe(data)}",
                    key_lines.get(()),
                )
            ]
        )
    raw = RawList(source, base_dir, dict(data), key_lines, [], problems)
    items = data.get("tasks")
    if not isinstance(items, list) or not items:
        if items is None:
            message = 'missing "tasks" (a list of tasks)'
        elif isinstance(items, list):
            message = "tasks: the list is empty"
        else:
            message = f"tasks: expected a list, got {describe(items)}"
        problems.append(
            TaskListProblem(source, message, key_lines.get(("tasks",), key_lines.get(())))
        )
        return raw
    for i, item in enumerate(items):
        path = ("tasks", i)
        keys = item if isinstance(item, Mapping) else {}
        item_lines = {k: key_lines.get((*path, k)) for k in keys}
        raw.tasks.append(
            RawTask(
                position=i + 1,
                data=item,
                where=f"tasks[{i}]",
                line=key_lines.get(path),
                key_lines={k: line for k, line in item_lines.items() if line is not None},
                prompt_line=value_lines.get((*path, "prompt")),
            )
        )
    return raw
