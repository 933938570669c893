"""The Markdown format: ``## Task N: title`` sections (or ``### Task N: title``, as the
original cc_executor wrote them: the first task heading sets the level), each one task
whose text is the prompt, with an optional ```yaml settings block at its top and list
settings in front matter. A heading of a higher level (``## Notes`` after ``###`` tasks)
ends the task before it: that section is not part of any prompt."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_executor.tasks._errors import TaskListError, TaskListProblem
from cc_executor.tasks._fields import describe
from cc_executor.tasks._raw import RawList, RawTask
from cc_executor.tasks._yaml import LocatedYAML

_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)")
_HEADING = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_TASK_HEADING = re.compile(
    r"^task\s*#?\s*(?P<number>\d+)\s*(?:[:.)\-\u2013\u2014]\s*)?(?P<title>.*)$"
    r"|^task\s*[:\-\u2013\u2014]\s*(?P<title2>.*)$",
    re.IGNORECASE,
)


def _closing_fence(lines: Sequence[str], start: int, fence: str) -> int | None:
    closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
    for j in range(start + 1, len(lines)):
        if closing.match(lines[j]):
            return j
    return None


def parse_markdown(text: str, source: str, base_dir: Path) -> RawList:
    """The raw list of a Markdown file. Raises :class:`TaskListError` for unclosed front
    matter or invalid YAML in it; other problems are collected in the raw list."""
    problems: list[TaskListProblem] = []
    lines = text.splitlines()
    data: dict[str, Any] = {}
    key_lines: dict[tuple[Any, ...], int] = {}
    start = 0
    if lines and lines[0].rstrip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].rstrip() in ("---", "...")), None)
        if end is None:
            raise TaskListError([TaskListProblem(source, "front matter (---) is not closed", 1)])
        located = LocatedYAML(source, 1, problems)
        front = located.load("\n".join(lines[1:end]))
        if front is not None and not isinstance(front, Mapping):
            problems.append(TaskListProblem(source, "front matter: expected a mapping", 2))
        elif front:
            if "tasks" in front:
                problems.append(
                    TaskListProblem(
                        source,
                        'front matter cannot hold "tasks": in Markdown, each "## Task N: title" '
                        "section is a task",
                        located.key_lines.get(("tasks",)),
                    )
                )
            data.update({k: v for k, v in front.items() if k != "tasks"})
            key_lines.update(located.key_lines)
        start = end + 1

    sections: list[tuple[int, str, int | None]] = []  # (heading index, title, number)
    ends: dict[int, int] = {}  # section -> the heading of a higher level that ended it
    level: int | None = None  # of the task headings, from the first one
    fence: str | None = None
    fence_end: int | None = None
    j = start
    while j < len(lines):
        line = lines[j]
        if fence is None:
            match = _FENCE.match(line)
            if match:
                fence = match.group(1)
                fence_end = _closing_fence(lines, j, fence)
                j = len(lines) if fence_end is None else fence_end + 1
                fence = None
                continue
        heading = _HEADING.match(line)
        depth = len(heading.group(1)) if heading else 0
        if heading and depth <= (level or 3):
            title_text = (heading.group(2) or "").strip()
            named = _TASK_HEADING.match(title_text) if depth >= 2 else None
            marks = "#" * (level or depth)
            open_section = bool(sections) and len(sections) - 1 not in ends
            if named and depth == (level or depth):
                level = depth
                number = named.group("number")
                title = (named.group("title") or named.group("title2") or "").strip()
                sections.append((j, title, int(number) if number else None))
            elif named and level is not None:
                problems.append(
                    TaskListProblem(
                        source,
                        f'"{"#" * depth} {title_text}": the tasks of this list are '
                        f'"{marks} Task N: title" sections; use one heading level for all',
                        j + 1,
                    )
                )
            elif level is not None and depth < level and open_section:
                ends[len(sections) - 1] = j
            elif level is not None and depth == level and open_section:
                problems.append(
                    TaskListProblem(
                        source,
                        f'"{marks} {title_text}" is not a task heading: tasks are "{marks} '
                        f'Task N: title" sections (use {marks}# or deeper for headings inside '
                        "a prompt)",
                        j + 1,
                    )
                )
        j += 1

    raw = RawList(source, base_dir, data, key_lines, [], problems)
    if not sections:
        problems.append(
            TaskListProblem(
                source,
                'no tasks: expected "## Task 1: <title>" (or "### Task 1: <title>") sections',
                len(lines) or 1,
            )
        )
    for n, (index, title, number) in enumerate(sections):
        end = ends.get(n, sections[n + 1][0] if n + 1 < len(sections) else len(lines))
        task = RawTask(
            position=n + 1,
            data={},
            where=f"task section {n + 1}",
            line=index + 1,
            number=number,
        )
        body = index + 1
        while body < end and not lines[body].strip():
            body += 1
        match = _FENCE.match(lines[body]) if body < end else None
        settings: Any = {}
        if match and match.group(2).lower() in ("yaml", "yml"):
            close = _closing_fence(lines, body, match.group(1))
            if close is None or close >= end:
                problems.append(
                    TaskListProblem(source, "settings block (```yaml) is not closed", body + 1)
                )
                body = end
            else:
                located = LocatedYAML(source, body + 1, problems)
                try:
                    settings = located.load("\n".join(lines[body + 1 : close])) or {}
                except TaskListError as exc:
                    problems.extend(exc.problems)
                    settings = {}
                task.key_lines = {k[0]: v for k, v in located.key_lines.items() if len(k) == 1}
                body = close + 1
        if not isinstance(settings, Mapping):
            problems.append(
                TaskListProblem(
                    source, f"settings block: expected a mapping, got {describe(settings)}", body
                )
            )
            settings = {}
        for key in ("prompt", "title"):
            if key in settings:
                problems.append(
                    TaskListProblem(
                        source,
                        f'"{key}" cannot be set in a Markdown task: the '
                        + ("section's text is the prompt" if key == "prompt" else "heading is"),
                        task.key_lines.get(key, task.line),
                    )
                )
        task.data = {k: v for k, v in settings.items() if k not in ("prompt", "title")}
        prompt_lines = lines[body:end]
        while prompt_lines and not prompt_lines[0].strip():
            prompt_lines.pop(0)
            body += 1
        while prompt_lines and not prompt_lines[-1].strip():
            prompt_lines.pop()
        task.data["prompt"] = "\n".join(prompt_lines)
        task.data["title"] = title
        task.prompt_line = body + 1
        raw.tasks.append(task)
    return raw
