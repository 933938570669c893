"""The web dashboard's run list over a large history, measured in a real browser.

Seeds ``--runs`` runs (100,000 by default) in a fresh history, starts ``cc-executor serve``
on it, logs in with Debian's Chromium through Playwright, and measures, as the browser sees
them (navigation start to the ``load`` event, from the Navigation Timing API):

1. the run list's first page;
2. the same list filtered by prompt text and status (a full scan of the prompts);
3. the tenth page (keyset pagination: as cheap as the first);

each against the login page, a page with no data, measured in the same run (the baseline).
Targets (issue 23): first render under 1 s, filter under 300 ms.

    .venv/bin/python benchmarks/bench_dashboard.py [--runs N] [--rounds R]
"""

from __future__ import annotations

import argparse
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
from typing import Any

CLI = str(Path(sys.executable).parent / "cc-executor")
CHROMIUM = "/usr/lib/chromium/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]


def populate(home: str, root: str, count: int) -> None:
    os.environ["CC_EXECUTOR_HOME"] = home
    from cc_executor._store import RunRecord, default_store_path, open_store
    from cc_executor._store._sqlite import _COLUMNS, _row_values

    open_store().close()
    now = time.time() - count
    rows = [
        _row_values(
            RunRecord(
                id=f"bench{i:021d}",
                kind="run",
                agent="claude",
                model=("opus", "sonnet")[i % 2],
                cwd=root,
                started_at=now + i,
                ended_at=now + i + 3,
                status=("ok", "failed", "timeout")[i % 3],
                duration_s=3.0,
                cost_usd=0.01,
                input_tokens=100,
                output_tokens=200,
                prompt_preview=f"benchmark prompt number {i}",
            )
        )
        for i in range(count)
    ]
    db = sqlite3.connect(default_store_path())
    marks = ", ".join("?" for _ in _COLUMNS)
    db.executemany(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({marks})", rows)
    db.commit()
    db.close()


def load_ms(page: Any, url: str) -> float:
    page.goto(url)
    timing: float = page.evaluate(
        "() => { const n = performance.getEntriesByType('navigation')[0];"
        " return n.loadEventEnd - n.startTime; }"
    )
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    base = tempfile.mkdtemp(prefix="cc-bench-dashboard-")
    home, root = os.path.join(base, "home"), os.path.join(base, "work")
    os.makedirs(home)
    os.makedirs(root)
    populate(home, root, args.runs)
    env = {**os.environ, "CC_EXECUTOR_HOME": home}
    server = subprocess.Popen(
        [CLI, "serve", "--port", "0", "--allow-dir", root],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert server.stdout is not None
        url = server.stdout.readline().rsplit(" ", 1)[-1].strip()
        token = Path(home, "service-token").read_text().strip()
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=CHROMIUM, args=ARGS)
            page = browser.new_context(base_url=url).new_page()
            page.goto("/ui/login")
            page.get_by_label("Service token").fill(token)
            page.get_by_role("button", name="Log in").click()
            page.wait_for_url("**/ui/runs")
            tenth = "/ui/runs"
            for _ in range(9):
                page.goto(tenth)
                tenth = page.get_by_role("link", name="Older runs").get_attribute("href") or ""
            filtered = "/ui/runs?q=number+77777&status=failed"
            samples: dict[str, list[float]] = {"login": [], "first": [], "filter": [], "tenth": []}
            for _ in range(args.rounds):
                samples["login"].append(load_ms(page, "/ui/login"))
                samples["first"].append(load_ms(page, "/ui/runs"))
                samples["filter"].append(load_ms(page, filtered))
                samples["tenth"].append(load_ms(page, tenth))
            browser.close()
    finally:
        server.terminate()
        server.wait()
        shutil.rmtree(base, ignore_errors=True)
    median = {name: statistics.median(values) for name, values in samples.items()}
    load = os.getloadavg()[0]
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {load:.1f}")
    print(f"runs in the history: {args.runs:,}; median of {args.rounds} page loads")
    print(f"login page (baseline): {median['login']:.0f} ms")
    for name, label, target in (
        ("first", "run list, first page", "< 1000 ms"),
        ("filter", "filtered by text and status", "< 300 ms"),
        ("tenth", "tenth page (keyset)", ""),
    ):
        ratio = median[name] / median["login"]
        print(f"{label}: {median[name]:.0f} ms ({ratio:.1f}x the login page) {target}")


if __name__ == "__main__":
    main()
