"""Task list files (Markdown, YAML, JSON) parsed into one validated, normalized spec.

Every format comes down to the same document: list-level ``name``, ``defaults``,
``max_parallel``, ``budget_usd`` and ``tasks``, each task with ``id``, ``title``, ``prompt``,
``depends_on``, ``on_error``, ``retries``, ``resume_from``, ``template`` and run options.
Validation collects every problem it can find (not just the first) and locates each one by
line in the file.
"""

from __future__ import annotations

import difflib
import heapq
import json
import math
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from cc_executor._errors import CCExecutorError
from cc_executor._run._options import Option, RunOptions
from cc_executor.tasks._errors import TaskListError, TaskListProblem
from cc_executor.tasks._template import TASK_FIELDS, Reference, TemplateProblem, references

#: Version of the normalized spec kept in a list's folder (``spec.json``).
SPEC_VERSION = 1

ON_ERROR = ("stop", "continue", "retry")

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_MAX_NODES = 2_000_000


class _Bad(CCExecutorError):
    """A value of the wrong type or range; the message says what was expected (internal:
    always caught here and collected as a :class:`TaskListProblem`)."""


def _describe(value: object) -> str:
    names = {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return names.get(type(value), type(value).__name__)


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise _Bad(f"expected a string, got {_describe(value)}")
    return value


def _number(minimum: float, *, strict: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _Bad(f"expected a number, got {_describe(value)}")
        if math.isnan(value) or value < minimum or (strict and value == minimum):
            raise _Bad(f"expected a number {'>' if strict else '>='} {minimum:g}, got {value!r}")
        return float(value)

    return check


def _integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _Bad(f"expected an integer, got {_describe(value)}")
        if value < minimum:
            raise _Bad(f"expected an integer >= {minimum}, got {value}")
        return value

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"expected true or false, got {_describe(value)}")
    return value


def _strings(value: Any, *, commas: bool = True) -> list[str]:
    if isinstance(value, str) and commas:
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise _Bad(
            f"expected a list of strings{' (or one comma-separated string)' if commas else ''}, "
            f"got {_describe(value)}"
        )
    return list(value)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise _Bad(f"expected a mapping with string keys, got {_describe(value)}")
    return dict(value)


def _env(value: Any) -> dict[str, str]:
    mapping = _mapping(value)
    out = {}
    for key, item in mapping.items():
        # YAML reads PORT: 8080 as a number; environment values are strings either way.
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise _Bad(f"{key}: expected a string, got {_describe(item)}")
        out[key] = str(item)
    return out


def _mcp_config(value: Any) -> str | dict[str, Any]:
    if isinstance(value, str):
        return value
    try:
        return _mapping(value)
    except _Bad:
        raise _Bad(f"expected a path, JSON text or a mapping, got {_describe(value)}") from None


def _on_error(value: Any) -> str:
    if value not in ON_ERROR:
        raise _Bad(f"expected one of {', '.join(ON_ERROR)}, got {value!r}")
    return str(value)


def _validator(option: Option) -> Callable[[Any], Any]:
    """The check of a run option's value in a task list, chosen by the option's kind."""
    kind = option.kind
    if kind in ("number", "integer"):
        strict = option.above is not None
        bound = option.above if strict else option.at_least
        if kind == "integer":
            return _integer(int(bound or 0) + (1 if strict else 0))
        return _number(bound or 0, strict=strict)
    if kind in ("strings", "paths"):
        commas = option.commas
        return lambda value: _strings(value, commas=commas)
    return {
        "text": _string,
        "path": _string,
        "flag": _boolean,
        "mcp": _mcp_config,
        "env": _env,
        "json": _mapping,
    }[kind]


#: Run options a task (or the list's ``defaults``) can set: file key -> (RunOptions name,
#: check), from the options' declarations. ``api_retries`` is the run's own retry count for
#: rate limits and overload; the task-level ``retries`` re-runs a failed task.
RUN_FIELDS: Mapping[str, tuple[str, Callable[[Any], Any]]] = {
    key: (o.name, _validator(o)) for o in RunOptions.options if (key := o.task_key) is not None
}
_CONTROL_FIELDS: Mapping[str, Callable[[Any], Any]] = {
    "on_error": _on_error,
    "retries": _integer(0),
    "template": _boolean,
}
_TASK_ONLY = ("id", "title", "prompt", "depends_on", "resume_from")
TASK_KEYS = (*_TASK_ONLY, *_CONTROL_FIELDS, *RUN_FIELDS)
DEFAULT_KEYS = (*_CONTROL_FIELDS, *RUN_FIELDS)
LIST_KEYS = ("name", "defaults", "max_parallel", "budget_usd", "tasks")


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """One task of a validated list.

    ``depends_on`` is the effective list of tasks that must end ``ok`` first (in a list
    where no task declares ``depends_on``, the previous task). ``options`` are the run
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
    """

    tasks: tuple[TaskSpec, ...]
    source: str = "<spec>"
    name: str | None = None
    max_parallel: int | None = None
    budget_usd: float | None = None

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
        )


