"""The original cc_executor's JSON task lists, read as ours: ``{"task_list": [...]}`` or
``{"task_list": {"name": ..., "description": ..., "tasks": [...]}}``, whose tasks name
their title ``name``, may give their prompt as ``command``, and carry ``category`` and
``success_criteria``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Lines = dict[tuple[Any, ...], int]

#: The original's task keys and ours: ``name`` is the title, ``command`` the prompt.
_RENAMED = {"name": "title", "command": "prompt"}


def from_original(data: Any, key_lines: Lines, value_lines: Lines) -> tuple[Any, Lines, Lines]:
    """``data`` in our shape (a mapping with ``tasks``) if it is in the original's, with the
    line maps moved along; anything else is returned as it is. In the original's shape a
    list's ``description`` and a task's ``category`` are dropped (labels for people), and a
    task's ``success_criteria`` (a list of strings or one string) is appended to its
    prompt, as the model read it in the original."""
    if not isinstance(data, Mapping) or "task_list" not in data or "tasks" in data:
        return data, key_lines, value_lines
    inner = data["task_list"]
    outer = {k: v for k, v in data.items() if k != "task_list"}
    if isinstance(inner, list):
        document: dict[str, Any] = {**outer, "tasks": inner}
        prefix: tuple[Any, ...] = ("tasks",)
    elif isinstance(inner, Mapping):
        document = {**outer, **{k: v for k, v in inner.items() if k != "description"}}
        prefix = ()
    else:
        return data, key_lines, value_lines

    def moved(lines: Lines) -> Lines:
        out = {k: v for k, v in lines.items() if not k or k[0] != "task_list"}
        for path, line in lines.items():
            if path[:1] == ("task_list",):
                new = (*prefix, *path[1:])
                if len(new) == 3 and new[0] == "tasks":
                    new = (*new[:2], _RENAMED.get(new[2], new[2]))
                out[new] = line
        return out

    tasks = document.get("tasks")
    if isinstance(tasks, list):
        document["tasks"] = [_task(t) if isinstance(t, Mapping) else t for t in tasks]
    return document, moved(key_lines), moved(value_lines)


def _task(task: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in task.items():
        if key == "category":
            continue
        new = _RENAMED.get(key, key)
        if new != key and new in task:
            new = key  # both spellings given: the checker reports the unknown one
        out[new] = value
    criteria = out.pop("success_criteria", None)
    if criteria and isinstance(out.get("prompt"), str):
        items = [criteria] if isinstance(criteria, str) else [str(c) for c in criteria]
        out["prompt"] += "\n\nSuccess criteria:\n" + "\n".join(f"- {c}" for c in items)
    elif criteria is not None:
        out["success_criteria"] = criteria
    return out
