"""How long the caller's event loop stalls while N children start at once (issue 18).

Each start is a task of its own, as concurrent ``run()``/``exec`` calls are; a ticker task
measures the longest the loop went without turning, both in wall time and in CPU time of
the loop's thread (what the loop itself did in one pass). The baseline, in the same run:
the same N children started on the loop itself (``launch`` called from each task, the way
every start was done before the spawn moved to the engine's spawn threads).

    .venv/bin/python benchmarks/bench_loop_stall.py [--counts 1,10,50] [--reps 7]
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
from collections.abc import Awaitable, Callable
from pathlib import Path

from cc_executor._engine import SupervisedProcess
from cc_executor._engine._launch import Launched, launch

CHILD = ["sleep", "30"]


async def stall(
    n: int, start: Callable[[int], Awaitable[Callable[[], Awaitable[None]]]]
) -> tuple[float, float]:
    """(longest wall gap, longest CPU gap of the loop's thread) in seconds while ``n``
    starts run at once; ``start(i)`` starts child i and returns how to stop it."""
    walls: list[float] = []
    cpus: list[float] = []
    starting = True

    async def ticker() -> None:
        wall, cpu = time.perf_counter(), time.thread_time()
        while starting:
            await asyncio.sleep(0)
            now_wall, now_cpu = time.perf_counter(), time.thread_time()
            walls.append(now_wall - wall)
            cpus.append(now_cpu - cpu)
            wall, cpu = now_wall, now_cpu

    ticking = asyncio.ensure_future(ticker())
    await asyncio.sleep(0.01)
    walls.clear()
    cpus.clear()
    stops = await asyncio.gather(*(start(i) for i in range(n)))
    starting = False
    await ticking
    await asyncio.gather(*(stop() for stop in stops))
    return max(walls), max(cpus)


async def measure(counts: list[int], reps: int, folder: Path) -> list[dict[str, float]]:
    serial = 0

    def run_dir() -> Path:
        nonlocal serial
        serial += 1
        return folder / f"r{serial}"

    async def ours(i: int) -> Callable[[], Awaitable[None]]:
        proc = SupervisedProcess(CHILD, run_dir=run_dir())
        await proc.start()

        async def stop() -> None:
            await proc.cancel()

        return stop

    async def on_loop(i: int) -> Callable[[], Awaitable[None]]:
        path = run_dir()
        path.mkdir()
        child: Launched = launch(CHILD, cwd=str(folder), run_id=path.name, run_dir=str(path))

        async def stop() -> None:
            child.abandon()

        return stop

    rows = []
    await stall(4, ours)  # warm-up: the spawn threads and the watchdog exist from now on
    for n in counts:
        samples: dict[str, list[float]] = {k: [] for k in ("base_wall", "base_cpu", "wall", "cpu")}
        for _ in range(reps):
            wall, cpu = await stall(n, on_loop)
            samples["base_wall"].append(wall)
            samples["base_cpu"].append(cpu)
            wall, cpu = await stall(n, ours)
            samples["wall"].append(wall)
            samples["cpu"].append(cpu)
        row = {"n": float(n), **{k: statistics.median(v) for k, v in samples.items()}}
        rows.append(row)
        print(
            f"{n:>3} starts: on the loop {row['base_wall'] * 1000:7.1f} ms wall "
            f"{row['base_cpu'] * 1000:6.1f} ms CPU | ours {row['wall'] * 1000:6.1f} ms wall "
            f"{row['cpu'] * 1000:5.1f} ms CPU",
            flush=True,
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--counts", default="1,10,50")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    counts = [int(c) for c in args.counts.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["CC_EXECUTOR_HOME"] = tmp
        rows = asyncio.run(measure(counts, args.reps, Path(tmp)))
    print(f"\n{platform.machine()}, {os.cpu_count()} cores, Python {sys.version.split()[0]}")
    print(f"load average {os.getloadavg()[0]:.2f}; medians of {args.reps} repetitions\n")
    print("| concurrent starts | longest stall, spawned on the loop (before) | ours | wall ratio |")
    print("|---|---|---|---|")
    for row in rows:
        print(
            f"| {int(row['n'])} | {row['base_wall'] * 1000:.1f} ms wall, "
            f"{row['base_cpu'] * 1000:.1f} ms CPU | {row['wall'] * 1000:.1f} ms wall, "
            f"{row['cpu'] * 1000:.1f} ms CPU | {row['base_wall'] / max(row['wall'], 1e-9):.1f}x |"
        )


if __name__ == "__main__":
    main()
