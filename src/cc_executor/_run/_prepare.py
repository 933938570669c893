"""What a run needs before its CLI starts, importable without the event loop, dataclasses
or typing: the option checks, the Claude Code flags, the CLI's environment, the saved
prompt.

:class:`~cc_executor._run._options.RunOptions` uses these functions, and so does the
console command, which starts the CLI before it imports the rest: one implementation for
both. They read options as attributes (``RunOptions`` field names) from any object.
"""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cc_executor._run._options import RunOptions


#: The type each run option must have (beyond None where the default is None): checked
#: first, so that a wrong type gets a message naming the option instead of failing inside
#: a comparison, or worse, a string being taken for a list of one-letter tools.
_NUMBERS = (
    "max_budget_usd", "timeout", "idle_timeout", "first_output_timeout", "grace",
    "retry_initial_delay", "retry_max_delay", "heartbeat_s",
)  # fmt: skip
_OPTIONAL = {"max_budget_usd", "timeout", "idle_timeout", "first_output_timeout"}
_INTEGERS = ("max_turns", "max_context_tokens", "retries")
_FLAGS = (
    "continue_session", "fork_session", "strict_mcp_config", "include_partial_messages",
    "structured_output", "json_mode", "record",
)  # fmt: skip
_TEXTS = (
    "model", "resume", "session_id", "permission_mode", "append_system_prompt", "run_id",
    "parent_id",
)  # fmt: skip
_STRING_LISTS = ("allowed_tools", "disallowed_tools", "extra_args")
_PATHS = ("cwd", "run_dir", "claude_path")
_MISSING = object()


def _check_types(o: Any) -> None:
    """``TypeError`` naming the option for a value of the wrong type. Options ``o`` lacks
    (the console's early start reads only its own) are skipped."""

    def given(name: str) -> Any:
        return getattr(o, name, _MISSING)

    def is_number(value: Any) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    for name in _NUMBERS:
        value = given(name)
        if value is not _MISSING and not (
            is_number(value) or (value is None and name in _OPTIONAL)
        ):
            also = " or None" if name in _OPTIONAL else ""
            raise TypeError(f"{name} must be a number{also}, got {value!r}")
    for name in _INTEGERS:
        value = given(name)
        if value is not _MISSING and not (
            (isinstance(value, int) and not isinstance(value, bool))
            or (value is None and name != "retries")
        ):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    for name in _FLAGS:
        value = given(name)
        if value is not _MISSING and not isinstance(value, bool):
            raise TypeError(f"{name} must be True or False, got {value!r}")
    for name in _TEXTS:
        value = given(name)
        if value is not _MISSING and value is not None and not isinstance(value, str):
            raise TypeError(f"{name} must be a string, got {value!r}")
    for name in (*_STRING_LISTS, "add_dirs"):
        value = given(name)
        if value is _MISSING:
            continue
        kinds = (list, tuple, set, frozenset) if name.endswith("tools") else (list, tuple)
        if isinstance(value, (str, bytes)) or not isinstance(value, kinds):
            raise TypeError(
                f"{name} must be a list of strings, got {value!r}"
                + (f" (write [{value!r}])" if isinstance(value, str) else "")
            )
        for item in value:
            path_like = name == "add_dirs" and isinstance(item, os.PathLike)
            if not isinstance(item, str) and not path_like:
                raise TypeError(f"{name} must be a list of strings, got the item {item!r}")
    for name in _PATHS:
        value = given(name)
        if (
            value is not _MISSING
            and value is not None
            and not isinstance(value, (str, os.PathLike))
        ):
            raise TypeError(f"{name} must be a path, got {value!r}")
    mcp_config = given("mcp_config")
    if mcp_config not in (_MISSING, None) and not (
        isinstance(mcp_config, str) or _is_mapping(mcp_config)
    ):
        raise TypeError(f"mcp_config must be a file, JSON text or a mapping, got {mcp_config!r}")
    env = given("env")
    if env is not _MISSING and not (
        _is_mapping(env) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
    ):
        raise TypeError("env must map strings to strings")


