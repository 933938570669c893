"""Fleet benchmarks (issue 20), each against a local baseline measured in the same run.

    .venv/bin/python benchmarks/bench_fleet.py [--rounds 30] [--runs 2000] [--workers 4]
                                               [--lines-per-s 5000] [--seconds 2]

A private ``redis-server`` on a unix socket and ``--workers`` ``cc-executor worker``
processes (one slot each, their own ``CC_EXECUTOR_HOME``) on this machine; the runs are
plain commands (``start_fleet_exec``), the agent is not the point.

1. Dispatch overhead: submit -> the command's first output line back at the submitter, on
   an idle fleet, against the same command run locally (``run_command``, recorded) to its
   first line; ``--rounds`` interleaved rounds, median and p99 of each and the difference
   of the medians (target: under 20 ms added).
2. Throughput: ``--runs`` runs of ``/bin/true`` over the workers (the submitter keeps 8 per
   worker in flight), against the same number of slots run locally by one process with a
   semaphore; runs/s and their ratio (target >= 0.7x).
   The CPU per run of the workers (``/proc``) and of the submitter, against a local run's;
   Redis's own cost of those runs, from ``INFO`` before and after: its CPU (user + system)
   and the commands it ran (those of Lua scripts included), per run.
3. Redis's cost of an idle fleet: its CPU and commands per second with every worker idle
   for ``--idle-seconds`` (heartbeats, polls, the lost-run looks), per worker. And two
   costs that grow with the fleet, on the same Redis: one worker's look for lost runs
   with 100 and 1,000 runs in progress (each worker looks every quarter of the heartbeat
   timeout), and one wake-up published with 0 and 100 workers listening.
4. Event latency: one run printing ``--lines-per-s`` lines a second for ``--seconds``, each
   stamped with the wall clock when printed; the submitter's ``on_event`` takes the delay
   of each line (same machine, same clock): p50/p99 (target p99 < 50 ms) and how many
   lines arrived (all, in order).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CLI = str(Path(sys.executable).parent / "cc-executor")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_redis(folder: Path) -> tuple[subprocess.Popen[bytes], str]:
    sock = folder / "redis.sock"
    executable = shutil.which("redis-server")
    if executable is None:
        sys.exit("redis-server is not installed (apt-get install redis-server)")
    argv = [executable, "--port", "0", "--unixsocket", str(sock), "--unixsocketperm", "700",
            "--dir", str(folder), "--save", "", "--appendonly", "no"]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import redis

    client = redis.Redis(unix_socket_path=str(sock))
    for _ in range(500):
        try:
            client.ping()
            break
        except redis.RedisError:
            time.sleep(0.01)
    return proc, f"unix://{sock}"


def start_workers(count: int, url: str, root: Path) -> list[subprocess.Popen[str]]:
    workers = []
    for i in range(count):
        home = root / f"w{i}"
        home.mkdir()
        env = {**os.environ, "CC_EXECUTOR_HOME": str(home), "CC_EXECUTOR_FLEET": url}
        argv = [CLI, "worker", "--allow-dir", str(root), "--allow-exec", "/bin/true",
                "--allow-exec", sys.executable, "--heartbeat-timeout", "30"]  # fmt: skip
        proc = subprocess.Popen(
            argv, env=env, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if "ready" not in line:
            sys.exit(f"worker {i} did not start: {line!r}")
        workers.append(proc)
    return workers


async def fleet_first_line(url: str, argv: list[str], cwd: str) -> float:
    from cc_executor._agents._types import CommandOutputEvent
    from cc_executor._run._fleet import start_fleet_exec

    t0 = time.perf_counter()
    first: asyncio.Future[float] = asyncio.get_running_loop().create_future()

    def on_event(event: Any) -> None:
        if isinstance(event, CommandOutputEvent) and not first.done():
            first.set_result(time.perf_counter())

    handle = start_fleet_exec(argv, url, on_event=on_event, cwd=cwd)
    at = await first
    await handle.wait()
    return at - t0


async def local_first_line(argv: list[str], cwd: str) -> float:
    from cc_executor._engine import SupervisedProcess
    from cc_executor._run._exec import run_command

    t0 = time.perf_counter()
    first: list[float] = []

    async def on_output(_item: Any) -> None:
        if not first:
            first.append(time.perf_counter())

    proc = SupervisedProcess(argv, cwd=cwd, events=True)
    await run_command(proc, on_output=on_output)
    return first[0] - t0


async def dispatch(url: str, rounds: int, cwd: str) -> dict[str, float]:
    argv = [sys.executable, "-c", "print('x', flush=True)"]
    fleet: list[float] = []
    local: list[float] = []
    await fleet_first_line(url, argv, cwd)  # warm both paths once
    await local_first_line(argv, cwd)
    for _ in range(rounds):
        fleet.append(await fleet_first_line(url, argv, cwd))
        local.append(await local_first_line(argv, cwd))
    return {
        "fleet_median_ms": statistics.median(fleet) * 1000,
        "fleet_p99_ms": pct(fleet, 0.99) * 1000,
        "local_median_ms": statistics.median(local) * 1000,
        "local_p99_ms": pct(local, 0.99) * 1000,
        "added_median_ms": (statistics.median(fleet) - statistics.median(local)) * 1000,
    }


def redis_cost(url: str) -> tuple[float, int]:
    """Redis's CPU seconds (user + system, all its threads) and commands run so far."""
    import redis

    client = redis.Redis(unix_socket_path=url.removeprefix("unix://"))
    try:
        cpu, stats = client.info("cpu"), client.info("stats")
    finally:
        client.close()
    return cpu["used_cpu_user"] + cpu["used_cpu_sys"], int(stats["total_commands_processed"])