# --------------------------------------------------------------------------- raw documents


@dataclass
class _RawTask:
    """One task as written, before validation, with where its parts are in the file."""

    position: int
    data: Any
    where: str
    line: int | None = None
    key_lines: dict[str, int] = field(default_factory=dict)
    prompt_line: int | None = None
    number: int | None = None


@dataclass
class _RawList:
    source: str
    base_dir: Path
    data: dict[str, Any]
    key_lines: dict[tuple[Any, ...], int]
    tasks: list[_RawTask]
    problems: list[TaskListProblem]


class _Located:
    """YAML parsed with the line of every key and value (PyYAML's nodes know them)."""

    def __init__(self, source: str, offset: int, problems: list[TaskListProblem]) -> None:
        self.source = source
        self.offset = offset
        self.problems = problems
        self.key_lines: dict[tuple[Any, ...], int] = {}
        self.value_lines: dict[tuple[Any, ...], int] = {}
        self._count = 0

    def load(self, text: str) -> Any:
        import yaml

        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else self._build(loader, node, (), frozenset())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 + self.offset if mark is not None else None
            what = " ".join(p for p in (exc.context, exc.problem) if p)
            raise TaskListError(
                [TaskListProblem(self.source, f"invalid YAML: {what}", line)]
            ) from None
        except yaml.YAMLError as exc:
            raise TaskListError([TaskListProblem(self.source, f"invalid YAML: {exc}")]) from None
        finally:
            loader.dispose()

    def _build(self, loader: Any, node: Any, path: tuple[Any, ...], seen: frozenset[int]) -> Any:
        import yaml

        self._count += 1
        line = node.start_mark.line + 1 + self.offset
        if self._count > _MAX_NODES:
            raise TaskListError(
                [TaskListProblem(self.source, "document too large (alias bomb?)", line)]
            )
        if id(node) in seen:
            raise TaskListError([TaskListProblem(self.source, "recursive YAML alias", line)])
        self.value_lines[path] = line + (1 if getattr(node, "style", None) in ("|", ">") else 0)
        self.key_lines.setdefault(path, line)
        inner = seen | {id(node)}
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                key_line = key_node.start_mark.line + 1 + self.offset
                try:
                    hash(key)
                except TypeError:
                    self.problems.append(
                        TaskListProblem(self.source, "unusable mapping key", key_line)
                    )
                    continue
                if key in out:
                    self.problems.append(
                        TaskListProblem(self.source, f"duplicate key {key!r}", key_line)
                    )
                key_path = (*path, key)
                self.key_lines[key_path] = key_line
                out[key] = self._build(loader, value_node, key_path, inner)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [
                self._build(loader, item, (*path, i), inner) for i, item in enumerate(node.value)
            ]
        return loader.construct_object(node, deep=True)


