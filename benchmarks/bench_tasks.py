"""Task list benchmarks (issue 6), measured against a baseline in the same run.

    .venv/bin/python benchmarks/bench_tasks.py [--per-round 10] [--rounds 12] [--tasks 1000]
                                               [--max-parallel 8] [--skip-big]

Both parts run the real Claude Code CLI against the scripted model server (trivial answers),
with the history on, as a user would.

1. Orchestration overhead per task: ``--per-round`` prompts run one after the other through
   ``cc_executor.run()`` (the baseline) and as a sequential task list through ``run_tasks``
   (spec, templates, state files, scheduler, list record), in interleaved rounds; the figure
   is the difference of the median per-task times (target <= 10 ms).
2. ``--tasks`` independent trivial tasks with ``--max-parallel``: the list runs in a child
   process (``--worker``) that reports its own wall time and peak RSS: ``ru_maxrss`` of
   ``RUSAGE_SELF`` read inside that process, started through ``sh -c`` because a direct
   child of this (larger) process would inherit its peak, and ``VmHWM`` as a cross-check.
   The model server runs in the parent, so its memory is not counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
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


def trivial_list(count: int, *, parallel: bool) -> dict[str, Any]:
    tasks: list[dict[str, Any]] = []
    for i in range(count):
        task: dict[str, Any] = {"id": f"t{i}", "prompt": f"Trivial task {i}"}
        if parallel:
            task["depends_on"] = []
        tasks.append(task)
    return {"tasks": tasks}


@dataclass
class Overhead:
    """Medians per task (seconds) of the baseline and the list, wall and our own CPU."""

    wall_direct: float
    wall_list: float
    cpu_direct: float
    cpu_list: float
    wall_spread: tuple[float, float]


async def overhead(options: dict[str, Any], per_round: int, rounds: int) -> Overhead:
    from cc_executor import run
    from cc_executor.tasks import run_tasks

    async def direct() -> None:
        for i in range(per_round):
            result = await run(f"Trivial task {i}", **options)
            assert result.ok, result.error

    async def as_list() -> None:
        result = await run_tasks(trivial_list(per_round, parallel=False), **options)
        assert result.ok, result.to_dict()

    await direct()  # warm-up: caches, the watchdog, the history file
    wall: dict[str, list[float]] = {"direct": [], "list": []}
    cpu: dict[str, list[float]] = {"direct": [], "list": []}
    pairs = [("direct", direct), ("list", as_list)]
    for i in range(rounds):
        # ABBA order: Claude Code's own state (sessions piling up in its config dir) makes
        # later runs a little slower; alternating cancels that drift out of the difference.
        for name, fn in pairs if i % 2 == 0 else pairs[::-1]:
            t, c = time.perf_counter(), time.process_time()
            await fn()
            # process_time counts this process only: the CLI's own work (in children) is
            # not in it, so what differs is what the list runner itself does.
            cpu[name].append((time.process_time() - c) / per_round)
            wall[name].append((time.perf_counter() - t) / per_round)
    diffs = sorted(b - a for a, b in zip(wall["direct"], wall["list"], strict=True))
    return Overhead(
        wall_direct=statistics.median(wall["direct"]),
        wall_list=statistics.median(wall["list"]),
        cpu_direct=statistics.median(cpu["direct"]),
        cpu_list=statistics.median(cpu["list"]),
        wall_spread=(diffs[0], diffs[-1]),
    )


def state_writes(samples: int) -> float:
    """Seconds per task for its state files alone: two in-flight writes (started, session
    known) and one durable write (ended: file and folder flushed), as the runner does."""
    from cc_executor.tasks import TaskAttempt, TaskResult
    from cc_executor.tasks._state import ListFolder

    folder = ListFolder(Path(tempfile.mkdtemp(prefix="cc-bench-state-")))
    folder.create()
    state = TaskResult(id="t0", result="ok", runs=[TaskAttempt(run_id="0" * 26)])
    t = time.perf_counter()
    for _ in range(samples):
        folder.write_task("t0", state.to_dict(), durable=False)
        folder.write_task("t0", state.to_dict(), durable=False)
        folder.write_task("t0", state.to_dict(), durable=True)
    elapsed = (time.perf_counter() - t) / samples
    shutil.rmtree(folder.path, ignore_errors=True)
    return elapsed


def worker(count: int, max_parallel: int) -> None:
    """Run the big list in this process and print one JSON line about it."""
    from cc_executor.tasks import run_tasks

    options = json.loads(os.environ["BENCH_TASK_OPTIONS"])
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t = time.perf_counter()
    result = asyncio.run(
        run_tasks(trivial_list(count, parallel=True), max_parallel=max_parallel, **options)
    )
    wall = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    status = Path("/proc/self/status").read_text()
    hwm = next(
        (int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM")), 0
    )
    print(
        json.dumps(
            {
                "status": result.status.value,
                "counts": result.counts(),
                "wall_s": wall,
                "rss_start_kib": rss_start,
                "peak_rss_kib": peak,
                "vm_hwm_kib": hwm,
                "cost_usd": result.cost_usd,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--per-round", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--max-parallel", type=int, default=8)
    parser.add_argument("--skip-big", action="store_true")
    parser.add_argument("--worker", nargs=2, type=int, metavar=("TASKS", "PARALLEL"))
    args = parser.parse_args()
    if args.worker:
        worker(*args.worker)
        return

    from cc_executor.testing import ModelServer, Reply, Rule, Script, Text

    root = Path(tempfile.mkdtemp(prefix="cc-bench-tasks-"))
    os.environ["CC_EXECUTOR_HOME"] = str(root / "cc-home")
    work, home = root / "work", root / "home"
    work.mkdir()
    home.mkdir()
    script = Script([Rule(answers=[Reply([Text("ok")])])])
    try:
        with ModelServer(script) as server:
            options = {
                "cwd": str(work),
                "env": server.claude_env(home=home, max_retries=0),
                "claude_path": claude_path(),
                "heartbeat_s": 0,
            }
            cost = asyncio.run(overhead(options, args.per_round, args.rounds))
            io = state_writes(200)
            big: dict[str, Any] | None = None
            if not args.skip_big:
                before = len(server.message_requests)
                argv = [
                    sys.executable,
                    __file__,
                    "--worker",
                    str(args.tasks),
                    str(args.max_parallel),
                ]
                done = subprocess.run(
                    ["sh", "-c", '"$@"; exit $?', "sh", *argv],
                    env={**os.environ, "BENCH_TASK_OPTIONS": json.dumps(options)},
                    capture_output=True,
                    text=True,
                    check=True,
                )
                big = json.loads(done.stdout.splitlines()[-1])
                requests = len(server.message_requests) - before
    finally:
        shutil.rmtree(root, ignore_errors=True)

    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    ms = 1000.0
    print(
        f"1. per task, {args.per_round} sequential trivial tasks x {args.rounds} rounds, ABBA "
        f"(medians): wall run() {cost.wall_direct * ms:.1f} ms, task list "
        f"{cost.wall_list * ms:.1f} ms: {(cost.wall_list - cost.wall_direct) * ms:+.1f} ms "
        f"(round-to-round noise: {cost.wall_spread[0] * ms:+.1f} .. "
        f"{cost.wall_spread[1] * ms:+.1f} ms)"
    )
    orchestration = cost.cpu_list - cost.cpu_direct + io
    print(
        f"   runner CPU per task: run() {cost.cpu_direct * ms:.2f} ms, task list "
        f"{cost.cpu_list * ms:.2f} ms; state files {io * ms:.2f} ms per task; "
        f"orchestration = CPU difference + state files = {orchestration * ms:.2f} ms "
        "(target <= 10 ms)"
    )
    if big is not None:
        print(
            f"2. {args.tasks} trivial tasks, max_parallel {args.max_parallel}: {big['status']} "
            f"{big['counts']}, {big['wall_s']:.1f} s wall ({args.tasks / big['wall_s']:.1f} "
            f"tasks/s, {requests} model requests), runner peak RSS "
            f"{big['peak_rss_kib'] / 1024:.1f} MiB (VmHWM {big['vm_hwm_kib'] / 1024:.1f} MiB; "
            f"{big['rss_start_kib'] / 1024:.1f} MiB after imports)"
        )


if __name__ == "__main__":
    main()
