"""``cc-executor worker`` (one machine of a fleet), ``attach`` (a fleet run, wherever it
is), ``fleet status``, and ``cancel``/``pause``/``unpause`` (a fleet run with ``--fleet``,
else a local run started by another process of this machine). See docs/fleet.md.

Where the fleet's URL comes from, the same for every command: ``--fleet URL``; a bare
``--fleet`` takes ``$CC_EXECUTOR_FLEET``; without ``--fleet``, only the commands that exist
for fleets (``worker``, ``attach``, ``fleet status``) take it from ``$CC_EXECUTOR_FLEET``,
so that ``cancel``/``pause``/``unpause`` (and ``run``) never act on a fleet because a
variable is set. Exit codes: 2 for the command (bad flags, a bad URL, a fleet that does not
answer), 1 for the run (unknown, ended, queued, refused), 0 when done."""

from __future__ import annotations

import os
import sys

from cc_executor._cli._args import size_value
from cc_executor._errors import CCExecutorError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from collections.abc import Awaitable, Callable
    from typing import Any, TypeVar

    from cc_executor._fleet._base import Fleet

    T = TypeVar("T")

#: The environment variable that gives a bare ``--fleet`` its URL, and the commands that
#: exist only for fleets theirs (a plain ``run`` or ``cancel`` never goes to a fleet).
FLEET_ENV = "CC_EXECUTOR_FLEET"
#: ``--fleet`` given without a URL: take it from ``$CC_EXECUTOR_FLEET``.
FROM_ENV = ""
#: Bad flags, a bad fleet URL or a refused configuration.
EXIT_USAGE = 2


