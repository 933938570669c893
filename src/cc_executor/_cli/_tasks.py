"""``cc-executor tasks``: run, validate, resume and show task lists.

Progress goes to stderr: on a terminal a live table (a row per task: state, elapsed time,
turns, cost, last activity; an overall bar), elsewhere or without rich (the ``cli`` extra)
one plain line per notable event.
Everything the model wrote is shown with terminal control characters neutralised.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

from cc_executor._cli._args import add_run_defaults, run_defaults
from cc_executor._cli._codes import EXIT_USAGE, signal_exit
from cc_executor._extras import missing_module
from cc_executor._text import inert

if TYPE_CHECKING:
    from cc_executor._agents._types import AgentEvent
    from cc_executor.tasks import TaskListHandle, TaskListResult, TaskResult


def add_parser(sub: Any) -> None:
    """Register ``tasks`` (with run, validate, resume, show) on the subcommand set ``sub``."""
    p = sub.add_parser(
        "tasks",
        help="run task lists: many steps, each a fresh Claude Code run, durable and resumable",
        description="Task lists (Markdown '## Task N: title' sections, YAML or JSON): each task "
        "is a fresh Claude Code run; later prompts can use earlier results "
        "({{ tasks.<id>.result }}); each task waits for the previous one unless it declares "
        "depends_on or parallel: true (or the list says parallel: true). Exit code 0 "
        "only if every task ended ok; 1 otherwise; 2 invalid list or unknown id; 130 "
        "interrupted, 143 by SIGTERM, 129 by SIGHUP (resume with 'tasks resume ID').",
    )
    actions = p.add_subparsers(dest="tasks_action", metavar="ACTION")
    run = actions.add_parser("run", help="run a task list file")
    run.add_argument("file", metavar="FILE", help="a .md, .yaml, .yml or .json task list")
    _run_options(run)
    run.set_defaults(handler=_run)
    resume = actions.add_parser(
        "resume",
        help="continue a list that did not finish: completed tasks are not run again",
    )
    resume.add_argument("list_id", metavar="ID", help="the list run's id (or a unique prefix)")
    _run_options(resume)
    resume.set_defaults(handler=_resume)
    validate = actions.add_parser(
        "validate", help="check a task list file and show its schedule (waves); run nothing"
    )
    validate.add_argument("file", metavar="FILE", help="a .md, .yaml, .yml or .json task list")
    validate.add_argument(
        "--json", action="store_true", help="print the normalized spec and its waves"
    )
    validate.set_defaults(handler=_validate)
    show = actions.add_parser("show", help="the state or outcome of a list run")
    show.add_argument("list_id", metavar="ID", help="the list run's id (or a unique prefix)")
    show.add_argument("--json", action="store_true", help="print exactly one JSON object")
    show.set_defaults(handler=_show)

    def usage(_args: argparse.Namespace) -> int:
        p.print_help()
        return EXIT_USAGE

    p.set_defaults(handler=usage)


def _run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--max-parallel", type=int, metavar="N", help="tasks running at once")
    p.add_argument(
        "--budget-usd",
        type=float,
        metavar="USD",
        help="the list's budget: a task starts only if what is left covers its reservation",
    )
    p.add_argument(
        "--reserve-usd",
        type=_reservation,
        action="append",
        default=[],
        metavar="[MODEL=]USD",
        help="what a task that sets no max_budget_usd reserves of the budget (and its cap), "
        "for every model or for MODEL (repeatable; default: the whole remainder, so it runs "
        "alone); e.g. --reserve-usd 0.5 --reserve-usd opus=2",
    )
    budget_policy_options(
        p,
        default="once a task's reservation cannot be covered: drain (the default: start no "
        "further task, let the running ones finish) or cancel (also cancel the running "
        "tasks: they end budget_exceeded)",
    )
    add_run_defaults(p, _RUN_DEFAULTS)
    p.add_argument(
        "--fleet",
        nargs="?",
        const="",
        metavar="URL",
        help="run each task on the fleet at URL (a bare --fleet: $CC_EXECUTOR_FLEET), "
        "scheduled from here; resume goes on on the list's fleet (docs/fleet.md)",
    )
    p.add_argument("--queue", metavar="NAME", help="with --fleet: the fleet's queue")
    p.add_argument("--json", action="store_true", help="print exactly one JSON result object")
    p.add_argument("--quiet", action="store_true", help="no progress view")


def budget_policy_options(p: argparse.ArgumentParser, *, default: str) -> None:
    """A budget's soft thresholds, webhook and ``--on-budget-exhausted``, declared once for
    a fleet worker and a task list (docs/fleet.md, "Budgets"; docs/tasks.md)."""
    p.add_argument(
        "--budget-threshold",
        type=float,
        action="append",
        default=[],
        metavar="PERCENT",
        help="with --budget-usd: announce (a budget event, a line on stderr, --budget-webhook) "
        "when spending passes PERCENT of the budget (repeatable; default 80)",
    )
    p.add_argument(
        "--budget-webhook",
        metavar="URL",
        help="with --budget-usd: POST a JSON note there when a threshold is passed or the "
        "budget is exhausted (loopback, or a host of --budget-webhook-allow-host)",
    )
    p.add_argument(
        "--budget-webhook-allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="a host --budget-webhook may name besides loopback (repeatable)",
    )
    p.add_argument("--on-budget-exhausted", choices=("cancel", "drain"), help=default)


def _budget_policy(args: argparse.Namespace) -> dict[str, Any]:
    """The budget policy flags as :func:`~cc_executor.tasks.run_tasks` takes them (a bad
    threshold is refused here, named as its flag)."""
    from cc_executor._run._budget import check_thresholds

    check_thresholds(args.budget_threshold or None)
    return {
        "budget_threshold": args.budget_threshold or None,
        "budget_webhook": args.budget_webhook,
        "budget_webhook_allow_host": args.budget_webhook_allow_host,
        "on_budget_exhausted": args.on_budget_exhausted,
    }


#: Run options ``tasks run`` takes as flags: defaults for tasks that do not set them.
_RUN_DEFAULTS = ("agent", "model", "agent_path", "heartbeat_s")


def _run_defaults(args: argparse.Namespace) -> dict[str, Any]:
    return run_defaults(args, _RUN_DEFAULTS)


def _reservation(text: str) -> tuple[str, float]:
    """``--reserve-usd [MODEL=]USD`` as (model, usd); ``"*"``: every model."""
    model, equals, amount = text.rpartition("=")
    try:
        usd = float(amount)
    except ValueError:
        usd = float("nan")
    if not usd > 0 or usd == float("inf") or (equals and not model.strip()):
        raise argparse.ArgumentTypeError(f"expected USD or MODEL=USD with USD > 0, got {text!r}")
    return (model.strip() or "*", usd)


def _reserve(args: argparse.Namespace) -> dict[str, float] | None:
    return dict(args.reserve_usd) or None


def _err(text: str) -> None:
    print(f"cc-executor tasks: {text}", file=sys.stderr)


def _refused(args: argparse.Namespace, message: str) -> int:
    """Exit code 2 for a list that never started (or was not found); under ``--json`` its
    one JSON object too (the ``usage_error`` one), as ``--json`` promises whatever the
    outcome."""
    if getattr(args, "json", False):
        from cc_executor._cli._parser import write_usage_error_json

        write_usage_error_json(message)
    return EXIT_USAGE


def _fleet_of(args: argparse.Namespace) -> dict[str, Any]:
    """``fleet`` and ``queue`` for the list from ``--fleet``/``--queue`` (the same rules as
    every fleet command: a bare ``--fleet`` reads ``$CC_EXECUTOR_FLEET``, and a URL on the
    command line may not hold a password). Raises ValueError for bad ones."""
    import os

    from cc_executor._errors import FleetError
    from cc_executor._fleet._url import parse_fleet_url

    given = {} if args.queue is None else {"queue": args.queue}
    if args.fleet is None:
        return given
    url = args.fleet or os.environ.get("CC_EXECUTOR_FLEET")
    if not url:
        raise ValueError("give --fleet URL or set CC_EXECUTOR_FLEET")
    try:
        parse_fleet_url(url, from_argv=bool(args.fleet))
    except FleetError as exc:
        raise ValueError(str(exc)) from None
    return {**given, "fleet": url}


def _run(args: argparse.Namespace) -> int:
    from cc_executor._run._config import UserConfig
    from cc_executor.tasks import load_task_list, start_tasks

    config = getattr(args, "config", None) or UserConfig()

    def start(on_event: Any, deciders: dict[str, Any]) -> TaskListHandle:
        spec = load_task_list(args.file)
        # The command line over the list's own reservations, the list's over the config
        # file's (docs/config.md).
        reserve = {**config.reserve_usd, **(spec.reserve_usd or {}), **(_reserve(args) or {})}
        return start_tasks(
            spec,
            max_parallel=args.max_parallel,
            budget_usd=args.budget_usd,
            reserve_usd=reserve or None,
            **_budget_policy(args),
            on_event=on_event,
            **deciders,
            **_fleet_of(args),
            **config.run_options(**_run_defaults(args)),
        )

    return _execute(start, args)


def _resume(args: argparse.Namespace) -> int:
    from cc_executor.tasks import start_resume

    def start(on_event: Any, deciders: dict[str, Any]) -> TaskListHandle:
        return start_resume(
            args.list_id,
            max_parallel=args.max_parallel,
            budget_usd=args.budget_usd,
            reserve_usd=_reserve(args),
            **_budget_policy(args),
            on_event=on_event,
            **deciders,
            **_fleet_of(args),
            **_run_defaults(args),
        )

    return _execute(start, args)


def _deciders(view: TaskListView, args: argparse.Namespace) -> dict[str, Any]:
    """The terminal as the decider of the tasks' ``ask`` rules, when stdin is one (a
    fleet's workers send their asks back here too)."""
    from cc_executor._cli._permission_prompt import console_decider

    decide = console_decider(view)
    if decide is None:
        return {}
    return {
        "on_permission": lambda task_id, request: decide(request, task_id),
        "_decider_name": "console",
    }


