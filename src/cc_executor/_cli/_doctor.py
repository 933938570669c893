"""``cc-executor doctor``: check this machine and prove the guarantees on it."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from cc_executor._cli._doctor_checks import CheckResult

from cc_executor._cli._codes import EXIT_CANCELLED as EXIT_INTERRUPTED


def add_parser(sub: Any) -> None:
    """Register ``doctor`` on the subcommand set ``sub``."""
    p = sub.add_parser(
        "doctor",
        help="check the environment and prove the guarantees on this machine",
        description="Check that Claude Code is installed and can reach a model (configuration "
        "only, no network call), that the data directory is writable with at least 1 GiB "
        "free and that every row of the history can be read (malformed rows are listed), "
        "then run live self-tests through the process engine: output far above the "
        "pipe buffer and a 10 MB line come back whole, a timeout keeps the partial output, "
        "and a stopped tree leaves no process behind. Exit code 0 when every check passes, "
        "1 otherwise.",
    )
    p.add_argument(
        "--claude",
        action="store_true",
        help="also run the real Claude Code CLI against a scripted local model server "
        "(plain answer, 2 MB answer, timeout with partial text)",
    )
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        dest="agents",
        choices=("claude", "codex", "gemini", "command"),
        metavar="NAME",
        help="check this agent CLI instead (repeatable): claude, codex, gemini, or command "
        "(with --agent-spec): the executable and where it was found, its version against "
        "the pinned one, the Node.js it runs on, its API key variable, and with --base-url a "
        "real run through that endpoint",
    )
    p.add_argument(
        "--agent-path",
        metavar="PATH",
        help="with one --agent: its executable (default: its CC_EXECUTOR_* variable, PATH, "
        "the cache of scripts/install-agents)",
    )
    p.add_argument(
        "--agent-spec", metavar="FILE", help="with --agent command: the agent's spec file"
    )
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="with --agent: also run the agent once through this endpoint, with the key of "
        "its usual variable (the only check that makes a network call)",
    )
    p.add_argument(
        "--json",
        action="store_true",
        help='print exactly one JSON object {"ok": ..., "checks": [...]} on stdout, nothing else',
    )
    p.set_defaults(handler=run)


def _marks(stream: TextIO) -> tuple[str, str]:
    """(pass, fail) marks: check marks where ``stream`` takes UTF-8, plain words elsewhere."""
    import codecs

    try:
        utf8 = codecs.lookup(getattr(stream, "encoding", None) or "ascii").name == "utf-8"
    except LookupError:
        utf8 = False
    return ("\u2713", "\u2717") if utf8 else ("PASS", "FAIL")


def format_check(result: CheckResult, marks: tuple[str, str]) -> str:
    """The plain-text line of one check, plus an indented hint line when it failed."""
    mark = marks[0] if result.ok else marks[1]
    line = f"{mark} {result.name:<23} {result.detail} ({result.duration_s:.1f} s)"
    if not result.ok and result.hint:
        line += f"\n      hint: {result.hint}"
    return line


def _agent_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with the agent flags, if anything."""
    if not args.agents:
        for flag, value in (
            ("--agent-path", args.agent_path),
            ("--agent-spec", args.agent_spec),
            ("--base-url", args.base_url),
        ):
            if value is not None:
                return f"{flag} goes with --agent NAME"
        return None
    if args.claude:
        return "--claude and --agent are checked separately: give one"
    if args.agent_path is not None and len(set(args.agents)) > 1:
        return "--agent-path names one executable: give it with one --agent"
    if "command" in args.agents and args.agent_spec is None:
        return "--agent command needs --agent-spec FILE"
    return None


def run(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor doctor``."""
    import asyncio
    import json
    import time

    from cc_executor._cli._doctor_checks import run_checks

    out = sys.stdout
    marks = _marks(out)

    def show(result: CheckResult) -> None:
        if not args.json:
            print(format_check(result, marks), file=out, flush=True)

    problem = _agent_usage(args)
    if problem is not None:
        print(f"cc-executor doctor: {problem}", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        if args.agents:
            from cc_executor._cli._doctor_agents import run_agent_checks

            results = asyncio.run(
                run_agent_checks(
                    list(dict.fromkeys(args.agents)),
                    agent_path=args.agent_path,
                    agent_spec=args.agent_spec,
                    base_url=args.base_url,
                    on_result=show,
                )
            )
        else:
            results = asyncio.run(run_checks(claude=args.claude, on_result=show))
    except KeyboardInterrupt:
        print("cc-executor doctor: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    ok = all(r.ok for r in results)
    if args.json:
        out.write(json.dumps({"ok": ok, "checks": [r.to_dict() for r in results]}) + "\n")
        out.flush()
    else:
        failed = sum(not r.ok for r in results)
        took = time.monotonic() - started
        summary = (
            f"all {len(results)} checks passed"
            if ok
            else f"{failed} of {len(results)} checks failed"
        )
        print(f"{summary} ({took:.1f} s)", file=out, flush=True)
    return 0 if ok else 1