def _from_document(
    data: Any,
    *,
    source: str,
    base_dir: Path,
    key_lines: dict[tuple[Any, ...], int],
    value_lines: dict[tuple[Any, ...], int],
    problems: list[TaskListProblem],
) -> _RawList:
    if not isinstance(data, Mapping):
        raise TaskListError(
            [
                TaskListProblem(
                    source,
                    f"expected a mapping with a 'tasks' list, got {_describe(data)}",
                    key_lines.get(()),
                )
            ]
        )
    raw = _RawList(source, base_dir, dict(data), key_lines, [], problems)
    items = data.get("tasks")
    if not isinstance(items, list) or not items:
        if items is None:
            message = 'missing "tasks" (a list of tasks)'
        elif isinstance(items, list):
            message = "tasks: the list is empty"
        else:
            message = f"tasks: expected a list, got {_describe(items)}"
        problems.append(
            TaskListProblem(source, message, key_lines.get(("tasks",), key_lines.get(())))
        )
        return raw
    for i, item in enumerate(items):
        path = ("tasks", i)
        keys = item if isinstance(item, Mapping) else {}
        item_lines = {k: key_lines.get((*path, k)) for k in keys}
        raw.tasks.append(
            _RawTask(
                position=i + 1,
                data=item,
                where=f"tasks[{i}]",
                line=key_lines.get(path),
                key_lines={k: line for k, line in item_lines.items() if line is not None},
                prompt_line=value_lines.get((*path, "prompt")),
            )
        )
    return raw


# --------------------------------------------------------------------------- Markdown

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


