"""Every command's ``--help``: a help text for each flag (with its default where it has
one) and at least one example."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from cc_executor._cli import build_parser


def _parsers() -> Iterator[argparse.ArgumentParser]:
    pending = [build_parser()]
    while pending:
        parser = pending.pop()
        yield parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                pending.extend(action.choices.values())


def test_every_flag_has_help_and_every_command_an_example() -> None:
    missing = [
        f"{parser.prog} {action.option_strings or action.dest}"
        for parser in _parsers()
        for action in parser._actions
        if not action.help
        and not isinstance(action, (argparse._HelpAction, argparse._SubParsersAction))
    ]
    assert missing == []
    without = [p.prog for p in _parsers() if "examples:\n  cc-executor" not in p.format_help()]
    assert without == []


def test_defaults_are_shown() -> None:
    parsers = {p.prog: p for p in _parsers()}
    assert "at most N runs (default: 20)" in parsers["cc-executor history"].format_help()
    assert "(default: json)" in parsers["cc-executor export"].format_help()
    assert "(default: stdio)" in parsers["cc-executor mcp"].format_help()
    assert "(default: 4)" in parsers["cc-executor serve"].format_help()
