"""The JSON Schema of the run options, derived from their declarations.

:func:`options_json_schema` turns the :class:`~cc_executor._run._options.RunOptions`
declarations into a JSON Schema (draft 2020-12) object: one property per option, its type
chosen by the option's kind, its range from ``above``/``at_least``, its description from
``help``, its default, and no other keys (``additionalProperties: false``). The MCP tools
publish it as their input schema; a form or an API description can use it alike. The checks
themselves stay in :func:`~cc_executor._run._prepare.check_run_options`: the schema tells a
caller what is accepted, it adds no rule of its own.
"""

from __future__ import annotations

from typing import Any

from cc_executor._run._options import SERVER_ONLY, Option, RunOptions

#: JSON Schema of a value of each kind, as the Python API takes it.
_KIND_SCHEMAS: dict[str, dict[str, Any]] = {
    "text": {"type": "string"},
    "path": {"type": "string"},
    "number": {"type": "number"},
    "integer": {"type": "integer"},
    "size": {"type": ["integer", "string"], "description": "bytes, or text such as 512M"},
    "flag": {"type": "boolean"},
    "strings": {"type": "array", "items": {"type": "string"}},
    "paths": {"type": "array", "items": {"type": "string"}},
    "env": {"type": "object", "additionalProperties": {"type": "string"}},
    "json": {"type": "object"},
    "mcp": {"type": ["string", "object"]},
}


def option_json_schema(option: Option, *, task: bool = False) -> dict[str, Any]:
    """The JSON Schema of one option's value. ``task``: as a task list takes it (a list
    of names may also be one comma-separated string, an environment value a number, and
    null is not a value there)."""
    schema = {**_KIND_SCHEMAS[option.kind]}
    if task and option.commas:
        schema = {"type": ["array", "string"], "items": {"type": "string"}}
    elif task and option.kind == "env":
        schema["additionalProperties"] = {"type": ["string", "number"]}
    elif option.optional and not task:
        types = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        schema["type"] = [*types, "null"]
    if option.above is not None:
        schema["exclusiveMinimum"] = option.above
    if option.at_least is not None:
        schema["minimum"] = option.at_least
    description = option.help or ""
    if option.kind == "flag" and option.default is True and option.flag:
        # The help of an inverted flag (--no-partial-messages) says what false does.
        description = f"false ({option.flag}): {description}"
    if description:
        schema["description"] = description
    default = option.initial()
    if default is not None:
        schema["default"] = list(default) if isinstance(default, (tuple, set)) else default
    return schema


def options_json_schema(*, remote: bool = False, task: bool = False) -> dict[str, Any]:
    """The JSON Schema of a JSON object of run options, every key optional, no unknown key.

    ``remote``: only the options a remote caller (the service, the MCP server) may set,
    without those declared ``server_only``. ``task``: the options of a task or of a task
    list's ``defaults``, by their task-list keys (``api_retries`` for ``retries``)."""
    properties: dict[str, Any] = {}
    for option in RunOptions.options:
        if remote and option.remote == SERVER_ONLY:
            continue
        key = option.task_key if task else option.name
        if key is None:
            continue
        properties[key] = option_json_schema(option, task=task)
    return {"type": "object", "properties": properties, "additionalProperties": False}