def _execute(
    start: Callable[[Any, dict[str, Any]], TaskListHandle], args: argparse.Namespace
) -> int:
    import asyncio
    import signal

    from cc_executor._errors import FleetError
    from cc_executor.tasks import TaskListBusy, TaskListError, TaskListNotFound

    view = TaskListView(quiet=args.quiet)

    async def go() -> TaskListResult:
        handle = start(view.handle, _deciders(view, args))
        view.attach(handle)
        loop = asyncio.get_running_loop()

        # A signal cancels the list the orderly way: running tasks are stopped (their
        # trees killed), the state is saved, and the list stays resumable.
        def stop(signum: int) -> None:
            received.append(signum)  # its number makes the exit code
            handle.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            loop.add_signal_handler(sig, stop, sig)
        return await handle.wait()

    received: list[int] = []
    try:
        result = asyncio.run(go())
    except TaskListError as exc:
        view.close()
        print(str(exc), file=sys.stderr)
        return _refused(args, str(exc))
    except (TaskListNotFound, TaskListBusy, FleetError, TypeError, ValueError) as exc:
        view.close()
        _err(str(exc))
        return _refused(args, str(exc))
    view.close()
    # A broken history is reported by every task's run and by the list's own record, in
    # the same words: the list keeps one copy of each warning.
    result.warnings[:] = dict.fromkeys(result.warnings)
    if args.json:
        _print_json(result.to_dict())
    else:
        # The live table already shows every task on this terminal: only the totals then.
        _print_summary(result, sys.stdout, rows=not (view.live and sys.stdout.isatty()))
    for warning in result.warnings:
        if warning not in view.shown:
            _err(f"warning: {inert(warning)}")
    if not result.ok:
        _err(f"resume with: cc-executor tasks resume {result.list_id}")
    sys.stdout.flush()
    return exit_code_for(result, received)


