"""The fleet budget's cost per run start (issue 21), against the lease every fleet run
already takes, measured in the same run.

    .venv/bin/python benchmarks/bench_budget.py [--runs 2000] [--concurrent 8]

A private ``redis-server`` on a unix socket. For each of ``--runs`` run ids, in rounds of
``--concurrent`` at once (as that many worker slots would), it times:

1. the budget's work for one run: :meth:`BudgetGuard.before` (the reservation script) and
   :meth:`BudgetGuard.after` (the settlement script, with an 80% threshold), the two calls
   a worker makes per run (target: under 2 ms added per run start);
2. the baseline: the run's lease, acquired and released (``Fleet.acquire`` /
   ``Fleet.release``), two scripts on the same Redis.

Prints the median and p99 of each, per run, and their ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from bench_fleet import pct, start_redis
from cc_executor._fleet import open_fleet
from cc_executor._fleet._budget import RedisLedger
from cc_executor._run._budget import BudgetGuard
from cc_executor._status import Status


async def measure(url: str, runs: int, concurrent: int) -> tuple[list[float], list[float]]:
    ledger = RedisLedger(url, "bench")
    await ledger.configure(runs * 1.0)
    guard = BudgetGuard(ledger, runs * 1.0, name="bench", reserve={"*": 1.0})
    fleet = open_fleet(url)
    budget_ms: list[float] = []
    lease_ms: list[float] = []

    async def one_budget(run_id: str) -> None:
        options = {"agent": "claude"}
        t = time.perf_counter()
        admission = await guard.before(run_id, options)
        await guard.after(run_id, Status.OK, 0.5)
        budget_ms.append((time.perf_counter() - t) * 1000)
        assert admission.started

    async def one_lease(run_id: str) -> None:
        t = time.perf_counter()
        lease = await fleet.acquire(run_id, "bench", 60)
        assert not isinstance(lease, str)
        await fleet.release(lease)
        lease_ms.append((time.perf_counter() - t) * 1000)

    # Warm both connections up, then interleave the rounds (the load drifts).
    await one_budget("warm-b")
    await one_lease("warm-l")
    budget_ms.clear()
    lease_ms.clear()
    for start in range(0, runs, concurrent):
        ids = [f"run{i}" for i in range(start, min(runs, start + concurrent))]
        await asyncio.gather(*(one_budget(i) for i in ids))
        await asyncio.gather(*(one_lease(f"l{i}") for i in ids))
    await ledger.aclose()
    await fleet.aclose()
    return budget_ms, lease_ms


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--concurrent", type=int, default=8)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="ccx-bb-"))
    proc, url = start_redis(folder)
    load = os.getloadavg()[0]
    try:
        budget_ms, lease_ms = asyncio.run(measure(url, args.runs, args.concurrent))
    finally:
        proc.terminate()
        proc.wait()
        shutil.rmtree(folder, ignore_errors=True)
    print(f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"load {load:.1f} -> {os.getloadavg()[0]:.1f}")  # fmt: skip
    print(f"{args.runs} runs, {args.concurrent} at once")
    for name, values in (
        ("budget: before + after", budget_ms),
        ("lease: acquire + release", lease_ms),
    ):
        print(f"{name}: median {statistics.median(values):.3f} ms, p99 {pct(values, 0.99):.3f} ms")
    ratio = statistics.median(budget_ms) / statistics.median(lease_ms)
    print(f"budget / lease at the median: {ratio:.2f}x")


if __name__ == "__main__":
    main()
