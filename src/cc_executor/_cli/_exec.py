"""``cc-executor exec``: the process engine on the command line, a better ``timeout``."""

from __future__ import annotations

import sys

from cc_executor._cli._args import timeout_value
from cc_executor._cli._codes import (
    EXIT_CANNOT_START,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    signal_exit,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from cc_executor._engine import ProcessResult


def add_parser(sub: Any) -> None:
    """Register ``exec`` on the subcommand set ``sub``."""
    from argparse import REMAINDER

    p = sub.add_parser(
        "exec",
        help="run any command supervised (a better `timeout`)",
        description="Run CMD (never through a shell) with timeouts, full output capture and "
        "whole-tree cleanup, within resource limits if given. Without --json the child's "
        "output streams through; the exit code is the child's, 124 on timeout, 125 when the "
        "command cannot be started (or a limit cannot be enforced here), 137 when killed "
        "for its memory limit, 1 when stopped by another limit, 128+N when it was killed by "
        "signal N, 130 when interrupted (143 by SIGTERM, 129 by SIGHUP).",
    )
    p.add_argument(
        "--timeout",
        type=timeout_value,
        metavar="S|auto",
        help="total time limit in seconds; 'auto' derives it from similar past runs",
    )
    p.add_argument(
        "--idle-timeout", type=float, metavar="S", help="stop after S seconds without output"
    )
    p.add_argument(
        "--first-output-timeout",
        type=float,
        metavar="S",
        help="stop if nothing is printed within S seconds",
    )
    p.add_argument(
        "--grace",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds between SIGTERM and SIGKILL (default 5)",
    )
    from cc_executor._cli._args import flag_for
    from cc_executor._run._options import RunOptions
    from cc_executor._run._prepare import LIMIT_OPTIONS

    for name in LIMIT_OPTIONS:  # declared once, with the run options
        flag = flag_for(RunOptions.by_name[name])
        p.add_argument(flag.flag, **flag.argparse_kwargs())
    p.add_argument("--cwd", metavar="DIR", help="working directory of the command")
    p.add_argument(
        "--stdin",
        metavar="FILE",
        help="feed FILE to the command's stdin ('-' passes ours through; default /dev/null)",
    )
    p.add_argument("--run-dir", metavar="DIR", help="where to keep stdout.log and stderr.log")
    p.add_argument(
        "--fleet",
        nargs="?",
        const="",
        metavar="URL",
        help="run the command on a worker of the fleet at URL (default: $CC_EXECUTOR_FLEET) "
        "started with --allow-exec for it; its output streams back, the exit code is its "
        "(docs/fleet.md), within the resource limits given. Not with --run-dir or --timeout auto",
    )
    p.add_argument(
        "--queue",
        metavar="NAME",
        help="with --fleet: the queue to put the command on (default: default)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help="print exactly one JSON object with the result on stdout, nothing else",
    )
    p.add_argument(
        "command",
        nargs=REMAINDER,
        metavar="-- CMD [ARG...]",
        help="the command and its arguments, after --",
    )
    p.set_defaults(handler=run)


def resolve_auto_timeout(
    value: float | str | None, *, kind: str, agent: str | None, key: str | None
) -> tuple[float | None, str | None]:
    """The timeout to use and, for ``auto``, the sentence saying which estimate was used."""
    if value != "auto":
        return (float(value) if value is not None else None), None
    from cc_executor._run._timeout import predicted_timeout

    seconds, note = predicted_timeout(kind=kind, agent=agent, key=key)
    return seconds, f"--timeout auto: {note}"


def exit_code_for(
    result: ProcessResult, signals: list[int] | None = None, *, by_user: bool = True
) -> int:
    """The exit code ``exec`` returns for ``result``; ``signals``: those received, which
    make a cancelled command's code (see :func:`~cc_executor._cli._codes.signal_exit`);
    ``by_user``: this console stopped it, as for ``run``: cancelled by someone else, it
    exits 1."""
    import signal as _signal

    from cc_executor._engine import ProcessStatus

    if result.status is ProcessStatus.SPAWN_FAILED:
        return EXIT_CANNOT_START
    if result.status in (ProcessStatus.TIMEOUT, ProcessStatus.IDLE_TIMEOUT):
        return EXIT_TIMEOUT
    if result.status is ProcessStatus.CANCELLED:
        return signal_exit(signals or []) if by_user else 1
    if result.status in (ProcessStatus.OOM_KILLED, ProcessStatus.LIMIT_EXCEEDED):
        return result.status.exit_code()
    if result.exit_code is not None:
        return result.exit_code
    if result.signal is not None:
        try:
            return 128 + int(getattr(_signal, result.signal))
        except AttributeError:
            return 1
    return 1


def run(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor exec``."""
    import asyncio
    import json
    import re
    import signal

    from cc_executor._engine import OutputEvent, SupervisedProcess

    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        from cc_executor._cli._parser import usage_error

        return usage_error(
            "cc-executor exec",
            "no command given (usage: exec [OPTIONS] -- CMD [ARG...])",
            json_output=args.json,
        )
    if args.fleet is not None or args.queue is not None:
        return fleet_exec(args, command)
    stdin: Any = None
    if args.stdin == "-":
        stdin = sys.stdin.buffer
    elif args.stdin is not None:
        from pathlib import Path

        stdin = Path(args.stdin)

    from cc_executor._engine._tree import adopt_orphans
    from cc_executor._run._exec import run_command
    from cc_executor._run._prepare import limits_of
    from cc_executor._store import redact_argv

    # One command per process: orphans of its tree come to us and are swept with it (F8.5).
    adopt_orphans()

    timeout, note = resolve_auto_timeout(
        args.timeout, kind="exec", agent=None, key=json.dumps(redact_argv(command))
    )
    if note:
        print(f"cc-executor exec: {note}", file=sys.stderr)

    async def main() -> ProcessResult | None:
        loop = asyncio.get_running_loop()
        try:
            proc = SupervisedProcess(
                command,
                stdin=stdin,
                cwd=args.cwd,
                timeout=timeout,
                idle_timeout=args.idle_timeout,
                first_output_timeout=args.first_output_timeout,
                grace=args.grace,
                run_dir=args.run_dir,
                events=not args.json,
                limits=limits_of(args),
            )
        except ValueError as exc:
            refused.append(str(exc))  # an argument the engine refused: a usage error
            return None

        def stop(signum: int) -> None:
            received.append(signum)  # its number makes the exit code
            stopping.append(loop.create_task(proc.cancel()))

        # Installed before the spawn, so a signal can never find us without a handler.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop, sig)
        out, err = sys.stdout.buffer, sys.stderr.buffer

        def write(event: OutputEvent) -> None:
            target = out if event.stream == "stdout" else err
            target.write(event.data)
            target.flush()

        async def stream(event: OutputEvent) -> None:
            # Writing to our own stdout may block (a slow pipe); keep the loop free.
            await loop.run_in_executor(None, write, event)

        return await run_command(proc, on_output=None if args.json else stream, chunks=True)

    refused: list[str] = []
    received: list[int] = []
    stopping: list[asyncio.Task[ProcessResult]] = []  # our signals' cancels
    result = asyncio.run(main())
    if result is None:
        from cc_executor._cli._parser import usage_error

        # The engine names its arguments as the API does (idle_timeout): say the flag.
        message = re.sub(
            r"^[a-z_]+", lambda m: "--" + m.group(0).replace("_", "-"), refused[0], count=1
        )
        return usage_error("cc-executor exec", message, json_output=args.json)
    if note:
        result.warnings.append(note)
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
    else:
        from cc_executor._text import inert

        for warning in dict.fromkeys(result.warnings):
            if warning != note:  # printed as the command started, kept for the record
                print(f"cc-executor exec: warning: {inert(warning)}", file=sys.stderr)
        if result.error and not result.ok:
            print(f"cc-executor exec: {inert(result.error)}", file=sys.stderr)
    return exit_code_for(result, received, by_user=bool(stopping))


def _fleet_exit_code(result: Any, *, by_user: bool = True) -> int:
    """What ``exec --fleet`` exits with: as a local ``exec``, from the fleet's result."""
    from cc_executor._status import Status

    if result.status in (Status.OK, Status.FAILED) and result.exit_code is not None:
        return int(result.exit_code)
    return int(result.status.exit_code(by_user=by_user))


def fleet_exec(args: argparse.Namespace, command: list[str]) -> int:
    """``exec --fleet``: the command on a fleet worker (``start_fleet_exec``), its output
    printed as it comes, its exit code ours; a refusal or a broker error is one line."""
    import asyncio
    import json
    import os
    import signal

    from cc_executor._cli._parser import usage_error
    from cc_executor._errors import CCExecutorError, FleetError, RunRefused
    from cc_executor._run._prepare import LIMIT_OPTIONS
    from cc_executor._text import inert

    me = "cc-executor exec"
    if args.fleet is None:
        return usage_error(
            me, "--queue names a fleet's queue: give --fleet too", json_output=args.json
        )
    url = args.fleet or os.environ.get("CC_EXECUTOR_FLEET", "")
    if not url:
        return usage_error(
            me, "--fleet: give a URL or set CC_EXECUTOR_FLEET", json_output=args.json
        )
    local_only = [
        flag
        for flag, given in (
            ("--run-dir", args.run_dir is not None),
            ("--timeout auto", args.timeout == "auto"),
        )
        if given
    ]
    if local_only:
        # The run folder is the worker's: say so rather than ignore it.
        return usage_error(
            me, f"{local_only[0]} is not available with --fleet", json_output=args.json
        )
    options: dict[str, Any] = {"grace": args.grace}
    # The resource limits go with the command: its worker enforces them.
    for name in ("timeout", "idle_timeout", "first_output_timeout", "cwd", *LIMIT_OPTIONS):
        if getattr(args, name) is not None:
            options[name] = getattr(args, name)
    if args.stdin == "-":
        options["stdin"] = sys.stdin.read()
    elif args.stdin is not None:
        try:
            with open(args.stdin, encoding="utf-8") as given:
                options["stdin"] = given.read()
        except (OSError, UnicodeDecodeError) as exc:
            return usage_error(me, f"--stdin {args.stdin}: {exc}", json_output=args.json)

    from cc_executor._agents._types import CommandOutputEvent
    from cc_executor._fleet._base import check_queue
    from cc_executor._fleet._url import parse_fleet_url
    from cc_executor._run._fleet import start_fleet_exec

    try:
        parse_fleet_url(url, from_argv=bool(args.fleet))
        if args.queue is not None:
            check_queue(args.queue)
    except (FleetError, ValueError) as exc:
        return usage_error(me, str(exc), json_output=args.json)

    def show(event: Any) -> None:
        if isinstance(event, CommandOutputEvent) and not args.json:
            target = sys.stdout if event.stream == "stdout" else sys.stderr
            target.write(event.text + "\n")
            target.flush()

    async def go() -> Any:
        handle = start_fleet_exec(command, url, on_event=show, queue=args.queue, **options)
        handles.append(handle)
        loop = asyncio.get_running_loop()
        # A signal stops the command on its worker; its partial result still comes back.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, handle.cancel)
        return await handle.wait()

    handles: list[Any] = []  # whether it cancelled the run decides the exit code
    try:
        result = asyncio.run(go())
    except (TypeError, ValueError) as exc:
        return usage_error(me, str(exc), json_output=args.json)
    except RunRefused as exc:
        print(f"{me}: {inert(str(exc))}", file=sys.stderr)
        return EXIT_CANNOT_START
    except FleetError as exc:
        # The fleet could not be used (no answer, refused credentials): the command's
        # failure, as for attach and cancel, not the run's.
        print(f"{me}: {inert(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except CCExecutorError as exc:
        print(f"{me}: {inert(str(exc))}", file=sys.stderr)
        return 1
    if args.json:
        sys.stdout.write(json.dumps(result.to_dict()) + "\n")
        sys.stdout.flush()
    elif result.error and not result.ok and result.exit_code is None:
        # As a local exec: a command's own exit code needs no line; a timeout, a stop or a
        # lost worker does.
        print(f"{me}: {inert(result.error)}", file=sys.stderr)
    return _fleet_exit_code(result, by_user=not handles or handles[0].cancelled_by_caller)
