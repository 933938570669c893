"""The PostgreSQL history (issue 21) against SQLite, measured in the same run.

    .venv/bin/python benchmarks/bench_history_pg.py [--runs 1000000]

Starts its own PostgreSQL (Debian's, as tests/_postgres.py does: unix socket only, fsync on
as by default), so it needs the `postgres` extra and, as root, the `postgres` account.

1. Recording a run on an open history (what a worker or `serve` does: the store stays
   open): one transaction at the start, one at the end (the end copies the run's two small
   files into the database), SQLite (WAL, synchronous=NORMAL) vs PostgreSQL over the unix
   socket with `synchronous_commit` on (the default: the commit waits for the WAL flush)
   and off (a crash may lose the last commits, as with SQLite's NORMAL); medians of
   interleaved rounds; the difference is what PostgreSQL adds per run. Opening the
   history (a one-run process opens it once) is measured apart.
2. `cc-executor history` with a filter over a history of 1,000,000 runs (seeded with
   generate_series): the cold console script and the in-process query, against
   `cc-executor --version`, `cc-executor history` on a SQLite history and a bare
   `python -c "import psycopg"` (the driver's import, the floor under any command that
   talks to PostgreSQL) as baselines, measured in interleaved rounds (a change of load
   hits all alike), wall time and the command's own CPU time.
   ``--history-only`` skips part 1. Compile the package first (``python -m compileall
   src``) when ``PYTHONDONTWRITEBYTECODE`` is set: a module without its ``.pyc`` is
   compiled again at every cold start, which is not what an installed copy does.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from tests._postgres import start_postgres  # noqa: E402

CLI = str(Path(sys.executable).parent / "cc-executor")


def record_runs(store: object, folder: Path, count: int, tag: str) -> float:
    """Seconds per run recorded (start, then end with two files) on ``store``."""
    from cc_executor._store import Artifact, RunRecord

    stdout, stderr = folder / "stdout.log", folder / "stderr.log"
    stdout.write_bytes(b'{"type":"result","result":"ok"}\n' * 40)
    stderr.write_bytes(b"")
    t = time.perf_counter()
    for i in range(count):
        record = RunRecord(
            id=f"{tag}-{time.monotonic_ns()}-{i}",
            kind="exec",
            argv=["sh", "-c", "echo hi"],
            cwd="/tmp",
            started_at=time.time(),
            host="bench",
        )
        store.start(record)  # type: ignore[attr-defined]
        record.status = "ok"
        record.ended_at = time.time()
        record.duration_s = 0.01
        record.artifacts = [
            Artifact(name="stdout", path=str(stdout), size=stdout.stat().st_size, sha256="x"),
            Artifact(name="stderr", path=str(stderr), size=0, sha256="y"),
        ]
        store.finish(record)  # type: ignore[attr-defined]
    return (time.perf_counter() - t) / count


def recording(url: str, folder: Path) -> dict[str, float]:
    from cc_executor._store import open_store
    from cc_executor._store._location import parse_postgres_url
    from cc_executor._store._postgres import PostgresStore

    stores = {
        "sqlite": open_store(folder / "history.sqlite3"),
        # What a process given --history postgresql:// records in: this machine's SQLite
        # first, then the database (MirroredStore); and the database alone, for the split.
        "pg": open_store(url),
        "pg_only": PostgresStore(parse_postgres_url(url)),
    }
    samples: dict[str, list[float]] = {name: [] for name in stores}
    for name, store in stores.items():
        record_runs(store, folder, 20, name)  # warm up
    for _ in range(7):
        for name, store in stores.items():
            samples[name].append(record_runs(store, folder, 50, name))
    for store in stores.values():
        store.close()
    opened: dict[str, list[float]] = {"sqlite": [], "pg": []}
    for _ in range(15):
        for name, where in (("sqlite", str(folder / "history.sqlite3")), ("pg", url)):
            t = time.perf_counter()
            open_store(where).close()
            opened[name].append(time.perf_counter() - t)
    return {
        **{name: statistics.median(s) for name, s in samples.items()},
        **{f"open_{name}": statistics.median(s) for name, s in opened.items()},
    }


def seed(url: str, runs: int) -> None:
    import psycopg

    from cc_executor._store import open_store

    open_store(url).close()
    now = time.time()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            """
            INSERT INTO runs (id, kind, agent, argv, cwd, started_at, ended_at, status,
                              duration_s, prompt_preview, host, artifacts, warnings)
            SELECT lpad(i::text, 26, '0'),
                   CASE WHEN i %% 3 = 0 THEN 'run' ELSE 'exec' END,
                   CASE WHEN i %% 3 = 0 THEN 'claude' END,
                   '["sh", "-c", "echo ' || i || '"]', '/tmp',
                   %s - (%s - i), %s - (%s - i) + 1,
                   (ARRAY['ok', 'failed', 'timeout'])[i %% 3 + 1],
                   1.0, 'prompt number ' || i, 'worker-' || (i %% 16), '[]', '[]'
            FROM generate_series(1, %s) AS i
            """,
            (now, runs, now, runs, runs),
        )
        conn.execute("ANALYZE runs")


def timed_rounds(
    commands: dict[str, list[str]], rounds: int = 11
) -> dict[str, tuple[float, float]]:
    """Median wall time and median CPU time (user + system, of the command's process) of
    each command, run in interleaved rounds."""
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for _ in range(rounds):
        for name, argv in commands.items():
            before = os.times()
            t = time.perf_counter()
            subprocess.run(argv, check=True, capture_output=True)
            wall[name].append(time.perf_counter() - t)
            after = os.times()
            cpu[name].append(
                after.children_user
                - before.children_user
                + after.children_system
                - before.children_system
            )
    return {
        name: (statistics.median(wall[name]), statistics.median(cpu[name])) for name in commands
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--history-only", action="store_true", help="skip part 1")
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="cc-bench-history-pg-")
    os.environ["CC_EXECUTOR_HOME"] = home
    server = start_postgres(durable=True)
    url = server.url()
    with_sync: dict[str, float] | None = None
    without_sync: dict[str, float] | None = None
    try:
        if not args.history_only:
            with_sync = recording(url, Path(home))
            server.sql("ALTER DATABASE postgres SET synchronous_commit = off")
            without_sync = recording(url, Path(home))
            server.sql("ALTER DATABASE postgres RESET synchronous_commit")
            server.empty()
        seed(url, args.runs)
        from cc_executor._store import Query, open_store

        store = open_store(url)
        t = time.perf_counter()
        for _ in range(10):
            store.query(Query(status="failed", since=time.time() - 30 * 86400, limit=20))
        query_s = (time.perf_counter() - t) / 10
        t = time.perf_counter()
        for _ in range(10):
            store.query(Query(agent="claude", kind="run", limit=20))
        agent_s = (time.perf_counter() - t) / 10
        store.close()
        load_before = os.getloadavg()
        cli = [CLI, "--history", url, "history"]
        timed = timed_rounds(
            {
                "filtered": [*cli, "--status", "timeout", "--since", "30d"],
                "plain": cli,
                "version": [CLI, "--version"],
                # The same command on the default SQLite history (nearly empty): the
                # console's start-up and imports, which the query over a million rows adds to.
                "sqlite": [CLI, "history"],
                "psycopg": [sys.executable, "-c", "import psycopg"],
            }
        )
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.platform()}")
    print(f"load average: {load_before} before part 2, {os.getloadavg()} at the end")
    for label, figures in (("on", with_sync), ("off", without_sync)):
        if figures is None:
            continue
        print(
            f"1. recording (synchronous_commit={label}): SQLite {figures['sqlite'] * 1000:.2f} ms"
            f"/run, PostgreSQL {figures['pg'] * 1000:.2f} ms/run, adds "
            f"{(figures['pg'] - figures['sqlite']) * 1000:.2f} ms (target < 5 ms); opening: "
            f"SQLite {figures['open_sqlite'] * 1000:.1f} ms, PostgreSQL "
            f"{figures['open_pg'] * 1000:.1f} ms; of which the database alone "
            f"{figures['pg_only'] * 1000:.2f} ms/run"
        )
    shown = {name: f"{w * 1000:.1f} ms (CPU {c * 1000:.0f} ms)" for name, (w, c) in timed.items()}
    print(
        f"2. history over {args.runs:,} runs: `cc-executor history --status timeout --since "
        f"30d` {shown['filtered']}, plain {shown['plain']} (target < 300 ms); baselines: "
        f"`cc-executor --version` {shown['version']}, `cc-executor history` on SQLite "
        f"{shown['sqlite']}, `python -c 'import psycopg'` {shown['psycopg']}; in-process "
        f"query --status failed --since 30d {query_s * 1000:.2f} ms, agent+kind "
        f"{agent_s * 1000:.2f} ms"
    )


if __name__ == "__main__":
    main()
