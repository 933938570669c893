"""The options of ``cc-executor run``, derived from the run options' declarations
(:class:`~cc_executor._run._options.RunOptions`), plus the console's own output flags.

The table builds the argparse parser (help, errors, everything a user sees) and also
:func:`quick_parse`, which reads a plain ``run`` command line without importing argparse, so
that the console can start the agent CLI about 12 ms sooner (argparse, ``re`` and ``enum``
cost that much to import and set up). ``quick_parse`` accepts only what argparse reads the
same way (exact option names, no ``--``, no value that starts with ``-`` unless written
``--flag=-value``) and gives up on everything else, which then goes through argparse alone.
A test checks the two agree.

No imports beyond the interpreter's start-up set: this module runs before the CLI starts.
"""

from __future__ import annotations

from cc_executor._run._options import RunOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence
    from typing import Any

    from cc_executor._run._options import Option as Declaration


def _bad(message: str) -> Exception:
    import argparse

    return argparse.ArgumentTypeError(message)


def timeout_value(text: str) -> float | str:
    """``--timeout`` values: positive seconds or ``auto``."""
    if text == "auto":
        return text
    try:
        value = float(text)
    except ValueError:
        raise _bad(f"expected seconds or 'auto', got {text!r}") from None
    if not value > 0:  # "not >": NaN is refused too
        raise _bad(f"the timeout must be positive, got {text}")
    return value


def size_value(text: str) -> int:
    """Sizes in bytes (``--memory-max 512M``)."""
    from cc_executor._run._options import parse_size

    try:
        return parse_size(text, "the size")
    except ValueError as exc:
        raise _bad(str(exc)) from None


def key_value(text: str) -> tuple[str, str]:
    """``KEY=VALUE`` (``--env``)."""
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise _bad(f"expected KEY=VALUE, got {text!r}")
    return key, value


def tools(text: str) -> list[str]:
    """A comma-separated list of tool names."""
    return [t for t in (part.strip() for part in text.split(",")) if t]


class Option:
    """One flag of ``run`` and how argparse (and :func:`quick_parse`) reads it.

    ``action``: ``store`` (a value), ``store_true``/``store_false``, ``append`` (one value
    per use) or ``extend`` (``type`` returns a list). ``aliases``: older spellings.
    """

    __slots__ = (
        "action",
        "aliases",
        "default",
        "dest",
        "flag",
        "group",
        "help",
        "metavar",
        "type",
    )

    def __init__(
        self,
        group: str,
        flag: str,
        *,
        dest: str | None = None,
        action: str = "store",
        type: Callable[[str], Any] | None = None,
        default: Any = None,
        metavar: str | None = None,
        help: str | None = None,
        aliases: tuple[str, ...] = (),
    ) -> None:
        self.group = group
        self.flag = flag
        self.aliases = aliases
        self.dest = dest or flag[2:].replace("-", "_")
        self.action = action
        self.type = type
        self.default = default
        self.metavar = metavar
        self.help = help

    @property
    def takes_value(self) -> bool:
        return self.action in ("store", "append", "extend")

    def initial(self) -> Any:
        """The value before any use of the flag (a fresh list for the list actions)."""
        if self.action in ("append", "extend"):
            return list(self.default or [])
        if self.action == "store_true":
            return False
        if self.action == "store_false":
            return True
        return self.default

    def argparse_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dest": self.dest, "action": self.action}
        if self.type is not None:
            kwargs["type"] = self.type
        if self.takes_value:
            kwargs["default"] = self.initial()
            kwargs["metavar"] = self.metavar
        if self.help is not None:
            kwargs["help"] = self.help
        return kwargs


RUN_PROMPT_HELP = "the prompt, or - to read it from stdin"

#: Argument groups of ``run``, in help order.
RUN_GROUPS = ("time", "agent", "environment", "resources", "answer and output")


def flag_for(declared: Declaration) -> Option:
    """The ``run`` flag of a declared run option: how its kind is read from argv."""
    kind = declared.kind
    action, default = "store", declared.default
    convert: Callable[[str], Any] | None = None
    if kind == "flag":
        action = "store_false" if declared.default else "store_true"
    elif kind in ("strings", "paths"):
        action = "extend" if declared.commas else "append"
        convert = tools if declared.commas else None
    elif kind == "env":
        action, convert = "append", key_value
    elif kind == "number":
        convert = timeout_value if declared.words else float
    elif kind == "integer":
        convert = int
    elif kind == "size":
        convert = size_value
    assert declared.flag is not None
    return Option(
        declared.group,
        declared.flag,
        dest=declared.name,
        action=action,
        type=convert,
        default=default if action == "store" else None,
        metavar=declared.metavar,
        help=declared.help,
        aliases=declared.flag_aliases,
    )


