"""``cc-executor batch FILE``: :func:`~cc_executor.run_many` over a file of prompts.

The file holds one prompt per line, or, when its first non-blank line starts with ``{``
(or its name ends in ``.jsonl``), one JSON object per line: ``{"prompt": ..., "key": ...,
"options": {...}}``. Progress goes to stderr, a line per start and end; the results (a
table, or with ``--json`` one JSON object) go to stdout. Everything a model wrote is shown
with terminal control characters neutralised.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import TYPE_CHECKING, Any

from cc_executor._cli._args import add_run_defaults, run_defaults, timeout_value
from cc_executor._cli._codes import signal_exit
from cc_executor._text import inert

if TYPE_CHECKING:
    from cc_executor._run._batch import BatchEvent, BatchResult

#: Run options ``batch`` takes as flags: defaults for every line that does not set them.
_RUN_DEFAULTS = (
    "agent",
    "agent_path",
    "model",
    "allowed_tools",
    "permission_mode",
    "max_turns",
    "max_budget_usd",
    "idle_timeout",
    "memory_max",
    "cpus",
    "pids_max",
    "max_output_bytes",
    "cwd",
    "json_mode",
    "accept_denials",
)
_FIELDS = ("prompt", "key", "options")
_PROMPT_INDEX = re.compile(r"^run_many: prompts\[(\d+)\]")
#: The batch's own arguments, as run_many names them and as their flags.
_BATCH_FLAGS = {
    "concurrency": "--concurrency",
    "budget_usd": "--budget-usd",
    "batch_id": "--batch-id",
}


def add_parser(sub: Any) -> None:
    """Register ``batch`` on the subcommand set ``sub``."""
    p = sub.add_parser(
        "batch",
        help="run many prompts from a file, a bounded number at once, within a budget",
        description="Run every prompt of FILE ('-': stdin) as its own agent run, at most "
        "--concurrency at once. FILE has one prompt per line, or (first line starting with "
        '\'{\', or a .jsonl name) one JSON object per line: {"prompt": ..., "key": ..., '
        '"options": {...}} (run options by their Python names; paths relative to the '
        "file's folder). Every run is recorded with the batch id (history --batch ID); "
        "running the same --batch-id again skips the documents already ok. Exit code 0 only "
        "if every document ended ok; 1 otherwise; 2 bad file or flags; 130 interrupted "
        "(143 by SIGTERM, 129 by SIGHUP; the runs going are stopped, the finished ones stay "
        "recorded).",
    )
    p.add_argument("file", metavar="FILE", help="the prompts: a text or JSONL file, or -")
    p.add_argument(
        "--timeout",
        type=timeout_value,
        required=True,
        metavar="S|auto",
        help="time limit of each run, required; 'auto' derives it from similar past runs",
    )
    p.add_argument("--concurrency", type=int, default=4, metavar="N", help="runs going at once")
    p.add_argument(
        "--budget-usd",
        type=float,
        metavar="USD",
        help="stop starting runs, and cancel the running ones, once the batch cost USD",
    )
    p.add_argument(
        "--batch-id",
        metavar="ID",
        help="the batch's id (default: a fresh one); give an earlier batch's id to skip "
        "its documents already ok",
    )
    p.add_argument(
        "--no-skip-ok",
        dest="skip_ok",
        action="store_false",
        help="run every document, even those already ok in this batch",
    )
    add_run_defaults(p, _RUN_DEFAULTS)
    p.add_argument("--json", action="store_true", help="print exactly one JSON result object")
    p.add_argument("--quiet", action="store_true", help="no progress lines")
    p.set_defaults(handler=main)


def read_prompts(path: str) -> tuple[list[Any], list[int]]:
    """The prompts of ``path`` (``-``: stdin) and the line each came from; ``ValueError``
    naming the file (and line) when it cannot be used."""
    import json

    name = "stdin" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as f:
                text = f.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not UTF-8 text ({exc.reason})"
        raise ValueError(f"cannot read {name}: {reason}") from None
    lines = [(n, line) for n, line in enumerate(text.splitlines(), 1) if line.strip()]
    if not lines:
        raise ValueError(f"{name} holds no prompt")
    jsonl = path.endswith(".jsonl") or lines[0][1].lstrip().startswith("{")
    base = os.path.dirname(os.path.abspath(path)) if path != "-" else os.getcwd()
    prompts: list[Any] = []
    for number, line in lines:
        if not jsonl:
            prompts.append(line)
            continue
        try:
            entry = json.loads(line)
        except ValueError as exc:
            raise ValueError(f"{name}:{number}: not a JSON object: {exc}") from None
        if not isinstance(entry, dict):
            raise ValueError(f"{name}:{number}: expected a JSON object, got {line.strip()[:40]}")
        if isinstance(entry.get("options"), dict):
            entry["options"] = _relative_to(entry["options"], base)
        prompts.append(entry)
    return prompts, [number for number, _ in lines]


def _relative_to(options: dict[str, Any], base: str) -> dict[str, Any]:
    """``options`` with their relative paths taken from the file's folder."""
    from cc_executor._run._options import RunOptions

    out = dict(options)
    for name, value in options.items():
        declared = RunOptions.by_name.get(RunOptions.alias_of.get(name, name))
        if declared is None:
            continue
        if declared.kind == "path" and isinstance(value, str):
            out[name] = os.path.join(base, os.path.expanduser(value))
        elif declared.kind == "paths" and isinstance(value, list):
            out[name] = [
                os.path.join(base, os.path.expanduser(v)) if isinstance(v, str) else v
                for v in value
            ]
    return out


