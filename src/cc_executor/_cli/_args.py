"""Argument types, and the options of ``cc-executor run`` as one table.

The table builds the argparse parser (help, errors, everything a user sees) and also
:func:`quick_parse`, which reads a plain ``run`` command line without importing argparse, so
that the console can start Claude Code about 12 ms sooner (argparse, ``re`` and ``enum``
cost that much to import and set up). ``quick_parse`` accepts only what argparse reads the
same way (exact option names, no ``--``, no value that starts with ``-`` unless written
``--flag=-value``) and gives up on everything else, which then goes through argparse alone.
A test checks the two agree.

No imports beyond the interpreter's start-up set: this module runs before the CLI starts.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


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
    """One option of ``run``: its flag and how argparse (and :func:`quick_parse`) reads it.

    ``action``: ``store`` (a value), ``store_true``/``store_false``, ``append`` (one value
    per use) or ``extend`` (``type`` returns a list).
    """

    __slots__ = ("action", "default", "dest", "flag", "group", "help", "metavar", "type")

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
    ) -> None:
        self.group = group
        self.flag = flag
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
RUN_GROUPS = ("time", "agent", "environment", "answer and output")

RUN_OPTIONS = (
    Option(
        "time",
        "--timeout",
        type=timeout_value,
        metavar="S|auto",
        help="total time limit; 'auto' derives it from similar past runs",
    ),
    Option("time", "--idle-timeout", type=float, metavar="S", help="stop after S s without output"),
    Option("time", "--first-output-timeout", type=float, metavar="S"),
    Option("time", "--grace", type=float, default=5.0, metavar="S", help="SIGTERM->SIGKILL delay"),
    Option("agent", "--model", metavar="M"),
    Option("agent", "--max-turns", type=int, metavar="N"),
    Option("agent", "--max-budget-usd", type=float, metavar="USD"),
    Option("agent", "--resume", metavar="SESSION_ID", help="continue that session"),
    Option("agent", "--continue", dest="continue_session", action="store_true"),
    Option("agent", "--session-id", metavar="UUID"),
    Option("agent", "--fork-session", action="store_true"),
    Option("agent", "--allowed-tools", type=tools, action="extend", metavar="T[,T]"),
    Option("agent", "--disallowed-tools", type=tools, action="extend", metavar="T"),
    Option("agent", "--permission-mode", metavar="MODE"),
    Option("agent", "--mcp-config", metavar="FILE|JSON"),
    Option("agent", "--strict-mcp-config", action="store_true"),
    Option("agent", "--append-system-prompt", metavar="TEXT"),
    Option("agent", "--add-dir", dest="add_dirs", action="append", metavar="DIR"),
    Option(
        "agent",
        "--no-partial-messages",
        dest="include_partial_messages",
        action="store_false",
        help="do not ask for token-level streaming (partial text is then lost on a timeout)",
    ),
    Option("agent", "--extra-arg", dest="extra_args", action="append", metavar="ARG"),
    Option(
        "agent",
        "--max-context-tokens",
        type=int,
        metavar="N",
        help="the context window Claude Code should assume (it refuses longer prompts itself)",
    ),
    Option("agent", "--claude", dest="claude_path", metavar="PATH", help="the claude executable"),
    Option("environment", "--cwd", metavar="DIR"),
    Option("environment", "--env", type=key_value, action="append", metavar="KEY=VALUE"),
    Option(
        "answer and output",
        "--json-mode",
        action="store_true",
        help="extract a JSON value from the answer",
    ),
    Option(
        "answer and output",
        "--json-schema",
        metavar="FILE|JSON",
        help="validate the JSON against it",
    ),
    Option(
        "answer and output",
        "--structured-output",
        action="store_true",
        help="also pass the schema to the CLI",
    ),
    Option(
        "answer and output",
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="retries on rate limits, overload and 5xx while no tool has run",
    ),
    Option(
        "answer and output",
        "--retry-initial-delay",
        type=float,
        default=2.0,
        metavar="S",
        help="back-off before the first retry, doubled for each next one",
    ),
    Option(
        "answer and output",
        "--retry-max-delay",
        type=float,
        default=60.0,
        metavar="S",
        help="longest back-off between two attempts",
    ),
    Option(
        "answer and output",
        "--heartbeat",
        dest="heartbeat_s",
        type=float,
        default=10.0,
        metavar="S",
    ),
    Option(
        "answer and output",
        "--json",
        action="store_true",
        help="print exactly one JSON result object",
    ),
    Option("answer and output", "--quiet", action="store_true", help="no live view"),
)


def quick_parse(argv: Sequence[str]) -> dict[str, Any] | None:
    """The options of ``run`` (``argv``: what follows ``run``) as ``{dest: value}`` plus
    ``prompt``, exactly as argparse would give them; None when the command line is anything
    but plain (then argparse reads it, and reports what is wrong)."""
    by_flag = {o.flag: o for o in RUN_OPTIONS}
    values = {o.dest: o.initial() for o in RUN_OPTIONS}
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
        raise ValueError(
            f"--json-schema: no such file: {text} (and not JSON text either)"
        ) from None


def run_options(values: dict[str, Any]) -> dict[str, Any]:
    """The keyword arguments of ``start_run`` for parsed ``run`` options (``values``: the
    argparse namespace's ``vars()`` or :func:`quick_parse`'s result). ``ValueError`` for an
    unreadable ``--json-schema``; ``timeout`` may still be ``"auto"``."""
    options = {
        o.dest: values[o.dest]
        for o in RUN_OPTIONS
        if o.dest not in _OUTPUT_ONLY and o.dest not in ("env", "json_schema")
    }
    options["env"] = dict(values["env"])
    options["json_schema"] = load_schema(values["json_schema"])
    return options
