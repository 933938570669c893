"""Validation: a task list as written (:class:`~cc_executor.tasks._raw.RawList`) checked
into a :class:`~cc_executor.tasks.TaskListSpec`, every problem collected with its line."""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_executor._run._budget import check_thresholds
from cc_executor._run._prepare import anchor_paths
from cc_executor.tasks._errors import TaskListError, TaskListProblem
from cc_executor.tasks._fields import (
    CONTROL_FIELDS,
    DEFAULT_KEYS,
    LIST_KEYS,
    RUN_FIELDS,
    TASK_KEYS,
    TASK_ONLY,
    BadValue,
    check_integer,
    check_number,
    check_string,
    check_strings,
    describe,
    suggest,
)
from cc_executor.tasks._graph import graph_problems
from cc_executor.tasks._raw import RawList, RawTask
from cc_executor.tasks._spec import TaskListSpec, TaskSpec
from cc_executor.tasks._template import Reference, TemplateProblem, references

_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


def slug(title: str, fallback: int) -> str:
    """The id derived from a task's title: ASCII lower case, runs of other characters as
    ``_`` (so ``tasks.<id>`` works in templates), ``task_`` in front of a leading digit;
    ``task_<N>`` for an empty title (N: the heading's number, else the position)."""
    text = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode().lower()
    out = re.sub(r"[^a-z0-9]+", "_", text).strip("_")[:64].strip("_")
    if not out:
        return f"task_{fallback}"
    return f"task_{out}" if out[0].isdigit() else out


def reservations(value: Any) -> dict[str, float]:
    """``reserve_usd``: a number (every model) or a mapping of model names (``"*"``: any
    other) to numbers, each above 0; normalized to the mapping."""
    check = check_number(0, strict=True)
    if isinstance(value, Mapping):
        if not value or not all(isinstance(k, str) and k for k in value):
            raise BadValue("expected a number, or a mapping of model names to numbers")
        out = {}
        for model, usd in value.items():
            try:
                out[model] = check(usd)
            except BadValue as exc:
                raise BadValue(f"{model}: {exc}") from None
        return out
    return {"*": check(value)}


