"""``cc-executor run``: a prompt to an agent CLI (Claude Code by default), headless, with a
live view."""

from __future__ import annotations

import os
import sys

from cc_executor._cli._args import RUN_GROUPS, RUN_OPTIONS, RUN_PROMPT_HELP, run_options
from cc_executor._cli._codes import EXIT_USAGE, signal_exit
from cc_executor._cli._early import launch_held, read_prompt, settle
from cc_executor._cli._exec import resolve_auto_timeout

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

    from cc_executor._engine._launch import Launched
    from cc_executor._run._result import RunResult
    from cc_executor._run._runner import RunHandle


def add_parser(sub: Any) -> None:
    """Register ``run`` on the subcommand set ``sub`` (its options: ``_args.RUN_OPTIONS``)."""
    p = sub.add_parser(
        "run",
        help="give a prompt to an agent CLI (Claude Code by default) and get a typed result",
        description="Run an agent CLI (--agent, Claude Code by default) on PROMPT ('-' reads "
        "it from stdin; it always reaches the CLI on stdin, never through a shell or argv). A "
        "live view goes to stderr, the final answer to stdout. Exit code 0 only for status "
        "ok; 3 tool calls denied, 124 timeout, 125 cannot start, 130 interrupted (143 by "
        "SIGTERM, 129 by SIGHUP), 1 anything else.",
    )
    p.add_argument("prompt", metavar="PROMPT|-", help=RUN_PROMPT_HELP)
    p.add_argument(
        "--fleet",
        metavar="URL",
        help="queue the run on the fleet at URL (redis://, rediss://, unix:///path) and follow "
        "it on its worker (docs/fleet.md); the password comes from CC_EXECUTOR_FLEET_PASSWORD",
    )
    p.add_argument(
        "--queue",
        metavar="NAME",
        help="with --fleet: the fleet's queue to put the run on (default: default); only "
        "workers started with --queue NAME take it",
    )
    groups = {name: p.add_argument_group(name) for name in RUN_GROUPS}
    for option in RUN_OPTIONS:
        groups[option.group].add_argument(option.flag, *option.aliases, **option.argparse_kwargs())
    p.set_defaults(handler=main)


def exit_code_for(
    result: RunResult, signals: list[int] | None = None, *, by_user: bool = True
) -> int:
    """The exit code of ``cc-executor run`` for ``result`` (the status vocabulary's):
    128 + N when the run was cancelled by the signal N among ``signals`` (those this
    console received, first first); ``by_user``: this console stopped it. A run cancelled
    by someone else (``cc-executor cancel``, from this machine or the fleet) exits 1, not
    130, which a script reads as "I pressed Ctrl-C"."""
    if signals and result.status == "cancelled":
        return signal_exit(signals)
    return result.status.exit_code(by_user=by_user)


async def _announce(handle: Any) -> None:
    """Say a fleet run's id once it is queued: what attach, cancel and pause take from
    another shell or machine (it was shown nowhere until the run ended)."""
    await handle.submitted.wait()
    print(
        f"cc-executor run: run {handle.run_id} queued on the fleet; from any machine: "
        f"cc-executor attach|cancel|pause {handle.run_id} --fleet URL",
        file=sys.stderr,
        flush=True,
    )


