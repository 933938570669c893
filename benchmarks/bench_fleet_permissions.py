"""The permission round trip of a fleet run against a local run's, through the real Claude
Code CLI.

    .venv/bin/python benchmarks/bench_fleet_permissions.py [--reps N] [--calls N]

A private ``redis-server`` on a unix socket and one ``cc-executor worker`` (one slot, its own
``CC_EXECUTOR_HOME``) on this machine; the model is ``cc_executor.testing.ModelServer``
playing ``--calls`` Write tool calls, each asked (``ask: Write``) of an ``on_permission``
callback that allows at once. Each repetition runs the script once locally and once on the
fleet, in a random order.

The figure is ``PermissionDecisionEvent.waited_s``, measured by the run that asks (the
worker's for a fleet run): from the ask to the decision. Locally that is the callback alone;
on the fleet it also holds the request's way to the submitter (the run's event stream) and
the answer's way back (kept in Redis, announced on the control channel). The fleet's cost
per ask is the difference of the medians; the target is the issue's < 50 ms for a round trip.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_fleet import start_redis  # noqa: E402
from bench_permissions import claude  # noqa: E402
from cc_executor import start_run  # noqa: E402
from cc_executor._agents._types import AgentEvent, PermissionDecisionEvent  # noqa: E402
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text, ToolUse  # noqa: E402

CLI = str(Path(sys.executable).parent / "cc-executor")


def start_worker(url: str, root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    home = root / "worker"
    home.mkdir()
    environ = {**env, "CC_EXECUTOR_HOME": str(home), "CC_EXECUTOR_FLEET": url}
    argv = [CLI, "worker", "--allow-dir", str(root), "--heartbeat-timeout", "30"]
    proc = subprocess.Popen(
        argv, env=environ, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if "ready" not in line:
        sys.exit(f"the worker did not start: {line!r}")
    return proc


async def one(options: dict[str, Any], fleet: str | None) -> list[float]:
    waited: list[float] = []

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, PermissionDecisionEvent):
            waited.append(event.waited_s)

    handle = start_run(
        "write", on_event=on_event, on_permission=lambda r: "allow", fleet=fleet, **options
    )
    result = await handle.wait()
    if result.status.value != "ok":
        raise SystemExit(f"a run failed: {result.status.value}: {result.error}")
    return waited


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--claude")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    exe = claude(args.claude)
    root = Path(tempfile.mkdtemp(prefix="bench-fleet-perm-"))
    work = root / "work"
    work.mkdir()
    policy = root / "policy.yaml"
    policy.write_text("rules:\n  - ask: Write\n")
    calls = [
        Reply([ToolUse("Write", {"file_path": str(work / f"f{n}.txt"), "content": "x"})])
        for n in range(args.calls)
    ]
    script = Script([Rule(answers=[*calls, Reply([Text("done")])])])
    redis, url = start_redis(root)
    rng = random.Random(args.seed)
    local: list[float] = []
    fleet: list[float] = []
    try:
        with ModelServer(script) as server:
            home = root / "home"
            env = server.claude_env(home=home, base=os.environ, max_retries=0)
            env["CC_EXECUTOR_CLAUDE"] = exe
            worker = start_worker(url, root, env)
            try:
                options = {
                    "cwd": str(work),
                    "permission_policy": str(policy),
                    "heartbeat_s": 0,
                }
                local_options = {**options, "env": server.claude_env(home=home), "record": False}
                local_options["claude_path"] = exe
                # Warm-up: page cache, bytecode, the worker's first run.
                await one(local_options, None)
                await one(options, url)
                for _ in range(args.reps):
                    order = [None, url]
                    rng.shuffle(order)
                    for where in order:
                        got = await one(local_options if where is None else options, where)
                        (fleet if where else local).extend(got)
            finally:
                worker.terminate()
                worker.wait()
    finally:
        redis.terminate()
        redis.wait()
    local_ms = statistics.median(local) * 1000
    fleet_ms = statistics.median(fleet) * 1000
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    print(f"{args.reps} repetitions x {args.calls} asked Write calls, Claude Code at {exe}")
    print(
        f"ask -> decision (waited_s), median: local {local_ms:.2f} ms, fleet {fleet_ms:.2f} ms "
        f"(p90 {sorted(fleet)[int(len(fleet) * 0.9)] * 1000:.2f} ms)"
    )
    print(f"the fleet's cost per ask: {fleet_ms - local_ms:+.2f} ms; target < 50 ms")


if __name__ == "__main__":
    asyncio.run(main())