#: The flags of ``run``: every run option that has one, then the console's own.
RUN_OPTIONS = (
    *(flag_for(o) for o in RunOptions.options if o.flag is not None),
    Option(
        "answer and output",
        "--json",
        action="store_true",
        help="print exactly one JSON result object",
    ),
    Option("answer and output", "--quiet", action="store_true", help="no live view"),
)


def flag_reference() -> str:
    """The README's table of run options (Markdown), generated from their declarations:
    flag, Python keyword, task-list key, who may set it remotely, the agents that support
    it, the default and the help. ``python -m cc_executor._cli._args`` prints it; a test
    holds README.md to it."""
    rows = [
        "| flag | option | task-list key | remote | agents | default | what it does |",
        "|---|---|---|---|---|---|---|",
    ]
    for o in RunOptions.options:
        flags = ", ".join(f"`{f}`" for f in (o.flag, *o.flag_aliases) if f) or "(none)"
        default = "`{}`" if o.factory is dict else f"`{o.default!r}`"
        cells = (
            flags,
            "`" + "`, `".join((o.name, *o.aliases)) + "`",
            f"`{o.task_key}`" if o.task_key else "-",
            "server only" if o.remote == "server_only" else "yes",
            ", ".join(o.agents) if o.agents else "all",
            default,
            (o.help or "").replace("|", "\\|"),
        )
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows) + "\n"


def add_run_defaults(parser: Any, names: Sequence[str]) -> None:
    """Add the flags of run options ``names`` to ``parser`` (``tasks run``, ``serve``):
    their values become defaults for the runs the command starts, so each flag defaults to
    None (not given: the run's own default applies)."""
    for name in names:
        flag = flag_for(RunOptions.by_name[name])
        kwargs = flag.argparse_kwargs()
        kwargs["default"] = None
        parser.add_argument(flag.flag, *flag.aliases, **kwargs)


def run_defaults(values: Any, names: Sequence[str]) -> dict[str, Any]:
    """The run options among ``names`` given on the command line (an argparse namespace)."""
    return {name: getattr(values, name) for name in names if getattr(values, name) is not None}


#: Kinds whose values the command line collects over repeated flags: the config file's
#: value applies only when no flag gave one (``env``: merged, a flag's variable winning).
_COLLECTED = ("strings", "paths", "env")


def config_seed(defaults: Mapping[str, Any]) -> dict[str, Any]:
    """The config file's ``[defaults]`` that become the ``run`` flags' defaults (a flag
    given replaces them); those collected over repeated flags are left to
    :func:`run_options`."""
    return {
        name: value
        for name, value in defaults.items()
        if RunOptions.by_name[name].kind not in _COLLECTED
    }


