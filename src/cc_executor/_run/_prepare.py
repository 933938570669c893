"""What a run needs before its CLI starts, importable without the event loop, dataclasses
or typing: the option checks (derived from the declarations of
:class:`~cc_executor._run._options.RunOptions`), the agent's environment, the saved
prompt.

``RunOptions`` uses these functions, and so does the console command, which starts the
CLI before it imports the rest: one implementation for both. They read options as
attributes (``RunOptions`` field names) from any object.
"""

from __future__ import annotations

import os

from cc_executor._run._options import ON_WORKER_LOST, Option, RunOptions, parse_size

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


_MISSING = object()
_TEXT_KINDS = ("text", "strings", "paths", "path", "env", "mcp")
#: What a run id may be made of: a plain folder name (no ``re``: the console's early start
#: checks options before it imports anything).
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")


def _type_error(option: Option, value: Any) -> TypeError | None:
    """A ``TypeError`` naming ``option`` if ``value`` is not of its kind, else None.

    Checked before any range, so that a wrong type gets a message naming the option
    instead of failing inside a comparison, or worse, a string being taken for a list of
    one-letter tools."""
    name, kind = option.name, option.kind
    if value is None and option.optional:
        return None
    if kind in ("number", "integer"):
        is_int = isinstance(value, int) and not isinstance(value, bool)
        if kind == "integer" and not is_int:
            return TypeError(f"{name} must be an integer, got {value!r}")
        if not (is_int or isinstance(value, float)):
            also = " or None" if option.optional else ""
            return TypeError(f"{name} must be a number{also}, got {value!r}")
    elif kind == "size" and (isinstance(value, bool) or not isinstance(value, (int, str))):
        return TypeError(f"{name} must be a size in bytes (an integer, or text such as 512M)")
    elif kind == "flag" and not isinstance(value, bool):
        return TypeError(f"{name} must be True or False, got {value!r}")
    elif kind == "text" and not isinstance(value, str):
        return TypeError(f"{name} must be a string, got {value!r}")
    elif kind in ("strings", "paths"):
        # A set of names (the tool lists) may be a set; an ordered list may not.
        kinds = (list, tuple, set, frozenset) if option.commas else (list, tuple)
        if isinstance(value, (str, bytes)) or not isinstance(value, kinds):
            hint = f" (write [{value!r}])" if isinstance(value, str) else ""
            return TypeError(f"{name} must be a list of strings, got {value!r}{hint}")
        for item in value:
            if not (isinstance(item, str) or (kind == "paths" and isinstance(item, os.PathLike))):
                return TypeError(f"{name} must be a list of strings, got the item {item!r}")
    elif kind == "path" and not isinstance(value, (str, os.PathLike)):
        return TypeError(f"{name} must be a path, got {value!r}")
    elif kind == "mcp" and not (isinstance(value, str) or _is_mapping(value)):
        return TypeError(f"{name} must be a file, JSON text or a mapping, got {value!r}")
    elif kind == "env" and not (
        _is_mapping(value)
        and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    ):
        return TypeError(f"{name} must map strings to strings")
    return None


def _range_error(option: Option, value: Any) -> ValueError | None:
    """A ``ValueError`` if the number ``value`` is outside ``option``'s range ("not >=":
    NaN is refused too)."""
    if value is None:
        return None
    if option.above is not None and not value > option.above:
        if option.above == 0:
            what = "a positive integer" if option.kind == "integer" else "positive"
            shown = repr(value) if option.kind == "integer" else value
            return ValueError(f"{option.name} must be {what}, got {shown}")
        return ValueError(f"{option.name} must be > {option.above:g}, got {value}")
    if option.at_least is not None and not value >= option.at_least:
        return ValueError(f"{option.name} must be >= {option.at_least:g}, got {value}")
    return None


def check_option(name: str, value: Any) -> None:
    """``TypeError``/``ValueError`` naming run option ``name`` if ``value`` is not of its
    kind, outside its range, or text no process can be given (for callers that take a few
    options alone, such as the config file and the service's command runs)."""
    option = RunOptions.by_name[name]
    error = _type_error(option, value) or (
        _range_error(option, value) if option.kind in ("number", "integer") else None
    )
    if error is None and option.kind in _TEXT_KINDS and value is not None:
        error = _text_error(option, value)
    if error is not None:
        raise error
    if option.kind == "size" and value is not None:
        parse_size(value, name)


#: MAX_ARG_STRLEN on Linux, less room for a flag's name (``--append-system-prompt=``): one
#: argument or environment entry above it fails the spawn with E2BIG, after a 202.
_ARG_MAX_BYTES = 131072 - 256


