"""``cc-executor run``: a prompt to Claude Code, headless, with a live view."""

from __future__ import annotations

import argparse
import os
import sys

from cc_executor._cli._codes import EXIT_CANCELLED, EXIT_CANNOT_START, EXIT_TIMEOUT
from cc_executor._cli._exec import resolve_auto_timeout, timeout_value

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cc_executor._engine._launch import Launched
    from cc_executor._run._result import RunResult


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _tools(text: str) -> list[str]:
    return [t for t in (part.strip() for part in text.split(",")) if t]


def add_parser(sub: Any) -> None:
    """Register ``run`` on the subcommand set ``sub``."""
    p = sub.add_parser(
        "run",
        help="give a prompt to Claude Code headlessly and get a typed result",
        description="Run Claude Code on PROMPT ('-' reads it from stdin; it always reaches the "
        "CLI on stdin, never through a shell or argv). A live view goes to stderr, the final "
        "answer to stdout. Exit code 0 only for status ok; 124 timeout, 125 cannot start, "
        "130 interrupted, 1 anything else.",
    )
    p.add_argument("prompt", metavar="PROMPT|-", help="the prompt, or - to read it from stdin")
    g = p.add_argument_group("time")
    g.add_argument(
        "--timeout",
        type=timeout_value,
        metavar="S|auto",
        help="total time limit; 'auto' derives it from similar past runs",
    )
    g.add_argument("--idle-timeout", type=float, metavar="S", help="stop after S s without output")
    g.add_argument("--first-output-timeout", type=float, metavar="S")
    g.add_argument("--grace", type=float, default=5.0, metavar="S", help="SIGTERM->SIGKILL delay")
    a = p.add_argument_group("agent")
    a.add_argument("--model", metavar="M")
    a.add_argument("--max-turns", type=int, metavar="N")
    a.add_argument("--max-budget-usd", type=float, metavar="USD")
    a.add_argument("--resume", metavar="SESSION_ID", help="continue that session")
    a.add_argument("--continue", dest="continue_session", action="store_true")
    a.add_argument("--session-id", metavar="UUID")
    a.add_argument("--fork-session", action="store_true")
    a.add_argument("--allowed-tools", type=_tools, action="extend", default=[], metavar="T[,T]")
    a.add_argument("--disallowed-tools", type=_tools, action="extend", default=[], metavar="T")
    a.add_argument("--permission-mode", metavar="MODE")
    a.add_argument("--mcp-config", metavar="FILE|JSON")
    a.add_argument("--strict-mcp-config", action="store_true")
    a.add_argument("--append-system-prompt", metavar="TEXT")
    a.add_argument("--add-dir", dest="add_dirs", action="append", default=[], metavar="DIR")
    a.add_argument(
        "--no-partial-messages",
        dest="include_partial_messages",
        action="store_false",
        help="do not ask for token-level streaming (partial text is then lost on a timeout)",
    )
    a.add_argument("--extra-arg", dest="extra_args", action="append", default=[], metavar="ARG")
    a.add_argument(
        "--max-context-tokens",
        type=int,
        metavar="N",
        help="the context window Claude Code should assume (it refuses longer prompts itself)",
    )
    a.add_argument("--claude", dest="claude_path", metavar="PATH", help="the claude executable")
    e = p.add_argument_group("environment")
    e.add_argument("--cwd", metavar="DIR")
    e.add_argument("--env", type=_key_value, action="append", default=[], metavar="KEY=VALUE")
    o = p.add_argument_group("answer and output")
    o.add_argument("--json-mode", action="store_true", help="extract a JSON value from the answer")
    o.add_argument("--json-schema", metavar="FILE|JSON", help="validate the JSON against it")
    o.add_argument(
        "--structured-output", action="store_true", help="also pass the schema to the CLI"
    )
    o.add_argument("--retries", type=int, default=2, metavar="N")
    o.add_argument("--heartbeat", dest="heartbeat_s", type=float, default=10.0, metavar="S")
    o.add_argument("--json", action="store_true", help="print exactly one JSON result object")
    o.add_argument("--quiet", action="store_true", help="no live view")
    p.set_defaults(handler=main)


def _load_schema(text: str | None) -> Any:
    import json
    from pathlib import Path

    if text is None:
        return None
    path = Path(text)
    try:
        return json.loads(path.read_text() if path.is_file() else text)
    except (OSError, ValueError) as exc:
        raise SystemExit(
            f"cc-executor run: --json-schema is neither a JSON file nor JSON: {exc}"
        ) from None


def exit_code_for(result: RunResult) -> int:
    """The exit code of ``cc-executor run`` for ``result``."""
    from cc_executor._agents._types import RunStatus

    return {
        RunStatus.OK: 0,
        RunStatus.TIMEOUT: EXIT_TIMEOUT,
        RunStatus.IDLE_TIMEOUT: EXIT_TIMEOUT,
        RunStatus.SPAWN_FAILED: EXIT_CANNOT_START,
        RunStatus.CANCELLED: EXIT_CANCELLED,
    }.get(result.status, 1)


