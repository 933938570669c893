"""Command-line arguments read by the parsers: bad values are usage errors, one line each."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._cli import build_parser


@pytest.mark.parametrize("limit", ["-3", "0", "many"])
def test_history_limit_must_be_a_whole_number_of_at_least_one(
    limit: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # --limit -3 used to list every run, as if no limit had been given.
    with pytest.raises(SystemExit) as exited:
        build_parser("history").parse_args(["history", "--limit", limit])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "argument --limit:" in line


def test_a_flag_after_double_dash_is_not_offered_as_its_own_correction(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # It said "unrecognized arguments: --quiet (did you mean --quiet?)".
    from cc_executor._cli import main

    with pytest.raises(SystemExit) as exited:
        main(["tasks", "run", "--", "list.md", "--quiet"])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "unrecognized arguments: --quiet (after --, --quiet is not an option: put it " in line


def test_show_says_that_a_short_prefix_is_not_looked_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # "no run '01m9' in the history", with runs starting 01m9 right there.
    from cc_executor._cli import main

    assert main(["show", "01m9"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.endswith("(an id prefix needs 6 characters or more)")


def test_tasks_run_json_prints_one_object_for_a_list_that_never_started(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # "--json: print exactly one JSON result object": a bad list printed nothing on stdout.
    from cc_executor._cli import main

    missing = tmp_path / "missing.yaml"
    assert main(["tasks", "run", str(missing), "--json"]) == 2
    printed = capsys.readouterr()
    assert json.loads(printed.out) == {
        "schema_version": 1,
        "status": "usage_error",
        "error": f"{missing}: cannot read: No such file or directory",
        "exit_code": 2,
        "run_id": None,
    }
    assert printed.err == f"{missing}: cannot read: No such file or directory\n"


def test_tasks_show_json_prints_one_object_for_an_unknown_list(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cc_executor._cli import main

    assert main(["tasks", "show", "nope", "--json"]) == 2
    printed = json.loads(capsys.readouterr().out)
    assert (printed["status"], printed["exit_code"]) == ("usage_error", 2)
    assert printed["error"].startswith("no task list run 'nope'")


@pytest.mark.parametrize(
    "command",
    [
        ["history"],
        ["show", "01abcdefgh"],
        ["verify"],
        ["export"],
        ["prune", "--older-than", "1d", "--dry-run"],
    ],
)
def test_a_data_folder_that_is_a_file_is_one_line_and_exit_2(
    command: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # history said "no runs recorded yet" and exited 0: the runs were elsewhere. (run and
    # exec keep their output in a temporary folder then, with warnings: tests/cli/test_run.py.)
    from cc_executor._cli import main

    home = tmp_path / "home"
    home.write_text("not a folder")
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(home))
    assert main(command) == 2
    printed = capsys.readouterr()
    assert printed.out == ""
    [line] = printed.err.strip().splitlines()
    assert line == (
        f"cc-executor: CC_EXECUTOR_HOME={home} cannot be the data folder (it is a file, not "
        "a folder); point it at a folder, or unset it"
    )
    assert home.read_text() == "not a folder"


def test_history_refuses_an_agent_no_run_can_have(capsys: pytest.CaptureFixture[str]) -> None:
    # `history --agent foo` said "no runs match", as if foo were an agent without runs.
    with pytest.raises(SystemExit) as exited:
        build_parser("history").parse_args(["history", "--agent", "claud"])
    assert exited.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "argument --agent: invalid choice: 'claud' (choose from 'claude', 'codex'," in line


def test_fork_session_without_a_session_names_the_flags() -> None:
    # It said "--fork-session needs resume or --continue": resume is a flag too. The
    # console in a process of its own: `run` makes its process a child subreaper.
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cc-executor"), "run", "hi", "--fork-session"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert "error: --resume or --continue must be given with --fork-session" in line