def _too_long(text: str) -> bool:
    # Bytes, not characters: 4 bytes per character at most, so short text skips encoding.
    return len(text) * 4 > _ARG_MAX_BYTES and len(text.encode(errors="replace")) > _ARG_MAX_BYTES


def _text_error(option: Option, value: Any) -> ValueError | None:
    """A ``ValueError`` for text no process can be given: a NUL byte (argv, environment and
    paths end at it), an environment variable name with ``=``, a ``run_id`` that is not a
    plain name (it names the run's folder: ``../x`` would place it elsewhere), or an empty
    value."""
    name = option.name
    if option.kind == "env":
        for key, item in value.items():
            if not key or "=" in key or "\0" in key:
                return ValueError(f"env: {key!r} is not a variable name")
            if "\0" in item:
                return ValueError(f"env: the value of {key} contains a NUL byte")
            if _too_long(f"{key}={item}"):
                return ValueError(
                    f"env: {key} is {len(item.encode(errors='replace')):,} bytes; Linux "
                    f"refuses one above {_ARG_MAX_BYTES:,} (Argument list too long)"
                )
        return None
    items = value if option.kind in ("strings", "paths") else [value]
    for item in items:
        text = os.fspath(item) if isinstance(item, os.PathLike) else item
        if isinstance(text, str) and "\0" in text:
            return ValueError(f"{name} contains a NUL byte")
        if isinstance(text, str) and _too_long(text):
            return ValueError(
                f"{name} is {len(text.encode(errors='replace')):,} bytes; it reaches the agent "
                f"as one argument, which Linux refuses above {_ARG_MAX_BYTES:,} "
                "(Argument list too long)"
            )
    if name == "run_id" and not (
        0 < len(value) <= 200 and value[0] not in ".-" and _ID_CHARS.issuperset(value)
    ):
        return ValueError(
            f"run_id must be letters, digits, '_', '.' or '-' (not starting with '.' or "
            f"'-', at most 200), got {value!r}"
        )
    if option.kind in ("text", "path") and os.fspath(value) == "":
        # An empty value would pass for "not given" further down (``--model "$UNSET"``
        # running the default model, ``--resume ""`` a fresh session): say so instead.
        return ValueError(f"{name} is empty: give a value, or leave the option out")
    return None


def _is_set(option: Option, value: Any) -> bool:
    """Whether ``value`` asks for something beyond ``option``'s default (an empty list is
    the default whatever its type)."""
    if isinstance(value, (list, tuple, set, frozenset, dict)) and not value:
        return False
    return bool(value != option.initial())


def _is_mapping(value: Any) -> bool:
    if isinstance(value, dict):
        return True
    from collections.abc import Mapping  # only now: the console's early start passes dicts

    return isinstance(value, Mapping)


def check_run_options(o: Any) -> None:
    """Raise ``TypeError``/``ValueError`` naming the option for invalid run options: every
    type first, then ranges, the options the agent does not support, the checks between
    options, and the agent's own checks. ``o`` is :class:`RunOptions` or any object with
    its attributes; options it lacks (the console's early start reads only those with a
    flag) are skipped."""
    from cc_executor._agents import get_adapter

    given = [(opt, getattr(o, opt.name, _MISSING)) for opt in RunOptions.options]
    given = [(opt, value) for opt, value in given if value is not _MISSING]
    for opt, value in given:
        wrong = _type_error(opt, value)
        if wrong is not None:
            raise wrong
    for opt, value in given:
        bad = _range_error(opt, value) if opt.kind in ("number", "integer") else None
        if opt.kind == "size" and value is not None:
            try:
                parse_size(value, opt.name)  # type: ignore[arg-type]  # its type is checked
            except ValueError as exc:
                bad = exc
        if bad is None and opt.kind in _TEXT_KINDS and value is not None:
            bad = _text_error(opt, value)
        if bad is not None:
            raise bad
    agent = getattr(o, "agent", RunOptions.by_name["agent"].default)
    adapter = get_adapter(agent)  # ValueError naming the known agents
    for opt, value in given:
        if opt.agents is not None and agent not in opt.agents and _is_set(opt, value):
            raise ValueError(f"{opt.name} is not supported by the {agent} agent")
    delays = (getattr(o, "retry_initial_delay", 0.0), getattr(o, "retry_max_delay", 0.0))
    if not delays[0] >= 0 or not delays[1] >= delays[0]:
        raise ValueError(
            "retry delays must satisfy 0 <= retry_initial_delay <= retry_max_delay, got "
            f"{delays[0]} and {delays[1]}"
        )
    lost = getattr(o, "on_worker_lost", ON_WORKER_LOST[0])
    if lost not in ON_WORKER_LOST:
        raise ValueError(
            f"on_worker_lost: expected one of {', '.join(ON_WORKER_LOST)}, got {lost!r}"
        )
    _check_paths(o)
    _check_repo(o)
    if getattr(o, "workspace", None) is not None or getattr(o, "carry_changes", False):
        from cc_executor._run._workspace import check_workspace_options

        check_workspace_options(o)
    elif getattr(o, "workspace_base", None) is not None:
        raise ValueError("workspace_base needs workspace='worktree' (--workspace worktree)")
    if getattr(o, "permission_policy", None):
        _check_policy(o, agent)
    if getattr(o, "json_schema", None) is not None:
        # Only with a schema: jsonschema is a heavy import for the console's early start.
        from cc_executor._run._jsonmode import check_schema

        check_schema(o.json_schema)
    adapter.check(o)


