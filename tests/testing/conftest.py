"""Fixtures for running the real Claude Code CLI against a ModelServer."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import ModelServer
from tests._means import claude_path, uses_cli

RUN_TIMEOUT = 60.0


@pytest.fixture(scope="session")
@uses_cli
def claude_bin() -> Path:
    """The real Claude Code CLI: $CC_EXECUTOR_CLAUDE, else the cache of install-claude-code."""
    path = claude_path()
    assert path is not None  # the cli marker's probe skipped the test otherwise
    return Path(path)


@dataclass
class ClaudeRun:
    """What one CLI run printed. ``times[i]`` is when ``lines[i]`` arrived (monotonic)."""

    returncode: int
    lines: list[dict[str, Any]]
    times: list[float]
    stderr: str
    started: float
    ended: float
    workdir: Path
    raw_stdout: list[str] = field(default_factory=list)

    @property
    def result(self) -> dict[str, Any]:
        """The final ``result`` line; fails the test if there is none or it is not last."""
        assert self.lines, f"no output at all; stderr: {self.stderr!r}"
        last = self.lines[-1]
        assert last.get("type") == "result", f"last line is not a result: {last}"
        return last

    def of_type(self, kind: str, subtype: str | None = None) -> list[dict[str, Any]]:
        return [
            line
            for line in self.lines
            if line.get("type") == kind and (subtype is None or line.get("subtype") == subtype)
        ]

    def stream_events(self, kind: str) -> list[dict[str, Any]]:
        """The raw API events (``stream_event.event``) of one type, in order."""
        return [e["event"] for e in self.of_type("stream_event") if e["event"]["type"] == kind]

    def text_deltas(self) -> list[str]:
        return [
            e["delta"]["text"]
            for e in self.stream_events("content_block_delta")
            if e["delta"]["type"] == "text_delta"
        ]


RunClaude = Callable[..., ClaudeRun]


@pytest.fixture
def run_claude(claude_bin: Path, tmp_path: Path) -> RunClaude:
    """Runs the CLI headlessly against ``server``: prompt on stdin, stream-json with partial
    messages, a throwaway HOME, and its own working directory (``workdir``). ``on_line`` sees
    each output line as it arrives, with the process (to signal it, say)."""

    def run(
        server: ModelServer,
        prompt: str,
        *args: str,
        env: dict[str, str] | None = None,
        workdir: Path | None = None,
        timeout: float = RUN_TIMEOUT,
        on_line: Callable[[dict[str, Any], subprocess.Popen[bytes]], None] | None = None,
    ) -> ClaudeRun:
        # mkdtemp, not a counter: tests may run several CLIs from threads at once.
        home = Path(tempfile.mkdtemp(prefix="home-", dir=tmp_path))
        if workdir is None:
            workdir = Path(tempfile.mkdtemp(prefix="work-", dir=tmp_path))
        stderr_path = home.with_name(home.name + ".stderr")
        argv: Sequence[str] = [
            str(claude_bin),
            "-p",
            "--output-format",
            "stream-json",
            "--verbose",
            "--include-partial-messages",
            *args,
        ]
        full_env = server.claude_env(home=home, base=os.environ, extra=env)
        lines: list[dict[str, Any]] = []
        raw: list[str] = []
        times: list[float] = []
        started = time.monotonic()
        with stderr_path.open("wb") as stderr_file:
            process = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr_file,
                env=full_env,
                cwd=workdir,
            )
            try:
                assert process.stdin is not None
                assert process.stdout is not None
                process.stdin.write(prompt.encode())
                process.stdin.close()
                # Reading line by line as they come records when each line arrived, which the
                # slow-stream test needs; the run's own timeout guards against a hung CLI.
                for line in process.stdout:
                    times.append(time.monotonic())
                    text = line.decode()
                    raw.append(text)
                    lines.append(json.loads(text))
                    if on_line is not None:
                        on_line(lines[-1], process)
                    if time.monotonic() - started > timeout:
                        break
                returncode = process.wait(timeout=max(1.0, timeout - (time.monotonic() - started)))
            finally:
                if process.poll() is None:
                    process.kill()
                    process.wait()
                    pytest.fail(f"claude did not finish within {timeout} s")
        return ClaudeRun(
            returncode=returncode,
            lines=lines,
            times=times,
            stderr=stderr_path.read_text(errors="replace"),
            started=started,
            ended=time.monotonic(),
            workdir=workdir,
            raw_stdout=raw,
        )

    return run
