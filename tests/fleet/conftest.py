"""Fixtures: a private Redis on a unix socket (no TCP), and fleet workers as separate
processes (each a "machine": its own HOME and CC_EXECUTOR_HOME) running the real Claude
Code CLI against the scripted model server."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

from cc_executor.testing import ModelServer, Script
from tests._means import claude_path, starts_server, uses_cli
from tests._wait import wait_for


@dataclass
class RedisServer:
    """A started ``redis-server``: its socket, its fleet URL and its process."""

    socket: Path
    proc: subprocess.Popen[bytes]
    argv: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"unix://{self.socket}"

    def client(self) -> redis.Redis:
        return redis.Redis(unix_socket_path=str(self.socket))

    def kill(self) -> None:
        """SIGKILL the server (a crash: no shutdown, no final save)."""
        self.proc.kill()
        self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def start(self) -> None:
        """Start the server again, on the same socket and folder (its AOF, if any)."""
        self.proc = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        wait_for(lambda: _ping(self), what="redis-server answers PING")


def _ping(server: RedisServer) -> bool:
    if server.proc.poll() is not None:
        raise AssertionError(f"redis-server exited with {server.proc.returncode}")
    try:
        return bool(server.client().ping())
    except redis.RedisError:
        return False


@pytest.fixture
@starts_server
def redis_server(request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """A ``redis-server`` of the test's own: a unix socket in a private folder (short: a
    socket path has at most 107 bytes), ``--port 0`` (no TCP), no persistence; with
    ``indirect`` parameter ``"appendonly"``, AOF persistence (it survives a SIGKILL)."""
    appendonly = getattr(request, "param", None) == "appendonly"
    executable = shutil.which("redis-server")
    assert executable is not None  # the redis marker's probe skipped the test otherwise
    folder = Path(tempfile.mkdtemp(prefix="ccx-redis-"))
    sock = folder / "redis.sock"
    argv = [
        executable,
        "--port", "0",
        "--unixsocket", str(sock),
        "--unixsocketperm", "700",
        "--dir", str(folder),
        "--save", "",
        "--appendonly", "yes" if appendonly else "no",
        "--daemonize", "no",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = RedisServer(sock, proc, argv)
    try:
        wait_for(lambda: _ping(server), what="redis-server answers PING")
        yield server
    finally:
        proc = server.proc
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        shutil.rmtree(folder, ignore_errors=True)


CLI = str(Path(sys.executable).parent / "cc-executor")


@dataclass
class Worker:
    """A ``cc-executor worker`` in a subprocess, a "machine" with its own ``HOME`` and
    ``CC_EXECUTOR_HOME``; its log (stderr) goes to a file."""

    name: str
    data: Path
    env: dict[str, str]
    proc: subprocess.Popen[str]
    log: Path

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def cc(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``cc-executor ARGS`` on this worker's machine (its history)."""
        return subprocess.run(
            [CLI, *args], env=self.env, capture_output=True, text=True, timeout=120, check=False
        )


@dataclass
class FleetBed:
    """A private Redis, a scripted model server, a shared work folder and the workers."""

    redis: RedisServer
    server: ModelServer
    workdir: Path
    root: Path
    claude: str
    workers: list[Worker] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.redis.url

    def start_worker(
        self,
        *flags: str,
        allow_dir: Path | None = None,
        env: dict[str, str] | None = None,
        max_retries: int = 0,
    ) -> Worker:
        """A worker started with ``flags``; ``env`` is added to its environment;
        ``max_retries`` is the CLI's retries in the worker's own environment (what a fleet
        run's CLI sees must not depend on it)."""
        name = f"w{len(self.workers) + 1}"
        machine = self.root / name
        home, data = machine / "home", machine / "cc-home"
        home.mkdir(parents=True)
        data.mkdir()
        extra = env or {}
        env = self.server.claude_env(home=home, base=os.environ, max_retries=max_retries)
        env.update(
            CC_EXECUTOR_HOME=str(data), CC_EXECUTOR_CLAUDE=self.claude, CC_EXECUTOR_FLEET=self.url
        )
        env.update(extra)
        log = machine / "worker.log"
        argv = [CLI, "worker", "--allow-dir", str(allow_dir or self.workdir), *flags]
        with open(log, "wb") as err:
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=machine
            )
        worker = Worker(name, data, env, proc, log)
        self.workers.append(worker)
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        line = proc.stdout.readline() if ready else ""
        assert "ready" in line, f"worker did not start: {line!r} {log.read_text()}"
        return worker


@pytest.fixture
@uses_cli
def fleet_bed(redis_server: RedisServer, tmp_path: Path) -> Iterator[Any]:
    """``async with fleet_bed(script) as bed:``: a model server playing ``script``; start
    workers with ``bed.start_worker(...)``; all are stopped at the end."""
    claude = claude_path()
    assert claude is not None
    beds: list[FleetBed] = []

    @asynccontextmanager
    async def begin(script: Script) -> AsyncIterator[FleetBed]:
        workdir = tmp_path / "shared"
        workdir.mkdir(exist_ok=True)
        async with ModelServer(script) as server:
            bed = FleetBed(redis_server, server, workdir, tmp_path, claude)
            beds.append(bed)
            try:
                yield bed
            finally:
                for worker in bed.workers:
                    await asyncio.to_thread(worker.stop)

    yield begin
    for bed in beds:
        for worker in bed.workers:
            worker.stop(signal.SIGKILL)


@pytest.fixture
@uses_cli
def fleet_bed_sync(redis_server: RedisServer, tmp_path: Path) -> Iterator[Any]:
    """``with fleet_bed_sync(script) as bed:``, :func:`fleet_bed` for a test that runs no
    event loop (sync Playwright refuses to run inside one)."""
    claude = claude_path()
    assert claude is not None
    beds: list[FleetBed] = []

    @contextmanager
    def begin(script: Script) -> Iterator[FleetBed]:
        workdir = tmp_path / "shared"
        workdir.mkdir(exist_ok=True)
        with ModelServer(script) as server:
            bed = FleetBed(redis_server, server, workdir, tmp_path, claude)
            beds.append(bed)
            try:
                yield bed
            finally:
                for worker in bed.workers:
                    worker.stop()

    yield begin
    for bed in beds:
        for worker in bed.workers:
            worker.stop(signal.SIGKILL)
