"""``cc-executor worker`` (one machine of a fleet), ``cc-executor cancel`` and ``attach`` (a
fleet run, wherever it is) and ``cc-executor fleet status``. See docs/fleet.md."""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

#: The environment variable that gives ``worker`` its fleet URL (and only commands that
#: exist for fleets: a plain ``run`` never becomes remote because of it).
FLEET_ENV = "CC_EXECUTOR_FLEET"
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
    w.set_defaults(handler=worker_main)

    c = sub.add_parser(
        "cancel",
        help="cancel a fleet run wherever it is (docs/fleet.md)",
        description="Cancel run RUN_ID of the fleet: a queued run is removed before it starts; "
        "a running one is stopped by its worker (its whole process tree), and its submitter "
        "gets the partial result.",
    )
    c.add_argument("run_id", metavar="RUN_ID", help="the fleet run's id (its handle's run_id)")
    c.add_argument("--fleet", metavar="URL", required=True, help="the fleet's URL (as worker's)")
    c.set_defaults(handler=cancel_main)

    for name, verb in (("pause", "SIGSTOP"), ("unpause", "SIGCONT")):
        p = sub.add_parser(
            name,
            help=f"{name} a running fleet run on its worker (docs/fleet.md)",
            description=f"Ask the worker running RUN_ID to {verb} its whole process tree; its "
            f"submitter and attachers see a status event. A queued or ended run is said so "
            "(exit 1).",
        )
        p.add_argument("run_id", metavar="RUN_ID", help="the fleet run's id")
        p.add_argument(
            "--fleet", metavar="URL", help=f"the fleet's URL, as worker's (default: ${FLEET_ENV})"
        )
        p.set_defaults(handler=control_main, control=name)

    a = sub.add_parser(
        "attach",
        help="follow a fleet run live from any machine (docs/fleet.md)",
        description="Print the events of fleet run RUN_ID as they come (those already sent "
        "first), then its answer, and exit as `run --fleet` would for its status. Every entry "
        "of a run's stream has a sequence number SEQ (1, 2, 3, ...; shown as `seq` by --json).",
    )
    a.add_argument("run_id", metavar="RUN_ID", help="the fleet run's id (its handle's run_id)")
    a.add_argument(
        "--after",
        type=int,
        default=0,
        metavar="SEQ",
        help="only the events after SEQ (exclusive, as the service's Last-Event-ID; default 0: "
        "from the start)",
    )
    a.add_argument(
        "--fleet", metavar="URL", help=f"the fleet's URL, as worker's (default: ${FLEET_ENV})"
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
        metavar="URL",
        help=f"the fleet's URL, as worker's (default: ${FLEET_ENV})",
    )
    st.add_argument("--json", action="store_true", help="one JSON object on stdout")
    st.set_defaults(handler=status_main)


def worker_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor worker``."""
    import logging

    from cc_executor._errors import CCExecutorError

    url = args.fleet or os.environ.get(FLEET_ENV)
    if not url:
        print(f"cc-executor worker: give --fleet URL or set {FLEET_ENV}", file=sys.stderr)
        return EXIT_USAGE
    logging.basicConfig(level=logging.INFO, format="cc-executor worker: %(message)s")
    from cc_executor._service._worker import FleetWorker, WorkerConfig

    if args.heartbeat_timeout <= 0 or args.grace < 0:
        print("cc-executor worker: --heartbeat-timeout must be > 0, --grace >= 0", file=sys.stderr)
        return EXIT_USAGE
    try:
        worker = FleetWorker(
            WorkerConfig(
                fleet=url,
                slots=args.slots,
                allow_dirs=args.allow_dir,
                agents=args.agent,
                allow_env=args.allow_env,
                grace_s=args.grace,
                heartbeat_timeout_s=args.heartbeat_timeout,
            )
        )
    except (CCExecutorError, ValueError) as exc:
        print(f"cc-executor worker: {exc}", file=sys.stderr)
        return EXIT_USAGE
    try:
        return worker.serve()
    except CCExecutorError as exc:
        print(f"cc-executor worker: {exc}", file=sys.stderr)
        return 1


def cancel_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor cancel``."""
    import asyncio

    from cc_executor._errors import CCExecutorError
    from cc_executor._fleet import open_fleet
    from cc_executor._run._fleet import cancel_fleet_run

    async def go() -> str:
        fleet = open_fleet(args.fleet, from_argv=True)
        try:
            return await cancel_fleet_run(fleet, args.run_id)
        finally:
            await fleet.aclose()

    try:
        done = asyncio.run(go())
    except CCExecutorError as exc:
        print(f"cc-executor cancel: {exc}", file=sys.stderr)
        return EXIT_USAGE
    said = {
        "cancelled": f"run {args.run_id} was queued: removed, it will not start",
        "requested": f"run {args.run_id}: its worker was told to cancel it",
        "over": f"run {args.run_id} is not queued or running on the fleet (over, or unknown)",
    }[done]
    print(f"cc-executor cancel: {said}", file=sys.stderr)
    return 0 if done != "over" else 1


