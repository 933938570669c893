"""Shared fixtures: every test gets its own cc-executor home, so nothing touches ~/.local."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def cc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "cc-home"
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(home))
    return home
