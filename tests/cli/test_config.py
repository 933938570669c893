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
from cc_executor._cli import build_parser
from cc_executor._cli import main as cli_main
from cc_executor._cli._args import RUN_OPTIONS, config_seed, quick_parse, run_options
from cc_executor._cli._doctor_checks import _Failed, check_config
from cc_executor._cli._fleet import _budget_settings
from cc_executor._run._config import CONFIG_ENV

CLI = str(Path(sys.executable).parent / "cc-executor")


def cc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        env={**os.environ, **env},
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


def main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    """``cc-executor ARGS`` in this process (exit code, stderr); a subprocess per case
    would cost the fast tier a second each."""
    code = cli_main(list(args))
    return code, capsys.readouterr().err


def test_a_bad_file_is_one_line_and_exit_2_before_anything_runs(
    tmp_path: Path,
    cc_home: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(CONFIG_ENV, os.devnull)  # restored after the test: main() sets it
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
        ["--config", str(bad), "worker", "--fleet", "redis://localhost:1/0"],
    ):
        assert main(capsys, *args) == (2, said), args
    # The file in the data folder, found without being named.
    monkeypatch.delenv(CONFIG_ENV)
    cc_home.mkdir()
    (cc_home / "config.toml").write_text("[defaults]\nmax_turns = 'ten'\n")
    assert main(capsys, "run", "hello") == (
        2,
        f"cc-executor: {cc_home / 'config.toml'}:2: [defaults] max_turns: must be an "
        "integer, got 'ten'\n",
    )
    monkeypatch.chdir(tmp_path)
    assert main(capsys, "--config", "nope.toml", "run", "hello") == (
        2,
        f"cc-executor: {tmp_path / 'nope.toml'}: no such config file\n",
    )
    assert main(capsys, "--config") == (
        2,
        "cc-executor: --config: expected --config FILE or --no-config\n",
    )
    # --no-config reads nothing: the command goes on to its own checks.
    code, err = main(capsys, "--no-config", "tasks", "run", "missing.md")
    assert code == 2
    assert "config" not in err
    assert "missing.md" in err
    # Commands that do not read it are not stopped by it.
    code, err = main(capsys, "--config", str(bad), "history", "--json")
    assert (code, err) == (0, "")
    code, err = main(capsys, "--config", str(bad), "tasks", "show", "01NOSUCHLIST")
    assert "config" not in err
    # After the command, --config is the command's unknown flag, never silently ignored.
    monkeypatch.setenv(CONFIG_ENV, os.devnull)
    with pytest.raises(SystemExit) as stopped:
        cli_main(["run", "hello", "--config", str(bad)])
    assert stopped.value.code == 2
    assert "unrecognized arguments: --config" in capsys.readouterr().err


def test_the_console_script_says_the_same(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[colour]\n")
    done = cc("run", "hello", CC_EXECUTOR_CONFIG=str(bad))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (
        f"cc-executor: {bad}:1: [colour]: unknown section (known: [reserve_usd], [defaults])\n"
    )


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