def _is_mapping(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    from collections.abc import Mapping  # only now: the console's early start passes dicts

    return isinstance(value, Mapping)


def check_run_options(o: RunOptions) -> None:
    """Raise ``ValueError``/``TypeError`` for invalid run options (not the agent flags:
    :func:`command_fields` and the CLI adapter check those)."""
    _check_types(o)
    for name in ("timeout", "idle_timeout", "first_output_timeout"):
        value = getattr(o, name)
        if value is not None and not value > 0:  # "not >": NaN is refused too
            raise ValueError(f"{name} must be positive, got {value}")
    if o.max_context_tokens is not None and o.max_context_tokens <= 0:
        raise ValueError(
            f"max_context_tokens must be a positive integer, got {o.max_context_tokens!r}"
        )
    if not o.grace >= 0:
        raise ValueError(f"grace must be >= 0, got {o.grace}")
    if o.retries < 0:
        raise ValueError(f"retries must be >= 0, got {o.retries}")
    if not o.retry_initial_delay >= 0 or not o.retry_max_delay >= o.retry_initial_delay:
        raise ValueError(
            "retry delays must satisfy 0 <= retry_initial_delay <= retry_max_delay, got "
            f"{o.retry_initial_delay} and {o.retry_max_delay}"
        )
    _check_paths(o)
    if o.json_schema is not None:
        # Only with a schema: jsonschema is a heavy import for the console's early start.
        from cc_executor._run._jsonmode import check_schema

        check_schema(o.json_schema)
    if not o.heartbeat_s >= 0:
        raise ValueError(f"heartbeat_s must be >= 0, got {o.heartbeat_s}")


def _check_paths(o: RunOptions) -> None:
    """``add_dirs`` and an ``mcp_config`` file must exist (relative to ``cwd``): Claude Code
    would ignore a missing folder silently and crash on a missing config."""
    base = os.fspath(o.cwd) if o.cwd else os.getcwd()
    if not os.path.isdir(base):
        return  # the run reports the missing cwd itself (spawn_failed)
    for folder in o.add_dirs:
        if not os.path.isdir(os.path.join(base, os.fspath(folder))):
            raise ValueError(f"add_dirs: {os.fspath(folder)} is not a directory")
    config = o.mcp_config
    if isinstance(config, str) and not config.lstrip().startswith("{"):

        def is_file(path: str) -> bool:
            return os.path.isfile(os.path.join(base, path))

        # A file, or files and JSON texts separated by spaces, as Claude Code reads it.
        if not is_file(config) and not all(is_file(p) or p[0] == "{" for p in config.split()):
            raise ValueError(f"mcp_config: no such file: {config} (give a file or JSON text)")


def command_fields(o: RunOptions) -> dict[str, Any]:
    """The Claude Code flags the options ask for, as ``ClaudeCommand`` keyword arguments."""
    return {
        "model": o.model,
        "max_turns": o.max_turns,
        "max_budget_usd": o.max_budget_usd,
        "resume": o.resume,
        "continue_session": o.continue_session,
        "session_id": o.session_id,
        "fork_session": o.fork_session,
        "allowed_tools": tuple(o.allowed_tools),
        "disallowed_tools": tuple(o.disallowed_tools),
        "permission_mode": o.permission_mode,
        "mcp_config": o.mcp_config,
        "strict_mcp_config": o.strict_mcp_config,
        "append_system_prompt": o.append_system_prompt,
        "add_dirs": tuple(os.fspath(d) for d in o.add_dirs),
        "include_partial_messages": o.include_partial_messages,
        "json_schema": o.json_schema if o.structured_output else None,
        "extra_args": tuple(o.extra_args),
    }


def process_env(o: RunOptions) -> dict[str, str]:
    """The variables added to the CLI's environment: ``env``, plus what
    ``max_context_tokens`` needs."""
    env = dict(o.env)
    if o.max_context_tokens is not None:
        env["CLAUDE_CODE_MAX_CONTEXT_TOKENS"] = str(o.max_context_tokens)
        env["DISABLE_COMPACT"] = "1"
    return env


def save_prompt(run_dir: str, prompt: bytes) -> str:
    """Write ``prompt`` to ``run_dir/prompt.txt`` (0600, creating ``run_dir`` 0700) and
    return its path; ``OSError`` if it cannot."""
    os.makedirs(run_dir, mode=0o700, exist_ok=True)
    path = os.path.join(run_dir, "prompt.txt")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(prompt)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return path
