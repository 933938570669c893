"""``serve --fleet`` in a real browser: the dashboard lists a fleet run live (a filtered
list), streams it into its page, cancels it there, and keeps the overview's fleet section
up to date: the run its worker holds, then the worker lost once its heartbeat expires.
One test, as browser tests are costly (Chromium, a worker, the service, the real CLI)."""

from __future__ import annotations

import re
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cc_executor.testing import Reply, Rule, Script, Text
from tests._means import CHROMIUM
from tests._procs import HOLD, NEEDLE, pids_running
from tests._wait import wait_for
from tests.service.conftest import launch

pytestmark = [pytest.mark.browser, pytest.mark.redis, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

from tests.service.test_dashboard import (  # noqa: E402 (after the skip without Playwright)
    CHROMIUM_ARGS,
    RUN_WAIT_MS,
    Visit,
    serious_violations,
)


@pytest.fixture
def chromium() -> Iterator[Any]:
    """Chromium for this one test."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def test_the_dashboard_follows_a_fleet_run_and_its_workers(
    fleet_bed_sync: Any, chromium: Any, tmp_path: Path
) -> None:
    script = Script([Rule(match="^hold", answers=[HOLD]), Rule(answers=[Reply([Text("ok")])])])
    with fleet_bed_sync(script) as bed:
        # The default heartbeat timeout (10 s): a shorter one could cost the held run its
        # lease on a loaded machine; the lost worker shows at most 10 s + a poll later.
        worker = bed.start_worker()
        service = launch(tmp_path / "service-home", bed.workdir, "--fleet", bed.url)
        visit = Visit(chromium, service, tmp_path)
        try:
            visit.login(service.token)
            overview = visit.context.new_page()
            overview.goto("/ui/overview")
            fleet = overview.locator("#fleet")
            row = fleet.locator("#workers tbody tr").first
            # Late (two heartbeats missed) is possible on a loaded machine: ok by a later read.
            expect(row).to_have_attribute("data-health", "ok", timeout=RUN_WAIT_MS)
            expect(row).to_contain_text(str(worker.proc.pid))
            listing = visit.page
            listing.goto("/ui/runs?status=running")
            expect(listing.locator("#live-note")).to_contain_text("Live", timeout=RUN_WAIT_MS)

            body = {
                "prompt": "hold",
                "options": {"cwd": str(bed.workdir), "allowed_tools": ["Bash"]},
            }
            reply = httpx.post(
                f"{service.url}/runs", json=body, headers=service.headers(), timeout=30
            )
            assert reply.status_code == 202, reply.text
            run_id = reply.json()["run_id"]

            # The run list (filtered on "running") takes the fleet run as it starts.
            line = listing.locator(f'tr[data-run-id="{run_id}"]')
            expect(line.locator(".status")).to_have_text("running", timeout=RUN_WAIT_MS)
            # The overview's fleet section, read again by the page: the worker runs it.
            expect(row.locator('td[data-col="runs"]')).to_contain_text(run_id, timeout=RUN_WAIT_MS)
            expect(row.locator('td[data-col="busy"]')).to_contain_text(re.compile(r"^1 / "))
            assert serious_violations(overview) == []

            # Its page streams what the worker's run says, and cancels it.
            page = visit.context.new_page()
            page.goto(f"/ui/runs/{run_id}")
            expect(page.locator("#transcript .assistant")).to_contain_text(
                "working on it", timeout=RUN_WAIT_MS
            )
            wait_for(lambda: pids_running(bed.workdir, NEEDLE), timeout=120, what="the tool runs")
            page.get_by_role("button", name="Cancel").click()
            expect(page.locator("#run-status")).to_have_text("cancelled", timeout=RUN_WAIT_MS)
            expect(line.locator(".status")).to_have_text("cancelled", timeout=RUN_WAIT_MS)
            expect(line).to_contain_text("no longer matches")
            expect(row.locator('td[data-col="runs"]')).to_have_text("", timeout=RUN_WAIT_MS)

            # A narrow window: the fleet's tables scroll in their box, not the page.
            overview.set_viewport_size({"width": 380, "height": 800})
            assert overview.evaluate("document.documentElement.scrollWidth") <= 380
            # The worker dies: late, then lost once its heartbeat expires.
            worker.stop(signal.SIGKILL)
            expect(row).to_have_attribute("data-health", "lost", timeout=RUN_WAIT_MS)
            expect(fleet.locator("#fleet-summary")).to_contain_text("0 live worker(s), 1 lost")
            expect(row.locator(".health")).to_have_text("lost")
            assert serious_violations(overview) == []
            overview.screenshot(path=str(tmp_path / "fleet.png"), full_page=True)
        finally:
            visit.close()
            service.stop()
    assert not visit.errors, visit.errors
    wait_for(lambda: not pids_running(bed.workdir, NEEDLE), timeout=120, what="the tool gone")
