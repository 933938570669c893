"""What resource limits cost a run: the start of a child in a cgroup of its own.

Runs ``/bin/true`` through the engine without limits (the baseline), with the output limit
only (no cgroup), and with a process limit (a cgroup made, the gate started, the child moved
in, the group removed), interleaved in a random order per repetition; prints the medians and
the per-repetition differences against the baseline. Needs cgroups the engine can use (see
docs/limits.md); without them the cgroup row says why.

    .venv/bin/python benchmarks/bench_limits.py [--reps N]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time

from cc_executor._engine import run_process
from cc_executor._engine._cgroup import Limits, support

VARIANTS: dict[str, Limits | None] = {
    "no limits": None,
    "max_output_bytes only": Limits(max_output_bytes=1 << 20),
    "pids_max (cgroup + gate)": Limits(pids_max=100),
    "all four": Limits(memory_max=1 << 30, cpus=2, pids_max=100, max_output_bytes=1 << 20),
}


async def once(limits: Limits | None) -> float:
    started = time.perf_counter()
    result = await run_process(["/bin/true"], limits=limits)
    elapsed = time.perf_counter() - started
    if not result.ok:
        raise SystemExit(f"a run failed: {result.error}")
    return elapsed


async def main(reps: int) -> None:
    usable = support().version is not None
    variants = {k: v for k, v in VARIANTS.items() if usable or not (v and v.cgroup_limits)}
    rng = random.Random(7)
    for limits in variants.values():  # warm-up: the watchdog, imports, the detection
        await once(limits)
    times: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reps):
        order = list(variants)
        rng.shuffle(order)
        for name in order:
            times[name].append(await once(variants[name]))
    base = times["no limits"]
    print(f"load average before: {os.getloadavg()[0]:.2f}; {reps} repetitions")
    print(f"mechanism: {support().describe()}")
    print("| variant | median | median difference to no limits |")
    print("|---|---|---|")
    for name, values in times.items():
        diff = statistics.median(v - b for v, b in zip(values, base, strict=True))
        shown = "-" if name == "no limits" else f"{diff * 1000:+.1f} ms"
        print(f"| {name} | {statistics.median(values) * 1000:.1f} ms | {shown} |")
    if not usable:
        print(f"(no cgroup rows: {support().reason})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=40)
    asyncio.run(main(parser.parse_args().reps))
