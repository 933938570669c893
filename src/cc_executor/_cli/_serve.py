"""``cc-executor serve`` (HTTP + WebSocket service) and ``cc-executor mcp`` (MCP server)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from cc_executor._cli._args import flag_for
from cc_executor._run._options import RunOptions

if TYPE_CHECKING:
    import socket

    from cc_executor._service._manager import ManagerConfig
    from cc_executor._service._security import SecurityPolicy

DEFAULT_PORT = 8765
#: Defaults of --header-timeout and --max-connections (``_service/_connections.py`` says why).
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 256
#: Default of ``serve --drain-grace``: what running runs get to finish after SIGTERM.
DEFAULT_DRAIN_GRACE = 30.0
#: Default of --max-event-bytes (``_service/_manager.py``; not imported: the flags are
#: parsed before the service's modules are loaded).
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024
#: Bad flags or a refused configuration (argparse uses 2 as well).
EXIT_USAGE = 2


#: Server-only run options ``serve`` and ``mcp`` take as flags, one value per agent
#: (``--base-url codex=URL``): the operator's settings for the runs of that agent.
_AGENT_DEFAULTS = ("agent_path", "base_url", "agent_spec", "permission_policy")


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=_port, default=DEFAULT_PORT, help="0 picks a free port")
    p.add_argument(
        "--no-token",
        action="store_true",
        help="do not require the bearer token (refused unless --host is a loopback address)",
    )
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="accept this name in the Host header besides loopback names (repeatable)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="accept this browser Origin, e.g. https://app.example (repeatable)",
    )
    p.add_argument(
        "--allow-exec",
        action="append",
        default=[],
        metavar="'EXECUTABLE [ARG...]'",
        help="allow remote callers to run this executable as a command, with any arguments, "
        "or, given arguments ('pytest -q'), only commands that start with exactly them "
        "(repeatable; commands are refused without it). An allowed program can do whatever "
        "its arguments tell it: 'git' alone allows 'git -c core.fsmonitor=CMD status'",
    )
    p.add_argument(
        "--exec-policy",
        metavar="FILE",
        help="a TOML file of commands remote callers may run: [[exec]] entries with "
        "prefix = [PROGRAM, ARG...] (exact argv prefix) or match = [PROGRAM, PATTERN...] "
        "(one fnmatch pattern per argument, no more arguments unless rest = PATTERN), and "
        "env = [NAME...] the variables callers may set for it (docs/security.md)",
    )
    p.add_argument(
        "--allow-repo",
        action="append",
        default=[],
        metavar="PATTERN",
        help="a git URL a run may name as its repo, cloned into its run folder (here, or on "
        "the fleet's worker, which checks its own --allow-repo too): a pattern where * "
        "matches anything, / included (repeatable; default: none, every repo is refused)",
    )
    p.add_argument(
        "--allow-exec-env",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment variable remote callers may set for commands (repeatable; "
        "none by default: a variable can change what a program runs)",
    )
    p.add_argument(
        "--allow-env",
        action="append",
        default=[],
        metavar="NAME",
        help="an environment variable remote callers may set for agent runs, beyond those "
        "that configure an agent (ANTHROPIC_*, CLAUDE_CODE_DISABLE_*, proxies, locale; "
        "repeatable); needed for any name of a file, folder or program (HOME, "
        "CLAUDE_CONFIG_DIR, *_FILE, *_DIR, *_PATH, ...)",
    )
    p.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="runs may use a cwd inside DIR (repeatable; default: the current directory)",
    )
    p.add_argument(
        "--max-concurrent", type=_positive(int), default=4, help="runs executing at once"
    )
    p.add_argument(
        "--max-queued",
        type=_positive(int, zero=True),
        default=64,
        help="runs waiting; more get 429",
    )
    p.add_argument(
        "--max-event-bytes",
        type=_positive(int),
        default=DEFAULT_MAX_EVENT_BYTES,
        metavar="BYTES",
        help="bytes of run events (their JSON size) all runs keep in memory for replay; "
        "beyond it the oldest go, finished runs' first, and a client asking for them gets a "
        "gap event (default 64 MiB). An event over 64 KiB is always kept on disk, not in "
        "memory, and read back when sent",
    )
    p.add_argument(
        "--max-body", type=_positive(int), default=1 << 20, help="largest HTTP request body, bytes"
    )
    p.add_argument(
        "--max-message",
        type=_positive(int),
        default=1 << 20,
        help="largest WebSocket message, bytes",
    )
    p.add_argument(
        "--header-timeout",
        type=_positive(float),
        default=DEFAULT_HEADER_TIMEOUT,
        metavar="SECONDS",
        help="close a connection that has not sent a complete request head within SECONDS "
        f"(default {DEFAULT_HEADER_TIMEOUT:g})",
    )
    p.add_argument(
        "--max-connections",
        type=_positive(int),
        default=DEFAULT_MAX_CONNECTIONS,
        metavar="N",
        help="connections held at once; beyond it the one waiting longest for a request is "
        f"closed, or the new one refused with 503 (default {DEFAULT_MAX_CONNECTIONS})",
    )
    p.add_argument(
        "--agent",
        action="append",
        default=[],
        dest="agents",
        metavar="NAME",
        help="an agent remote callers may run: claude, codex, gemini, or command (with "
        "--agent-spec) (repeatable; the first runs when a caller names none; default: "
        "claude only)",
    )
    p.add_argument(
        "--fleet",
        nargs="?",
        const="",
        metavar="URL",
        help="agent runs and task lists go to the fleet at URL (a bare --fleet: "
        "$CC_EXECUTOR_FLEET) with the same API as local ones; commands still run here "
        "(docs/fleet.md)",
    )
    p.add_argument("--queue", metavar="NAME", help="with --fleet: the fleet's queue")
    for name in _AGENT_DEFAULTS:
        flag = flag_for(RunOptions.by_name[name])
        p.add_argument(
            flag.flag,
            *flag.aliases,
            action="append",
            default=[],
            dest=name,
            metavar=f"[AGENT=]{flag.metavar}",
            help=f"{flag.help}, for the runs of AGENT (without 'AGENT=': of the one agent "
            "the server allows) (repeatable, once per agent)",
        )


def agent_settings(args: argparse.Namespace) -> tuple[tuple[str, ...], dict[str, dict[str, Any]]]:
    """The agents the server allows (``--agent``, claude when none is given) and, by agent,
    its server-only options (``--base-url [AGENT=]URL``, ...). ``ValueError`` saying what
    is wrong: an unknown agent, a setting for an agent not allowed, or without ``AGENT=``
    while several are, one given twice, or a value the agent refuses."""
    from cc_executor._agents import agent_names

    known = agent_names()
    agents = tuple(dict.fromkeys(args.agents)) or (RunOptions.by_name["agent"].default,)
    for agent in agents:
        if agent not in known:
            raise ValueError(f"--agent {agent}: unknown agent (known: {', '.join(known)})")
    settings: dict[str, dict[str, Any]] = {agent: {} for agent in agents}
    for name in _AGENT_DEFAULTS:
        flag = flag_for(RunOptions.by_name[name]).flag
        for given in getattr(args, name):
            prefix, sep, value = given.partition("=")
            if sep and prefix in known:
                agent = prefix
            elif len(agents) == 1:
                agent, value = agents[0], given
            else:
                raise ValueError(
                    f"{flag} {given}: say which agent it is for ({flag} AGENT=VALUE): "
                    f"this server allows {', '.join(agents)}"
                )
            if agent not in agents:
                raise ValueError(f"{flag} {given}: {agent} is not allowed (add --agent {agent})")
            if name in settings[agent]:
                raise ValueError(f"{flag} is given twice for {agent}")
            # A file named relative to where the server starts, not to each run's cwd.
            is_path = RunOptions.by_name[name].kind == "path"
            settings[agent][name] = os.path.abspath(value) if is_path else value
    for agent, options in settings.items():
        if agent == "command" and "agent_spec" not in options:
            raise ValueError(
                "--agent command needs --agent-spec FILE (a remote caller cannot give one)"
            )
        try:
            RunOptions(agent=agent, **options)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the {agent} agent's settings: {exc}") from None
    return agents, {agent: options for agent, options in settings.items() if options}


def _positive(kind: Callable[[str], float], *, zero: bool = False) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not (value >= 0 if zero else value > 0) or value == float("inf"):  # NaN too
            what = "0 or more" if zero else "positive"
            raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
        return value

    return parse


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        # bind() raised OverflowError, a traceback, for one out of range.
        raise argparse.ArgumentTypeError(f"must be 0 to 65535, got {text!r}")
    return port


def add_parser(sub: Any) -> None:
    """Register ``serve`` and ``mcp`` on the subcommand set ``sub``."""
    p = sub.add_parser(
        "serve",
        help="HTTP/WebSocket service: start, watch and control runs remotely",
        description="Serve REST (/runs, /runs/{id}/events as SSE), WebSocket JSON-RPC (/ws) "
        "and /openapi.json. Every request needs 'Authorization: Bearer TOKEN'; the token is "
        "generated on first start, stored in the data dir (mode 0600) and printed once.",
    )
    _common(p)
    p.add_argument(
        "--drain-grace",
        type=_positive(float, zero=True),
        default=DEFAULT_DRAIN_GRACE,
        metavar="SECONDS",
        help="on SIGTERM or Ctrl-C, take no new run, leave queued runs queued (the next "
        "serve on this data folder starts them) and give running runs SECONDS to finish, "
        "then stop them as interrupted; a second signal stops them at once "
        f"(default {DEFAULT_DRAIN_GRACE:g}; keep it under your supervisor's stop timeout)",
    )
    p.set_defaults(handler=serve)
    m = sub.add_parser(
        "mcp",
        help="MCP server (stdio or streamable HTTP) exposing runs as tools",
        description="An MCP server with the job pattern: start_run returns at once, "
        "wait_run waits up to 50 s with progress notifications, get_run/cancel_run/"
        "list_runs/verify_run. Over HTTP the same token, Host and Origin rules apply.",
    )
    m.add_argument(
        "--transport",
        choices=("stdio", "http"),
        default="stdio",
        help="stdio for a client that starts the server, http to listen on --host/--port",
    )
    _common(m)
    m.set_defaults(handler=mcp)


def _policy_and_config(args: argparse.Namespace) -> tuple[SecurityPolicy, ManagerConfig] | None:
    from cc_executor._service._manager import ManagerConfig
    from cc_executor._service._security import (
        SecurityPolicy,
        is_loopback,
        load_or_create_token,
        readonly_token_path,
        token_path,
    )

    if args.no_token and not is_loopback(args.host):
        print(
            f"cc-executor {args.command}: refusing to listen on {args.host} without a token "
            "(drop --no-token, or bind a loopback address)",
            file=sys.stderr,
        )
        return None
    token: str | None = None
    readonly: str | None = None
    if not args.no_token:
        try:
            token, created = load_or_create_token()
            # The second token reads everything and changes nothing (a dashboard for the
            # team, a monitoring script): made beside the first, mode 0600 too.
            readonly, _ = load_or_create_token(readonly_token_path())
        except OSError as exc:
            print(f"cc-executor {args.command}: cannot use the token: {exc}", file=sys.stderr)
            return None
        if created:
            print(
                f"cc-executor {args.command}: new bearer token (stored in {token_path()}, "
                f"shown only this once): {token}",
                file=sys.stderr,
                flush=True,
            )
        else:
            print(
                f"cc-executor {args.command}: bearer token in {token_path()} (send it as "
                "'Authorization: Bearer TOKEN')",
                file=sys.stderr,
                flush=True,
            )
        # Named, never shown: whoever may read the first file may read this one.
        print(
            f"cc-executor {args.command}: read-only token (sees everything, changes "
            f"nothing) in {readonly_token_path()}",
            file=sys.stderr,
            flush=True,
        )
    hosts = list(args.allow_host)
    if not is_loopback(args.host) and args.host not in ("0.0.0.0", "::"):  # noqa: S104
        hosts.append(args.host)
    policy = SecurityPolicy.build(
        token,
        allowed_hosts=hosts,
        allowed_origins=args.allow_origin,
        max_body=args.max_body,
        max_message=args.max_message,
        readonly_token=readonly,
    )
    try:
        agents, agent_defaults = agent_settings(args)
        fleet = _fleet_of(args)
        config = ManagerConfig(
            max_concurrent=args.max_concurrent,
            max_queued=args.max_queued,
            max_event_bytes=args.max_event_bytes,
            exec_allowlist=tuple(args.allow_exec),
            allow_env=tuple(args.allow_env),
            exec_env=tuple(args.allow_exec_env),
            exec_policy=args.exec_policy,
            allow_dirs=tuple(args.allow_dir),
            allow_repos=tuple(args.allow_repo),
            agents=agents,
            agent_defaults=agent_defaults,
            fleet=fleet,
            fleet_queue=args.queue,
        )
    except ValueError as exc:
        print(f"cc-executor {args.command}: {exc}", file=sys.stderr)
        return None
    return policy, config


def _fleet_of(args: argparse.Namespace) -> str | None:
    """The fleet of ``--fleet`` (a bare one: ``$CC_EXECUTOR_FLEET``), checked now; a
    password on the command line is refused. ValueError for a bad one."""
    import os

    from cc_executor._errors import FleetError
    from cc_executor._extras import require_extra
    from cc_executor._fleet._base import check_queue
    from cc_executor._fleet._url import parse_fleet_url

    if args.fleet is None:
        if args.queue is not None:
            raise ValueError("--queue names a fleet's queue: give --fleet too")
        return None
    url = args.fleet or os.environ.get("CC_EXECUTOR_FLEET")
    if not url:
        raise ValueError("give --fleet URL or set CC_EXECUTOR_FLEET")
    if args.queue is not None:
        check_queue(args.queue)
    try:
        parse_fleet_url(url, from_argv=bool(args.fleet))
        require_extra("fleet", "--fleet")
    except FleetError as exc:
        raise ValueError(str(exc)) from None
    return url


def _bind(host: str, port: int) -> socket.socket:
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it every response on a kept-alive connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(False)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _Stop:
    """SIGTERM and SIGINT while a server runs: the first stops the HTTP server (and calls
    ``on_first``: the drain begins), a second one hurries (``hurry`` is set: the drain's
    grace ends at once). Handled on the loop for the whole life of the server, its drain
    included, instead of uvicorn's handlers, which re-raise the signal once it has stopped
    and so would end the process before the drain."""

    def __init__(self, on_first: Callable[[], None] | None = None) -> None:
        import asyncio
        import signal

        self.on_first = on_first
        self.server: Any = None
        self.signals = 0
        self.hurry = asyncio.Event()
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, self._fire)
            except (NotImplementedError, RuntimeError, ValueError):
                continue  # not the main thread: the caller's own handling stays
            self._installed.append(sig)

    def _fire(self) -> None:
        self.signals += 1
        if self.signals == 1:
            if self.on_first is not None:
                self.on_first()
            if self.server is not None:
                self.server.should_exit = True
        else:
            self.hurry.set()
            if self.server is not None:
                self.server.force_exit = True

    def close(self) -> None:
        for sig in self._installed:
            self._loop.remove_signal_handler(sig)


async def _serve_app(
    app: Any,
    sock: socket.socket,
    args: argparse.Namespace,
    max_message: int,
    stop: _Stop,
    *,
    lifespan: Literal["on", "off"] = "off",
) -> None:
    import contextlib

    import uvicorn

    from cc_executor._service._connections import guarded_h11

    class Server(uvicorn.Server):
        def capture_signals(self) -> Any:
            return contextlib.nullcontext()  # _Stop handles them

    config = uvicorn.Config(
        app,
        http=guarded_h11(args.header_timeout, args.max_connections),
        ws="websockets-sansio",
        ws_max_size=max_message,
        log_level="warning",
        lifespan=lifespan,
        timeout_graceful_shutdown=3,
        server_header=False,
    )
    server = Server(config)
    stop.server = server
    server.should_exit = stop.signals > 0
    await server.serve(sockets=[sock])


def _open_manager(config: ManagerConfig, command: str, *, keep_queue: bool = False) -> Any:
    """The run manager over the history, for ``cc-executor COMMAND`` (``serve`` or
    ``mcp``, which its messages name); with ``keep_queue`` (``serve``), queued runs are
    saved in the data folder's queue, when this server can take its lock."""
    me = f"cc-executor {command}"
    from cc_executor._service._manager import RunManager
    from cc_executor._service._queue import RunQueue
    from cc_executor._store import HistoryError, open_store

    try:
        # Opening the store recovers: runs of a previous server that died are marked
        # interrupted now.
        store = open_store()
    except HistoryError as exc:
        print(f"cc-executor: history unavailable ({exc}); serving without it", file=sys.stderr)
        store = None
    if store is not None:
        from cc_executor._text import inert

        for warning in store.warnings:  # malformed rows skipped, permissions tightened
            print(f"{me}: warning: {inert(warning)}", file=sys.stderr)
    queue: RunQueue | None = None
    if keep_queue:
        queue = RunQueue()
        try:
            owned = queue.acquire()
            for warning in queue.warnings:
                print(f"cc-executor serve: {warning}", file=sys.stderr)
        except OSError as exc:
            print(
                f"cc-executor serve: cannot use the queue folder {queue.folder} ({exc}); "
                "queued runs are kept in memory only",
                file=sys.stderr,
            )
            owned = False
        if not owned:
            if queue.folder.is_dir():
                print(
                    f"cc-executor serve: another server holds the queue in {queue.folder}; "
                    "this one keeps its queued runs in memory only, and leaves the saved ones "
                    "to that server",
                    file=sys.stderr,
                )
            queue = None
    return RunManager(config, store, queue)