def control_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor pause`` and ``unpause``."""
    import asyncio

    from cc_executor._errors import CCExecutorError
    from cc_executor._fleet import open_fleet
    from cc_executor._fleet._base import PAUSE, RESUME
    from cc_executor._run._fleet import control_fleet_run

    me = f"cc-executor {args.control}"
    given = args.fleet or os.environ.get(FLEET_ENV)
    if not given:
        print(f"{me}: give --fleet URL or set {FLEET_ENV}", file=sys.stderr)
        return EXIT_USAGE
    command = PAUSE if args.control == "pause" else RESUME

    async def go() -> str:
        fleet = open_fleet(given, from_argv=bool(args.fleet))
        try:
            return await control_fleet_run(fleet, args.run_id, command)
        finally:
            await fleet.aclose()

    try:
        done = asyncio.run(go())
    except CCExecutorError as exc:
        print(f"{me}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    said = {
        "requested": f"run {args.run_id}: its worker was told to {args.control} it",
        "queued": f"run {args.run_id} is queued, not running yet: nothing to {args.control}",
        "over": f"run {args.run_id} has ended: nothing to {args.control}",
        "unknown": f"no run {args.run_id} on the fleet (never submitted, or expired)",
    }[done]
    print(f"{me}: {said}", file=sys.stderr)
    return 0 if done == "requested" else 1


def attach_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor attach``."""
    import asyncio

    from cc_executor._cli._live import LiveView
    from cc_executor._cli._run import answer_text, exit_code_for
    from cc_executor._cli._write import write_json_line, write_text
    from cc_executor._errors import CCExecutorError
    from cc_executor._fleet import open_fleet
    from cc_executor._run._fleet import attach_fleet_run
    from cc_executor._text import inert

    given = args.fleet or os.environ.get(FLEET_ENV)
    if not given:
        print(f"cc-executor attach: give --fleet URL or set {FLEET_ENV}", file=sys.stderr)
        return EXIT_USAGE
    if args.after < 0:
        print(f"cc-executor attach: --after must be >= 0, got {args.after}", file=sys.stderr)
        return EXIT_USAGE
    view = None if args.json else LiveView()
    terminal = sys.stdout.isatty()

    def on_event(seq: int, event: Any) -> None:
        if view is not None:
            view.handle(event)
            return
        line = {"seq": seq, "run_id": args.run_id, **event.to_dict()}
        write_json_line(sys.stdout.buffer, line, terminal=terminal)
        sys.stdout.flush()

    async def go() -> Any:
        fleet = open_fleet(given, from_argv=bool(args.fleet))
        try:
            return await attach_fleet_run(fleet, args.run_id, after=args.after, on_event=on_event)
        finally:
            await fleet.aclose()

    try:
        result = asyncio.run(go())
    except KeyboardInterrupt:
        return 130  # detaching stops only the follower, never the run
    except CCExecutorError as exc:
        print(f"cc-executor attach: {inert(str(exc))}", file=sys.stderr)
        return 1
    finally:
        if view is not None:
            view.close()
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
    print(f"{result.status} · {result.duration_s:.1f}s · run {result.run_id}", file=sys.stderr)
    if result.error:
        print(f"cc-executor attach: {inert(result.error)}", file=sys.stderr)
    return exit_code_for(result)


def status_main(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor fleet status``."""
    import asyncio
    import time

    from cc_executor._errors import CCExecutorError
    from cc_executor._fleet import open_fleet
    from cc_executor._fleet._url import parse_fleet_url

    given = args.fleet or os.environ.get(FLEET_ENV)
    if not given:
        print(f"cc-executor fleet status: give --fleet URL or set {FLEET_ENV}", file=sys.stderr)
        return EXIT_USAGE

    async def go() -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
        fleet = open_fleet(given, from_argv=bool(args.fleet))
        try:
            return await fleet.workers(), await fleet.counts()
        finally:
            await fleet.aclose()

    try:
        url = parse_fleet_url(given, from_argv=bool(args.fleet)).url  # shown without credentials
        workers, queues = asyncio.run(go())
    except CCExecutorError as exc:
        print(f"cc-executor fleet status: {exc}", file=sys.stderr)
        return EXIT_USAGE
    workers.sort(key=lambda w: (str(w.get("host")), str(w.get("worker_id"))))
    if args.json:
        from cc_executor._cli._write import write_json_line

        write_json_line(
            sys.stdout.buffer,
            {"fleet": url, "workers": workers, "queues": queues},
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
        print(
            inert(
                f"  {w.get('worker_id')}  {w.get('host')} pid {w.get('pid')}  "
                f"{w.get('busy')}/{w.get('slots')} busy  agents {agents}  "
                f"v{w.get('version')}  heartbeat {age}"
            )
        )
    for name, count in queues.items():
        print(f"queue {name}: {count['queued']} queued, {count['running']} running")
    return 0
