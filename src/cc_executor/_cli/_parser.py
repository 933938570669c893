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


#: An example or two per command, shown at the end of its ``--help`` (a test holds every
#: command to having one).
EXAMPLES = {
    "cc-executor": "cc-executor run 'Summarise README.md'\n"
    "cc-executor exec --timeout 60 -- make test",
    "cc-executor run": "cc-executor run 'Summarise README.md' --timeout 300\n"
    "git diff | cc-executor run - --json --quiet\n"
    "cc-executor run 'Fix the failing test' --allowed-tools Edit,Bash --max-turns 20",
    "cc-executor exec": "cc-executor exec --timeout 60 -- make test\n"
    "cc-executor exec --json --idle-timeout 30 -- ./slow-script.sh\n"
    "cc-executor exec --fleet redis://redis.internal:6379/0 --cwd /srv/app -- make test",
    "cc-executor tasks": "cc-executor tasks run tasks.md\ncc-executor tasks resume 01JD3",
    "cc-executor tasks run": "cc-executor tasks run tasks.md --max-parallel 2 --budget-usd 5\n"
    "cc-executor tasks run tasks.md --fleet redis://redis.internal:6379/0 --max-parallel 16",
    "cc-executor tasks resume": "cc-executor tasks resume 01JD3",
    "cc-executor batch": "cc-executor batch prompts.txt --timeout 300 --concurrency 8 "
    "--budget-usd 5\n"
    "cc-executor batch docs.jsonl --timeout 600 --batch-id nightly --json",
    "cc-executor tasks validate": "cc-executor tasks validate tasks.yaml --json",
    "cc-executor tasks show": "cc-executor tasks show 01JD3 --json",
    "cc-executor history": "cc-executor history --status failed --since 7d",
    "cc-executor show": "cc-executor show 01JD3K --events",
    "cc-executor export": "cc-executor export --format csv --output runs.csv --since 30d",
    "cc-executor verify": "cc-executor verify --last 10\ncc-executor verify 01JD3K --json",
    "cc-executor prune": "cc-executor prune --older-than 30d --dry-run",
    "cc-executor workspace": "cc-executor workspace list\ncc-executor workspace merge 01JD3K",
    "cc-executor workspace list": "cc-executor workspace list --json",
    "cc-executor workspace diff": "cc-executor workspace diff 01JD3K | less",
    "cc-executor workspace merge": "cc-executor workspace merge 01JD3K",
    "cc-executor workspace discard": "cc-executor workspace discard 01JD3K",
    "cc-executor workspace prune": "cc-executor workspace prune --older-than 7d --dry-run",
    "cc-executor import-history": "cc-executor --history postgresql://cc@db.internal/cc "
    "import-history ~/.local/share/cc-executor/history.sqlite3",
    "cc-executor doctor": "cc-executor doctor --json",
    "cc-executor serve": "cc-executor serve --port 8765 --allow-dir ~/projects",
    "cc-executor worker": "cc-executor worker --fleet redis://redis.internal:6379/0 --slots 4 "
    "--allow-dir /srv/repos",
    "cc-executor cancel": "cc-executor cancel 01JD3Y0Q8Z6W1C5M7V4T2R9N0P\n"
    "cc-executor cancel 01JD3Y0Q8Z6W1C5M7V4T2R9N0P --fleet redis://redis.internal:6379/0",
    "cc-executor fleet": "cc-executor fleet status --fleet redis://redis.internal:6379/0",
    "cc-executor fleet status": "cc-executor fleet status --json",
    "cc-executor pause": "cc-executor pause 01JD3Y0Q8Z6W1C5M7V4T2R9N0P\n"
    "cc-executor pause 01JD3Y0Q8Z6W1C5M7V4T2R9N0P --fleet",
    "cc-executor unpause": "cc-executor unpause 01JD3Y0Q8Z6W1C5M7V4T2R9N0P --fleet "
    "redis://redis.internal:6379/0",
    "cc-executor attach": "cc-executor attach 01JD3Y0Q8Z6W1C5M7V4T2R9N0P --after 12 --json",
    "cc-executor mcp": "cc-executor mcp\ncc-executor mcp --transport http --port 8766",
    "cc-executor notify": "cc-executor notify --to ../other --issue 12 --fix '12: parser "
    "accepts CRLF'",
    "cc-executor inbox": "cc-executor inbox\ncc-executor inbox ack ID --reply-to ../other",
    "cc-executor inbox list": "cc-executor inbox list --json",
    "cc-executor inbox show": "cc-executor inbox show ID --verify-runs",
    "cc-executor inbox ack": "cc-executor inbox ack ID --reply-to ../other",
    "cc-executor inbox watch": "cc-executor inbox watch --timeout 600 --max-events 1",
    "cc-executor testing": "cc-executor testing serve --script SCRIPT.json",
    "cc-executor testing serve": "cc-executor testing serve --script SCRIPT.json",
}


class Parser(argparse.ArgumentParser):
    """:class:`argparse.ArgumentParser` with the errors described in the module's
    docstring. ``json_errors`` (set on a subclass by :func:`parser_class`): a usage error
    also prints the ``usage_error`` JSON object on stdout."""

    json_errors = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)
        if self.epilog is None and self.prog in EXAMPLES:
            self.epilog = "examples:\n" + "\n".join(
                f"  {line}" for line in EXAMPLES[self.prog].splitlines()
            )

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
                name = extra.partition("=")[0]
                if name in flags:
                    # A flag of this command, left over: it came after "--".
                    message += f" (after --, {name} is not an option: put it before --)"
                    break
                close = difflib.get_close_matches(name, flags, n=1)
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
    print(f"{prog}: error: {message} (see {prog} --help)", file=sys.stderr)
    if json_output:
        write_usage_error_json(message, stdout)
    return EXIT_USAGE


def write_usage_error_json(message: str, stdout: IO[str] | None = None) -> None:
    """The ``usage_error`` JSON object of ``message``, on one line of ``stdout``."""
    import json

    from cc_executor._payload import SCHEMA_VERSION
    from cc_executor._status import Status

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
