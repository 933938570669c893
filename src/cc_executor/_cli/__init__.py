"""The ``cc-executor`` command line. Subcommands import their heavy modules lazily, so
``--version`` and ``--help`` stay fast."""

from __future__ import annotations

import os
import sys

from cc_executor._version import __version__

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Sequence
    from typing import Any

#: Which module registers each command (``module:function``). Only the module of the command
#: being run is imported, so every command starts with just the imports it needs.
_COMMANDS = {
    "run": "cc_executor._cli._run:add_parser",
    "exec": "cc_executor._cli._exec:add_parser",
    "tasks": "cc_executor._cli._tasks:add_parser",
    "batch": "cc_executor._cli._batch:add_parser",
    "history": "cc_executor._cli._history:add_parsers",
    "show": "cc_executor._cli._history:add_parsers",
    "export": "cc_executor._cli._history:add_parsers",
    "verify": "cc_executor._cli._history:add_parsers",
    "prune": "cc_executor._cli._history:add_parsers",
    "import-history": "cc_executor._cli._history:add_parsers",
    "doctor": "cc_executor._cli._doctor:add_parser",
    "serve": "cc_executor._cli._serve:add_parser",
    "mcp": "cc_executor._cli._serve:add_parser",
    "notify": "cc_executor._cli._notify:add_parser",
    "inbox": "cc_executor._cli._notify:add_parser",
    "testing": "cc_executor._cli._testing:add_parser",
    "worker": "cc_executor._cli._fleet:add_parser",
    "cancel": "cc_executor._cli._fleet:add_parser",
    "attach": "cc_executor._cli._fleet:add_parser",
    "pause": "cc_executor._cli._fleet:add_parser",
    "unpause": "cc_executor._cli._fleet:add_parser",
    "fleet": "cc_executor._cli._fleet:add_parser",
    "workspace": "cc_executor._cli._workspace:add_parser",
}

#: The extra each command needs (``cc_executor._extras``); the others run on the core install.
_COMMAND_EXTRAS = {
    "import-history": "postgres",
    "tasks": "tasks",
    "serve": "service",
    "mcp": "service",
    "notify": "notify",
    "inbox": "notify",
    "testing": "testing",
    "worker": "fleet",
    "attach": "fleet",
    "fleet": "fleet",
}


