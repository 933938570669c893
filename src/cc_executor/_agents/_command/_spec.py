"""The agent spec file of the command adapter: loaded once per file version, checked with
one-line errors naming the file and the key."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._types import ToolKind

#: How the CLI's stdout reads.
OUTPUTS = ("text", "jsonl", "claude-stream-json")
_KEYS = (
    "name",
    "command",
    "output",
    "model_arg",
    "resume_arg",
    "base_url_env",
    "env",
    "jsonl",
    "file_tools",
    "tool_kinds",
    "api_status",
)
_JSONL_KEYS = ("text", "match", "session")


@dataclass(frozen=True)
class JsonlMapping:
    """Where a JSON Lines agent puts its answer: the dotted ``text`` field of the lines whose
    fields equal ``match``, and an optional dotted ``session`` field."""

    text: str
    match: dict[str, Any] = field(default_factory=dict)
    session: str | None = None


@dataclass(frozen=True)
class AgentSpec:
    """One agent described by a spec file (see docs/agents/command.md)."""

    path: str
    name: str
    command: tuple[str, ...]
    output: str = "text"
    model_arg: tuple[str, ...] = ()
    resume_arg: tuple[str, ...] = ()
    base_url_env: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    jsonl: JsonlMapping | None = None
    file_tools: dict[str, str] = field(default_factory=dict)
    tool_kinds: dict[str, ToolKind] = field(default_factory=dict)
    #: A regular expression whose first group is an API error's HTTP status in the agent's
    #: error message (see docs/agents/command.md).
    api_status: str | None = None


_cache: dict[tuple[str, int, int], AgentSpec] = {}


def _strings(value: Any, where: str, *, empty: bool = True) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
        raise ValueError(f"{where} must be a list of strings")
    if not empty and not value:
        raise ValueError(f"{where} must not be empty")
    return tuple(value)


def _str_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise ValueError(f"{where} must be a table of strings")
    return dict(value)


def _tool_kinds(value: Any, where: str) -> dict[str, ToolKind]:
    names = _str_map(value, where)
    known = {k.value: k for k in ToolKind}
    for tool, kind in names.items():
        if kind not in known:
            raise ValueError(
                f"{where}: {tool} = {kind!r} is not a tool kind (one of: {', '.join(known)})"
            )
    return {tool: known[kind] for tool, kind in names.items()}


def _parse(path: str, data: dict[str, Any]) -> AgentSpec:
    where = f"agent_spec {path}"
    unknown = sorted(set(data) - set(_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_KEYS)})")
    if "command" not in data:
        raise ValueError(f"{where}: 'command' (the argv, a list of strings) is required")
    command = _strings(data["command"], f"{where}: 'command'", empty=False)
    output = data.get("output", "text")
    if output not in OUTPUTS:
        raise ValueError(f"{where}: 'output' must be one of {', '.join(OUTPUTS)}, got {output!r}")
    model_arg = _strings(data.get("model_arg", []), f"{where}: 'model_arg'")
    if model_arg and not any("{model}" in a for a in model_arg):
        raise ValueError(f"{where}: 'model_arg' must contain {{model}}, e.g. -m {{model}}")
    resume_arg = _strings(data.get("resume_arg", []), f"{where}: 'resume_arg'")
    if resume_arg and not any("{session_id}" in a for a in resume_arg):
        raise ValueError(
            f"{where}: 'resume_arg' must contain {{session_id}}, e.g. --resume {{session_id}}"
        )
    base_url_env = data.get("base_url_env")
    if base_url_env is not None and (not isinstance(base_url_env, str) or not base_url_env):
        raise ValueError(f"{where}: 'base_url_env' must be a variable name")
    name = data.get("name", os.path.basename(command[0]))
    if not isinstance(name, str) or not name:
        raise ValueError(f"{where}: 'name' must be a string")
    jsonl = None
    if output == "jsonl":
        table = data.get("jsonl")
        if not isinstance(table, dict) or not isinstance(table.get("text"), str):
            raise ValueError(f"{where}: output 'jsonl' needs a [jsonl] table with 'text' (a field)")
        extra = sorted(set(table) - set(_JSONL_KEYS))
        if extra:
            raise ValueError(f"{where}: unknown key 'jsonl.{extra[0]}'")
        match = table.get("match", {})
        if not isinstance(match, dict):
            raise ValueError(f"{where}: 'jsonl.match' must be a table of field values")
        session = table.get("session")
        if session is not None and not isinstance(session, str):
            raise ValueError(f"{where}: 'jsonl.session' must be a field name")
        jsonl = JsonlMapping(table["text"], dict(match), session)
    elif "jsonl" in data:
        raise ValueError(f'{where}: a [jsonl] table needs output = "jsonl"')
    api_status = data.get("api_status")
    if api_status is not None:
        import re

        try:
            groups = re.compile(api_status).groups if isinstance(api_status, str) else 0
        except re.error as exc:
            raise ValueError(
                f"{where}: 'api_status' is not a valid regular expression: {exc}"
            ) from None
        if not groups:
            raise ValueError(
                f"{where}: 'api_status' must be a regular expression with a group for the "
                "status, e.g. 'API Error: (\\d{3})'"
            )
    return AgentSpec(
        path=path,
        name=name,
        command=command,
        output=output,
        model_arg=model_arg,
        resume_arg=resume_arg,
        base_url_env=base_url_env,
        env=_str_map(data.get("env", {}), f"{where}: 'env'"),
        jsonl=jsonl,
        file_tools=_str_map(data.get("file_tools", {}), f"{where}: 'file_tools'"),
        tool_kinds=_tool_kinds(data.get("tool_kinds", {}), f"{where}: 'tool_kinds'"),
        api_status=api_status,
    )


#: A spec is a few lines; anything bigger is not one (and is not read into memory).
_MAX_SPEC_BYTES = 1 << 20


def _read_spec(path: str) -> bytes:
    """The bytes of the regular file ``path``; ``ValueError`` for a FIFO or a device (an open
    without O_NONBLOCK would wait for a writer forever, third pass T11) or a huge file."""
    import stat as stat_module

    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(fd, "rb") as file:
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"agent_spec {path}: not a regular file")
        data = file.read(_MAX_SPEC_BYTES + 1)
    if len(data) > _MAX_SPEC_BYTES:
        raise ValueError(f"agent_spec {path}: over {_MAX_SPEC_BYTES:,} bytes: not a spec")
    return data


def load_spec(path: str | os.PathLike[str] | None) -> AgentSpec:
    """The spec in ``path`` (TOML); ``ValueError`` naming the file and what is wrong."""
    if path is None:
        raise ValueError(
            "the command agent needs agent_spec, a TOML file describing its CLI: "
            "see docs/agents/command.md"
        )
    path = os.path.abspath(os.fspath(path))
    try:
        stat = os.stat(path)
    except OSError as exc:
        raise ValueError(f"agent_spec {path}: {exc.strerror}") from None
    key = (path, stat.st_mtime_ns, stat.st_size)
    spec = _cache.get(key)
    if spec is not None:
        return spec
    import sys

    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - the 3.10 backport
        import tomli as tomllib
    try:
        data = tomllib.loads(_read_spec(path).decode("utf-8"))
    except OSError as exc:
        raise ValueError(f"agent_spec {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ValueError(f"agent_spec {path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"agent_spec {path}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ValueError(f"agent_spec {path}: nested too deeply to be a spec") from None
    spec = _parse(path, data)
    _cache[key] = spec
    return spec