def _check_repo(o: Any) -> None:
    """``repo`` must be a URL a run may clone, ``ref`` needs it, and the run's folder is the
    clone's: no ``cwd`` beside it."""
    repo, ref = getattr(o, "repo", None), getattr(o, "ref", None)
    branch = getattr(o, "repo_branch", None)
    if getattr(o, "repo_continue", False) and branch is None:
        raise ValueError("repo_continue needs repo_branch")
    if repo is None:
        if ref is not None:
            raise ValueError("ref needs repo (--ref needs --repo URL)")
        if branch is not None:
            raise ValueError("repo_branch needs repo")
        return
    from cc_executor._run._repo import check_ref, check_repo_url

    check_repo_url(repo)
    if ref is not None:
        check_ref(ref)
    if branch is not None:
        check_ref(branch)
        if getattr(o, "workspace", None) != "worktree":
            raise ValueError("repo_branch needs workspace='worktree' (the branch it pushes)")
    if getattr(o, "cwd", None) is not None:
        raise ValueError("a run with repo runs in its clone: give repo or cwd, not both")
    if getattr(o, "workspace", None) == "copy":
        raise ValueError("repo takes workspace='worktree' (a branch pushed back), not 'copy'")


#: The agents whose CLI asks a hook about each tool call (Claude Code's
#: ``--permission-prompt-tool``); the others take allow-lists at start only.
PERMISSION_HOOK_AGENTS = ("claude",)


def _check_policy(o: Any, agent: str) -> None:
    """The policy file must load (relative to ``cwd``), and only an agent with a permission
    hook can follow one: elsewhere a call cannot be decided while the run goes on."""
    from cc_executor._run._policy import load_policy

    path = os.fspath(o.permission_policy)
    cwd = getattr(o, "cwd", None)
    if not os.path.isabs(path) and cwd:
        path = os.path.join(os.fspath(cwd), path)
    try:
        policy = load_policy(path)
    except ValueError as exc:
        text = str(exc)
        raise ValueError(
            text if text.startswith("permission_policy") else f"permission_policy: {text}"
        ) from None
    if agent not in PERMISSION_HOOK_AGENTS:
        what = "its ask rules cannot be asked" if policy.asks else "its rules cannot be applied"
        raise ValueError(
            f"permission_policy: the {agent} agent has no permission hook, so {what} while "
            "the run goes on; only allow-lists given at the start are possible there (its "
            "permission_mode), and ask is refused: use the claude agent for a policy"
        )


def _check_paths(o: Any) -> None:
    """``add_dirs`` and an ``mcp_config`` file must exist (relative to ``cwd``): Claude Code
    would ignore a missing folder silently and crash on a missing config. The errors name
    the folder searched. JSON text must parse: Claude Code takes text that does not for a
    file name, and ends saying that no such file exists."""
    config = getattr(o, "mcp_config", None)
    if isinstance(config, str) and config.lstrip().startswith("{"):
        import json

        try:
            json.loads(config)
        except ValueError as exc:
            raise ValueError(f"mcp_config is not valid JSON: {exc}") from None
    cwd = getattr(o, "cwd", None)
    base = os.path.abspath(os.fspath(cwd) if cwd else os.getcwd())
    if not os.path.isdir(base):
        return  # the run reports the missing cwd itself (spawn_failed)

    def searched(path: str) -> str:
        return "" if os.path.isabs(path) else f" (looked in {base}, the run's cwd)"

    for given in getattr(o, "add_dirs", ()):
        folder = os.fspath(given)
        if not os.path.isdir(os.path.join(base, folder)):
            raise ValueError(f"add_dirs: {folder} is not a directory{searched(folder)}")
    if isinstance(config, str) and not config.lstrip().startswith("{"):

        def is_file(path: str) -> bool:
            return os.path.isfile(os.path.join(base, path))

        # A file, or files and JSON texts separated by spaces, as Claude Code reads it.
        if not is_file(config) and not all(is_file(p) or p[0] == "{" for p in config.split()):
            raise ValueError(
                f"mcp_config: no such file: {config}{searched(config)}: give a file or JSON text"
            )


