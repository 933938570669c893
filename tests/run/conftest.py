"""Fixtures: the real Claude Code CLI against a scripted model server, in throwaway folders."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import ModelServer, Script
from tests._means import claude_path, uses_cli


@dataclass
class Bed:
    """A started model server and the options that point a run at it."""

    server: ModelServer
    workdir: Path
    home: Path
    claude: str

    def options(self, **extra: Any) -> dict[str, Any]:
        env = self.server.claude_env(home=self.home, max_retries=0)
        env.update(extra.pop("env", {}))
        return {
            "cwd": self.workdir,
            "env": env,
            "claude_path": self.claude,
            "heartbeat_s": 0,
            "retry_initial_delay": 0.1,
            **extra,
        }


BedFactory = Callable[[Script], Any]


@pytest.fixture
@uses_cli
def bed(tmp_path: Path) -> Callable[[Script], Any]:
    """``async with bed(script) as b:`` starts a ModelServer playing ``script``."""
    claude = claude_path()
    assert claude is not None  # the cli marker's probe skipped the test otherwise

    @asynccontextmanager
    async def start(script: Script) -> AsyncIterator[Bed]:
        workdir = tmp_path / "work"
        home = tmp_path / "home"
        workdir.mkdir(exist_ok=True)
        home.mkdir(exist_ok=True)
        async with ModelServer(script) as server:
            yield Bed(server, workdir, home, claude)

    return start