def cpu_s(pid: int) -> float:
    """A process's CPU seconds so far (user + system, all its threads; Linux's /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def throughput(
    url: str, runs: int, slots: int, cwd: str, workers: list[int]
) -> dict[str, float]:
    from cc_executor._engine import SupervisedProcess
    from cc_executor._run._exec import run_command
    from cc_executor._run._fleet import start_fleet_exec

    gate = asyncio.Semaphore(slots * 8)
    failed = 0

    async def one_fleet() -> None:
        nonlocal failed
        async with gate:
            result = await start_fleet_exec(["/bin/true"], url, cwd=cwd).wait()
            failed += result.status.value != "ok"

    cpu0, commands0 = redis_cost(url)
    workers0, me0 = sum(cpu_s(pid) for pid in workers), time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(one_fleet() for _ in range(runs)))
    fleet_s = time.perf_counter() - t0
    workers1, me1 = sum(cpu_s(pid) for pid in workers), time.process_time()
    cpu1, commands1 = redis_cost(url)

    local_gate = asyncio.Semaphore(slots)

    async def one_local() -> None:
        nonlocal failed
        async with local_gate:
            result = await run_command(SupervisedProcess(["/bin/true"], cwd=cwd))
            failed += result.status.value != "ok"

    t0, me2 = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_local() for _ in range(runs)))
    local_s = time.perf_counter() - t0
    local_cpu = time.process_time() - me2
    return {
        "fleet_runs_per_s": runs / fleet_s,
        "local_runs_per_s": runs / local_s,
        "ratio": (runs / fleet_s) / (runs / local_s),
        "failed": failed,
        "workers_ms_per_run": (workers1 - workers0) / runs * 1000,
        "submitter_ms_per_run": (me1 - me0) / runs * 1000,
        "local_ms_per_run": local_cpu / runs * 1000,
        "redis_us_per_run": (cpu1 - cpu0) / runs * 1e6,
        "redis_commands_per_run": (commands1 - commands0) / runs,
    }


def idle(url: str, seconds: float, workers: int) -> dict[str, float]:
    """Redis's CPU and commands per second for each idle worker."""
    cpu0, commands0 = redis_cost(url)
    time.sleep(seconds)
    cpu1, commands1 = redis_cost(url)
    return {
        "us_per_s": (cpu1 - cpu0) / seconds / workers * 1e6,
        "commands_per_s": (commands1 - commands0) / seconds / workers,
    }


def lost_run_look(url: str, running: int, looks: int = 20) -> float:
    """Redis's CPU (us) for one worker's look for lost runs (``reclaim``) with ``running``
    runs in progress on the fleet, each holding a live lease."""
    import redis

    from cc_executor._fleet import open_fleet

    client = redis.Redis(unix_socket_path=url.removeprefix("unix://"))
    names = [f"bench{i:022d}" for i in range(running)]
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.set(f"cc-executor:lease:{name}", b"bench 1", px=600_000)
        pipe.sadd("cc-executor:running", *names)
        pipe.execute()

    async def look() -> float:
        fleet = open_fleet(url)
        try:
            await fleet.reclaim()  # connected
            cpu0, _ = redis_cost(url)
            for _ in range(looks):
                assert await fleet.reclaim() == []
            cpu1, _ = redis_cost(url)
        finally:
            await fleet.aclose()
        return (cpu1 - cpu0) / looks * 1e6

    try:
        return asyncio.run(look())
    finally:
        with client.pipeline(transaction=False) as pipe:
            pipe.delete(*(f"cc-executor:lease:{name}" for name in names))
            pipe.srem("cc-executor:running", *names)
            pipe.execute()
        client.close()


def wake_up_fan_out(url: str, listeners: int, publishes: int = 5000) -> float:
    """Redis's CPU (us) per wake-up published, with ``listeners`` workers subscribed."""
    import redis

    path = url.removeprefix("unix://")
    subscribers = [redis.Redis(unix_socket_path=path).pubsub() for _ in range(listeners)]
    client = redis.Redis(unix_socket_path=path)
    try:
        for sub in subscribers:
            sub.subscribe("bench-wake")
        cpu0, _ = redis_cost(url)
        with client.pipeline(transaction=False) as pipe:
            for _ in range(publishes):
                pipe.publish("bench-wake", "cc-executor-runs")
            pipe.execute()
        cpu1, _ = redis_cost(url)
        return (cpu1 - cpu0) / publishes * 1e6
    finally:
        for sub in subscribers:
            sub.close()
        client.close()


