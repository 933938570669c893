"""``quick_parse`` (the console's argparse-free reading of ``run``) against argparse itself.

The console starts Claude Code from what ``quick_parse`` read, before argparse is even
imported, so the two must never disagree: whatever ``quick_parse`` accepts, argparse must
accept with the same values; everything else must make ``quick_parse`` give up.
"""

from __future__ import annotations

import contextlib
import io
import random
from typing import Any

import pytest

from cc_executor._cli import build_parser
from cc_executor._cli._args import RUN_OPTIONS, quick_parse, run_options

PARSER = build_parser("run")


def argparse_values(argv: list[str]) -> dict[str, Any] | None:
    """What argparse makes of ``run ARGV``; None if it refuses it."""
    try:
        with contextlib.redirect_stderr(io.StringIO()), contextlib.redirect_stdout(io.StringIO()):
            ns = PARSER.parse_args(["run", *argv])
    except SystemExit:
        return None
    values = {o.dest: getattr(ns, o.dest) for o in RUN_OPTIONS}
    values["prompt"] = ns.prompt
    return values


def check(argv: list[str]) -> dict[str, Any] | None:
    quick = quick_parse(argv)
    if quick is not None:
        assert argparse_values(argv) == quick, argv
    return quick


PLAIN = [
    ["hello"],
    ["-"],
    [""],
    ["say hi", "--json", "--quiet"],
    ["--json", "--quiet", "prompt last"],
    ["p", "--timeout", "30", "--idle-timeout=5.5", "--grace", "0"],
    ["p", "--timeout", "auto"],
    ["p", "--model", "claude-x", "--max-turns", "3", "--max-budget-usd", "0.5"],
    ["p", "--resume", "abc", "--fork-session", "--session-id", "u-1"],
    ["p", "--continue", "--no-partial-messages", "--strict-mcp-config"],
    ["p", "--allowed-tools", "Write,Bash", "--allowed-tools", " Edit ", "--disallowed-tools=X"],
    ["p", "--add-dir", "/tmp", "--add-dir=/var", "--extra-arg=--debug", "--extra-arg", "x"],
    ["p", "--env", "A=1", "--env=B=two=2", "--cwd", "/tmp", "--claude", "/bin/true"],
    ["p", "--json-mode", "--json-schema", '{"type": "object"}', "--structured-output"],
    ["p", "--retries", "0", "--heartbeat", "0.5", "--max-context-tokens", "2000000"],
    ["p", "--permission-mode", "acceptEdits", "--append-system-prompt", "be brief"],
    ["p", "--mcp-config", '{"mcpServers": {}}', "--model="],
    ["p; rm -rf / $(x) `y` | z > w", "--json"],
]


@pytest.mark.parametrize("argv", PLAIN, ids=[" ".join(a)[:40] for a in PLAIN])
def test_plain_command_lines_are_read_as_argparse_reads_them(argv: list[str]) -> None:
    assert check(argv) is not None, "a plain command line must not need argparse"


UNUSUAL = [
    [],  # no prompt
    ["a", "b"],  # two prompts
    ["--help"],
    ["p", "-h"],
    ["p", "--time", "30"],  # an abbreviation argparse accepts
    ["p", "--quie"],
    ["p", "--", "--json"],
    ["-p"],
    ["p", "--timeout"],  # missing value
    ["p", "--timeout", "-5"],
    ["p", "--timeout", "0"],
    ["p", "--timeout", "soon"],
    ["p", "--max-turns", "2.5"],
    ["p", "--env", "NOEQUALS"],
    ["p", "--json=yes"],
    ["p", "--model", "--json"],
    ["p", "--unknown"],
    ["- x"],  # argparse reads a dash with a space as a prompt; quick_parse declines
    ["p", "--model=--"],  # argparse before 3.13 drops the "--"
    ["p", "--extra-arg=--"],
    ["p", "--idle-timeout", "nan"],
]


@pytest.mark.parametrize("argv", UNUSUAL, ids=[" ".join(a)[:40] or "empty" for a in UNUSUAL])
def test_unusual_command_lines_are_left_to_argparse(argv: list[str]) -> None:
    assert check(argv) is None


def test_random_command_lines_never_disagree() -> None:
    rng = random.Random(20261124)
    values = {
        "store": [
            *("30", "2.5", "-1", "0", "abc", "", "auto", "A=1", "x,y", "-", "--json", " "),
            *("--", "nan", "inf"),
        ],
        "append": ["a", "-a", "K=V", "=v", "x,y", "--"],
        "extend": ["Write", "A,B", ",", "-x"],
    }
    words = ["p", "-", "--", "-x", "--js", "--json", "--quiet", "--help", "q", "--cont"]
    accepted = 0
    for _ in range(4000):
        argv: list[str] = []
        for _ in range(rng.randint(0, 6)):
            roll = rng.random()
            if roll < 0.2:
                argv.append(rng.choice(words))
                continue
            option = rng.choice(RUN_OPTIONS)
            if not option.takes_value:
                argv.append(option.flag if rng.random() < 0.9 else f"{option.flag}=1")
                continue
            value = rng.choice(values.get(option.action, values["store"]))
            if rng.random() < 0.5:
                argv.append(f"{option.flag}={value}")
            else:
                argv += [option.flag, value]
        if rng.random() < 0.7:
            argv.insert(rng.randint(0, len(argv)), rng.choice(["hello", "-", "", "two words"]))
        if check(argv) is not None:
            accepted += 1
    # Both outcomes occur, so the agreement above was tested on both sides.
    assert 300 < accepted < 3700, accepted


def test_run_options_are_the_same_from_both_readings(tmp_path: Any) -> None:
    schema = tmp_path / "schema.json"
    schema.write_text('{"type": "object"}')
    argv = ["p", "--json-schema", str(schema), "--env", "A=1", "--timeout", "9", "--json"]
    quick = quick_parse(argv)
    assert quick is not None
    from_argparse = argparse_values(argv)
    assert from_argparse is not None
    assert run_options(quick) == run_options(from_argparse)
    assert run_options(quick)["json_schema"] == {"type": "object"}
    assert "json" not in run_options(quick)
    with pytest.raises(ValueError, match="--json-schema is not valid JSON"):
        run_options({**quick, "json_schema": "{not json"})
