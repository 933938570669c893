"""``cc-executor testing serve``: run a scripted model server from the command line."""

from __future__ import annotations

import argparse
import shlex
import shutil
import signal
import sys
import tempfile
import threading
from types import FrameType
from typing import Any

__all__ = ["add_parser"]


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``testing serve --script FILE [--host H] [--port N]`` on ``subparsers``.

    The ``serve`` parser stores its handler as ``handler`` in the parsed namespace: call
    ``args.handler(args)``, which returns the process exit status (0 after a clean stop by Ctrl-C or
    SIGTERM, 2 for a bad script or host). Heavy modules are imported by the handler only.
    """
    testing = subparsers.add_parser(
        "testing",
        help="tools for testing against a scripted model",
        description="Tools for running the real Claude Code CLI against a scripted model.",
    )
    commands = testing.add_subparsers(dest="testing_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve a scripted Anthropic Messages API on a loopback port",
        description=(
            "Serve a scripted Anthropic Messages API on a loopback port until Ctrl-C or SIGTERM. "
            "Prints the URL and the environment variables that point Claude Code at it."
        ),
    )
    serve.add_argument(
        "--script", required=True, metavar="FILE", help="script file (.json, .yaml or .yml)"
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: 0, any free port)")
    serve.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    # Starlette and uvicorn load here, not at registration: `cc-executor --help` stays fast.
    from cc_executor.testing._script import ScriptError
    from cc_executor.testing._server import ModelServer

    try:
        server = ModelServer(args.script, host=args.host, port=args.port)
    except (ScriptError, ValueError) as exc:
        print(f"cc-executor testing serve: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        server.__enter__()
    except OSError as exc:  # the port is taken, the address is not ours, ...
        print(f"cc-executor testing serve: cannot listen: {exc}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    home = tempfile.mkdtemp(prefix="cc-executor-claude-home-")
    try:
        print(f"Scripted model server listening on {server.url}", flush=True)
        print("Point Claude Code at it with (HOME is a throwaway directory):")
        for name, value in server.claude_env(home=home).items():
            print(f"export {name}={shlex.quote(value)}")
        print(f"Recorded requests: {server.url}/_testing/requests")
        print("Press Ctrl-C to stop.", flush=True)
        # Event.wait with a timeout keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        server.__exit__(None, None, None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        shutil.rmtree(home, ignore_errors=True)
    print("Stopped.", flush=True)
    return 0