# Writes the lines due every millisecond, then sleeps (a busy loop would take a core).
PRINTER = """
import sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
total = int(rate * seconds)
start = time.monotonic()
i = 0
while i < total:
    due = min(total, int((time.monotonic() - start) * rate) + 1)
    while i < due:
        sys.stdout.write(f"{i} {time.time():.6f}\\n")
        i += 1
    sys.stdout.flush()
    time.sleep(0.001)
"""


async def latency(url: str, rate: int, seconds: float, cwd: str) -> dict[str, float]:
    from cc_executor._agents._types import CommandOutputEvent
    from cc_executor._run._fleet import start_fleet_exec

    delays: list[float] = []
    numbers: list[int] = []

    def on_event(event: Any) -> None:
        if isinstance(event, CommandOutputEvent) and event.stream == "stdout":
            now = time.time()
            number, stamp = event.text.split()
            numbers.append(int(number))
            delays.append(now - float(stamp))

    argv = [sys.executable, "-c", PRINTER, str(rate), str(seconds)]
    result = await start_fleet_exec(argv, url, on_event=on_event, cwd=cwd).wait()
    expected = int(rate * seconds)
    return {
        "p50_ms": statistics.median(delays) * 1000,
        "p99_ms": pct(delays, 0.99) * 1000,
        "max_ms": max(delays) * 1000,
        "received": len(numbers),
        "expected": expected,
        "in_order": float(numbers == list(range(expected))),
        "status_ok": float(result.status.value == "ok"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--lines-per-s", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ccx-bench-fleet-"))
    os.environ["CC_EXECUTOR_HOME"] = str(root / "submitter")
    redis_proc, url = start_redis(root)
    workers: list[subprocess.Popen[str]] = []
    try:
        workers = start_workers(args.workers, url, root)
        cwd = str(root)
        print(
            f"machine: {platform.machine()} {os.cpu_count()} cpus, "
            f"load {os.getloadavg()[0]:.2f}; {args.workers} workers x 1 slot"
        )
        d = asyncio.run(dispatch(url, args.rounds, cwd))
        print(
            f"dispatch: fleet median {d['fleet_median_ms']:.1f} ms p99 {d['fleet_p99_ms']:.1f} ms"
            f" | local median {d['local_median_ms']:.1f} ms p99 {d['local_p99_ms']:.1f} ms"
            f" | added at the median {d['added_median_ms']:.1f} ms (target < 20)"
        )
        pids = [proc.pid for proc in workers]
        t = asyncio.run(throughput(url, args.runs, args.workers, cwd, pids))
        print(
            f"throughput: {args.runs} x /bin/true: fleet {t['fleet_runs_per_s']:.0f} runs/s, "
            f"local {args.workers} slots {t['local_runs_per_s']:.0f} runs/s, "
            f"ratio {t['ratio']:.2f}x (target >= 0.7), failed {t['failed']:.0f}"
        )
        print(
            f"CPU per run: the workers {t['workers_ms_per_run']:.2f} ms, the submitter "
            f"{t['submitter_ms_per_run']:.2f} ms; a local run {t['local_ms_per_run']:.2f} ms"
        )
        print(
            f"redis per fleet run: {t['redis_us_per_run']:.0f} us of CPU, "
            f"{t['redis_commands_per_run']:.1f} commands"
        )
        i = idle(url, args.idle_seconds, args.workers)
        print(
            f"redis per idle worker: {i['us_per_s']:.0f} us of CPU/s, "
            f"{i['commands_per_s']:.1f} commands/s"
        )
        looks = {n: lost_run_look(url, n) for n in (100, 1000)}
        print(
            "redis per look for lost runs: "
            + ", ".join(f"{us:.0f} us with {n} runs in progress" for n, us in looks.items())
        )
        fan = {n: wake_up_fan_out(url, n) for n in (0, 100)}
        print(
            "redis per wake-up published: "
            + ", ".join(f"{us:.1f} us with {n} workers listening" for n, us in fan.items())
        )
        e = asyncio.run(latency(url, args.lines_per_s, args.seconds, cwd))
        print(
            f"events at {args.lines_per_s} lines/s: p50 {e['p50_ms']:.1f} ms, "
            f"p99 {e['p99_ms']:.1f} ms (target < 50), max {e['max_ms']:.1f} ms; "
            f"{e['received']:.0f}/{e['expected']:.0f} lines, in order: {bool(e['in_order'])}"
        )
        print(f"load at the end {os.getloadavg()[0]:.2f}")
    finally:
        for proc in workers:
            proc.send_signal(signal.SIGTERM)
        for proc in workers:
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()
        redis_proc.terminate()
        redis_proc.wait()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
