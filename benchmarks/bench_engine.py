"""Process engine benchmarks (issue 2). Every figure is a ratio against a baseline measured
in the same run, on the same machine.

    .venv/bin/python benchmarks/bench_engine.py [--quick] [--json FILE]

Measures:
1. drain throughput of a child writing 1 GiB: ours vs ``subprocess.run(capture_output=True)``
   vs the raw pipe (``head -c 1G /dev/zero | cat > /dev/null``);
2. peak RSS of the supervising process for that run (each variant in a fresh interpreter);
3. overhead per run of ``/bin/true`` vs a bare ``asyncio.create_subprocess_exec`` + wait;
4. cold start of ``cc-executor --version``;
5. 200 concurrent chatty runs: wall time and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GIB = 1 << 30
HERE = Path(__file__).resolve().parent
CLI = str(Path(sys.executable).parent / "cc-executor")

# Each variant runs in a fresh interpreter so its peak RSS is its own.
DRAIN_CODE = """
import json, resource, shutil, subprocess, sys, time
mode, size = sys.argv[1], int(sys.argv[2])
argv = ["head", "-c", str(size), "/dev/zero"]
t = time.perf_counter()
if mode == "subprocess.run":
    n = len(subprocess.run(argv, capture_output=True, check=True).stdout)
else:
    from cc_executor._engine import run_process_sync
    r = run_process_sync(argv)
    assert r.ok, r.error
    n = r.stdout_bytes
dt = time.perf_counter() - t
if mode != "subprocess.run":
    shutil.rmtree(r.run_dir)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"bytes": n, "seconds": dt, "peak_rss": rss}))
"""

CONCURRENT_CODE = """
import asyncio, json, resource, sys, time
from cc_executor._engine import run_process
runs, lines = int(sys.argv[1]), int(sys.argv[2])
code = (
    "import sys\\nfor i in range(%d):\\n"
    "    sys.stdout.write('line %%d ' %% i + 'x' * 60 + '\\\\n'); sys.stdout.flush()" % lines
)
async def main():
    seen = 0
    def on_line(event):
        nonlocal seen
        seen += 1
    t = time.perf_counter()
    argv = [sys.executable, "-c", code]
    results = await asyncio.gather(*(run_process(argv, on_line=on_line) for _ in range(runs)))
    dt = time.perf_counter() - t
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert seen == runs * lines, (seen, runs * lines)
    return dt
dt = asyncio.run(main())
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": dt, "peak_rss": rss, "lines": runs * lines}))
"""

OVERHEAD_CODE = """
import asyncio, json, shutil, sys, time, statistics
from cc_executor._engine import run_process
n = int(sys.argv[1])
async def bare():
    p = await asyncio.create_subprocess_exec("/bin/true")
    await p.wait()
async def ours():
    r = await run_process(["/bin/true"])
    assert r.ok, r.error
async def main():
    out = {"bare": [], "ours": []}
    for _ in range(20):
        await bare(); await ours()
    for _ in range(5):  # interleaved rounds: drift affects both alike
        for name, fn in (("bare", bare), ("ours", ours)):
            t = time.perf_counter()
            for _ in range(n):
                await fn()
            out[name].append((time.perf_counter() - t) / n)
    return {k: statistics.median(v) for k, v in out.items()}
print(json.dumps(asyncio.run(main())))
"""


def run_json(code: str, *args: object, env: dict[str, str] | None = None) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", code, *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env=env,
    )
    if done.returncode != 0:
        raise SystemExit(f"benchmark step failed:\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def mib(n: float) -> str:
    return f"{n / (1 << 20):.1f} MiB"


def bench_drain(size: int, env: dict[str, str]) -> dict[str, Any]:
    t = time.perf_counter()
    subprocess.run(["sh", "-c", f"head -c {size} /dev/zero | cat > /dev/null"], check=True)
    raw = time.perf_counter() - t
    base = run_json(DRAIN_CODE, "subprocess.run", size, env=env)
    ours = run_json(DRAIN_CODE, "cc-executor", size, env=env)
    return {
        "bytes": size,
        "raw_pipe_s": raw,
        "subprocess_run_s": base["seconds"],
        "subprocess_run_peak_rss": base["peak_rss"],
        "ours_s": ours["seconds"],
        "ours_peak_rss": ours["peak_rss"],
        "throughput_ratio_vs_subprocess_run": base["seconds"] / ours["seconds"],
        "throughput_ratio_vs_raw_pipe": raw / ours["seconds"],
    }


def bench_cold_start(rounds: int) -> dict[str, Any]:
    times = []
    python_times = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([CLI, "--version"], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True, capture_output=True)
        python_times.append(time.perf_counter() - t)
    return {
        "cc_executor_version_s": statistics.median(times),
        "bare_python_s": statistics.median(python_times),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes (a smoke run)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="cc-bench-")
    env = {**os.environ, "CC_EXECUTOR_HOME": home}
    try:
        size = (64 << 20) if args.quick else GIB
        drain = bench_drain(size, env)
        overhead = run_json(OVERHEAD_CODE, 50 if args.quick else 300, env=env)
        cold = bench_cold_start(5 if args.quick else 30)
        concurrent = run_json(CONCURRENT_CODE, 200, 100 if args.quick else 500, env=env)
    finally:
        shutil.rmtree(home, ignore_errors=True)

    machine = f"{platform.machine()}, {os.cpu_count()} cores, {platform.platform()}"
    print(f"machine: {machine}; python {platform.python_version()}")
    print(f"1. drain {mib(size)}:")
    print(f"   raw pipe (head | cat)        {drain['raw_pipe_s']:.3f} s")
    print(f"   subprocess.run(capture)      {drain['subprocess_run_s']:.3f} s")
    print(f"   cc-executor                  {drain['ours_s']:.3f} s")
    print(
        f"   throughput ratio vs subprocess.run: "
        f"{drain['throughput_ratio_vs_subprocess_run']:.2f}x (target >= 0.9x); "
        f"vs raw pipe: {drain['throughput_ratio_vs_raw_pipe']:.2f}x"
    )
    print(
        f"2. peak RSS: cc-executor {mib(drain['ours_peak_rss'])} (target <= 64 MiB), "
        f"subprocess.run {mib(drain['subprocess_run_peak_rss'])}"
    )
    delta_ms = (overhead["ours"] - overhead["bare"]) * 1000
    print(
        f"3. /bin/true per run: bare asyncio {overhead['bare'] * 1000:.2f} ms, "
        f"cc-executor {overhead['ours'] * 1000:.2f} ms, overhead {delta_ms:.2f} ms "
        f"(target <= 2 ms)"
    )
    print(
        f"4. `cc-executor --version` cold start: {cold['cc_executor_version_s'] * 1000:.1f} ms "
        f"(target <= 150 ms; bare `python -c pass`: {cold['bare_python_s'] * 1000:.1f} ms)"
    )
    print(
        f"5. 200 concurrent chatty runs ({concurrent['lines']} lines framed and delivered): "
        f"{concurrent['seconds']:.2f} s wall, peak RSS {mib(concurrent['peak_rss'])}"
    )
    if args.json:
        Path(args.json).write_text(
            json.dumps(
                {
                    "machine": machine,
                    "drain": drain,
                    "overhead": overhead,
                    "cold_start": cold,
                    "concurrent": concurrent,
                },
                indent=2,
            )
        )


if __name__ == "__main__":
    main()
