"""``cc-executor serve`` (HTTP + WebSocket service) and ``cc-executor mcp`` (MCP server)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from cc_executor._cli._args import add_run_defaults, run_defaults

if TYPE_CHECKING:
    import socket

    from cc_executor._service._manager import ManagerConfig
    from cc_executor._service._security import SecurityPolicy

DEFAULT_PORT = 8765
#: Defaults of --header-timeout and --max-connections (``_service/_connections.py`` says why).
DEFAULT_HEADER_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 256
#: Bad flags or a refused configuration (argparse uses 2 as well).
EXIT_USAGE = 2


#: Run options ``serve`` and ``mcp`` take as flags: defaults for the runs they start.
_RUN_DEFAULTS = ("agent_path",)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="0 picks a free port")
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
        "that configure an agent (ANTHROPIC_*, CLAUDE_*, HOME, proxies, locale; repeatable)",
    )
    p.add_argument(
        "--allow-dir",
        action="append",
        default=[],
        metavar="DIR",
        help="runs may use a cwd inside DIR (repeatable; default: the current directory)",
    )
    p.add_argument("--max-concurrent", type=int, default=4, help="runs executing at once")
    p.add_argument("--max-queued", type=int, default=64, help="runs waiting; more get 429")
    p.add_argument("--max-body", type=int, default=1 << 20, help="largest HTTP request body, bytes")
    p.add_argument(
        "--max-message", type=int, default=1 << 20, help="largest WebSocket message, bytes"
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
    add_run_defaults(p, _RUN_DEFAULTS)


def _positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        if not value > 0:  # also refuses NaN
            raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
        return value

    return parse


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
    if not args.no_token:
        try:
            token, created = load_or_create_token()
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
    hosts = list(args.allow_host)
    if not is_loopback(args.host) and args.host not in ("0.0.0.0", "::"):  # noqa: S104
        hosts.append(args.host)
    policy = SecurityPolicy.build(
        token,
        allowed_hosts=hosts,
        allowed_origins=args.allow_origin,
        max_body=args.max_body,
        max_message=args.max_message,
    )
    defaults = run_defaults(args, _RUN_DEFAULTS)
    try:
        config = ManagerConfig(
            max_concurrent=args.max_concurrent,
            max_queued=args.max_queued,
            exec_allowlist=tuple(args.allow_exec),
            allow_env=tuple(args.allow_env),
            exec_env=tuple(args.allow_exec_env),
            allow_dirs=tuple(args.allow_dir),
            run_defaults=defaults,
        )
    except ValueError as exc:
        print(f"cc-executor {args.command}: {exc}", file=sys.stderr)
        return None
    return policy, config


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


async def _serve_app(
    app: Any,
    sock: socket.socket,
    args: argparse.Namespace,
    max_message: int,
    *,
    lifespan: Literal["on", "off"] = "off",
) -> None:
    import uvicorn

    from cc_executor._service._connections import guarded_h11

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
    await uvicorn.Server(config).serve(sockets=[sock])


def _open_manager(config: ManagerConfig) -> Any:
    from cc_executor._service._manager import RunManager
    from cc_executor._store import HistoryError, open_store

    try:
        # Opening the store recovers: runs of a previous server that died are marked
        # interrupted now.
        store = open_store()
    except HistoryError as exc:
        print(f"cc-executor: history unavailable ({exc}); serving without it", file=sys.stderr)
        return RunManager(config, None)
    from cc_executor._text import inert

    for warning in store.warnings:  # malformed rows skipped, permissions tightened
        print(f"cc-executor serve: warning: {inert(warning)}", file=sys.stderr)
    return RunManager(config, store)


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
            manager = _open_manager(config)
        except ValueError as exc:
            print(f"cc-executor serve: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        app = create_app(manager, policy)
        print(f"cc-executor serve: listening on {_url(sock)}", flush=True)
        try:
            await _serve_app(app, sock, args, policy.max_message)
        finally:
            await manager.aclose()
            if manager.store is not None:
                manager.store.close()

    asyncio.run(main())
    return 0


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
            manager = _open_manager(config)
        except ValueError as exc:
            print(f"cc-executor mcp: {exc}", file=sys.stderr)
            raise SystemExit(EXIT_USAGE) from None
        server = build_server(manager)
        try:
            if sock is None:
                await server.run_stdio_async()
            else:
                print(f"cc-executor mcp: listening on {_url(sock)}/mcp", flush=True)
                await _serve_app(
                    streamable_app(server, policy), sock, args, policy.max_message, lifespan="on"
                )
        finally:
            await manager.aclose()
            if manager.store is not None:
                manager.store.close()

    asyncio.run(main())
    return 0