class Checker:
    """Checks one list as written: :meth:`build` returns its spec, or raises
    :class:`TaskListError` with every problem (those found while reading it first)."""

    def __init__(self, raw: RawList) -> None:
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
                hint = suggest(str(key), allowed)
                if key in TASK_ONLY and task is None:
                    hint = (
                        " (set it on the list or on a task)"
                        if key == "parallel"
                        else " (it can only be set on a task)"
                    )
                self.problem(
                    f'unknown field "{key}"{hint}', line_of(str(key)), where=where, task=task
                )
                continue
            if key in TASK_ONLY or (value is None and key in RUN_FIELDS):
                continue  # null for an option means its default, as in the original's lists
            try:
                if key in CONTROL_FIELDS:
                    control[key] = CONTROL_FIELDS[key](value)
                else:
                    name, check = RUN_FIELDS[key]
                    text = name == "json_schema" and isinstance(value, str)
                    options[name] = check(self.schema(value) if text else value)
            except BadValue as exc:
                self.problem(f"{key}: {exc}", line_of(key), where=f"{where}.{key}", task=task)
        # Paths in a list are relative to its folder, wherever the list is run from.
        return control, anchor_paths(options, str(self.raw.base_dir))

    def schema(self, text: str) -> Any:
        """A ``json_schema`` given as JSON text, or as a file relative to the list's folder
        (only in a list read from a file)."""
        if text.lstrip()[:1] in ("{", "["):
            try:
                return json.loads(text)
            except ValueError as exc:
                raise BadValue(f"not valid JSON: {exc}") from None
        base = self.raw.base_dir
        if not self.raw.list_file:
            raise BadValue(
                "a file is read only from a list file: give the schema as a mapping or JSON text"
            )
        path = base / Path(text).expanduser()
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            where = "" if Path(text).expanduser().is_absolute() else f"looked in {base}; "
            raise BadValue(
                f"no such file: {text} ({where}paths in a list are relative to its folder)"
            ) from None
        except (OSError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            raise BadValue(f"cannot read {path} as JSON: {reason}") from None

    def flag(
        self,
        data: Mapping[str, Any],
        key: str,
        default: bool,
        line: Callable[[], int | None],
        *,
        where: str | None = None,
        task: str | None = None,
    ) -> bool:
        """The boolean ``data[key]`` (``default`` when absent or not a boolean: a problem)."""
        value = data.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(
                f"{key}: expected true or false, got {describe(value)}",
                line(),
                where=where,
                task=task,
            )
            return default
        return value

    def build(self) -> TaskListSpec:
        raw = self.raw
        data = raw.data
        top_lines = raw.key_lines
        for key in data:
            if key not in LIST_KEYS:
                hint = suggest(str(key), LIST_KEYS)
                if key in TASK_KEYS:
                    hint = " (put task settings under defaults)"
                self.problem(f'unknown field "{key}"{hint}', top_lines.get((key,)))
        name = max_parallel = budget = None
        try:
            name = check_string(data["name"]) if data.get("name") is not None else None
        except BadValue as exc:
            self.problem(f"name: {exc}", top_lines.get(("name",)))
        parallel = self.flag(
            data, "parallel", False, lambda: top_lines.get(("parallel",)), where="parallel"
        )
        try:
            if data.get("max_parallel") is not None:
                max_parallel = check_integer(1)(data["max_parallel"])
        except BadValue as exc:
            self.problem(f"max_parallel: {exc}", top_lines.get(("max_parallel",)))
        try:
            if data.get("budget_usd") is not None:
                budget = check_number(0, strict=True)(data["budget_usd"])
        except BadValue as exc:
            self.problem(f"budget_usd: {exc}", top_lines.get(("budget_usd",)))
        reserve = None
        try:
            if data.get("reserve_usd") is not None:
                reserve = reservations(data["reserve_usd"])
        except BadValue as exc:
            self.problem(f"reserve_usd: {exc}", top_lines.get(("reserve_usd",)))
        on_exhausted = data.get("on_budget_exhausted")
        if on_exhausted is not None and on_exhausted not in ("cancel", "drain"):
            self.problem(
                f"on_budget_exhausted: cancel or drain, got {describe(on_exhausted)}",
                top_lines.get(("on_budget_exhausted",)),
            )
        thresholds = None
        if data.get("budget_threshold") is not None:
            given = data["budget_threshold"]
            given = list(given) if isinstance(given, (list, tuple)) else [given]
            try:
                check_thresholds(given, "budget_threshold")
            except ValueError as exc:
                self.problem(str(exc), top_lines.get(("budget_threshold",)))
            else:
                thresholds = tuple(float(p) for p in given)
        default_control: dict[str, Any] = {}
        default_options: dict[str, Any] = {}
        if data.get("defaults") is not None:
            if not isinstance(data["defaults"], Mapping):
                self.problem(
                    f"defaults: expected a mapping, got {describe(data['defaults'])}",
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
        previous: str | None = None
        #: Tasks waiting for the one before them because they name no depends_on.
        implicit: set[str] = set()
        for rt in raw.tasks:
            spec = self._task(rt, default_control, default_options, parallel, previous)
            if spec is None:
                previous = None
                continue
            if "depends_on" not in rt.data and previous is not None:
                implicit.add(spec.id)
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
        self.problems.extend(graph_problems(specs, self.source, implicit))
        if self.problems:
            raise TaskListError(self.problems)
        return TaskListSpec(
            tasks=tuple(specs),
            source=self.source,
            name=name,
            max_parallel=max_parallel,
            budget_usd=budget,
            reserve_usd=reserve,
            on_budget_exhausted=on_exhausted,
            budget_threshold=thresholds,
        )

    def _task(
        self,
        rt: RawTask,
        default_control: Mapping[str, Any],
        default_options: Mapping[str, Any],
        list_parallel: bool,
        previous: str | None,
    ) -> TaskSpec | None:
        data = rt.data
        if not isinstance(data, Mapping):
            self.problem(f"expected a mapping, got {describe(data)}", rt.line, where=rt.where)
            return None

        def line_of(key: str) -> int | None:
            return rt.key_lines.get(key, rt.line)

        title = data.get("title")
        if title is not None and not isinstance(title, str):
            self.problem(
                f"title: expected a string, got {describe(title)}",
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
                f"prompt: expected a string, got {describe(prompt)}",
                line_of("prompt"),
                where=rt.where,
                task=task_id,
            )
            prompt = ""
        elif not prompt.strip():
            self.problem("empty prompt", line_of("prompt"), where=rt.where, task=task_id)
        parallel = self.flag(
            data,
            "parallel",
            list_parallel,
            lambda: line_of("parallel"),
            where=f"{rt.where}.parallel",
            task=task_id,
        )
        depends: tuple[str, ...] = ()
        if "depends_on" in data:
            try:
                depends = tuple(dict.fromkeys(check_strings(data["depends_on"])))
            except BadValue as exc:
                self.problem(
                    f"depends_on: {exc}", line_of("depends_on"), where=rt.where, task=task_id
                )
        elif previous is not None and previous != task_id and not parallel:
            # The document's order is the default schedule, in every format.
            depends = (previous,)
        resume_from = data.get("resume_from")
        if resume_from is not None and not isinstance(resume_from, str):
            self.problem(
                f"resume_from: expected a task id, got {describe(resume_from)}",
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
