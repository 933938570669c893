"""The JSON Schema of a task list given as a JSON object (the YAML form's shape).

Derived from the keys the parser knows (``LIST_KEYS``, ``TASK_KEYS``, ``DEFAULT_KEYS`` of
``_spec``) and from the run options' declarations (their task-list keys and kinds), so a
key added there appears here. The parser stays the judge: the schema describes what it
accepts for callers that read schemas (the MCP ``run_tasks`` tool).
"""

from __future__ import annotations

from typing import Any

from cc_executor._run._options import RunOptions
from cc_executor._run._options_schema import options_json_schema
from cc_executor.tasks._fields import DEFAULT_KEYS, LIST_KEYS, ON_ERROR, TASK_KEYS

_NAMES = {"type": ["array", "string"], "items": {"type": "string"}}

#: The keys of a task and of the list that are not run options.
_OWN: dict[str, dict[str, Any]] = {
    "id": {
        "type": "string",
        "pattern": "^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$",
        "description": "the task's id (default: a slug of its title)",
    },
    "title": {"type": "string"},
    "prompt": {
        "type": "string",
        "minLength": 1,
        "description": "the prompt; {{ tasks.<id>.result }} reads an earlier task's answer",
    },
    "depends_on": {
        **_NAMES,
        "description": "tasks that must end ok first ([]: none; default: the previous "
        "task, unless the task or the list is parallel)",
    },
    "parallel": {
        "type": "boolean",
        "description": "true: do not wait for the previous task (on the list: for every "
        "task that declares no depends_on)",
    },
    "resume_from": {"type": "string", "description": "continue that task's session"},
    "on_error": {"enum": list(ON_ERROR), "description": "what a failed task does to the list"},
    "retries": {
        "type": "integer",
        "minimum": 0,
        "description": "N: up to N more runs of a failed task (N+1 in all)",
    },
    "template": {"type": "boolean", "description": "render the prompt as a template"},
    "name": {"type": "string"},
    "max_parallel": {"type": "integer", "minimum": 1, "description": "tasks running at once"},
    "budget_usd": {
        "type": "number",
        "exclusiveMinimum": 0,
        "description": "the list's budget: each task reserves its cap (max_budget_usd, else "
        "reserve_usd for its model, else the whole remainder) and starts only if what is "
        "left covers it",
    },
    "reserve_usd": {
        "type": ["number", "object"],
        "exclusiveMinimum": 0,
        "additionalProperties": {"type": "number", "exclusiveMinimum": 0},
        "description": "with budget_usd: what a task that sets no max_budget_usd reserves "
        '(and its cap): a number, or {model: usd} with "*" for any other model',
    },
    "on_budget_exhausted": {
        "enum": ["cancel", "drain"],
        "description": "with budget_usd, once a task's reservation cannot be covered: drain "
        "(the default: running tasks finish, no further task starts) or cancel (the running "
        "tasks are cancelled and end budget_exceeded)",
    },
    "budget_threshold": {
        "type": ["number", "array"],
        "minimum": 0.1,
        "maximum": 100,
        "items": {"type": "number", "minimum": 0.1, "maximum": 100},
        "description": "with budget_usd: the percent of the budget (or a list of them) whose "
        "passing is announced by a budget event (default 80); the webhook is the caller's",
    },
}


def _object(keys: tuple[str, ...], known: dict[str, Any]) -> dict[str, Any]:
    # A key the parser knows but this module does not describe is still accepted.
    properties = {key: known.get(key, {}) for key in keys}
    return {"type": "object", "properties": properties, "additionalProperties": False}


def task_list_json_schema(*, remote: bool = False) -> dict[str, Any]:
    """The JSON Schema of a task list as a JSON object: ``name``, ``defaults``,
    ``max_parallel``, ``budget_usd`` and ``tasks`` (each with ``prompt``). ``remote``:
    without the run options a remote caller may not set."""
    options = options_json_schema(remote=remote, task=True)["properties"]
    run_keys = {key for o in RunOptions.options if (key := o.task_key) is not None}

    def settable(keys: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(k for k in keys if k not in run_keys or k in options)

    known = {**options, **_OWN}
    task = _object(settable(TASK_KEYS), known)
    task["required"] = ["prompt"]
    defaults = _object(settable(DEFAULT_KEYS), known)
    defaults["description"] = "settings of every task (a task's own settings win)"
    top = {**known, "defaults": defaults, "tasks": {"type": "array", "items": task, "minItems": 1}}
    schema = _object(LIST_KEYS, top)
    schema["required"] = ["tasks"]
    return schema
