"""Fixtures: the real Claude Code CLI (and the real `cc-executor` console script) against a
scripted model server, in throwaway folders."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import ModelServer, Script
from tests._means import claude_path, uses_cli

CLI = str(Path(sys.executable).parent / "cc-executor")


@dataclass
class Served:
    """A started model server, a work folder, and ways to point runs at the server."""

    server: ModelServer
    work: Path
    home: Path
    claude: str

    def options(self, **extra: Any) -> dict[str, Any]:
        """Run options for the Python API (``run_tasks(..., **served.options())``)."""
        return {
            "cwd": self.work,
            "env": self.server.claude_env(home=self.home, max_retries=0),
            "claude_path": self.claude,
            "heartbeat_s": 0,
            "retry_initial_delay": 0.1,
            **extra,
        }

    @property
    def env(self) -> dict[str, str]:
        """A complete environment for the console script (CC_EXECUTOR_HOME included)."""
        env = self.server.claude_env(home=self.home, base=os.environ, max_retries=0)
        env["CC_EXECUTOR_CLAUDE"] = self.claude
        return env

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """``cc-executor ARGS`` in the work folder."""
        return subprocess.run(
            [CLI, *args],
            cwd=self.work,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def popen(self, *args: str, **kwargs: Any) -> subprocess.Popen[str]:
        """``cc-executor ARGS`` started in the background, stderr piped."""
        return subprocess.Popen(
            [CLI, *args],
            cwd=self.work,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            **kwargs,
        )

    def prompts(self) -> list[str]:
        """The prompt (first user message) of every Messages request, in order."""
        return [r.prompt for r in self.server.message_requests if r.prompt is not None]

    def count(self, start: str) -> int:
        """How many Messages requests carried a prompt starting with ``start``."""
        return sum(1 for p in self.prompts() if p.startswith(start))


@pytest.fixture
@uses_cli
def serve(tmp_path: Path) -> Iterator[Callable[[Script], Served]]:
    """``serve(script)`` starts a ModelServer playing ``script`` (stopped after the test)."""
    claude = claude_path()
    assert claude is not None  # the cli marker's probe skipped the test otherwise
    with contextlib.ExitStack() as stack:

        def start(script: Script) -> Served:
            work = tmp_path / "work"
            home = tmp_path / "home"
            work.mkdir(exist_ok=True)
            home.mkdir(exist_ok=True)
            server = stack.enter_context(ModelServer(script))
            return Served(server, work, home, claude)

        yield start
