"""The argument parser of every command: one-line usage errors naming the flag, "did you
mean" for a misspelt flag or command, defaults in the help, and, under ``--json``, the
usage error as the one JSON object the command prints."""

from __future__ import annotations

import argparse
import difflib
import re
import sys
from typing import IO, Any, NoReturn

from cc_executor._cli._codes import EXIT_USAGE

_INVALID_CHOICE = re.compile(r"invalid choice: '([^']*)' \(choose from (.*)\)")


class Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Each flag's default after its help (unless the help says it already, or there is
    none worth showing); descriptions and examples keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if "default" in text or "%(default)" in text:
            return text
        if action.default in (None, False, [], argparse.SUPPRESS) or action.nargs == 0:
            return text
        return super()._get_help_string(action)


class Parser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` with the errors described in the module's
    docstring. ``json_errors`` (set on a subclass by :func:`parser_class`): a usage error
    also prints the ``usage_error`` JSON object on stdout."""

    json_errors = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        """Report ``message`` on one line (and as JSON under ``--json``), exit 2."""
        message = self._with_suggestion(message)
        usage_error(self.prog, message, json_output=self.json_errors)
        raise SystemExit(EXIT_USAGE)

    def unrecognized(self, extras: list[str]) -> NoReturn:
        """The error for arguments no flag of this parser takes, with the closest flag."""
        message = f"unrecognized arguments: {' '.join(extras)}"
        flags = [f for action in self._actions for f in action.option_strings]
        for extra in extras:
            if extra.startswith("-"):
                close = difflib.get_close_matches(extra.partition("=")[0], flags, n=1)
                if close:
                    message += f" (did you mean {close[0]}?)"
                    break
        self.error(message)

    def _with_suggestion(self, message: str) -> str:
        match = _INVALID_CHOICE.search(message)
        if match is None:
            return message
        choices = re.findall(r"'([^']*)'", match.group(2))
        close = difflib.get_close_matches(match.group(1), choices, n=1)
        return f"{message} (did you mean {close[0]!r}?)" if close else message


def parser_class(json_errors: bool) -> type[Parser]:
    """The parser class for a command line: with JSON usage errors when it has ``--json``."""
    if not json_errors:
        return Parser
    return type("JsonParser", (Parser,), {"json_errors": True})


def usage_error(
    prog: str, message: str, *, json_output: bool, stdout: IO[str] | None = None
) -> int:
    """Report a usage error: one line on stderr (the help pointer included) and, with
    ``json_output``, the ``usage_error`` JSON object on stdout. Returns the exit code (2)."""
    import json

    from cc_executor._payload import SCHEMA_VERSION
    from cc_executor._status import Status

    print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
    if json_output:
        out = stdout if stdout is not None else sys.stdout
        payload = {
            "schema_version": SCHEMA_VERSION,
            "status": Status.USAGE_ERROR.value,
            "error": message,
            "exit_code": EXIT_USAGE,
            "run_id": None,
        }
        out.write(json.dumps(payload, ensure_ascii=False) + "\n")
        out.flush()
    return EXIT_USAGE
