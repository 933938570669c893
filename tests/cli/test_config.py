"""The config file on the command line: ``--config FILE`` / ``--no-config``, its
``[defaults]`` under the flags of ``run`` (both readings of the command line: the console's
quick one and argparse), its ``[reserve_usd]`` under ``--reserve-usd``, a bad file refused
in one line with exit 2, and doctor's ``config`` check."""

from __future__ import annotations

import contextlib
import io
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor import UserConfig
from cc_executor._cli import _COMMANDS, build_parser
from cc_executor._cli._args import RUN_OPTIONS, config_seed, quick_parse, run_options
from cc_executor._cli._doctor_checks import _Failed, check_config
from cc_executor._cli._fleet import _budget_settings

CLI = str(Path(sys.executable).parent / "cc-executor")


def cc(*args: str, cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env={**os.environ, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def both_readings(argv: list[str], defaults: dict[str, Any]) -> dict[str, Any]:
    """``run ARGV``'s start_run options under ``defaults`` as the console reads them
    quickly and as argparse reads them (with the file's values as the parser's defaults,
    as ``main`` sets them): asserted equal."""
    parser = build_parser("run")
    commands = next(a for a in parser._actions if a.dest == "command")
    assert isinstance(commands.choices, dict)
    run_parser = commands.choices["run"]
    run_parser.set_defaults(**config_seed(defaults))
    with contextlib.redirect_stderr(io.StringIO()):
        ns = parser.parse_args(["run", *argv])
    from_argparse = {o.dest: getattr(ns, o.dest) for o in RUN_OPTIONS}
    quick = quick_parse(argv, defaults)
    assert quick is not None
    assert {k: v for k, v in quick.items() if k != "prompt"} == from_argparse
    options = run_options(quick, defaults)
    assert run_options(from_argparse, defaults) == options
    return options


def test_flags_win_over_the_file_in_both_readings(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(
        "[defaults]\nmodel = 'sonnet'\nmax_turns = 3\ntimeout = 600\njson_mode = true\n"
        "allowed_tools = ['Read']\nadd_dirs = ['shared']\nenv = {A = '1', B = '2'}\n"
    )
    defaults = UserConfig.load(path).defaults
    plain = both_readings(["p"], defaults)
    assert (plain["model"], plain["max_turns"], plain["timeout"]) == ("sonnet", 3, 600)
    assert plain["json_mode"] is True
    assert plain["allowed_tools"] == ["Read"]
    assert plain["add_dirs"] == [str(tmp_path / "shared")]
    assert plain["env"] == {"A": "1", "B": "2"}
    given = both_readings(
        ["p", "--max-turns", "9", "--timeout", "auto", "--allowed-tools", "Edit,Bash",
         "--env", "B=x"],
        defaults,
    )  # fmt: skip
    assert (given["model"], given["max_turns"], given["timeout"]) == ("sonnet", 9, "auto")
    # A list given on the command line replaces the file's; env is merged, the flag's wins.
    assert given["allowed_tools"] == ["Edit", "Bash"]
    assert given["env"] == {"A": "1", "B": "x"}
    # Without a file, nothing changes.
    assert both_readings(["p"], {})["max_turns"] is None


def test_a_bad_file_is_one_line_and_exit_2_before_anything_runs(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults]\nfleet = 'redis://elsewhere:6379/0'\n")
    said = (
        f"cc-executor: {bad}:2: [defaults] fleet: not allowed here: a run is sent to a fleet "
        "only by --fleet on the command line (or fleet= in the API), never by the config "
        "file\n"
    )
    for args in (
        ["--config", str(bad), "run", "hello"],
        [f"--config={bad}", "tasks", "run", "missing.md"],
        ["worker", "--fleet", "redis://localhost:1/0"],
    ):
        done = cc(*args, CC_EXECUTOR_CONFIG=str(bad))
        assert (done.returncode, done.stdout, done.stderr) == (2, "", said), args
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[defaults]\nmax_turns = 'ten'\n")
    done = cc("run", "hello", CC_EXECUTOR_HOME=str(home))
    assert done.returncode == 2
    assert done.stderr == (
        f"cc-executor: {home / 'config.toml'}:2: [defaults] max_turns: must be an integer, "
        "got 'ten'\n"
    )
    missing = cc("--config", "nope.toml", "run", "hello", cwd=tmp_path)
    assert missing.returncode == 2
    assert missing.stderr == f"cc-executor: {tmp_path / 'nope.toml'}: no such config file\n"
    assert cc("--config").stderr == "cc-executor: --config: expected --config FILE or --no-config\n"
    # --no-config reads nothing: the run goes on to its own checks (here: a bad --grace).
    ignored = cc("--no-config", "run", "hello", "--grace", "-1", CC_EXECUTOR_HOME=str(home))
    assert ignored.returncode == 2
    assert "config" not in ignored.stderr
    assert "--grace" in ignored.stderr


def test_commands_that_do_not_read_it_are_not_stopped_by_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("not toml")
    done = cc("--config", str(bad), "history", "--json")
    assert done.returncode == 0, done.stderr
    assert set(_COMMANDS) >= {"run", "tasks", "worker", "doctor"}


def test_the_worker_reserves_the_files_amounts_under_its_flags() -> None:
    parsed = build_parser("worker").parse_args(
        ["worker", "--budget-usd", "5", "--reserve-usd", "opus=1"]
    )
    parsed.config = UserConfig("c.toml", reserve_usd={"*": 0.5, "opus": 2.0})
    assert _budget_settings(parsed).reserve == {"*": 0.5, "opus": 1.0}


def test_doctor_shows_the_file_in_use_and_whether_it_parsed(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    assert check_config(str(path), False) == (
        f"no config file ({path} does not exist): built-in defaults apply"
    )
    assert check_config(os.devnull, True).startswith("no config file read (--no-config")
    path.write_text("[reserve_usd]\n'*' = 0.5\nopus = 2\n[defaults]\nmodel = 'opus'\n")
    assert check_config(str(path), False) == (
        f"{path} parsed: [reserve_usd] *=0.5, opus=2; [defaults] model"
    )
    path.write_text("")
    assert check_config(str(path), True) == f"{path} parsed (empty)"
    path.write_text("[defaults]\ncolour = 3\n")
    with pytest.raises(_Failed) as failed:
        check_config(str(path), False)
    assert str(failed.value) == f"{path}:2: [defaults] colour: unknown run option"
    assert "--no-config" in failed.value.hint
