"""Load on the service: N WebSocket clients each following a chatty command, on loopback.

Starts the real ``cc-executor serve`` (``--allow-exec`` this interpreter) in a subprocess,
then N clients each ``execute`` a Python child printing numbered lines stamped with its own
``time.monotonic()`` (system-wide on Linux, so comparable across processes). Every client
checks that no event is lost or reordered (sequence numbers contiguous, line numbers in
order) and records the latency from the child's write to its own receipt. Baseline, in the
same run: the same children read directly through pipes by one asyncio process.

    .venv/bin/python benchmarks/bench_service.py [--clients 100] [--lines 200]
        [--interval 0.02]

Prints p50/p99/max latency for both, their ratio, the server's peak RSS (VmHWM) and RSS
after the load, and fails (exit 1) if any event was lost or reordered.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import select
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from websockets.asyncio.client import connect

CLI = str(Path(sys.executable).parent / "cc-executor")


def child_argv(lines: int, interval: float, start_at: float) -> list[str]:
    """A child that waits until monotonic ``start_at`` (all children spawned by then, so
    the measure is streaming, not 100 interpreters starting on 2 cores), then prints."""
    code = (
        "import sys, time\n"
        f"time.sleep(max(0.0, {start_at!r} - time.monotonic()))\n"
        f"for i in range({lines}):\n"
        "    sys.stdout.write(f'{i} {time.monotonic()!r}\\n'); sys.stdout.flush()\n"
        f"    time.sleep({interval})\n"
    )
    return [sys.executable, "-c", code]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def memory_kb(pid: int) -> dict[str, int]:
    out: dict[str, int] = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmHWM:", "VmRSS:")):
                name, value = line.split(":", 1)
                out[name] = int(value.split()[0])
    return out


async def client(url: str, token: str, argv: list[str], lines: int) -> tuple[list[float], str]:
    """Follow one run; returns latencies (s) and a problem description ('' if none)."""
    latencies: list[float] = []
    expected_seq = 1
    expected_line = 0
    async with connect(
        url, additional_headers={"Authorization": f"Bearer {token}"}, max_size=None
    ) as ws:
        await ws.send(
            json.dumps({"jsonrpc": "2.0", "id": 1, "method": "execute", "params": {"argv": argv}})
        )
        async for frame in ws:
            now = time.monotonic()
            message = json.loads(frame)
            if "id" in message:
                if "error" in message:
                    return latencies, f"execute failed: {message['error']}"
                continue
            params = message["params"]
            if params["seq"] != expected_seq:
                return latencies, f"seq {params['seq']} after {expected_seq - 1}"
            expected_seq += 1
            if message["method"] == "process.output" and params["stream"] == "stdout":
                number, stamp = params["text"].split()
                if int(number) != expected_line:
                    return latencies, f"line {number} where {expected_line} was expected"
                expected_line += 1
                latencies.append(now - float(stamp))
            elif message["method"] == "process.completed":
                break
    if expected_line != lines:
        return latencies, f"{expected_line} lines of {lines}"
    return latencies, ""


async def direct(argv: list[str], count: int) -> list[float]:
    """Baseline: the same children read straight from their pipes."""

    async def one() -> list[float]:
        proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE)
        assert proc.stdout is not None
        out = []
        async for line in proc.stdout:
            now = time.monotonic()
            out.append(now - float(line.split()[1]))
        await proc.wait()
        return out

    results = await asyncio.gather(*(one() for _ in range(count)))
    return [x for r in results for x in r]


def start_server(home: Path, clients: int) -> tuple[subprocess.Popen[str], str, str]:
    argv = [
        CLI,
        "serve",
        "--port",
        "0",
        "--allow-exec",
        sys.executable,
        "--allow-dir",
        str(home),
        "--max-concurrent",
        str(clients),
        "--max-queued",
        str(clients),
    ]
    env = {**os.environ, "CC_EXECUTOR_HOME": str(home)}
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 20)[0]:
        raise SystemExit("the server did not start")
    url = proc.stdout.readline().rsplit(" ", 1)[-1].strip()
    token = (home / "service-token").read_text().strip()
    return proc, url.replace("http://", "ws://") + "/ws", token


def report(name: str, latencies: list[float]) -> tuple[float, float]:
    p50 = percentile(latencies, 0.50) * 1000
    p99 = percentile(latencies, 0.99) * 1000
    print(
        f"{name:>10}: {len(latencies)} events, p50 {p50:.2f} ms, p99 {p99:.2f} ms, "
        f"max {max(latencies) * 1000:.2f} ms, mean {statistics.fmean(latencies) * 1000:.2f} ms"
    )
    return p50, p99


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--lines", type=int, default=200)
    parser.add_argument("--interval", type=float, default=0.02)
    parser.add_argument(
        "--spawn-window", type=float, default=4.0, help="seconds for all children to start"
    )
    args = parser.parse_args()
    print(
        f"{args.clients} clients x {args.lines} lines every {args.interval * 1000:.0f} ms "
        f"({args.clients / args.interval:.0f} lines/s in total), {os.cpu_count()} CPUs"
    )

    argv = child_argv(args.lines, args.interval, time.monotonic() + args.spawn_window)
    base = await direct(argv, args.clients)
    _, base_p99 = report("direct", base)

    with tempfile.TemporaryDirectory() as tmp:
        proc, url, token = start_server(Path(tmp), args.clients)
        try:
            idle = memory_kb(proc.pid)
            argv = child_argv(args.lines, args.interval, time.monotonic() + args.spawn_window)
            started = time.monotonic()
            results = await asyncio.gather(
                *(client(url, token, argv, args.lines) for _ in range(args.clients))
            )
            elapsed = time.monotonic() - started
            after = memory_kb(proc.pid)
        finally:
            proc.terminate()
            proc.wait(15)
    problems = [p for _, p in results if p]
    latencies = [x for r, _ in results for x in r]
    _, p99 = report("service", latencies)
    print(f"p99 ratio service/direct: {p99 / base_p99:.1f}x; wall {elapsed:.1f} s")
    print(
        f"server RSS: idle {idle['VmRSS'] / 1024:.1f} MiB, after load "
        f"{after['VmRSS'] / 1024:.1f} MiB, peak {after['VmHWM'] / 1024:.1f} MiB"
    )
    print(
        f"lost or reordered: {len(problems)} of {args.clients} clients"
        + (f" (first: {problems[0]})" if problems else "")
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