def add_parser(sub: Any) -> None:
    """Register ``worker``, ``cancel``, ``pause``, ``unpause``, ``attach`` and ``fleet`` on
    the subcommand set ``sub``."""
    w = sub.add_parser(
        "worker",
        help="run agent runs of a fleet on this machine (docs/fleet.md)",
        description="Take runs from the fleet's queue and run them here with the local engine "
        "(run folders and history on this machine), refusing what --allow-dir and --agent do "
        "not allow. SIGTERM or Ctrl-C: stop taking runs, give those in progress --grace "
        "seconds, then stop them as interrupted and put them back on the queue.",
    )
    w.add_argument(
        "--fleet",
        nargs="?",
        const=FROM_ENV,
        metavar="URL",
        help=f"redis://HOST:PORT, rediss://HOST:PORT (TLS) or unix:///path/to/redis.sock "
        f"(default: ${FLEET_ENV}); the password comes from CC_EXECUTOR_FLEET_PASSWORD or the "
        "file named by CC_EXECUTOR_FLEET_PASSWORD_FILE, never from the command line",
    )
    w.add_argument("--slots", type=int, default=1, metavar="N", help="runs at once (default 1)")
    w.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="a run's cwd must be inside one of these (repeatable; default: the current "
        "directory); a run without cwd runs in the first",
    )
    w.add_argument(
        "--agent",
        action="append",
        default=[],
        metavar="NAME",
        help="run only these agents (repeatable; default: every agent)",
    )
    w.add_argument(
        "--allow-env",
        action="append",
        default=[],
        metavar="NAME",
        help="also accept this environment variable in a run's env (repeatable; as serve's)",
    )
    w.add_argument(
        "--allow-exec",
        action="append",
        default=[],
        metavar="NAME",
        help="a program run messages may run as a plain command (a name on PATH or a path, "
        "optionally followed by the arguments a command must start with; repeatable; as "
        "serve's; default: none)",
    )
    w.add_argument(
        "--allow-repo",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a git URL a run may name with --repo, cloned into its run folder: a pattern "
        "where * matches anything, / included (repeatable; default: none, every repo is "
        "refused)",
    )
    w.add_argument(
        "--queue",
        action="append",
        default=[],
        metavar="NAME",
        help="take runs from this queue (repeatable; default: the queue named default)",
    )
    w.add_argument(
        "--grace",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds runs get to finish after SIGTERM (default 30)",
    )
    w.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds without a heartbeat before this worker counts as lost, for the "
        "broker and for the runs' leases (default 10)",
    )
    w.add_argument(
        "--max-concurrent-per-credential",
        type=int,
        default=0,
        metavar="N",
        help="runs in flight per API key or login across the whole fleet (stored in the "
        "fleet, so it holds for every worker; default: the fleet's setting, or no cap)",
    )
    w.add_argument(
        "--limit-backoff",
        type=float,
        default=1.0,
        metavar="S",
        help="after a 429 or overload, new starts with that credential pause fleet-wide for "
        "S seconds, doubled for each further one, at most 60 (default 1)",
    )
    w.add_argument(
        "--stream-max-bytes",
        type=size_value,
        default=None,
        metavar="SIZE",
        help="the most bytes of events each run's stream keeps in the fleet (512K, 64M; "
        "default 64M); past it the stream says stream_limit once and drops further events, "
        "the result still comes (the whole log stays in the run folder here)",
    )
    _budget_options(w)
    w.set_defaults(handler=worker_main)

    controls = (
        ("cancel", "cancel", "stop it: a queued fleet run is removed before it starts; a "
         "running run's whole process tree is stopped, and its submitter gets the partial "
         "result"),
        ("pause", "pause", "SIGSTOP its whole process tree (its timeouts stop counting)"),
        ("unpause", "resume", "SIGCONT its process tree"),
    )  # fmt: skip
    for name, command, what in controls:
        p = sub.add_parser(
            name,
            help=f"{name} a run started by another process here, or with --fleet a fleet "
            "run wherever it is (docs/fleet.md)",
            description=f"{name.capitalize()} run RUN_ID: {what}. Without --fleet, a run of "
            "this machine's history started by another process of yours (cc-executor run, "
            "exec, Python, the service); with --fleet, a run of the fleet, on whichever "
            "worker it is. A run that has ended, is queued (pause) or is unknown is said so "
            "(exit 1).",
        )
        p.add_argument("run_id", metavar="RUN_ID", help="the run's id (its handle's run_id)")
        p.add_argument(
            "--fleet",
            nargs="?",
            const=FROM_ENV,
            metavar="URL",
            help=f"the run is a fleet run: the fleet's URL, as worker's (a bare --fleet: "
            f"${FLEET_ENV}); without it, the run is local",
        )
        p.set_defaults(handler=control_main, control=name, command=command)

    a = sub.add_parser(
        "attach",
        help="follow a run live: a local one started by another process, or a fleet run "
        "from any machine (docs/fleet.md)",
        description="Print the events of run RUN_ID as they come (those already sent "
        "first), then its answer, and exit as `run` would for its status. Without --fleet, a "
        "run of this machine's history (read from its run folder's event log), else the "
        "fleet's of $CC_EXECUTOR_FLEET; with --fleet, the fleet's. Every event of a run has a "
        "sequence number SEQ (1, 2, 3, ...; shown as `seq` by --json).",
    )
    a.add_argument("run_id", metavar="RUN_ID", help="the run's id (its handle's run_id)")
    a.add_argument(
        "--after",
        type=int,
        default=0,
        metavar="SEQ",
        help="only the events after SEQ (exclusive, as the service's Last-Event-ID; default 0: "
        "from the start)",
    )
    a.add_argument(
        "--fleet",
        nargs="?",
        const=FROM_ENV,
        metavar="URL",
        help=f"the run is a fleet run: the fleet's URL, as worker's (default: a run of this "
        f"machine's history, else ${FLEET_ENV}'s)",
    )
    a.add_argument(
        "--json",
        action="store_true",
        help="one JSON event per line (with `seq` and `run_id`), then the result object",
    )
    a.set_defaults(handler=attach_main)

    f = sub.add_parser(
        "fleet",
        help="what the fleet has: its workers and its queued and running runs (docs/fleet.md)",
        description="Fleet-wide views.",
    )
    fleet_sub = f.add_subparsers(dest="fleet_command", metavar="COMMAND", required=True)
    st = fleet_sub.add_parser(
        "status",
        help="the live workers (host, pid, slots, busy, agents, version, last heartbeat) and "
        "the queued and running runs of each queue",
        description="The workers whose heartbeat is live, and each queue's queued and running "
        "runs (a queued run cancelled before it started counts until a worker drops it).",
    )
    st.add_argument(
        "--fleet",
        nargs="?",
        const=FROM_ENV,
        metavar="URL",
        help=f"the fleet's URL, as worker's (default: ${FLEET_ENV})",
    )
    st.add_argument("--json", action="store_true", help="one JSON object on stdout")
    st.set_defaults(handler=status_main)


