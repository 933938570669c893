"""Which agent executable a run gets: never one chosen by the run's own environment's HOME
(third adversarial pass, T10: with ``--allow-env HOME`` a remote caller's HOME chose it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cc_executor._agents._claude._locate import locate_claude
from cc_executor._agents._codex._locate import locate_codex
from cc_executor._agents._gemini._locate import locate_gemini
from cc_executor._errors import AgentNotFound


@pytest.mark.parametrize(
    ("name", "locate"),
    [("gemini", locate_gemini), ("codex", locate_codex), ("claude", locate_claude)],
)
def test_the_runs_home_does_not_choose_the_executable(
    tmp_path: Path, name: str, locate: object
) -> None:
    planted = tmp_path / "home" / ".local" / "bin" / name
    planted.parent.mkdir(parents=True)
    planted.write_text("#!/bin/sh\necho planted\n")
    planted.chmod(0o755)
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {"HOME": str(tmp_path / "home"), "PATH": str(empty)}
    try:
        found = locate(None, env)  # type: ignore[operator]
    except AgentNotFound:
        return  # nothing of this process's own: fine, as long as the planted one is not taken
    assert os.path.realpath(found) != os.path.realpath(planted)