def build_parser(
    command: str | None = None, *, json_errors: bool = False
) -> argparse.ArgumentParser:
    """The argument parser: with every command, or only with ``command``'s module.
    ``json_errors``: a usage error also prints the ``usage_error`` JSON object."""
    import importlib

    from cc_executor._cli._parser import parser_class

    parser = parser_class(json_errors)(
        prog="cc-executor",
        description="Run coding-agent CLIs (Claude Code first) and any command headlessly: "
        "supervised, bounded in time, every byte kept, nothing left running.",
    )
    parser.add_argument("--version", action="version", version=f"cc-executor {__version__}")
    parser.add_argument(
        "--history",
        metavar="WHERE",
        help="the history every command uses: a file, sqlite:///path or postgresql://... "
        "(password from CC_EXECUTOR_HISTORY_PASSWORD(_FILE), PGPASSWORD or ~/.pgpass; "
        "default: $CC_EXECUTOR_HISTORY, else history.sqlite3 in the data folder)",
    )
    # Read before the command by main() (_take_config); here for the help.
    parser.add_argument(
        "--config",
        dest="config_file",
        metavar="FILE",
        help="the user config file (reservations, run option defaults: docs/config.md; "
        "default: $CC_EXECUTOR_CONFIG, else config.toml in the data folder)",
    )
    parser.add_argument(
        "--no-config",
        action="store_true",
        help="read no config file (as CC_EXECUTOR_CONFIG=/dev/null)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    wanted = [_COMMANDS[command]] if command in _COMMANDS else list(_COMMANDS.values())
    for target in dict.fromkeys(wanted):
        module, _, function = target.partition(":")
        getattr(importlib.import_module(module), function)(sub)
    return parser


def _parser_of(
    parser: argparse.ArgumentParser, args: argparse.Namespace, command: str | None
) -> Any:
    """The (sub)parser that read the innermost command of ``args`` (``command``: the first)."""
    import argparse

    found: Any = parser
    first = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    if command in first.choices:
        found = first.choices[command]
    while True:
        action = next(
            (a for a in found._actions if isinstance(a, argparse._SubParsersAction)), None
        )
        # exec's own "command" (a list) shares the top level's dest: only names descend.
        name = getattr(args, action.dest, None) if action is not None else None
        if action is None or not isinstance(name, str) or name not in action.choices:
            return found
        found = action.choices[name]


def main(argv: Sequence[str] | None = None, *, hard_exit: bool = False) -> int:
    """Entry point of the ``cc-executor`` console script; returns the exit code.

    ``hard_exit``: the process ends with ``os._exit`` once this returns (see :func:`console`),
    so a command may leave to the process's end what only frees resources (``args.hard_exit``).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    while args_list[:1] and args_list[0].startswith(("--history", "--config", "--no-config")):
        # Before the command: every layer below finds the history and the config file
        # through the environment.
        take = _take_history if args_list[0].startswith("--history") else _take_config
        refused = take(args_list)
        if refused is not None:
            return refused
    if args_list in (["--version"], ["-V"]):
        # The fast path: no parser, no imports.
        print(f"cc-executor {__version__}")
        return 0
    refused = _check_home(args_list)
    if refused is not None:
        return refused
    early = None
    if args_list[:1] == ["run"] and not any(a.startswith("--fleet") for a in args_list):
        # Start Claude Code first, import the rest while it boots (see _cli._early).
        from cc_executor._cli._early import start_early

        early = start_early(args_list[1:])
    try:
        if early is not None and early.options is not None:
            # quick_parse read the command line exactly as argparse would (tests/cli/
            # test_args.py holds it to that), so no parser is built: 12 ms of CPU saved
            # while the CLI boots.
            from cc_executor._cli._run import main as run_main

            namespace = early.namespace()
            namespace.hard_exit = hard_exit
            return run_main(namespace)
        command = next((a for a in args_list if not a.startswith("-")), None)
        parser = build_parser(command, json_errors="--json" in args_list)
        config = None
        if command == "run":
            config = _user_config(command)
            if config == 2:
                return 2
            from cc_executor._cli._args import config_seed

            # The file's values become the flags' defaults: a flag given still wins.
            run_parser = _parser_of(parser, _namespace(), command)
            run_parser.set_defaults(**config_seed(config.defaults))
        args, extras = parser.parse_known_args(args_list)
        if extras:
            # The command's own parser names its flags in the error ("did you mean").
            _parser_of(parser, args, command).unrecognized(extras)
        if args.config_file is not None or args.no_config:
            print("cc-executor: --config and --no-config go before the command", file=sys.stderr)
            return 2
        if config is None and _reads_config(command, args):
            config = _user_config(command)
            if config == 2:
                return 2
        args.hard_exit = hard_exit
        args.config = config
        if early is not None:
            args.early = early  # nothing was started: the options were refused
        handler = getattr(args, "handler", None)
        if handler is None:
            parser.print_help()
            return 2
        if command in _COMMAND_EXTRAS:
            from cc_executor._extras import require_extra

            require_extra(_COMMAND_EXTRAS[command], f"the '{command}' command")
        code: int = handler(args)
        return code
    except ImportError as exc:
        # A missing extra, found above or by a package deep inside the command: one line.
        from cc_executor._extras import MissingExtra

        if not isinstance(exc, MissingExtra):
            raise
        print(f"cc-executor: {exc}", file=sys.stderr)
        return 2
    finally:
        if early is not None:
            early.abandon()  # a no-op once the run adopted the CLI


def _check_home(args_list: list[str]) -> int | None:
    """Exit code 2, with one line naming it, when ``$CC_EXECUTOR_HOME`` is not a folder
    (a file, or below one) for the commands reading the history there, which would read
    an empty one and say "no runs recorded yet". Running commands keep their output in a
    temporary folder instead, with a warning: keeping records never fails a run."""
    home = os.environ.get("CC_EXECUTOR_HOME")
    reader = _COMMANDS.get(args_list[0], "") if args_list else ""
    if not home or not reader.startswith("cc_executor._cli._history:"):
        return None
    if {"-h", "--help"} & set(args_list):
        return None
    path = os.path.expanduser(home)
    try:
        os.stat(path)
    except FileNotFoundError:
        return None  # made when first needed
    except NotADirectoryError:
        reason = "a folder above it is a file"
    except OSError as exc:
        reason = exc.strerror or str(exc)
    else:
        if os.path.isdir(path):
            return None
        reason = "it is a file, not a folder"
    from cc_executor._text import inert

    print(
        f"cc-executor: CC_EXECUTOR_HOME={inert(home)} cannot be the data folder ({reason}); "
        "point it at a folder, or unset it",
        file=sys.stderr,
    )
    return 2


def _reads_config(command: str | None, args: argparse.Namespace) -> bool:
    """Whether the command reads the user config file (docs/config.md): run, tasks run,
    worker and doctor."""
    if command == "tasks":
        return getattr(args, "tasks_action", None) == "run"
    return command in ("run", "worker", "doctor")


def _user_config(command: str | None) -> Any:
    """The user config file (:class:`~cc_executor.UserConfig`), or 2 once its error is
    said in one line; for doctor, None (its ``config`` check says why)."""
    from cc_executor._errors import ConfigError
    from cc_executor._run._config import UserConfig

    try:
        return UserConfig.load()
    except ConfigError as exc:
        if command == "doctor":
            return None
        from cc_executor._text import inert

        print(f"cc-executor: {inert(str(exc))}", file=sys.stderr)
        return 2


def _namespace() -> argparse.Namespace:
    import argparse

    return argparse.Namespace()


def _take_config(args_list: list[str]) -> int | None:
    """Move a leading ``--config FILE`` (or ``--no-config``) of ``args_list`` to
    ``CC_EXECUTOR_CONFIG`` (``--no-config``: the empty file ``/dev/null``); 2 (a usage
    error, said on one line) when FILE is missing."""
    from cc_executor._run._config import CONFIG_ENV

    first = args_list.pop(0)
    if first == "--no-config":
        os.environ[CONFIG_ENV] = os.devnull
        return None
    if first == "--config" and args_list:
        value = args_list.pop(0)
    elif first.startswith("--config="):
        value = first.partition("=")[2]
    else:
        print(f"cc-executor: {first}: expected --config FILE or --no-config", file=sys.stderr)
        return 2
    if not value:
        print("cc-executor: argument --config: expected a file name", file=sys.stderr)
        return 2
    os.environ[CONFIG_ENV] = os.path.abspath(os.path.expanduser(value))
    return None


def _take_history(args_list: list[str]) -> int | None:
    """Move a leading ``--history WHERE`` of ``args_list`` to ``CC_EXECUTOR_HISTORY``;
    2 (a usage error, said on one line) when it is missing or unusable."""
    first = args_list.pop(0)
    if first == "--history" and args_list:
        value = args_list.pop(0)
    elif first.startswith("--history="):
        value = first.partition("=")[2]
    else:
        print("cc-executor: argument --history: expected one argument", file=sys.stderr)
        return 2
    from cc_executor._errors import HistoryError
    from cc_executor._store._location import HISTORY_ENV, check_location

    try:
        check_location(value, from_argv=True)
    except HistoryError as exc:
        print(f"cc-executor: argument --history: {exc}", file=sys.stderr)
        return 2
    os.environ[HISTORY_ENV] = value
    return None


def console() -> None:
    """The ``cc-executor`` console script: :func:`main`, then exit without the interpreter's
    teardown. By then every command has written and flushed its output and closed its
    files and databases; the teardown would only free memory, and it costs about 15 ms
    after a run's imports (measured), more than the rest of a run's own overhead."""
    try:
        code = main(hard_exit=True)
    except KeyboardInterrupt:
        print("cc-executor: interrupted", file=sys.stderr)
        code = 130
    except BrokenPipeError:
        import contextlib

        # The reader of our output went away (``| head``): end quietly, as a program killed
        # by SIGPIPE would, without a traceback. The run itself is in the history.
        code = 141
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    for stream in (sys.stdout, sys.stderr):
        if stream is None:  # started with that descriptor closed
            continue
        try:  # noqa: SIM105 - the early start must not import contextlib: it would here
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: nothing more can reach the reader anyway
    os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