def exit_code_for(result: TaskListResult, signals: list[int] | None = None) -> int:
    """0 when every task ended ok, 130 when the list was cancelled (128 + N when by the
    signal N among ``signals``, those received), else 1 (the status vocabulary's exit
    codes)."""
    if signals and result.status == "cancelled":
        return signal_exit(signals)
    return result.status.exit_code()


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _validate(args: argparse.Namespace) -> int:

    from cc_executor.tasks import TaskListError, load_task_list
    from cc_executor.tasks._task_options import task_options

    try:
        spec = load_task_list(args.file)
        task_options(spec, {})
    except TaskListError as exc:
        print(str(exc), file=sys.stderr)
        return EXIT_USAGE
    waves = spec.waves()
    if args.json:
        _print_json({**spec.to_dict(), "waves": waves})
        return 0
    shape = "one at a time" if spec.one_at_a_time else _count(len(waves), "wave")
    extra = []
    if spec.max_parallel is not None:
        extra.append(f"max_parallel {spec.max_parallel}")
    if spec.budget_usd is not None:
        extra.append(f"budget ${spec.budget_usd:g}")
    print(
        f"{args.file}: valid · {_count(len(spec.tasks), 'task')} · {shape}"
        + "".join(f" · {e}" for e in extra)
    )
    by_id = spec.by_id
    label = len(f"wave {len(waves)}")
    for number, wave in enumerate(waves, 1):
        for index, tid in enumerate(wave):
            task = by_id[tid]
            after = f"  (after {', '.join(task.depends_on)})" if task.depends_on else ""
            title = f" · {inert(task.title)}" if task.title else ""
            head = f"wave {number}" if index == 0 else ""
            print(f"  {head:<{label}}  {tid}{title}{after}")
    return 0