def _parse_markdown(text: str, source: str, base_dir: Path) -> _RawList:
    problems: list[TaskListProblem] = []
    lines = text.splitlines()
    data: dict[str, Any] = {}
    key_lines: dict[tuple[Any, ...], int] = {}
    start = 0
    if lines and lines[0].rstrip() == "---":
        end = next((j for j in range(1, len(lines)) if lines[j].rstrip() in ("---", "...")), None)
        if end is None:
            raise TaskListError([TaskListProblem(source, "front matter (---) is not closed", 1)])
        located = _Located(source, 1, problems)
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
        if heading and len(heading.group(1)) == 2:
            title_text = (heading.group(2) or "").strip()
            named = _TASK_HEADING.match(title_text)
            if named:
                number = named.group("number")
                title = (named.group("title") or named.group("title2") or "").strip()
                sections.append((j, title, int(number) if number else None))
            elif sections:
                problems.append(
                    TaskListProblem(
                        source,
                        f'"## {title_text}" is not a task heading: tasks are "## Task N: '
                        'title" sections (use ### or deeper for headings inside a prompt)',
                        j + 1,
                    )
                )
        j += 1

    raw = _RawList(source, base_dir, data, key_lines, [], problems)
    if not sections:
        problems.append(
            TaskListProblem(
                source, 'no tasks: expected "## Task 1: <title>" sections', len(lines) or 1
            )
        )
    for n, (index, title, number) in enumerate(sections):
        end = sections[n + 1][0] if n + 1 < len(sections) else len(lines)
        task = _RawTask(
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
                located = _Located(source, body + 1, problems)
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
                    source, f"settings block: expected a mapping, got {_describe(settings)}", body
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


# --------------------------------------------------------------------------- validation


def slug(title: str, fallback: int) -> str:
    """The id derived from a task's title: ASCII lower case, runs of other characters as
    ``_`` (so ``tasks.<id>`` works in templates), ``task_`` in front of a leading digit;
    ``task_<N>`` for an empty title (N: the heading's number, else the position)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    out = re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:64].strip("_")
    if not out:
        return f"task_{fallback}"
    return f"task_{out}" if out[0].isdigit() else out


def _suggest(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


def _resolve_path(value: str, base_dir: Path) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base_dir / path))


class _Checker:
    def __init__(self, raw: _RawList) -> None:
        self.raw = raw
        self.source = raw.source
        self.problems = raw.problems

    def problem(
        self, message: str, line: int | None, *, where: str | None = None, task: str | None = None
    ) -> None:
        self.problems.append(TaskListProblem(self.source, message, line, where, task))

    def settings(
        self,
        data: Mapping[str, Any],
        allowed: Sequence[str],
        line_of: Callable[[str], int | None],
        where: str,
        task: str | None,
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """Control fields and run options of a task or of ``defaults``, checked."""
        control: dict[str, Any] = {}
        options: dict[str, Any] = {}
        for key, value in data.items():
            if not isinstance(key, str) or key not in allowed:
                hint = _suggest(str(key), allowed)
                if key in _TASK_ONLY and task is None:
                    hint = " (it can only be set on a task)"
                self.problem(
                    f'unknown field "{key}"{hint}', line_of(str(key)), where=where, task=task
                )
                continue
            if key in _TASK_ONLY:
                continue
            try:
                if key in _CONTROL_FIELDS:
                    control[key] = _CONTROL_FIELDS[key](value)
                else:
                    name, check = RUN_FIELDS[key]
                    options[name] = check(value)
                    if key == "cwd":
                        options[name] = _resolve_path(options[name], self.raw.base_dir)
                    elif key == "add_dirs":
                        options[name] = [_resolve_path(d, self.raw.base_dir) for d in options[name]]
            except _Bad as exc:
                self.problem(f"{key}: {exc}", line_of(key), where=f"{where}.{key}", task=task)
        return control, options

    def build(self) -> TaskListSpec:
        raw = self.raw
        data = raw.data
        top_lines = raw.key_lines
        for key in data:
            if key not in LIST_KEYS:
                hint = _suggest(str(key), LIST_KEYS)
                if key in TASK_KEYS:
                    hint = " (put task settings under defaults)"
                self.problem(f'unknown field "{key}"{hint}', top_lines.get((key,)))
        name = max_parallel = budget = None
        try:
            name = _string(data["name"]) if data.get("name") is not None else None
        except _Bad as exc:
            self.problem(f"name: {exc}", top_lines.get(("name",)))
        try:
            if data.get("max_parallel") is not None:
                max_parallel = _integer(1)(data["max_parallel"])
        except _Bad as exc:
            self.problem(f"max_parallel: {exc}", top_lines.get(("max_parallel",)))
        try:
            if data.get("budget_usd") is not None:
                budget = _number(0, strict=True)(data["budget_usd"])
        except _Bad as exc:
            self.problem(f"budget_usd: {exc}", top_lines.get(("budget_usd",)))
        default_control: dict[str, Any] = {}
        default_options: dict[str, Any] = {}
        if data.get("defaults") is not None:
            if not isinstance(data["defaults"], Mapping):
                self.problem(
                    f"defaults: expected a mapping, got {_describe(data['defaults'])}",
                    top_lines.get(("defaults",)),
                )
            else:
                default_control, default_options = self.settings(
                    data["defaults"],
                    DEFAULT_KEYS,
                    lambda k: top_lines.get(("defaults", k), top_lines.get(("defaults",))),
                    "defaults",
                    None,
                )

        specs: list[TaskSpec] = []
        first_line: dict[str, int | None] = {}
        declared = any(isinstance(t.data, Mapping) and "depends_on" in t.data for t in raw.tasks)
        previous: str | None = None
        for rt in raw.tasks:
            spec = self._task(rt, default_control, default_options, declared, previous)
            if spec is None:
                previous = None
                continue
            if spec.id in first_line:
                self.problem(
                    f'duplicate id "{spec.id}" (first used at line {first_line[spec.id]}); '
                    "give one of them a distinct id",
                    rt.key_lines.get("id", rt.line),
                    where=rt.where,
                )
            else:
                first_line[spec.id] = rt.line
            specs.append(spec)
            previous = spec.id
        self._graph(specs)
        if self.problems:
            raise TaskListError(self.problems)
        return TaskListSpec(
            tasks=tuple(specs),
            source=self.source,
            name=name,
            max_parallel=max_parallel,
            budget_usd=budget,
        )

    def _task(
        self,
        rt: _RawTask,
        default_control: Mapping[str, Any],
        default_options: Mapping[str, Any],
        declared: bool,
        previous: str | None,
    ) -> TaskSpec | None:
        data = rt.data
        if not isinstance(data, Mapping):
            self.problem(f"expected a mapping, got {_describe(data)}", rt.line, where=rt.where)
            return None

        def line_of(key: str) -> int | None:
            return rt.key_lines.get(key, rt.line)

        title = data.get("title")
        if title is not None and not isinstance(title, str):
            self.problem(
                f"title: expected a string, got {_describe(title)}",
                line_of("title"),
                where=rt.where,
            )
            title = None
        task_id = data.get("id")
        if task_id is None:
            task_id = slug(title or "", rt.number or rt.position)
        elif not isinstance(task_id, str) or not _ID.match(task_id):
            self.problem(
                f"id: expected letters, digits, _ . - (starting with a letter, digit or _), "
                f"got {task_id!r}",
                line_of("id"),
                where=rt.where,
            )
            task_id = slug(str(title or ""), rt.number or rt.position)
        control, options = self.settings(data, TASK_KEYS, line_of, rt.where, task_id)
        prompt = data.get("prompt")
        if prompt is None:
            self.problem('missing "prompt"', rt.line, where=rt.where, task=task_id)
            prompt = ""
        elif not isinstance(prompt, str):
            self.problem(
                f"prompt: expected a string, got {_describe(prompt)}",
                line_of("prompt"),
                where=rt.where,
                task=task_id,
            )
            prompt = ""
        elif not prompt.strip():
            self.problem("empty prompt", line_of("prompt"), where=rt.where, task=task_id)
        depends: tuple[str, ...] = ()
        if "depends_on" in data:
            try:
                depends = tuple(dict.fromkeys(_strings(data["depends_on"])))
            except _Bad as exc:
                self.problem(
                    f"depends_on: {exc}", line_of("depends_on"), where=rt.where, task=task_id
                )
        elif not declared and previous is not None:
            depends = (previous,)
        resume_from = data.get("resume_from")
        if resume_from is not None and not isinstance(resume_from, str):
            self.problem(
                f"resume_from: expected a task id, got {_describe(resume_from)}",
                line_of("resume_from"),
                where=rt.where,
                task=task_id,
            )
            resume_from = None
        merged_control = {**default_control, **control}
        on_error = merged_control.get("on_error", "stop")
        retries = merged_control.get("retries", 1 if on_error == "retry" else 0)
        if on_error == "retry" and retries == 0 and "retries" in merged_control:
            self.problem(
                "on_error is retry but retries is 0",
                line_of("retries"),
                where=rt.where,
                task=task_id,
            )
        env = {**default_options.get("env", {}), **options.get("env", {})}
        merged_options = {**default_options, **options}
        if env:
            merged_options["env"] = env
        template = merged_control.get("template", True)
        refs: tuple[Reference, ...] = ()
        prompt_line = rt.prompt_line or line_of("prompt")
        if template and isinstance(prompt, str):
            try:
                refs = tuple(references(prompt))
            except TemplateProblem as exc:
                line = (prompt_line + (exc.line or 1) - 1) if prompt_line else None
                self.problem(str(exc), line, where=f"{rt.where}.prompt", task=task_id)
        return TaskSpec(
            id=task_id,
            prompt=prompt,
            title=title or "",
            depends_on=depends,
            on_error=on_error,
            retries=retries,
            resume_from=resume_from,
            template=template,
            options=merged_options,
            references=refs,
            line=rt.line,
            prompt_line=prompt_line,
        )

    def _graph(self, specs: list[TaskSpec]) -> None:
        ids = {t.id: t for t in specs}
        for t in specs:
            for dep in t.depends_on:
                if dep == t.id:
                    self.problem("depends on itself", t.line, task=t.id)
                elif dep not in ids:
                    self.problem(
                        f'depends on unknown task "{dep}"{_suggest(dep, ids)}', t.line, task=t.id
                    )
        cycles = [c for c in _cycles(specs) if len(c) > 2]
        for cycle in cycles:
            first = min(cycle[:-1], key=lambda tid: specs.index(ids[tid]))
            self.problem(f"dependency cycle: {' -> '.join(cycle)}", ids[first].line, task=first)
        if cycles:
            return  # "ancestor" means nothing in a cycle
        ancestors = _Ancestors(ids)
        for t in specs:
            if t.resume_from is not None:
                if t.resume_from not in ids:
                    self.problem(
                        f'resume_from: unknown task "{t.resume_from}"'
                        f"{_suggest(t.resume_from, ids)}",
                        t.line,
                        task=t.id,
                    )
                elif not ancestors.has(t.id, t.resume_from):
                    self.problem(
                        f'resume_from: "{t.resume_from}" is not an ancestor of this task '
                        f"(add it to depends_on): its session must be finished first",
                        t.line,
                        task=t.id,
                    )
            for ref in t.references:
                line = (t.prompt_line + ref.line - 1) if t.prompt_line else None
                where = "prompt"
                if ref.task not in ids:
                    self.problem(
                        f"template refers to unknown task tasks.{ref.task}"
                        f"{_suggest(ref.task, ids)}",
                        line,
                        where=where,
                        task=t.id,
                    )
                elif ref.task == t.id:
                    self.problem("template refers to the task itself", line, where=where, task=t.id)
                elif not ancestors.has(t.id, ref.task):
                    self.problem(
                        f"template refers to tasks.{ref.task}, which is not an ancestor of "
                        f'this task (add "{ref.task}" to depends_on)',
                        line,
                        where=where,
                        task=t.id,
                    )
                if ref.field is not None and ref.field not in TASK_FIELDS:
                    self.problem(
                        f"template: tasks.{ref.task}.{ref.field}: unknown field"
                        f"{_suggest(ref.field, TASK_FIELDS)} (known: {', '.join(TASK_FIELDS)})",
                        line,
                        where=where,
                        task=t.id,
                    )


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


# --------------------------------------------------------------------------- entry points

_FORMATS = {".md": "markdown", ".markdown": "markdown", ".yaml": "yaml", ".yml": "yaml"}


def parse_task_list(
    data: str | Mapping[str, Any],
    *,
    format: str | None = None,
    source: str = "<spec>",
    base_dir: str | os.PathLike[str] | None = None,
) -> TaskListSpec:
    """Validate a task list given as text (``format``: ``markdown``, ``yaml`` or ``json``)
    or as already-parsed data (a mapping shaped like the YAML form).

    ``source`` names the list in messages; relative ``cwd``/``add_dirs`` are resolved
    against ``base_dir`` (default: the current directory). Raises :class:`TaskListError`
    with every problem found, each with its line when the text has lines.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    problems: list[TaskListProblem] = []
    if isinstance(data, Mapping):
        raw = _from_document(
            data, source=source, base_dir=base, key_lines={}, value_lines={}, problems=problems
        )
    elif format == "markdown":
        raw = _parse_markdown(data, source, base)
    elif format in ("yaml", "json"):
        located = _Located(source, 0, problems)
        if format == "json":
            try:
                document = json.loads(data)
            except json.JSONDecodeError as exc:
                raise TaskListError(
                    [TaskListProblem(source, f"invalid JSON: {exc.msg}", exc.lineno)]
                ) from None
            located = _Located(source, 0, [])
            try:
                # Only for line numbers: JSON is (nearly) YAML, and its nodes know their lines.
                located.load(data)
            except TaskListError:
                located = _Located(source, 0, [])
        else:
            document = located.load(data)
        raw = _from_document(
            document,
            source=source,
            base_dir=base,
            key_lines=located.key_lines,
            value_lines=located.value_lines,
            problems=problems,
        )
    else:
        raise ValueError(f"unknown task list format {format!r}: use markdown, yaml or json")
    return _Checker(raw).build()


def load_task_list(path: str | os.PathLike[str]) -> TaskListSpec:
    """Read and validate a task list file: Markdown (``.md``), YAML (``.yaml``/``.yml``)
    or JSON (``.json``); the format comes from the name. Relative ``cwd`` and ``add_dirs``
    in it are relative to the file's folder. Raises :class:`TaskListError` (an unreadable
    file, an unknown extension, or every problem in the list, with line numbers)."""
    file = Path(path)
    source = os.fspath(path)
    suffix = file.suffix.lower()
    format = _FORMATS.get(suffix, "json" if suffix == ".json" else None)
    if format is None:
        raise TaskListError(
            [TaskListProblem(source, "unknown format: name the file .md, .yaml, .yml or .json")]
        )
    try:
        text = file.read_text(encoding="utf-8-sig")  # a BOM would hide the front matter
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise TaskListError([TaskListProblem(source, f"cannot read: {reason}")]) from None
    return parse_task_list(text, format=format, source=source, base_dir=file.resolve().parent)