class _Exit(CCExecutorError):
    """A handler's early end: its line is printed, ``code`` is its exit code."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


def _said_exit(handler: Callable[[argparse.Namespace], int]) -> Callable[..., int]:
    """``handler`` with an :class:`_Exit` turned into its exit code."""

    def wrapped(args: argparse.Namespace) -> int:
        try:
            return handler(args)
        except _Exit as stop:
            return stop.code

    wrapped.__doc__ = handler.__doc__
    return wrapped


def fleet_url(args: argparse.Namespace, me: str, *, fleet_only: bool) -> tuple[str, bool] | None:
    """The fleet a command acts on, as (URL, whether it came from the command line), or
    None for a local command (``fleet_only`` False and no ``--fleet``). See the module's
    docstring; a missing URL is said in one line (exit 2)."""
    given = getattr(args, "fleet", None)
    if given:
        return given, True
    if given is None and not fleet_only:
        return None
    url = os.environ.get(FLEET_ENV)
    if not url:
        print(f"{me}: give --fleet URL or set {FLEET_ENV}", file=sys.stderr)
        raise _Exit(EXIT_USAGE)
    return url, False


def on_fleet(me: str, where: tuple[str, bool], work: Callable[[Fleet], Awaitable[T]]) -> T:
    """Open the fleet, run ``work`` on it, close it. A :class:`RunRefused` is about the
    run (one line, exit 1); any other :class:`CCExecutorError` (a bad URL, a fleet that does
    not answer, no fleet extra) about the command (one line, exit 2)."""
    import asyncio

    from cc_executor._errors import CCExecutorError, RunRefused
    from cc_executor._fleet import open_fleet
    from cc_executor._text import inert

    url, from_argv = where

    async def go() -> T:
        fleet = open_fleet(url, from_argv=from_argv)
        try:
            return await work(fleet)
        finally:
            await fleet.aclose()

    try:
        return asyncio.run(go())
    except CCExecutorError as exc:
        print(f"{me}: {inert(str(exc))}", file=sys.stderr)
        raise _Exit(1 if isinstance(exc, RunRefused) else EXIT_USAGE) from None


def _budget_options(w: argparse.ArgumentParser) -> None:
    """The worker's fleet budget (docs/fleet.md, "Budgets")."""
    from cc_executor._cli._tasks import _reservation, budget_policy_options

    w.add_argument(
        "--budget-usd",
        type=float,
        metavar="USD",
        help="the fleet's budget, shared by every worker given it: a run starts only if what "
        "is left covers its reservation, else it ends budget_exceeded without starting",
    )
    w.add_argument(
        "--budget-name",
        default="default",
        metavar="NAME",
        help="with --budget-usd: which of the fleet's budgets (default: default)",
    )
    w.add_argument(
        "--reserve-usd",
        type=_reservation,
        action="append",
        default=[],
        metavar="[MODEL=]USD",
        help="with --budget-usd: what a run that sets no max_budget_usd reserves (and its "
        "cap), for every model or for MODEL (repeatable; default: all that is left, alone)",
    )
    budget_policy_options(
        w,
        default="once a run is refused: drain (start no further run, let those in progress "
        "end) or cancel (also cancel the runs in progress); default: neither",
    )


