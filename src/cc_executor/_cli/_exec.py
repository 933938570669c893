"""``cc-executor exec``: the process engine on the command line, a better ``timeout``."""

from __future__ import annotations

import sys

from cc_executor._cli._args import timeout_value
from cc_executor._cli._codes import EXIT_CANCELLED, EXIT_CANNOT_START, EXIT_TIMEOUT

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
        "signal N, 130 when interrupted.",
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


def exit_code_for(result: ProcessResult) -> int:
    """The exit code ``exec`` returns for ``result``."""
    import signal as _signal

    from cc_executor._engine import ProcessStatus

    if result.status is ProcessStatus.SPAWN_FAILED:
        return EXIT_CANNOT_START
    if result.status in (ProcessStatus.TIMEOUT, ProcessStatus.IDLE_TIMEOUT):
        return EXIT_TIMEOUT
    if result.status is ProcessStatus.CANCELLED:
        return EXIT_CANCELLED
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
        stopping: list[asyncio.Task[ProcessResult]] = []

        def stop() -> None:
            stopping.append(loop.create_task(proc.cancel()))

        # Installed before the spawn, so a signal can never find us without a handler.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop)
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
            print(f"cc-executor exec: warning: {inert(warning)}", file=sys.stderr)
        if result.error and not result.ok:
            print(f"cc-executor exec: {inert(result.error)}", file=sys.stderr)
    return exit_code_for(result)
