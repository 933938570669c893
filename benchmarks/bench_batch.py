"""Batch benchmark (issue 17 §9): run_many against a baseline measured in the same run.

    .venv/bin/python benchmarks/bench_batch.py [--docs 24] [--concurrency 4] [--rounds 5]

The real Claude Code CLI against the scripted model server (a short answer), the history
on. Each round runs ``--docs`` prompts at ``--concurrency`` twice, in alternating order:
``asyncio.gather`` of ``cc_executor.run()`` under a semaphore (the baseline: what a
pipeline author writes by hand) and ``run_many`` with an ``on_progress`` callback (its
bookkeeping: keys, batch columns, the reuse lookup, an event per run event). The figures are
the medians per round of the wall time and of this process's own CPU time, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CACHE = Path(os.environ.get("CC_EXECUTOR_CACHE", Path.home() / ".cache" / "cc-executor"))


def claude_path() -> str:
    configured = os.environ.get("CC_EXECUTOR_CLAUDE")
    if configured:
        return configured
    found = sorted((CACHE / "claude-code").glob("*/bin/claude"))
    if not found:
        sys.exit("Claude Code CLI not installed: run scripts/install-claude-code")
    return str(found[-1])


async def measure(docs: int, concurrency: int, rounds: int) -> None:
    from cc_executor import BatchEvent, run, run_many
    from cc_executor.testing import ModelServer, Reply, Rule, Script, Text

    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    os.environ["CC_EXECUTOR_HOME"] = str(folder / "cc-home")
    (folder / "work").mkdir()
    (folder / "home").mkdir()
    script = Script([Rule(answers=[Reply([Text("done " * 50)])])])
    async with ModelServer(script) as server:
        options: dict[str, Any] = {
            "cwd": folder / "work",
            "env": server.claude_env(home=folder / "home", max_retries=0),
            "claude_path": claude_path(),
            "heartbeat_s": 0,
            "timeout": 120,
        }
        prompts = [f"Document {i}" for i in range(docs)]

        async def baseline() -> None:
            slots = asyncio.Semaphore(concurrency)

            async def one(prompt: str) -> None:
                async with slots:
                    result = await run(prompt, **options)
                    assert result.ok, result.error

            await asyncio.gather(*(one(p) for p in prompts))

        async def batch(n: int) -> None:
            seen: list[BatchEvent] = []
            result = await run_many(
                prompts,
                concurrency=concurrency,
                batch_id=f"bench-{n}",
                on_progress=seen.append,
                **options,
            )
            assert result.ok, result.counts()

        walls: dict[str, list[float]] = {"baseline": [], "run_many": []}
        cpus: dict[str, list[float]] = {"baseline": [], "run_many": []}
        for n in range(rounds):
            order = ("baseline", "run_many") if n % 2 == 0 else ("run_many", "baseline")
            for name in order:
                wall, cpu = time.monotonic(), time.process_time()
                await (baseline() if name == "baseline" else batch(n))
                walls[name].append(time.monotonic() - wall)
                cpus[name].append(time.process_time() - cpu)
    print(f"{docs} documents at concurrency {concurrency}, {rounds} rounds, {platform.node()}")
    for name in ("baseline", "run_many"):
        print(
            f"  {name:<9} wall median {statistics.median(walls[name]):7.2f} s "
            f"(min {min(walls[name]):.2f}, max {max(walls[name]):.2f}); "
            f"own CPU median {statistics.median(cpus[name]):.3f} s"
        )
    wall_ratio = statistics.median(walls["run_many"]) / statistics.median(walls["baseline"])
    cpu_ratio = statistics.median(cpus["run_many"]) / statistics.median(cpus["baseline"])
    print(f"  run_many / baseline: wall x{wall_ratio:.3f}, own CPU x{cpu_ratio:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=24, help="prompts per batch")
    parser.add_argument("--concurrency", type=int, default=4, help="runs at once")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of both")
    args = parser.parse_args()
    asyncio.run(measure(args.docs, args.concurrency, args.rounds))


if __name__ == "__main__":
    main()