def _show(args: argparse.Namespace) -> int:

    from cc_executor.tasks import TaskListNotFound, get_task_list

    try:
        result = get_task_list(args.list_id)
    except (TaskListNotFound, ValueError, OSError) as exc:
        _err(str(exc))
        return _refused(args, str(exc))
    if args.json:
        _print_json(result.to_dict())
    else:
        print(f"list {result.list_id} · {inert(result.name or result.source or '')}")
        _print_summary(result, sys.stdout)
        if result.run_dir:
            print(f"folder {result.run_dir}")
    return exit_code_for(result)


def _task_line(task: TaskResult, width: int) -> str:
    parts = [f"{task.status.value:<11}", f"{task.id:<{width}}"]
    if task.cost_usd is not None:
        parts.append(f"${task.cost_usd:.4f}")
    if task.duration_s is not None:
        parts.append(f"{task.duration_s:.1f}s")
    if task.attempts > 1:
        parts.append(f"{task.attempts} attempts")
    if task.error and not task.ok:
        parts.append(inert(task.error.splitlines()[0][:200]))
    if task.skipped_reason:
        parts.append(inert(task.skipped_reason))
    return "  ".join(parts)


def _print_summary(result: TaskListResult, out: IO[str], *, rows: bool = True) -> None:
    width = min(32, max((len(t) for t in result.tasks), default=0))
    for task in result.tasks.values() if rows else ():
        out.write(_task_line(task, width).rstrip() + "\n")
    counts = ", ".join(f"{n} {name}" for name, n in result.counts().items())
    cost = f"${result.cost_usd:.4f}" if result.cost_usd is not None else "cost unknown"
    line = f"{result.status.value} · {counts} · {cost} · {result.duration_s:.1f}s"
    line += f" · list {result.list_id}"
    out.write(line + "\n")
    if result.stopped_reason and not result.ok:
        out.write(f"stopped: {inert(result.stopped_reason)}\n")
    if result.workspace_branch:
        # Only the JSON named it: the list's changes were on a branch nobody was told of.
        out.write(f"workspace branch: {inert(result.workspace_branch)} (every ok task's changes)\n")
    if result.budget_usd is not None:
        out.write(
            f"budget: ${result.budget_spent_usd or 0.0:.4f} of ${result.budget_usd:g} spent "
            "(the total can exceed the budget by what running tasks spent past their own "
            "caps: the CLI learns a cost only once it is billed)\n"
        )


class _Row:
    """What the view knows of one task's current attempt."""

    __slots__ = ("activity", "cost", "ended", "started", "turns")

    def __init__(self) -> None:
        self.turns: set[str] = set()
        self.activity = ""
        self.cost: float | None = None
        self.started: float | None = None
        self.ended: float | None = None


_STYLES = {
    "ok": "green",
    "failed": "red",
    "skipped": "yellow",
    "budget_exceeded": "yellow",
    "running": "cyan",
    "cancelled": "magenta",
    "interrupted": "magenta",
    "pending": "dim",
}


