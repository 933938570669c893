"""Request latency on a kept-alive connection to ``cc-executor serve``, on loopback.

Starts the real ``cc-executor serve --no-token`` (127.0.0.1, a free port) in a subprocess
and sends ``GET /health`` N times over one kept-alive connection, then N times on a fresh
connection each (the baseline, in the same run). Before TCP_NODELAY, every kept-alive
request waited for a delayed ACK (about 44 ms: the response goes out in two writes, and
Nagle's algorithm holds the second until the first is acknowledged). Target: p50 under 2 ms.

    .venv/bin/python benchmarks/bench_keepalive.py [--requests 2000]
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = str(Path(sys.executable).parent / "cc-executor")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_server(home: Path) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "CC_EXECUTOR_HOME": str(home)}
    proc = subprocess.Popen(
        [CLI, "serve", "--port", "0", "--no-token"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 20)[0]:
        raise SystemExit("the server did not start")
    url = proc.stdout.readline().rsplit(" ", 1)[-1].strip()
    return proc, int(url.rsplit(":", 1)[1])


def get(connection: http.client.HTTPConnection) -> float:
    start = time.perf_counter()
    connection.request("GET", "/health")
    response = connection.getresponse()
    response.read()
    elapsed = time.perf_counter() - start
    if response.status != 200:
        raise SystemExit(f"GET /health answered {response.status}")
    return elapsed


def keep_alive(port: int, count: int) -> list[float]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        return [get(connection) for _ in range(count)]
    finally:
        connection.close()


def fresh(port: int, count: int) -> list[float]:
    times = []
    for _ in range(count):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        try:
            start = time.perf_counter()
            get(connection)
            times.append(time.perf_counter() - start)
        finally:
            connection.close()
    return times


def report(name: str, times: list[float]) -> float:
    p50 = percentile(times, 0.5) * 1000
    print(
        f"{name:>26}: {len(times)} requests, p50 {p50:.2f} ms, "
        f"p99 {percentile(times, 0.99) * 1000:.2f} ms, max {max(times) * 1000:.2f} ms"
    )
    return p50


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    print(f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    with tempfile.TemporaryDirectory() as tmp:
        proc, port = start_server(Path(tmp))
        try:
            keep_alive(port, 50)  # warm-up: imports, first responses
            base = report("fresh connection each", fresh(port, args.requests))
            kept = report("one kept-alive connection", keep_alive(port, args.requests))
        finally:
            proc.terminate()
            proc.wait(15)
    print(
        f"kept-alive p50 / fresh p50: {kept / base:.2f}x; target p50 < 2 ms: "
        f"{'met' if kept < 2 else 'NOT met'}"
    )
    return 0 if kept < 2 else 1


if __name__ == "__main__":
    sys.exit(main())