def _budget_settings(args: argparse.Namespace) -> Any:
    """The worker's :class:`BudgetSettings`, None without --budget-usd; ValueError for
    bad values."""
    from cc_executor._run._budget import (
        DEFAULT_THRESHOLDS,
        BudgetSettings,
        check_thresholds,
        check_webhook,
    )

    if args.budget_usd is None:
        given = args.reserve_usd or args.budget_threshold or args.budget_webhook
        if given or args.on_budget_exhausted:
            raise ValueError("--reserve-usd, --budget-threshold, --budget-webhook and "
                             "--on-budget-exhausted need --budget-usd")  # fmt: skip
        return None
    if not args.budget_usd > 0 or args.budget_usd == float("inf"):
        raise ValueError(f"--budget-usd must be a number > 0, got {args.budget_usd:g}")
    thresholds = check_thresholds(args.budget_threshold or None)
    from cc_executor._fleet._budget import check_budget_name

    webhook = args.budget_webhook
    if webhook is not None:
        webhook = check_webhook(webhook, args.budget_webhook_allow_host)
    return BudgetSettings(
        total_usd=args.budget_usd,
        name=check_budget_name(args.budget_name),
        # --reserve-usd over the config file's [reserve_usd] (docs/config.md).
        reserve=_config_reserve(args, dict(args.reserve_usd)),
        thresholds=thresholds or DEFAULT_THRESHOLDS,
        webhook=webhook,
        on_exhausted=args.on_budget_exhausted,
    )


def _config_reserve(args: argparse.Namespace, given: dict[str, float]) -> dict[str, float]:
    config = getattr(args, "config", None)
    return config.reservations(given) if config is not None else given


