"""The fields a task list file can hold, and the check of each value.

A check returns the value (normalized: a comma-separated string becomes a list, an
environment value a string) or raises :class:`BadValue` saying what was expected; the
validator collects each as a :class:`~cc_executor.tasks.TaskListProblem`. The run options a
task can set (:data:`RUN_FIELDS`) and their checks come from the options' declarations.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from cc_executor._errors import CCExecutorError
from cc_executor._run._options import Option, RunOptions, parse_size

ON_ERROR = ("stop", "continue", "retry")


class BadValue(CCExecutorError):
    """A value of the wrong type or range; the message says what was expected (internal:
    always caught by the validator and collected as a :class:`TaskListProblem`)."""


def describe(value: object) -> str:
    """A value's kind as a problem names it: ``a list``, ``a number (3)``, ``null``."""
    names = {dict: "a mapping", list: "a list", str: "a string", type(None): "null"}
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    return names.get(type(value), type(value).__name__)


def check_string(value: Any) -> str:
    if not isinstance(value, str):
        raise BadValue(f"expected a string, got {describe(value)}")
    return value


def check_number(minimum: float, *, strict: bool) -> Callable[[Any], float]:
    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BadValue(f"expected a number, got {describe(value)}")
        if math.isnan(value) or value < minimum or (strict and value == minimum):
            raise BadValue(
                f"expected a number {'>' if strict else '>='} {minimum:g}, got {value!r}"
            )
        return float(value)

    return check


def check_integer(minimum: int) -> Callable[[Any], int]:
    def check(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise BadValue(f"expected an integer, got {describe(value)}")
        if value < minimum:
            raise BadValue(f"expected an integer >= {minimum}, got {value}")
        return value

    return check


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise BadValue(f"expected true or false, got {describe(value)}")
    return value


def check_strings(value: Any, *, commas: bool = True) -> list[str]:
    if isinstance(value, str) and commas:
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadValue(
            f"expected a list of strings{' (or one comma-separated string)' if commas else ''}, "
            f"got {describe(value)}"
        )
    return list(value)


def _mapping(value: Any) -> dict[str, Any]:
    if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
        raise BadValue(f"expected a mapping with string keys, got {describe(value)}")
    return dict(value)


def _env(value: Any) -> dict[str, str]:
    mapping = _mapping(value)
    out = {}
    for key, item in mapping.items():
        # YAML reads PORT: 8080 as a number; environment values are strings either way.
        if isinstance(item, bool) or not isinstance(item, (str, int, float)):
            raise BadValue(f"{key}: expected a string, got {describe(item)}")
        out[key] = str(item)
    return out


def _mcp_config(value: Any) -> str | dict[str, Any]:
    if isinstance(value, str):
        return value
    try:
        return _mapping(value)
    except BadValue:
        raise BadValue(f"expected a path, JSON text or a mapping, got {describe(value)}") from None


def _on_error(value: Any) -> str:
    if value not in ON_ERROR:
        raise BadValue(f"expected one of {', '.join(ON_ERROR)}, got {value!r}")
    return str(value)


def _validator(option: Option) -> Callable[[Any], Any]:
    """The check of a run option's value in a task list, chosen by the option's kind."""
    kind = option.kind
    if kind in ("number", "integer"):
        strict = option.above is not None
        bound = option.above if strict else option.at_least
        if kind == "integer":
            return check_integer(int(bound or 0) + (1 if strict else 0))
        return check_number(bound or 0, strict=strict)
    if kind == "size":
        name = option.name

        def size(value: Any) -> int:
            try:
                return parse_size(value, name)
            except (TypeError, ValueError) as exc:
                raise BadValue(str(exc)) from None

        return size
    if kind in ("strings", "paths"):
        commas = option.commas
        return lambda value: check_strings(value, commas=commas)
    return {
        "text": check_string,
        "path": check_string,
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
CONTROL_FIELDS: Mapping[str, Callable[[Any], Any]] = {
    "on_error": _on_error,
    "retries": check_integer(0),
    "template": _boolean,
}
TASK_ONLY = ("id", "title", "prompt", "depends_on", "parallel", "resume_from")
TASK_KEYS = (*TASK_ONLY, *CONTROL_FIELDS, *RUN_FIELDS)
DEFAULT_KEYS = (*CONTROL_FIELDS, *RUN_FIELDS)
LIST_KEYS = (
    "name",
    "defaults",
    "parallel",
    "max_parallel",
    "budget_usd",
    "reserve_usd",
    "on_budget_exhausted",
    "budget_threshold",
    "tasks",
)


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean X?)`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""