def main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor run``."""
    early = getattr(args, "early", None)
    try:
        prompt = early.prompt if early is not None else read_prompt(args.prompt)
        options = (
            early.options
            if early is not None and early.options is not None
            else run_options(vars(args), _config_defaults(args))
        )
    except ValueError as exc:
        return _usage_error(args, exc)
    if getattr(args, "fleet", None):
        # The run starts on a worker: nothing to launch here.
        launched, held = None, []
    elif early is not None:
        launched, held = early.launched, early.held
    else:
        # argparse read the command line; still start the CLI before the heavy imports.
        launched, held = launch_held(prompt, options)
    try:
        return _run(args, prompt, options, launched, held)
    finally:
        settle(launched)  # nothing happens once the runner adopted it


def _config_defaults(args: argparse.Namespace) -> dict[str, Any]:
    config = getattr(args, "config", None)
    return config.defaults if config is not None else {}


#: What a run imports once its CLI is started (most of the console's start-up cost).
_RUN_MODULES = (
    "asyncio",
    "cc_executor._cli._live",
    "cc_executor._cli._write",
    "cc_executor._run._runner",
)


def _prepare_yielding() -> None:
    """Import what the run needs in a thread at nice 19 (per thread on Linux) that yields
    the CPU to the CLI just started (which boots on more than one core; about 70 ms of
    CPU). The main thread keeps its priority for the run. Whatever fails here is left to
    the main thread, which does the same again and reports it. (The CLI's tree is under
    the engine's watchdog since before its spawn: see ``_engine._launch.launch``.)

    Measured (paired runs against the bare CLI): ``SCHED_BATCH`` for the imports slowed
    the CLI twice as much as plain nice 19 (a running batch thread is preempted less
    eagerly by the CLI's waking threads); ``SCHED_IDLE`` gained nothing over nice 19."""
    import importlib
    import threading

    def work() -> None:
        _nicer(threading.get_native_id(), 19)
        try:
            for name in _RUN_MODULES:
                importlib.import_module(name)
        except Exception:  # noqa: S110 - the main thread's own attempt reports it
            pass

    worker = threading.Thread(target=work, name="cc-executor-prepare")
    worker.start()
    worker.join()


def _nicer(tid: int, more: int) -> None:
    """Thread ``tid`` (the caller) ``more`` nicer; elsewhere than Linux (no per-thread
    nice), or if refused, it keeps its priority."""
    import contextlib

    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + more)


def _run(
    args: argparse.Namespace,
    prompt: bytes,
    options: dict[str, Any],
    launched: Launched | None,
    held: list[int],
) -> int:
    if launched is not None:
        _prepare_yielding()
    import asyncio
    import signal

    from cc_executor._engine._tree import adopt_orphans

    # One run per process: orphans of its tree come to us and are swept with it (F8.5).
    adopt_orphans()

    from cc_executor._cli._live import LiveView
    from cc_executor._cli._write import write_json_line, write_text
    from cc_executor._errors import CCExecutorError
    from cc_executor._run._runner import start_run
    from cc_executor._text import inert

    options["timeout"], note = resolve_auto_timeout(
        args.timeout, kind="run", agent=options["agent"], key=args.model
    )
    if note:
        print(f"cc-executor run: {note}", file=sys.stderr)
    view = None if args.quiet else LiveView()

    fleet = getattr(args, "fleet", None)
    queue = getattr(args, "queue", None)
    if queue is not None and not fleet:
        return _usage_error(args, ValueError("--queue names a fleet's queue: give --fleet too"))
    if fleet:
        from cc_executor._errors import FleetError
        from cc_executor._fleet._base import check_queue
        from cc_executor._fleet._url import parse_fleet_url

        try:
            parse_fleet_url(fleet, from_argv=True)
            if queue is not None:
                check_queue(queue)
        except (FleetError, ValueError) as exc:
            return _usage_error(args, exc)

    handles: list[RunHandle] = []  # whether it cancelled the run decides the exit code

    async def go() -> RunResult:
        announcer: asyncio.Future[None] | None = None
        decider = None
        if options.get("permission_policy"):
            from cc_executor._cli._permission_prompt import console_decider

            # On a fleet too: the worker asks this terminal about the policy's ask rules.
            decider = console_decider(view)
        if fleet:
            handle = start_run(
                prompt,
                on_event=view.handle if view else None,
                on_permission=decider,
                fleet=fleet,
                queue=queue,
                _decider_name="console",
                **options,
            )
            if view is not None:
                announcer = asyncio.ensure_future(_announce(handle))
        else:
            handle = start_run(
                prompt,
                on_event=view.handle if view else None,
                on_permission=decider,
                launched=launched,
                _decider_name="console",
                **options,
            )
        handles.append(handle)
        loop = asyncio.get_running_loop()

        # A signal stops the run the orderly way: the partial answer is still printed.
        def stop(signum: int) -> None:
            held.append(signum)  # its number makes the exit code
            handle.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop, sig)
        if held:
            handle.cancel()  # a signal came while the CLI started
        try:
            return await handle.wait()
        finally:
            if announcer is not None:
                announcer.cancel()

    try:
        if getattr(args, "hard_exit", False):
            # The console script ends with os._exit: closing the loop would only join idle
            # threads and free memory, 0.7 ms after the CLI's exit (measured).
            result = asyncio.new_event_loop().run_until_complete(go())
        else:
            result = asyncio.run(go())
    except (TypeError, ValueError) as exc:
        if view:
            view.close()
        return _usage_error(args, exc)
    except CCExecutorError as exc:
        # Fleet mode: the worker refused the run (exit 1), or the fleet could not be used
        # (no answer, refused credentials: the command's failure, exit 2, as for attach).
        if view:
            view.close()
        print(f"cc-executor run: {inert(str(exc))}", file=sys.stderr)
        from cc_executor._errors import FleetError, RunRefused

        usage = isinstance(exc, FleetError) and not isinstance(exc, RunRefused)
        return EXIT_USAGE if usage else 1
    if view:
        view.close()
    by_user = not handles or handles[0].cancelled_by_caller
    if note:
        result.warnings.append(note)
    if args.json:
        left = (result.workspace or {}).get("left_behind")
        if left:
            # Said on stderr too: a JSON reader may never look at the warnings.
            print(
                "cc-executor run: warning: your uncommitted changes were not carried into "
                f"the workspace (--carry-changes carries them): {inert(', '.join(left))}",
                file=sys.stderr,
            )
        sys.stdout.flush()
        write_json_line(sys.stdout.buffer, result.to_dict(), terminal=sys.stdout.isatty())
        sys.stdout.flush()
        return exit_code_for(result, held, by_user=by_user)
    answer = answer_text(result)
    if answer:
        text = answer if not sys.stdout.isatty() else inert(answer)
        sys.stdout.flush()
        write_text(sys.stdout.buffer, text)
        if not text.endswith("\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    for warning in dict.fromkeys(result.warnings):
        if warning != note:  # printed as the run started, kept in the result for the record
            print(f"cc-executor run: warning: {inert(warning)}", file=sys.stderr)
    if not args.quiet:
        print(summary_line(result), file=sys.stderr)
    if result.error:
        # Not progress: a run that failed says why even under --quiet.
        print(f"cc-executor run: {inert(result.error)}", file=sys.stderr)
    return exit_code_for(result, held, by_user=by_user)


def summary_line(result: RunResult) -> str:
    """The last line ``run`` (and ``attach``) prints on stderr: status, cost, duration,
    run id and session."""
    summary = f"{result.status}"
    if result.cost_usd is not None:
        summary += f" · ${result.cost_usd:.4f}"
    summary += f" · {result.duration_s:.1f}s · run {result.run_id}"
    if result.session_id:
        summary += f" · session {result.session_id}"
    return summary


def answer_text(result: RunResult) -> str:
    """What ``run`` prints on stdout: the answer, or the partial answer of a stopped run;
    nothing when the run failed and its "result" is the agent's own error message (an API
    error, "Not logged in", "Prompt is too long"), which goes to stderr with the error."""
    text = result.result or ""
    if result.ok or result.partial or not text.strip() or not result.error:
        return text
    return "" if text.strip()[:200] in result.error else text


def _usage_error(args: argparse.Namespace, exc: Exception) -> int:
    from cc_executor._cli._args import flag_message
    from cc_executor._cli._parser import usage_error

    return usage_error(
        "cc-executor run", flag_message(str(exc)), json_output=getattr(args, "json", False)
    )