def quick_parse(
    argv: Sequence[str], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """The options of ``run`` (``argv``: what follows ``run``) as ``{dest: value}`` plus
    ``prompt``, exactly as argparse would give them (``defaults``: the config file's, as
    :func:`config_seed` makes them the parser's defaults); None when the command line is
    anything but plain (then argparse reads it, and reports what is wrong)."""
    by_flag = {flag: o for o in RUN_OPTIONS for flag in (o.flag, *o.aliases)}
    values = {o.dest: o.initial() for o in RUN_OPTIONS}
    if defaults:
        values.update(config_seed(defaults))
    prompt: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if not arg.startswith("-") or arg == "-":
            if prompt is not None:
                return None  # a second positional: argparse's error
            prompt = arg
            continue
        if not arg.startswith("--") or arg == "--":
            return None
        flag, has_value, value = arg.partition("=")
        option = by_flag.get(flag)
        if option is None:
            return None  # --help, an abbreviation, a typo: argparse's business
        if not option.takes_value:
            if has_value:
                return None
            values[option.dest] = option.action == "store_true"
            continue
        if not has_value:
            if i >= len(argv) or argv[i].startswith("-"):
                return None
            value = argv[i]
            i += 1
        if value == "--":
            return None  # argparse (before 3.13) drops a "--" even in --flag=--
        try:
            converted = option.type(value) if option.type is not None else value
        except Exception:  # any refusal is argparse's to report
            return None
        # NaN (argparse takes it, but it equals nothing; refused later). Not math.isnan:
        # loading math would cost the early start 0.4 ms.
        if converted != converted:  # noqa: PLR0124
            return None
        if option.action == "append":
            values[option.dest].append(converted)
        elif option.action == "extend":
            values[option.dest].extend(converted)
        else:
            values[option.dest] = converted
    if prompt is None:
        return None
    values["prompt"] = prompt
    return values


#: Options of ``run`` that only shape the console's output, not the run.
_OUTPUT_ONLY = ("json", "quiet")


def load_schema(text: str | None) -> Any:
    """``--json-schema``: a JSON file or JSON text; ``ValueError`` saying why if neither."""
    if text is None:
        return None
    import json
    import os

    if os.path.exists(text):
        try:
            with open(text, encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError) as exc:
            raise ValueError(f"--json-schema: cannot read {text} as JSON: {exc}") from None
    try:
        return json.loads(text)
    except ValueError as exc:
        if text.lstrip()[:1] in ("{", "[") or text.strip() in ("true", "false"):
            raise ValueError(f"--json-schema is not valid JSON: {exc}") from None
        where = "" if os.path.isabs(text) else f"looked in {os.getcwd()}; "
        raise ValueError(
            f"--json-schema: no such file: {text} ({where}and not JSON text either)"
        ) from None


def run_options(
    values: dict[str, Any], defaults: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The keyword arguments of ``start_run`` for parsed ``run`` options (``values``: the
    argparse namespace's ``vars()`` or :func:`quick_parse`'s result; ``defaults``: the
    config file's, for the lists no flag gave and the variables of ``env``). ``ValueError``
    for an unreadable ``--json-schema``; ``timeout`` may still be ``"auto"``."""
    options = {
        o.dest: values[o.dest]
        for o in RUN_OPTIONS
        if o.dest not in _OUTPUT_ONLY and o.dest not in ("env", "json_schema")
    }
    schema = values["json_schema"]
    options["json_schema"] = load_schema(schema) if isinstance(schema, str) else schema
    options = _from_here(options)
    defaults = defaults or {}
    for name, value in defaults.items():
        if RunOptions.by_name[name].kind in ("strings", "paths") and not options.get(name):
            options[name] = value  # already absolute from the file's folder
    options["env"] = {**defaults.get("env", {}), **dict(values["env"])}
    return options


def _from_here(options: dict[str, Any]) -> dict[str, Any]:
    """The flags' relative paths (``--add-dir``, ``--mcp-config`` files) made absolute from
    the process's cwd, as every path on a command line is, ``--cwd`` or not."""
    import os

    from cc_executor._run._prepare import anchor_paths

    paths = {k: options[k] for k in ("add_dirs", "mcp_config") if options.get(k)}
    return {**options, **anchor_paths(paths, os.getcwd())}


def update_reference(path: str) -> bool:
    """Rewrite the generated table between the ``run-options`` markers of the Markdown file
    ``path``; True if it changed."""
    import re

    with open(path, encoding="utf-8") as f:
        text = f.read()
    block = re.compile(r"(<!-- run-options:begin[^\n]*-->\n)(.*?)(<!-- run-options:end -->)", re.S)
    if not block.search(text):
        raise ValueError(f"{path} has no <!-- run-options:begin --> ... end --> markers")
    updated = block.sub(lambda m: m.group(1) + flag_reference() + m.group(3), text)
    if updated != text:
        with open(path, "w", encoding="utf-8") as f:
            f.write(updated)
    return updated != text


def flag_message(text: str) -> str:
    """``text`` (an error of the run options' checks, which name options as the Python API
    does) with each option named by its ``run`` flag: ``max_turns must be >= 1`` becomes
    ``--max-turns must be >= 1``. Only names with an underscore, or the one the message
    starts with, are replaced: ``agent`` or ``model`` inside a sentence stay words."""
    import re

    def flag(match: re.Match[str]) -> str:
        name = match.group(0)
        declared = RunOptions.by_name.get(name)
        if declared is None or declared.flag is None:
            return name
        if "_" not in name and match.start() != 0:
            return name
        return declared.flag

    return re.sub(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)*\b", flag, text)


if __name__ == "__main__":
    # `python -m cc_executor._cli._args` prints the table; with README.md, rewrites its copy.
    import sys

    if len(sys.argv) > 1:
        print("updated" if update_reference(sys.argv[1]) else "up to date")
    else:
        print(flag_reference(), end="")
