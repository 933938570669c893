"""Fleet recovery: a worker SIGKILLed mid-run -> the run resumed on another worker.

A private Redis on a unix socket, two ``cc-executor worker`` processes (each its own HOME and
CC_EXECUTOR_HOME, as in tests/fleet), the real Claude Code CLI against the scripted model
server. Each repetition submits a run whose tool call blocks until killed, waits until the
run's session transcript (tool call included) was shipped, SIGKILLs the worker holding the
run's lease, and measures on the submitter:

- recovery: SIGKILL -> the next attempt's ``run_started`` (the run resumed elsewhere);
- to the answer: SIGKILL -> the final result (the resumed session's answer);
- the floor: the ``--heartbeat-timeout`` itself (a lost worker is one that stopped renewing
  for that long), and, as a baseline in the same run, a fresh fleet run's submit ->
  ``run_started`` on an idle worker. ``recovery - timeout - baseline`` is the detection and
  re-queueing overhead.

A new worker replaces the killed one after each repetition. Target (issue 20): median
recovery under 15 s with the default timeout (10 s).

    .venv/bin/python benchmarks/bench_fleet_recovery.py [--reps N] [--timeouts 10,3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from cc_executor import start_run
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text, ToolUse

CLI = str(Path(sys.executable).parent / "cc-executor")
NEEDLE = "tail -f /dev/null"
SCRIPT = Script(
    [
        Rule(
            match="recover me",
            answers=[
                Reply([ToolUse("Bash", {"command": NEEDLE})]),
                Reply([Text("restarted")]),
                Reply([Text("resumed")]),
            ],
        ),
        Rule(answers=[Reply([Text("fresh")])]),
    ]
)


def claude() -> str:
    given = os.environ.get("CC_EXECUTOR_CLAUDE")
    if given:
        return given
    out = subprocess.run(
        [str(Path(__file__).resolve().parent.parent / "scripts" / "install-claude-code")],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip().splitlines()[-1]


class Bed:
    def __init__(self, root: Path, server: ModelServer, timeout: float) -> None:
        self.root, self.server, self.timeout = root, server, timeout
        self.sock = root / "redis.sock"
        self.redis = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", "0", "--unixsocket",
             str(self.sock), "--unixsocketperm", "700", "--dir", str(root), "--save", "",
             "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        self.client = redis.Redis(unix_socket_path=str(self.sock))
        while True:
            try:
                self.client.ping()
                break
            except redis.RedisError:
                time.sleep(0.02)
        self.workdir = root / "shared"
        self.workdir.mkdir()
        self.workers: dict[int, subprocess.Popen[str]] = {}
        self.count = 0
        self.claude = claude()

    @property
    def url(self) -> str:
        return f"unix://{self.sock}"

    def start_worker(self) -> None:
        self.count += 1
        machine = self.root / f"w{self.count}"
        home, data = machine / "home", machine / "cc-home"
        home.mkdir(parents=True)
        data.mkdir()
        env = self.server.claude_env(home=home, base=os.environ, max_retries=0)
        env.update(CC_EXECUTOR_HOME=str(data), CC_EXECUTOR_CLAUDE=self.claude)
        argv = [CLI, "worker", "--fleet", self.url, "--allow-dir", str(self.workdir),
                "--heartbeat-timeout", f"{self.timeout:g}"]  # fmt: skip
        with open(machine / "worker.log", "wb") as err:
            proc = subprocess.Popen(
                argv, env=env, stdout=subprocess.PIPE, stderr=err, text=True, cwd=machine
            )
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        if not ready or "ready" not in proc.stdout.readline():
            raise RuntimeError(f"a worker did not start: {machine / 'worker.log'}")
        self.workers[proc.pid] = proc

    def close(self) -> None:
        for proc in self.workers.values():
            proc.kill()
            proc.wait()
        self.redis.terminate()
        self.redis.wait()


async def until(predicate, what: str, limit: float = 300) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + limit
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"not reached: {what}")
        await asyncio.sleep(0.01)


async def baseline(bed: Bed) -> float:
    began = time.monotonic()
    seen: list[float] = []

    def on_event(event: object) -> None:
        if getattr(event, "type", "") == "run_started" and not seen:
            seen.append(time.monotonic())

    result = await start_run("fresh", fleet=bed.url, cwd=str(bed.workdir), on_event=on_event).wait()
    assert result.ok, result.error
    return seen[0] - began


async def one(bed: Bed) -> tuple[float, float]:
    starts: list[float] = []

    def on_event(event: object) -> None:
        if getattr(event, "type", "") == "run_started":
            starts.append(time.monotonic())

    handle = start_run(
        "recover me",
        fleet=bed.url,
        cwd=str(bed.workdir),
        allowed_tools=["Bash"],
        on_event=on_event,
    )
    key = f"cc-executor:transcript:{handle.run_id}"
    await until(lambda: b"tool_use" in (bed.client.get(key) or b""), "the transcript shipped")
    lease: Any = bed.client.get(f"cc-executor:lease:{handle.run_id}")
    owner = bytes(lease).decode().split(" ")[0]
    pid = int(owner.rpartition("-")[2])
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)
    bed.workers.pop(pid).wait()
    await until(lambda: len(starts) >= 2, "the next attempt started")
    recovered = starts[1] - killed
    result = await handle.wait()
    answered = time.monotonic() - killed
    if not result.ok or result.result != "resumed":
        raise RuntimeError(f"not resumed: {result.status} {result.error} {result.result!r}")
    bed.start_worker()
    return recovered, answered


async def measure(timeout: float, reps: int) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="ccx-bfr-"))
    async with ModelServer(SCRIPT) as server:
        bed = Bed(root, server, timeout)
        try:
            bed.start_worker()
            bed.start_worker()
            await baseline(bed)  # warm-up
            base = [await baseline(bed) for _ in range(reps)]
            recovered, answered = [], []
            for _ in range(reps):
                r, a = await one(bed)
                recovered.append(r)
                answered.append(a)
        finally:
            bed.close()
            shutil.rmtree(root, ignore_errors=True)
    return {
        "timeout": timeout,
        "baseline": statistics.median(base),
        "recovery": statistics.median(recovered),
        "recovery_max": max(recovered),
        "answer": statistics.median(answered),
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--timeouts", default="10,3", help="heartbeat timeouts (s), commas")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"machine: {platform.platform()}, {os.cpu_count()} CPUs, load {load[0]:.1f}")
    print(
        f"{'timeout':>8} {'baseline':>9} {'recovery':>9} {'max':>7} {'answer':>7} {'overhead':>9}"
    )
    for timeout in (float(t) for t in args.timeouts.split(",")):
        m = await measure(timeout, args.reps)
        overhead = m["recovery"] - m["timeout"] - m["baseline"]
        print(
            f"{m['timeout']:>7g}s {m['baseline']:>8.2f}s {m['recovery']:>8.2f}s "
            f"{m['recovery_max']:>6.2f}s {m['answer']:>6.2f}s {overhead:>8.2f}s"
        )
    print(f"load after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