def _usage(args: argparse.Namespace, message: str) -> int:
    from cc_executor._cli._parser import usage_error

    return usage_error("cc-executor batch", message, json_output=args.json)


def _where(message: str, name: str, lines: list[int]) -> str:
    """A run_many error: about ``prompts[i]``, named by the file's line (its options keep
    their JSON names); else about a flag, named by the flag."""
    from cc_executor._cli._args import flag_message

    match = _PROMPT_INDEX.match(message)
    if match is not None:
        return f"{name}:{lines[int(match.group(1))]}" + message[match.end() :]
    message = message.removeprefix("run_many: ")
    for argument, flag in _BATCH_FLAGS.items():
        message = re.sub(rf"\b{argument}\b", flag, message)
    return flag_message(message)


def main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor batch``."""
    import asyncio
    import signal

    from cc_executor._cli._args import flag_message
    from cc_executor._cli._exec import resolve_auto_timeout
    from cc_executor._run._batch import start_many
    from cc_executor._run._options import RunOptions

    name = "stdin" if args.file == "-" else args.file
    try:
        prompts, lines = read_prompts(args.file)
    except ValueError as exc:
        return _usage(args, str(exc))
    defaults = run_defaults(args, _RUN_DEFAULTS)
    timeout, note = resolve_auto_timeout(
        args.timeout, kind="run", agent=defaults.get("agent", "claude"), key=args.model
    )
    try:
        RunOptions.from_kwargs({**defaults, "timeout": timeout})  # the flags, before any line
    except (TypeError, ValueError) as exc:
        return _usage(args, flag_message(str(exc)))
    if note and not args.quiet:
        print(f"cc-executor batch: {note}", file=sys.stderr)
    progress = None if args.quiet else _Progress(lines)
    interrupted = False
    received: list[int] = []

    async def go() -> BatchResult:
        nonlocal interrupted
        handle = start_many(
            prompts,
            concurrency=args.concurrency,
            budget_usd=args.budget_usd,
            batch_id=args.batch_id,
            skip_ok=args.skip_ok,
            on_progress=progress.handle if progress is not None else None,
            timeout=timeout,
            **defaults,
        )
        if progress is not None:
            progress.begin(handle.batch_id, len(prompts))

        def stop(signum: int) -> None:
            nonlocal interrupted
            interrupted = True
            received.append(signum)  # its number makes the exit code
            handle.cancel()

        loop = asyncio.get_running_loop()
        # A signal stops the batch the orderly way: the running runs are cancelled (their
        # trees killed), the finished ones are already recorded, the summary is printed.
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop, sig)
        return await handle.wait()

    try:
        result = asyncio.run(go())
    except (TypeError, ValueError) as exc:
        return _usage(args, _where(str(exc), name, lines))
    if args.json:
        from cc_executor._cli._write import write_json_line

        sys.stdout.flush()
        write_json_line(sys.stdout.buffer, result.to_dict(), terminal=sys.stdout.isatty())
        sys.stdout.flush()
    else:
        _table(result, lines)
    _summary(result, args, interrupted)
    if interrupted:
        return signal_exit(received)
    return 0 if result.ok else 1


class _Progress:
    """One stderr line per start, end, reuse, skip and budget cancel."""

    def __init__(self, lines: list[int]) -> None:
        self.lines = lines

    def begin(self, batch_id: str, total: int) -> None:
        print(f"cc-executor batch: batch {batch_id}: {total} document(s)", file=sys.stderr)

    def handle(self, event: BatchEvent) -> None:
        if event.kind == "event":
            return
        where = f"[{event.done}/{event.total}] line {self.lines[event.index]}"
        if event.result is not None:
            r = event.result
            cost = f" · ${r.cost_usd:.4f}" if r.cost_usd is not None else ""
            what = "reused" if event.kind == "reused" else f"{r.duration_s:.1f}s"
            line = f"{where}: {r.status}{cost} · {what} · run {event.run_id}"
            if r.error:
                line += f" · {r.error}"
        else:
            line = f"{where}: {event.message or event.kind} · run {event.run_id}"
        print(f"cc-executor batch: {inert(line)}", file=sys.stderr, flush=True)


def _table(result: BatchResult, lines: list[int]) -> None:
    print(f"{'LINE':>5}  {'STATUS':<15}  {'RUN ID':<26}  {'COST':>8}  ANSWER")
    for index, r in enumerate(result.results):
        cost = f"${r.cost_usd:.4f}" if r.cost_usd is not None else "-"
        answer = " ".join((r.result or r.error or "")[:400].split())[:60]
        status = f"{r.status}*" if index in result.reused else str(r.status)
        print(f"{lines[index]:>5}  {status:<15}  {r.run_id:<26}  {cost:>8}  {inert(answer)}")
    if result.reused:
        print("(* reused: ended ok in an earlier run of this batch)")


def _summary(result: BatchResult, args: argparse.Namespace, interrupted: bool) -> None:
    for warning in dict.fromkeys(result.warnings):
        print(f"cc-executor batch: warning: {inert(warning)}", file=sys.stderr)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(result.counts().items()))
    spent = f"${result.spent_usd:.4f} spent"
    if result.budget_usd is not None:
        spent += f" of ${result.budget_usd:g}"
    line = f"batch {result.batch_id}: {counts or 'nothing to do'} · {spent}"
    if result.reused:
        line += f" · {len(result.reused)} reused"
    line += f" · {result.duration_s:.1f}s"
    if not args.quiet:
        print(line, file=sys.stderr)
    if interrupted:
        print(
            f"cc-executor batch: interrupted: {len(result.not_started)} document(s) not "
            "started; the runs going were cancelled, the finished ones are recorded",
            file=sys.stderr,
        )
    elif result.stopped_reason:
        print(f"cc-executor batch: {inert(result.stopped_reason)}", file=sys.stderr)
    if result.cancelled_by_budget:
        print(
            "cc-executor batch: cancelled by the budget: " + ", ".join(result.cancelled_by_budget),
            file=sys.stderr,
        )
    if not result.ok:
        file = "-" if args.file == "-" else args.file
        print(
            f"cc-executor batch: run again with --batch-id {result.batch_id} to run only the "
            f"documents not ok (cc-executor batch {file} --batch-id {result.batch_id} ...)",
            file=sys.stderr,
        )