def serve(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor serve``."""
    import asyncio

    from cc_executor._service._http import create_app

    prepared = _policy_and_config(args)
    if prepared is None:
        return EXIT_USAGE
    policy, config = prepared
    try:
        sock = _bind(args.host, args.port)
    except OSError as exc:
        print(
            f"cc-executor serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
        )
        return EXIT_USAGE

    async def main() -> None:
        try:
            manager = _open_manager(config, "serve", keep_queue=True)
        except ValueError as exc:
            print(f"cc-executor serve: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        stop = _Stop(manager.begin_drain)
        try:
            requeued, problems = await manager.requeue()
            for problem in problems:
                print(f"cc-executor serve: {problem}", file=sys.stderr)
            if requeued:
                print(
                    f"cc-executor serve: queued again {len(requeued)} run(s) a previous server "
                    f"accepted and did not start: {', '.join(requeued)}",
                    file=sys.stderr,
                )
            app = create_app(manager, policy)
            print(f"cc-executor serve: listening on {_url(sock)}", flush=True)
            # Checked beside the start, not before it: an unreachable host may take the
            # client's whole timeout to say so.
            checking = asyncio.ensure_future(_warn_of_fleet(manager, "serve"))
            drained = False
            try:
                await _serve_app(app, sock, args, policy.max_message, stop)
                if manager.draining:
                    _say_draining(manager, args.drain_grace)
                    counts = await manager.drain(args.drain_grace, hurry=stop.hurry)
                    drained = True
                    print(
                        f"cc-executor serve: stopped: {counts['finished']} run(s) finished, "
                        f"{counts['interrupted']} interrupted, {counts['left_queued']} left "
                        "queued for the next server",
                        file=sys.stderr,
                        flush=True,
                    )
            finally:
                checking.cancel()
                if not drained:
                    await manager.aclose()
        finally:
            stop.close()
            if manager.queue is not None:
                manager.queue.release()
            if manager.store is not None:
                manager.store.close()

    asyncio.run(main())
    return 0


async def _warn_of_fleet(manager: Any, command: str) -> None:
    """One warning line when the fleet of ``serve|mcp --fleet`` does not answer as the
    server starts (its runs are refused until it does): a typo in the URL is seen at once."""
    from cc_executor._text import inert

    problem = await manager.fleet_problem()
    if problem is not None:
        print(
            f"cc-executor {command}: warning: {inert(problem)}; agent runs and task lists are "
            "refused (503 fleet_unavailable) until it answers",
            file=sys.stderr,
            flush=True,
        )


def _say_draining(manager: Any, grace: float) -> None:
    stats = manager.stats()
    print(
        f"cc-executor serve: shutting down: no new runs; {stats['running']} running get up to "
        f"{grace:g} s to finish (a second signal stops them now); {stats['queued']} queued "
        "stay queued",
        file=sys.stderr,
        flush=True,
    )


def mcp(args: argparse.Namespace) -> int:
    """Handler of ``cc-executor mcp``."""
    import asyncio

    prepared = _policy_and_config(args)
    if prepared is None:
        return EXIT_USAGE
    policy, config = prepared
    from cc_executor._service._mcp import build_server, streamable_app

    sock = None
    if args.transport == "http":
        try:
            sock = _bind(args.host, args.port)
        except OSError as exc:
            print(
                f"cc-executor mcp: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr
            )
            return EXIT_USAGE

    async def main() -> None:
        try:
            manager = _open_manager(config, "mcp")
        except ValueError as exc:
            print(f"cc-executor mcp: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        server = build_server(manager)
        checking = asyncio.ensure_future(_warn_of_fleet(manager, "mcp"))
        try:
            if sock is None:
                await server.run_stdio_async()
            else:
                print(f"cc-executor mcp: listening on {_url(sock)}/mcp", flush=True)
                stop = _Stop()
                try:
                    await _serve_app(
                        streamable_app(server, policy),
                        sock,
                        args,
                        policy.max_message,
                        stop,
                        lifespan="on",
                    )
                finally:
                    stop.close()
        finally:
            checking.cancel()
            await manager.aclose()
            if manager.store is not None:
                manager.store.close()

    asyncio.run(main())
    return 0
