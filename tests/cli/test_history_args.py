"""The history commands' arguments, read by their parsers: bad values are usage errors."""

from __future__ import annotations

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
