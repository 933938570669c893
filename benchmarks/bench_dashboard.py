"""The web dashboard's run list over a large history, measured in a real browser.

Seeds ``--runs`` runs (100,000 by default) in a fresh history, starts ``cc-executor serve``
on it, logs in with Debian's Chromium through Playwright, and measures, as the browser sees
them (navigation start to the ``load`` event, from the Navigation Timing API):

1. the run list's first page;
2. the same list filtered by prompt text and status (a full scan of the prompts);
3. the tenth page (keyset pagination: as cheap as the first);

each against the login page, a page with no data, measured in the same run (the baseline).
Targets (issue 23): first render under 1 s, filter under 300 ms.

Then a command printing 1,000 lines/s for ``--stream-seconds`` (60) is followed on its run
page: every 10 s, how many events the page is behind the server (the run's ``last_seq``
against the last event the page handled) and the tab's JavaScript heap. Target: no
growing lag, bounded memory.

    .venv/bin/python benchmarks/bench_dashboard.py [--runs N] [--rounds R] [--stream-seconds S]
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


def follow_stream(
    page: Any, url: str, token: str, root: str, seconds: int
) -> list[tuple[int, int, float]]:
    import httpx

    code = (
        "import time\n"
        "start = time.monotonic()\n"
        # Printing past the last sample: the run page loads again when the run ends.
        f"for i in range({(seconds + 15) * 1000}):\n"
        "    print(f'line {i} ' + 'x' * 60, flush=True)\n"
        "    if i % 10 == 9:\n"
        "        time.sleep(max(0, start + (i + 1) / 1000 - time.monotonic()))\n"
    )
    auth = {"Authorization": f"Bearer {token}"}
    body = {"argv": [sys.executable, "-c", code], "options": {"cwd": root}}
    run_id = httpx.post(f"{url}/runs", json=body, headers=auth).json()["run_id"]
    page.goto(f"/ui/runs/{run_id}")
    samples = []
    started = time.monotonic()
    for mark in range(10, seconds + 1, 10):
        page.wait_for_timeout(max(0, (started + mark - time.monotonic()) * 1000))
        shown = int(page.locator("#run").get_attribute("data-seq") or 0)
        server_seq = httpx.get(f"{url}/runs/{run_id}", headers=auth).json()["last_seq"]
        heap = page.evaluate("() => performance.memory.usedJSHeapSize") / 1e6
        samples.append((mark, server_seq - shown, heap))
    httpx.post(f"{url}/runs/{run_id}/cancel", headers=auth)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--stream-seconds", type=int, default=60)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    base = tempfile.mkdtemp(prefix="cc-bench-dashboard-")
    home, root = os.path.join(base, "home"), os.path.join(base, "work")
    os.makedirs(home)
    os.makedirs(root)
    populate(home, root, args.runs)
    env = {**os.environ, "CC_EXECUTOR_HOME": home}
    server = subprocess.Popen(
        [CLI, "serve", "--port", "0", "--allow-dir", root, "--allow-exec", sys.executable],
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
            stream = follow_stream(page, url, token, root, args.stream_seconds)
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
    print("a command printing 1,000 lines/s, followed on its run page:")
    for second, behind, heap in stream:
        print(f"  {second:3d} s: page {behind} events behind the server, JS heap {heap:.1f} MB")


if __name__ == "__main__":
    main()
