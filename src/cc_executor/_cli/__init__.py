"""The ``cc-executor`` command line. Subcommands import their heavy modules lazily, so
``--version`` and ``--help`` stay fast."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from cc_executor._version import __version__


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (no heavy imports)."""
    parser = argparse.ArgumentParser(
        prog="cc-executor",
        description="Run coding-agent CLIs (Claude Code first) and any command headlessly: "
        "supervised, bounded in time, every byte kept, nothing left running.",
    )
    parser.add_argument("--version", action="version", version=f"cc-executor {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from cc_executor._cli import _doctor, _exec, _history, _run, _serve, _tasks
    from cc_executor._cli import _notify as notify_cli
    from cc_executor.testing import _cli as testing_cli

    _run.add_parser(sub)
    _exec.add_parser(sub)
    _history.add_parsers(sub)
    testing_cli.add_parser(sub)
    _doctor.add_parser(sub)
    _tasks.add_parser(sub)
    _serve.add_parser(sub)
    notify_cli.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cc-executor`` console script; returns the exit code."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list in (["--version"], ["-V"]):
        # The fast path: no parser, no imports.
        print(f"cc-executor {__version__}")
        return 0
    parser = build_parser()
    args = parser.parse_args(args_list)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    code: int = handler(args)
    return code


if __name__ == "__main__":
    sys.exit(main())
