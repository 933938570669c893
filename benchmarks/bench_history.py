"""History benchmarks (issue 4), ratios and differences measured in the same run.

    .venv/bin/python benchmarks/bench_history.py [--runs 100000]

1. What recording adds to a run: `run_process(["/bin/true"])` alone vs the same plus what
   `cc-executor exec` does for the history (open the store, which migrates and recovers;
   record the start; record the end; close), medians of interleaved rounds.
2. `cc-executor history` (the console script, cold) and the in-process query over a history
   of 100,000 runs, against `cc-executor --version` as the start-up baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLI = str(Path(sys.executable).parent / "cc-executor")


async def recording_overhead(rounds: int, per_round: int) -> tuple[float, float]:
    from cc_executor._engine import run_process
    from cc_executor._store import Artifact, Recorder, RunRecord

    async def bare() -> None:
        await run_process(["/bin/true"])

    async def recorded() -> None:
        recorder = Recorder()
        record = RunRecord(id="", kind="exec", argv=["/bin/true"], started_at=time.time())
        result = await run_process(["/bin/true"])
        record.id = result.run_id
        record.pid = result.pid
        recorder.start(record)
        record.status = result.status.value
        record.artifacts = [
            Artifact(name="stdout", path=result.stdout_path or "", size=0, sha256="")
        ]
        recorder.finish(record)
        recorder.close()
        assert not recorder.warnings, recorder.warnings

    samples: dict[str, list[float]] = {"bare": [], "recorded": []}
    for fn in (bare, recorded):
        await fn()
    for _ in range(rounds):
        for name, fn in (("bare", bare), ("recorded", recorded)):
            t = time.perf_counter()
            for _ in range(per_round):
                await fn()
            samples[name].append((time.perf_counter() - t) / per_round)
    return statistics.median(samples["bare"]), statistics.median(samples["recorded"])


def populate(count: int) -> None:
    from cc_executor._store import RunRecord, default_store_path, open_store
    from cc_executor._store._sqlite import _COLUMNS, _row_values

    open_store().close()
    db = sqlite3.connect(default_store_path())
    now = time.time()
    rows = []
    for i in range(count):
        record = RunRecord(
            id=f"{i:026d}",
            kind="exec" if i % 3 else "run",
            agent=None if i % 3 else "claude",
            argv=["sh", "-c", f"echo {i}"],
            cwd="/tmp",
            started_at=now - (count - i),
            ended_at=now - (count - i) + 1,
            status=("ok", "failed", "timeout")[i % 3],
            duration_s=1.0,
            prompt_preview=f"prompt number {i}",
        )
        rows.append(_row_values(record))
    placeholders = ", ".join("?" for _ in _COLUMNS)
    db.executemany(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({placeholders})", rows)
    db.commit()
    db.close()


def timed_cli(*args: str, rounds: int = 7) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        subprocess.run([CLI, *args], check=True, capture_output=True)
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="cc-bench-history-")
    os.environ["CC_EXECUTOR_HOME"] = home
    try:
        bare, recorded = asyncio.run(recording_overhead(rounds=5, per_round=40))
        populate(args.runs)
        from cc_executor._store import Query, open_store

        store = open_store()
        t = time.perf_counter()
        for _ in range(20):
            store.query(Query(limit=20))
        query_s = (time.perf_counter() - t) / 20
        t = time.perf_counter()
        store.query(Query(status="failed", limit=20))
        filtered_s = time.perf_counter() - t
        store.close()
        history_cli = timed_cli("history")
        history_filtered_cli = timed_cli("history", "--status", "timeout", "--since", "30d")
        version_cli = timed_cli("--version")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(
        f"1. recording: /bin/true run {bare * 1000:.2f} ms, recorded {recorded * 1000:.2f} ms, "
        f"adds {(recorded - bare) * 1000:.2f} ms (target <= 5 ms)"
    )
    print(
        f"2. history over {args.runs:,} runs: `cc-executor history` {history_cli * 1000:.1f} ms, "
        f"with --status/--since {history_filtered_cli * 1000:.1f} ms (target < 200 ms; "
        f"`cc-executor --version` {version_cli * 1000:.1f} ms); in-process query "
        f"{query_s * 1000:.2f} ms, filtered {filtered_s * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