class TaskListView:
    """Progress of a task list on stderr: a live table on a terminal, plain lines elsewhere,
    nothing with ``quiet`` (but the header line naming the list, needed to resume it)."""

    def __init__(
        self, stream: IO[str] | None = None, *, tty: bool | None = None, quiet: bool = False
    ) -> None:
        self._out = stream or sys.stderr
        # Without rich (the cli extra) a terminal gets the plain progress lines too.
        self._tty = (self._out.isatty() if tty is None else tty) and missing_module("cli") is None
        self._quiet = quiet
        self._start = time.monotonic()
        self._rows: dict[str, _Row] = {}
        self._handle: TaskListHandle | None = None
        self._live: Any = None
        #: Warnings already printed (at the start): not printed again at the end.
        self.shown: list[str] = []

    def attach(self, handle: TaskListHandle) -> None:
        """Start showing ``handle``'s list (prints the header line)."""
        self._handle = handle
        self._rows = {task.id: _Row() for task in handle.spec.tasks}
        done = sum(1 for t in handle.tasks.values() if t.ok)
        self._out.write(
            f"cc-executor tasks: list {handle.list_id} · {_count(len(self._rows), 'task')}"
            + (f" ({done} already ok)" if done else "")
            + f" · folder {handle.run_dir}\n"
        )
        # Notes known at the start (the schedule, the budget) are shown before the run.
        self.shown = list(handle.warnings)
        for warning in self.shown:
            self._out.write(f"cc-executor tasks: note: {inert(warning)}\n")
        self._out.flush()
        if self._tty and not self._quiet:
            from rich.console import Console
            from rich.live import Live

            console = Console(file=self._out, highlight=False)
            self._live = Live(
                console=console, refresh_per_second=4, transient=False, get_renderable=self._render
            )
            self._live.start()

    @property
    def live(self) -> bool:
        """True when the live table is (or was) shown."""
        return self._tty and not self._quiet

    def _line(self, text: str) -> None:
        if not self._tty and not self._quiet:
            self._out.write(f"[{time.monotonic() - self._start:7.1f}s] {text}\n")
            self._out.flush()

    def handle(self, task_id: str, event: AgentEvent) -> None:
        """Update the view with one event of task ``task_id``."""
        from cc_executor._agents._types import (
            BudgetEvent,
            HeartbeatEvent,
            PermissionDecisionEvent,
            ResultEvent,
            RetryEvent,
            TextDeltaEvent,
            TextEvent,
            ToolResultEvent,
            ToolUseEvent,
        )
        from cc_executor._cli._live import _tool_summary
        from cc_executor.tasks import TaskStateEvent

        row = self._rows.setdefault(task_id, _Row())
        if isinstance(event, TaskStateEvent):
            self._state(task_id, row, event)
        elif isinstance(event, TextDeltaEvent):
            row.activity = "writing"
        elif isinstance(event, TextEvent):
            if event.message_id:
                row.turns.add(event.message_id)
            row.activity = "answered"
        elif isinstance(event, ToolUseEvent):
            if event.message_id:
                row.turns.add(event.message_id)
            row.activity = f"tool: {_tool_summary(event)}"
            self._line(f"{task_id}: {inert(row.activity)}")
        elif isinstance(event, ToolResultEvent):
            row.activity = "tool failed" if event.is_error else "tool done"
        elif isinstance(event, RetryEvent):
            row.activity = "retrying (API)"
        elif isinstance(event, ResultEvent):
            row.cost = event.cost_usd
            row.activity = "finished"
        elif isinstance(event, HeartbeatEvent):
            self._line(
                f"{task_id}: running · turns {event.turns} · tools {event.tool_calls} · "
                f"idle {event.idle_s:.0f}s · {inert(event.last_activity)}"
            )
        elif isinstance(event, PermissionDecisionEvent):
            row.activity = f"{event.decision}: {event.tool_name}"
            if event.decided_by == "no decider":
                self._warn_now()
        elif isinstance(event, BudgetEvent):
            self._budget(task_id, event)

    def _budget(self, task_id: str, event: Any) -> None:
        """One line per announcement of the list's budget, which threshold it was (the
        live table too: it is worth seeing when it happens)."""
        spent = f"${event.spent_usd:.4f} of ${event.total_usd:g} spent"
        if event.what == "threshold" and event.threshold is not None:
            text = f"budget: {event.threshold * 100:g}% passed ({spent}) as {task_id} ended"
        else:
            text = f"budget: exhausted ({spent}, ${event.held_usd:.4f} held): {task_id} not covered"
        if self._live is not None:
            self._live.console.print(f"cc-executor tasks: {text}", markup=False, highlight=False)
        else:
            self._line(text)

    def _warn_now(self) -> None:
        """Print the list's new warnings at once, even when quiet (an ask denied for want of
        a decider must not wait for the end to be seen); they are not repeated then."""
        if self._handle is None:
            return
        for warning in self._handle.warnings:
            if warning in self.shown:
                continue
            self.shown.append(warning)
            text = f"cc-executor tasks: warning: {inert(warning)}"
            if self._live is not None:
                self._live.console.print(text, markup=False, highlight=False)
            else:
                self._out.write(text + "\n")
                self._out.flush()

    def _state(self, task_id: str, row: _Row, event: Any) -> None:
        state: str = event.state
        if state == "running":
            row.turns.clear()
            row.cost = None
            row.started = time.monotonic()
            row.ended = None
            row.activity = "starting"
            which = inert(event.reason) if event.reason else f"attempt {event.attempt}"
            self._line(f"{task_id}: running ({which}, run {event.run_id})")
            return
        reason = f" · {inert(event.reason)}" if event.reason else ""
        if state == "retrying":
            row.activity = "retrying"
            self._line(f"{task_id}: retrying{reason}")
            return
        row.ended = time.monotonic()
        row.activity = state
        cost = f" · ${event.cost_usd:.4f}" if event.cost_usd else ""
        elapsed = f" · {row.ended - row.started:.1f}s" if row.started is not None else ""
        turns = f" · {len(row.turns)} turn(s)" if row.turns else ""
        self._line(f"{task_id}: {state}{cost}{turns}{elapsed}{reason if state != 'ok' else ''}")

    def _render(self) -> Any:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        handle = self._handle
        if handle is None:
            return Text("")
        states = handle.tasks
        now = time.monotonic()
        height = self._live.console.size.height if self._live is not None else 24
        limit = max(5, height - 5)
        ids = list(states)
        if len(ids) > limit:
            ids = self._visible(ids, limit)
        table = Table(box=None, pad_edge=False, header_style="bold")
        for name, justify in (
            ("task", "left"),
            ("state", "left"),
            ("elapsed", "right"),
            ("turns", "right"),
            ("cost", "right"),
            ("activity", "left"),
        ):
            table.add_column(name, justify=justify, no_wrap=True)  # type: ignore[arg-type]
        for tid in ids:
            state = states[tid]
            row = self._rows.get(tid) or _Row()
            status = state.status.value
            elapsed = ""
            if row.started is not None:
                elapsed = f"{(row.ended or now) - row.started:.1f}s"
            cost = state.cost_usd or row.cost
            detail = row.activity
            if state.skipped_reason:
                detail = state.skipped_reason
            elif state.error and status in ("failed", "cancelled", "budget_exceeded"):
                detail = state.error.splitlines()[0]
            elif status == "ok" and state.result.strip():
                detail = state.result.strip().splitlines()[0]
            table.add_row(
                Text(tid),
                Text(status, style=_STYLES.get(status, "")),
                elapsed,
                str(len(row.turns)) if row.turns else "",
                f"${cost:.4f}" if cost else "",
                Text(inert(detail[:80]), style="dim"),
            )
        hidden = len(states) - len(ids)
        total = len(states)
        ended = ("ok", "failed", "skipped", "budget_exceeded")
        finished = sum(1 for s in states.values() if s.status.value in ended)
        counts: dict[str, int] = {}
        for s in states.values():
            counts[s.status.value] = counts.get(s.status.value, 0) + 1
        spent = sum(s.cost_usd or 0.0 for s in states.values())
        summary = Text(
            f" {finished}/{total} · "
            + " · ".join(f"{n} {name}" for name, n in counts.items())
            + f" · ${spent:.4f} · {now - self._start:.0f}s"
        )
        parts: list[Any] = [table]
        if hidden:
            parts.append(Text(f"… {hidden} more task(s)", style="dim"))
        parts.append(Group(ProgressBar(total=total, completed=finished, width=40), summary))
        return Group(*parts)

    def _visible(self, ids: list[str], limit: int) -> list[str]:
        """The rows worth showing when not all fit: running, failed, the next pending and
        the latest finished ones, in list order."""
        assert self._handle is not None
        states = self._handle.tasks
        chosen: list[str] = []
        for wanted in ("running", "failed", "cancelled"):
            chosen += [t for t in ids if states[t].status.value == wanted]
        chosen += [t for t in ids if states[t].status.value == "pending"][:3]
        ended = [t for t in ids if states[t].status.value in ("ok", "skipped", "budget_exceeded")]
        ended.sort(key=lambda t: self._rows[t].ended or 0.0, reverse=True)
        chosen += ended
        keep = set(chosen[:limit])
        return [t for t in ids if t in keep]

    def suspend(self) -> None:
        """Stop redrawing (a question is asked on the terminal) until :meth:`unsuspend`."""
        if self._live is not None:
            self._live.stop()

    def unsuspend(self) -> None:
        if self._live is not None:
            self._live.start()

    def close(self) -> None:
        """Stop the live display (the last frame stays on the terminal)."""
        if self._live is not None:
            self._live.stop()
            self._live = None


def _print_json(data: Any) -> None:
    import json

    from cc_executor._text import inert_json

    text = json.dumps(data, ensure_ascii=False)
    sys.stdout.write((inert_json(text) if sys.stdout.isatty() else text) + "\n")