@_said_exit
def worker_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor worker``."""
    import logging

    from cc_executor._errors import CCExecutorError

    me = "cc-executor worker"
    where = fleet_url(args, me, fleet_only=True)
    assert where is not None
    if args.heartbeat_timeout <= 0 or args.grace < 0:
        print(f"{me}: --heartbeat-timeout must be > 0, --grace >= 0", file=sys.stderr)
        return EXIT_USAGE
    if args.max_concurrent_per_credential < 0 or not 0 < args.limit_backoff <= 60:
        print(
            f"{me}: --max-concurrent-per-credential must be >= 0, --limit-backoff in (0, 60]",
            file=sys.stderr,
        )
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="cc-executor worker: %(message)s")
    from cc_executor._fleet._base import DEFAULT_QUEUE
    from cc_executor._service._worker import FleetWorker, WorkerConfig

    try:
        budget = _budget_settings(args)
        worker = FleetWorker(
            WorkerConfig(
                fleet=where[0],
                slots=args.slots,
                allow_dirs=args.allow_dir,
                agents=args.agent,
                allow_env=args.allow_env,
                grace_s=args.grace,
                heartbeat_timeout_s=args.heartbeat_timeout,
                queues=args.queue or [DEFAULT_QUEUE],
                allow_exec=args.allow_exec,
                allow_repos=args.allow_repo,
                max_concurrent_per_credential=args.max_concurrent_per_credential,
                limit_backoff_s=args.limit_backoff,
                budget=budget,
                stream_max_bytes=args.stream_max_bytes,
            )
        )
    except (CCExecutorError, ValueError) as exc:
        print(f"{me}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return worker.serve()
    except CCExecutorError as exc:
        print(f"{me}: {exc}", file=sys.stderr)
        return 1


#: What ``cancel``/``pause``/``unpause`` say for each outcome, fleet or local, and whether
#: it is a success (exit 0) or about the run (exit 1).
_CONTROL_SAID = {
    "cancelled": ("run {id} was queued: removed, it will not start", 0),
    "requested": ("run {id}: its worker was told to {verb} it", 0),
    "done": ("run {id}: {verb} done by the process running it", 0),
    "nothing": ("run {id}: nothing to {verb} (already so, or between attempts)", 1),
    "queued": ("run {id} is queued, not running yet: nothing to {verb}", 1),
    "over": ("run {id} has ended: nothing to {verb}", 1),
    "unknown": ("no run {id} {scope}", 1),
    "elsewhere": ("run {id} runs on another host: nothing to {verb} from here", 1),
    "gone": (
        "run {id}: no live process runs it any more (its supervisor died; the history marks "
        "it interrupted)",
        1,
    ),
    "unrecorded": ("run {id} has no run folder to reach: nothing to {verb}", 1),
}


@_said_exit
def control_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor cancel``, ``pause`` and ``unpause``: a fleet run with
    ``--fleet``, else a local run started by another process."""
    me = f"cc-executor {args.control}"
    where = fleet_url(args, me, fleet_only=False)
    if where is None:
        from cc_executor._errors import CCExecutorError
        from cc_executor._run._control import control_local_run

        try:
            done = control_local_run(args.run_id, args.command)
        except CCExecutorError as exc:
            print(f"{me}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        scope = "in this machine's history (a fleet run? give --fleet)"
    else:
        from cc_executor._run._fleet import cancel_fleet_run, control_fleet_run

        async def act(fleet: Fleet) -> str:
            if args.command == "cancel":
                return await cancel_fleet_run(fleet, args.run_id)
            return await control_fleet_run(fleet, args.run_id, args.command)

        done = on_fleet(me, where, act)
        scope = "on the fleet (never submitted, or expired)"
    text, code = _CONTROL_SAID[done]
    print(f"{me}: " + text.format(id=args.run_id, verb=args.control, scope=scope), file=sys.stderr)
    return code


@_said_exit
def attach_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor attach``."""
    from cc_executor._cli._live import LiveView
    from cc_executor._cli._run import answer_text, exit_code_for, summary_line
    from cc_executor._cli._write import write_json_line, write_text
    from cc_executor._run._fleet import attach_fleet_run, unknown_run
    from cc_executor._text import inert

    me = "cc-executor attach"
    if args.after < 0:
        print(f"{me}: --after must be >= 0, got {args.after}", file=sys.stderr)
        return EXIT_USAGE
    local = None
    if getattr(args, "fleet", None) is None:
        # Without --fleet, a run of this machine's history first (started by another
        # process here); a run it does not hold is the fleet's of $CC_EXECUTOR_FLEET.
        local = _local_record(me, args.run_id)
        if local is None and not os.environ.get(FLEET_ENV):
            print(
                f"{me}: no run {inert(args.run_id)} in this machine's history (a fleet run? "
                f"give --fleet URL or set {FLEET_ENV})",
                file=sys.stderr,
            )
            return EXIT_USAGE
    where = None if local is not None else fleet_url(args, me, fleet_only=True)
    view = None if args.json else LiveView()
    terminal = sys.stdout.isatty()

    def on_event(seq: int, event: Any) -> None:
        if view is not None:
            view.handle(event)
            return
        line = {"seq": seq, "run_id": args.run_id, **event.to_dict()}
        write_json_line(sys.stdout.buffer, line, terminal=terminal)
        sys.stdout.flush()

    async def follow(fleet: Fleet) -> Any:
        if not await fleet.known(args.run_id):
            return unknown_run(fleet, args.run_id)
        return await attach_fleet_run(fleet, args.run_id, after=args.after, on_event=on_event)

    try:
        if where is not None:
            result = on_fleet(me, where, follow)
        else:
            import asyncio

            from cc_executor._run._follow import follow_local_run

            assert local is not None
            try:
                result = asyncio.run(follow_local_run(local, after=args.after, on_event=on_event))
            except (CCExecutorError, ValueError) as exc:
                print(f"{me}: {inert(str(exc))}", file=sys.stderr)
                return EXIT_USAGE
    except KeyboardInterrupt:
        return 130  # detaching stops only the follower, never the run
    finally:
        if view is not None:
            view.close()
    if isinstance(result, str):
        print(f"{me}: {inert(result)}", file=sys.stderr)
        return 1
    if args.json:
        write_json_line(sys.stdout.buffer, result.to_dict(), terminal=terminal)
        sys.stdout.flush()
        return exit_code_for(result)
    answer = answer_text(result)
    if answer:
        write_text(sys.stdout.buffer, answer if not terminal else inert(answer))
        if not answer.endswith("\n"):
            sys.stdout.buffer.write(b"\n")
        sys.stdout.flush()
    print(summary_line(result), file=sys.stderr)
    if result.error:
        print(f"{me}: {inert(result.error)}", file=sys.stderr)
    return exit_code_for(result)


def _local_record(me: str, run_id: str) -> Any:
    """Run ``run_id``'s row in this machine's history, or None; a history that cannot be
    read (or an ambiguous id) is one line, exit 2."""
    from cc_executor._run._follow import find_local_run
    from cc_executor._text import inert

    try:
        return find_local_run(run_id)
    except CCExecutorError as exc:
        print(f"{me}: {inert(str(exc))}", file=sys.stderr)
        raise _Exit(EXIT_USAGE) from None


@_said_exit
def status_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor fleet status``."""
    import time

    from cc_executor._fleet._url import parse_fleet_url

    me = "cc-executor fleet status"
    where = fleet_url(args, me, fleet_only=True)
    assert where is not None

    async def look(
        fleet: Fleet,
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]], dict[str, Any], Any]:
        from cc_executor._fleet._budget import fleet_budgets

        return (
            await fleet.workers(),
            await fleet.counts(),
            await fleet.limits().status(),
            await fleet_budgets(fleet.url),
        )

    workers, queues, limits, found = on_fleet(me, where, look)
    budgets = {
        name: {"total_usd": b.total, "spent_usd": b.spent, "held_usd": b.held}
        for name, b in found.items()
    }
    url = parse_fleet_url(where[0], from_argv=where[1]).url  # shown without credentials
    workers.sort(key=lambda w: (str(w.get("host")), str(w.get("worker_id"))))
    if args.json:
        from cc_executor._cli._write import write_json_line

        write_json_line(
            sys.stdout.buffer,
            {
                "fleet": url,
                "workers": workers,
                "queues": queues,
                "limits": limits,
                "budgets": budgets,
            },
            terminal=sys.stdout.isatty(),
        )
        return 0
    from cc_executor._text import inert

    now = time.time()
    print(f"fleet {inert(url)}: {len(workers)} worker(s)")
    for w in workers:
        beat = w.get("heartbeat_at")
        age = f"{max(0.0, now - beat):.1f} s ago" if isinstance(beat, (int, float)) else "?"
        agents = ",".join(str(a) for a in w.get("agents") or [])
        taken = ",".join(str(q) for q in w.get("queues") or [])
        print(
            inert(
                f"  {w.get('worker_id')}  {w.get('host')} pid {w.get('pid')}  "
                f"{w.get('busy')}/{w.get('slots')} busy  agents {agents}  "
                f"queues {taken}  v{w.get('version')}  heartbeat {age}"
            )
        )
    for name, count in queues.items():
        print(f"queue {inert(name)}: {count['queued']} queued, {count['running']} running")
    cap = limits["max_concurrent_per_credential"]
    print(
        f"limits: at most {cap} run(s) in flight per credential"
        if cap
        else "limits: no cap on runs in flight per credential"
    )
    for c in limits["credentials"]:
        paused = f"paused {c['paused_s']:.1f} s more ({c['reason']})" if c["paused_s"] else "open"
        print(inert(f"  credential {c['credential'][:12]}: {paused}, {c['in_flight']} in flight"))
    for name, b in budgets.items():
        print(
            f"budget {inert(name)}: ${b['spent_usd']:.4f} of ${b['total_usd']:g} spent, "
            f"${b['held_usd']:.4f} held by runs in progress"
        )
    return 0