def _launch_early(prompt: bytes, options: dict[str, Any]) -> Launched | None:
    """Start the CLI before anything else is imported, so that the imports (about 100 ms)
    overlap its start-up instead of adding to the run's time.

    The same functions as the ordinary path check the options, build the argv and start the
    process (the engine's conventions: session, tree token, parent-death signal, stdout file
    in the run folder); the runner then adopts the process. Returns None, having started
    nothing, when anything is off: the ordinary path then reports it in full.
    """
    import contextlib
    from types import SimpleNamespace

    from cc_executor._agents._claude._flags import build_command, check_flags
    from cc_executor._agents._claude._locate import ClaudeNotFound, locate_claude
    from cc_executor._engine._launch import launch
    from cc_executor._engine._spawn import SpawnError
    from cc_executor._ids import new_run_id
    from cc_executor._paths import runs_path
    from cc_executor._run._prepare import (
        check_run_options,
        command_fields,
        process_env,
        save_prompt,
    )

    values = dict(options)
    if values.get("timeout") == "auto":
        values["timeout"] = None  # resolved from the history once it is imported
    o: Any = SimpleNamespace(**values)
    run_dir = ""
    try:
        check_run_options(o)
        flags: Any = SimpleNamespace(**command_fields(o))
        check_flags(flags)
        executable = locate_claude(o.claude_path, {**os.environ, **o.env})
        argv = build_command(executable, flags)
        run_id = new_run_id()
        run_dir = os.path.join(runs_path(), run_id)
        stdin_path = save_prompt(run_dir, prompt)
        return launch(
            argv,
            cwd=o.cwd or os.getcwd(),
            run_id=run_id,
            run_dir=run_dir,
            stdin_path=stdin_path,
            extra_env=process_env(o),
        )
    except (ValueError, TypeError, ClaudeNotFound, SpawnError, OSError):
        if run_dir:  # leave no half-made run folder behind
            for name in ("prompt.txt", "stdout.log", ""):
                with contextlib.suppress(OSError):
                    (os.rmdir if not name else os.unlink)(os.path.join(run_dir, name))
        return None


def _hold_signals() -> list[int]:
    """Until the event loop takes over the signals, note SIGINT/SIGTERM/SIGHUP instead of
    dying of them: the started CLI is then stopped the orderly way (partial result kept)."""
    import signal

    held: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda signum, frame: held.append(signum))
    return held


def main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor run``."""
    prompt = (
        sys.stdin.buffer.read()
        if args.prompt == "-"
        else args.prompt.encode("utf-8", "surrogateescape")
    )
    options: dict[str, Any] = {
        name: getattr(args, name)
        for name in (
            "timeout", "idle_timeout", "first_output_timeout", "grace", "model", "max_turns",
            "max_budget_usd", "resume", "continue_session", "session_id", "fork_session",
            "allowed_tools", "disallowed_tools", "permission_mode", "mcp_config",
            "strict_mcp_config", "append_system_prompt", "add_dirs", "include_partial_messages",
            "extra_args", "claude_path", "cwd", "json_mode", "structured_output", "retries",
            "heartbeat_s", "max_context_tokens",
        )
    }  # fmt: skip
    options["env"] = dict(args.env)
    options["json_schema"] = _load_schema(args.json_schema)
    launched = _launch_early(prompt, options)
    held = _hold_signals() if launched is not None else []
    try:
        return _run(args, prompt, options, launched, held)
    finally:
        if launched is not None:
            launched.abandon()  # a no-op once the runner adopted it


def _run(
    args: argparse.Namespace,
    prompt: bytes,
    options: dict[str, Any],
    launched: Launched | None,
    held: list[int],
) -> int:
    import asyncio
    import signal

    from cc_executor._cli._live import LiveView, inert
    from cc_executor._cli._write import write_json_line, write_text
    from cc_executor._run._runner import start_run

    options["timeout"], note = resolve_auto_timeout(
        args.timeout, kind="run", agent="claude", key=args.model
    )
    if note:
        print(f"cc-executor run: {note}", file=sys.stderr)
    view = None if args.quiet else LiveView()

    async def go() -> RunResult:
        handle = start_run(
            prompt, on_event=view.handle if view else None, launched=launched, **options
        )
        loop = asyncio.get_running_loop()
        # A signal stops the run the orderly way: the partial answer is still printed.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, handle.cancel)
        if held:
            handle.cancel()  # a signal came while the CLI started
        return await handle.wait()

    try:
        result = asyncio.run(go())
    except (TypeError, ValueError) as exc:
        if view:
            view.close()
        print(f"cc-executor run: {exc}", file=sys.stderr)
        return 2
    if view:
        view.close()
    if note:
        result.warnings.append(note)
    if args.json:
        sys.stdout.flush()
        write_json_line(sys.stdout.buffer, result.to_dict())
    else:
        if result.result:
            text = result.result if not sys.stdout.isatty() else inert(result.result)
            sys.stdout.flush()
            write_text(sys.stdout.buffer, text)
            if not text.endswith("\n"):
                sys.stdout.buffer.write(b"\n")
        summary = f"{result.status}"
        if result.cost_usd is not None:
            summary += f" · ${result.cost_usd:.4f}"
        summary += f" · {result.duration_s:.1f}s · run {result.run_id}"
        if result.session_id:
            summary += f" · session {result.session_id}"
        print(summary, file=sys.stderr)
        if result.error:
            print(f"cc-executor run: {inert(result.error)}", file=sys.stderr)
    sys.stdout.flush()
    return exit_code_for(result)