def anchor_paths(options: dict[str, Any], base: str) -> dict[str, Any]:
    """``options`` with its relative paths made absolute against ``base``: ``cwd``,
    ``permission_policy``, each of ``add_dirs`` and the files of ``mcp_config`` (JSON text
    stays as it is). One rule for where a relative path points: a task list's values from
    the list's folder, the command line's flags from the process's cwd; the run itself then
    never guesses."""

    def absolute(path: Any) -> str:
        return os.path.join(base, os.path.expanduser(os.fspath(path)))

    def is_path(value: Any) -> bool:
        return isinstance(value, (str, os.PathLike)) and bool(os.fspath(value))

    # A value of the wrong type stays as it is: the option checks report it.
    out = dict(options)
    for name in ("cwd", "permission_policy"):
        if is_path(out.get(name)):
            out[name] = absolute(out[name])
    dirs = out.get("add_dirs")
    if isinstance(dirs, (list, tuple)) and all(is_path(d) for d in dirs):
        out["add_dirs"] = [absolute(d) for d in dirs]
    config = out.get("mcp_config")
    if isinstance(config, str) and config.strip() and not config.lstrip().startswith("{"):
        whole = absolute(config.strip())
        if os.path.isfile(whole) or len(config.split()) == 1:
            out["mcp_config"] = whole
        else:
            # Files and JSON texts separated by spaces, as Claude Code reads the flag.
            parts = config.split()
            out["mcp_config"] = " ".join(p if p[0] == "{" else absolute(p) for p in parts)
    return out


def process_env(o: Any, run_dir: str | None = None, *, home: str | None = None) -> dict[str, str]:
    """The variables added to the agent's environment: the agent's home when it gets one of
    the run's own (``home``, else a new one in ``run_dir``; see :mod:`cc_executor._run._homes`),
    ``env``, and what the agent's own options need (the adapter's ``process_env``)."""
    from cc_executor._agents import get_adapter
    from cc_executor._run._homes import new_home, own_home

    adapter = get_adapter(o.agent)
    where = home or (new_home(run_dir) if run_dir is not None else None)
    own = adapter.home_env(o, where) if where is not None and own_home(adapter, o) else {}
    return {**own, **o.env, **adapter.process_env(o)}


def save_prompt(run_dir: str, prompt: bytes) -> str:
    """Write ``prompt`` to ``run_dir/prompt.txt`` (0600, creating ``run_dir`` and its
    missing parents 0700) and return its path; ``OSError`` if it cannot."""
    from cc_executor._paths import private_dir

    private_dir(run_dir, tighten=False)  # the history's store tightens, and says so
    path = os.path.join(run_dir, "prompt.txt")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        view = memoryview(prompt)
        while view:
            view = view[os.write(fd, view) :]
    finally:
        os.close(fd)
    return path


def run_marker(o: Any) -> dict[str, str]:
    """The fields of a Claude run's spawn marker (see ``_engine._marker``) besides the
    engine's own: what the history's row needs if the run's start is never recorded."""
    fields = {"kind": "run", "agent": o.agent}
    for name in ("model", "parent_id"):
        value = getattr(o, name, None)
        if value:
            fields[name] = str(value)
    return fields


#: The run options that limit a run's resources (see ``_engine/_cgroup.py``).
LIMIT_OPTIONS = ("memory_max", "cpus", "pids_max", "max_output_bytes")
#: The run options a plain command takes (``exec``, the service's and a fleet's command
#: runs): its process options, checked by their declarations; ``stdin`` comes beside them.
COMMAND_OPTIONS = (
    "cwd",
    "env",
    "timeout",
    "idle_timeout",
    "first_output_timeout",
    "grace",
    *LIMIT_OPTIONS,
)


def limits_of(o: Any) -> Any:
    """The engine's :class:`~cc_executor._engine._cgroup.Limits` for the resource options of
    ``o`` (an object or a mapping; sizes given as text taken in bytes), or None when none
    is set."""
    values: dict[str, Any] = {
        name: o.get(name) if isinstance(o, dict) else getattr(o, name, None)
        for name in LIMIT_OPTIONS
    }
    if all(v is None for v in values.values()):
        return None
    from cc_executor._engine._cgroup import Limits

    for name in ("memory_max", "max_output_bytes"):
        if isinstance(values[name], str):
            values[name] = parse_size(values[name], name)
    return Limits(**values)
