"""What the fleet's shared rate limits cost a run start (issue 21; target under 2 ms).

    .venv/bin/python benchmarks/bench_ratelimit.py [--starts 2000]

A private ``redis-server`` on a unix socket. Each start is what a worker adds around a run
(``SharedLimits.admit`` then ``Admission.release``: the credential's hash, the start's Lua
script, the release with its strikes reset), for an open credential without a cap and with
``--max-concurrent-per-credential 4``, against a baseline measured in the same run, in
interleaved rounds: the run's lease as the worker already takes and gives back
(``acquire`` + ``release``). Prints the median and p99 of each, and the median added.
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

sys.path.insert(0, str(Path(__file__).parent))
from bench_fleet import pct, start_redis


async def measure(url: str, starts: int) -> dict[str, list[float]]:
    from cc_executor._fleet import open_fleet
    from cc_executor._fleet._base import Lease
    from cc_executor._service._ratelimit import SharedLimits

    fleet = open_fleet(url)
    open_limits = SharedLimits(fleet.limits(), cap=0, hold_s=60, backoff_s=1)
    capped = SharedLimits(fleet.limits(), cap=4, hold_s=60, backoff_s=1)
    await open_limits.start()
    await capped.start()
    options = {"agent": "claude", "env": {"ANTHROPIC_API_KEY": "sk-ant-bench"}}

    async def wanted() -> str:
        return "wait"

    async def note(event: object) -> None:
        raise AssertionError("an open credential never waits")

    async def lease(i: int) -> None:
        got = await fleet.acquire(f"bench{i}", "me", 60)
        assert isinstance(got, Lease)
        await fleet.release(got)

    def limited(shared: SharedLimits) -> object:
        async def go(i: int) -> None:
            admitted = await shared.admit(f"bench{i}", options, note=note, still_wanted=wanted)
            assert admitted is not None
            await admitted.release()

        return go

    kinds = {"lease (baseline)": lease, "limits, no cap": limited(open_limits)}
    kinds["limits, cap 4"] = limited(capped)
    times: dict[str, list[float]] = {k: [] for k in kinds}
    for i in range(starts):
        for name, step in kinds.items():  # interleaved: the same load for each
            began = time.perf_counter()
            await step(i)  # type: ignore[operator]
            times[name].append((time.perf_counter() - began) * 1000)
    await fleet.aclose()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ccx-rl-") as folder:
        proc, url = start_redis(Path(folder))
        try:
            times = asyncio.run(measure(url, args.starts))
        finally:
            proc.terminate()
            proc.wait()
    load = os.getloadavg()[0]
    print(f"{platform.machine()} {os.cpu_count()} cores, load {load:.1f}, {args.starts} starts")
    base = statistics.median(times["lease (baseline)"])
    print("| per run start | median | p99 | median against the lease |")
    print("|---|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} ms | {pct(values, 0.99):.3f} ms | {median / base:.2f}x |")


if __name__ == "__main__":
    main()
