"""Fixtures: the real ``cc-executor serve`` (and ``mcp``) in a subprocess on 127.0.0.1, real
clients, and the real Claude Code CLI against the scripted model server."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from cc_executor.testing import ModelServer, Script
from tests._means import claude_path, cli_test, starts_server, uses_cli

CLI = str(Path(sys.executable).parent / "cc-executor")


@dataclass
class Service:
    """A started server: where it listens, its token, its data dir and work root."""

    url: str
    token: str | None
    home: Path
    root: Path
    proc: subprocess.Popen[str]
    stderr: list[str] = field(default_factory=list)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http://", "ws://") + "/ws"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    def client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self.headers(), timeout=30, **kwargs)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()


def read_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """The next line of the server's stdout (fails after ``timeout`` s or if it died)."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("the server printed nothing in time")
    line = proc.stdout.readline()
    if not line:
        err = proc.stderr.read() if proc.stderr else ""
        raise AssertionError(f"the server exited: {proc.wait()} {err}")
    return line


def launch(
    home: Path,
    root: Path,
    *args: str,
    command: str = "serve",
    token: bool = True,
    env: dict[str, str] | None = None,
) -> Service:
    """Start ``cc-executor serve`` (or ``mcp --transport http``) on a free port, with
    ``env`` added to its environment. Given ``--agent``, ``args`` set the agents' paths."""
    argv = [CLI, command, "--port", "0", "--allow-dir", str(root), *args]
    if cli_test() and "--claude" not in args and "--agent" not in args:
        argv += ["--claude", str(claude_path())]
    if cli_test():
        # The scripted model server's environment names the CLI's endpoint, home and config.
        for name in ("ANTHROPIC_BASE_URL", "HOME", "CLAUDE_CONFIG_DIR"):
            argv += ["--allow-env", name]
    environ = {**os.environ, **(env or {}), "CC_EXECUTOR_HOME": str(home)}
    proc = subprocess.Popen(
        argv, env=environ, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    line = read_line(proc)
    url = line.rsplit(" ", 1)[-1].strip().removesuffix("/mcp")
    secret = (home / "service-token").read_text().strip() if token else None
    return Service(url=url, token=secret, home=home, root=root, proc=proc)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    return work


@pytest.fixture
@starts_server
def start(cc_home: Path, root: Path) -> Iterator[Callable[..., Service]]:
    """``start(*flags)`` starts a server; all are stopped at the end of the test."""
    started: list[Service] = []

    def run(*args: str, **kwargs: Any) -> Service:
        service = launch(cc_home, root, *args, **kwargs)
        started.append(service)
        return service

    yield run
    for service in started:
        service.stop()


@pytest.fixture
def service(start: Callable[..., Service]) -> Service:
    """A server allowing this interpreter as a command, 4 runs at once."""
    return start("--allow-exec", sys.executable)


@dataclass
class Bed:
    """A scripted model server and the remote options that point runs at it."""

    server: ModelServer
    workdir: Path
    home: Path

    def options(self, **extra: Any) -> dict[str, Any]:
        env = self.server.claude_env(home=self.home, max_retries=0)
        return {
            "cwd": str(self.workdir),
            "env": env,
            "heartbeat_s": 0,
            "retries": 0,
            **extra,
        }


@pytest.fixture
@uses_cli
def bed(root: Path, tmp_path: Path) -> Callable[[Script], Any]:
    """``async with bed(script) as b:`` starts a ModelServer playing ``script``."""

    @asynccontextmanager
    async def begin(script: Script) -> AsyncIterator[Bed]:
        home = tmp_path / "claude-home"
        home.mkdir(exist_ok=True)
        async with ModelServer(script) as server:
            yield Bed(server, root, home)

    return begin


def chatty(lines: int, delay: float = 0.0, *, stamp: bool = False) -> list[str]:
    """argv of a Python child printing ``lines`` numbered lines, ``delay`` s apart."""
    code = (
        "import sys, time\n"
        f"for i in range({lines}):\n"
        f"    print(f'line {{i}}' + (f' {{time.monotonic()}}' if {stamp} else ''), flush=True)\n"
        f"    if {delay}: time.sleep({delay})\n"
    )
    return [sys.executable, "-c", code]


async def sse_events(
    client: httpx.AsyncClient,
    run_id: str,
    *,
    last_event_id: int | None = None,
    stop_after: int | None = None,
) -> list[dict[str, Any]]:
    """Read ``/runs/{id}/events`` (from ``last_event_id``) to its end, or ``stop_after``
    events; returns the decoded events (``data`` lines)."""
    import json

    headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
    out: list[dict[str, Any]] = []
    async with client.stream("GET", f"/runs/{run_id}/events", headers=headers) as response:
        assert response.status_code == 200, await response.aread()
        assert response.headers["content-type"].startswith("text/event-stream")
        event_id: str | None = None
        async for line in response.aiter_lines():
            if line.startswith("id: "):
                event_id = line[4:]
            elif line.startswith("data: "):
                event = json.loads(line[6:])
                if event_id is not None:
                    assert int(event_id) == event["seq"]
                out.append(event)
                event_id = None
                if stop_after is not None and len(out) >= stop_after:
                    break
    return out
