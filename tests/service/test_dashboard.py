"""The web dashboard (``/ui``) in a real browser: Debian's Chromium driven by Playwright,
against one real ``cc-executor serve`` running the real Claude Code CLI on the scripted
model server, with 10,000 runs seeded in its history. One browser and one server serve
every test of the module (the suite's time budget); each test saves a screenshot."""

from __future__ import annotations

import functools
import hashlib
import json
import re
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from cc_executor.testing import ModelServer, Reply, Rule, Script, Text, ToolUse
from tests._means import CHROMIUM, uses_cli
from tests._procs import pids_in
from tests._wait import wait_for
from tests.service.conftest import Service, launch

pytestmark = [pytest.mark.browser, pytest.mark.slow]

playwright_api = pytest.importorskip("playwright.sync_api")
expect = playwright_api.expect

SEEDED = 10_000
BIG = 200_000
#: The lines of a 20 MB answer, numbered: its head and tail say which part they are.
HUGE_LINES = 625_000


@functools.cache
def huge() -> str:
    """The 20 MB answer, made when a test needs it (not as the module is collected)."""
    return "".join(f"line {i:08d} of the huge answer\n" for i in range(HUGE_LINES))


NEEDLE = "needle-7777"
XSS = "<img src=x onerror=alert(1)> \x1b[31mred\x1b[0m"
#: How long a wait for a run's progress may take before it fails the test (a run of the
#: real CLI on a loaded 2-core machine: not a speed target).
RUN_WAIT_MS = 120_000
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def _seed(home: Path, root: Path) -> None:
    """Write ``SEEDED`` finished runs into the history of ``home`` (one transaction)."""
    import os

    from cc_executor._store import RunRecord, default_store_path, open_store
    from cc_executor._store._sqlite import _COLUMNS, _row_values

    before = os.environ.get("CC_EXECUTOR_HOME")
    os.environ["CC_EXECUTOR_HOME"] = str(home)
    try:
        open_store().close()
        path = default_store_path()
    finally:
        if before is None:
            del os.environ["CC_EXECUTOR_HOME"]
        else:
            os.environ["CC_EXECUTOR_HOME"] = before
    now = time.time() - SEEDED - 10
    rows = []
    for i in range(SEEDED):
        record = RunRecord(
            id=f"seed{i:022d}",
            kind="run",
            agent="claude",
            model=("opus", "sonnet")[i % 2],
            cwd=str(root),
            started_at=now + i,
            ended_at=now + i + 2,
            status=("ok", "failed", "timeout")[i % 3],
            duration_s=2.0,
            cost_usd=0.001 * (i % 7),
            input_tokens=10,
            output_tokens=20,
            prompt_preview=f"seeded prompt needle-{i}",
        )
        rows.append(_row_values(record))
    db = sqlite3.connect(path)
    marks = ", ".join("?" for _ in _COLUMNS)
    db.executemany(f"INSERT INTO runs ({', '.join(_COLUMNS)}) VALUES ({marks})", rows)
    db.commit()
    db.close()


@pytest.fixture(scope="module")
@uses_cli
def model() -> Iterator[ModelServer]:
    """The scripted model: a slow stream for "slow" prompts, the hostile answer for the
    XSS prompt, a short answer otherwise."""
    slow = Reply([Text("tick " * 400)], chunk_size=5, delay=0.05)
    # Over the 64 KiB the run page shows whole: its head and tail, and a download.
    hostile = Reply([Text("<script>window.pwned = 1</script> \x1b[2J" + "a" * BIG + " THE END")])
    # Two Write calls, each asked of the page by the server's permission policy.
    writes = [
        Reply([ToolUse("Write", {"file_path": "allowed.txt", "content": "<b>yes</b>"})]),
        Reply([ToolUse("Write", {"file_path": "denied.txt", "content": "no"})]),
        Reply([Text("both decided")]),
    ]
    # A long answer, cancelled from the page; the list's resume continues the session,
    # whose next turn is quick.
    resumable = [
        Reply([Text("s" * 400)], chunk_size=2, delay=0.1),
        Reply([Text("resumed and done")]),
    ]
    # A file written in a workspace (the server's policy asks the test about the Write).
    workspace = [
        Reply([ToolUse("Write", {"file_path": "made.txt", "content": "made by the run\n"})]),
        Reply([Text("Written in the workspace.")]),
    ]
    script = Script(
        [
            Rule(match="workspace file", answers=workspace),
            Rule(match="twenty megabytes", answers=[Reply([Text(huge())], chunk_size=1 << 16)]),
            Rule(match="approve", answers=writes),
            Rule(match="resumable", answers=resumable),
            Rule(match="slow", answers=[slow]),
            Rule(match="onerror", answers=[hostile]),
            Rule(answers=[Reply([Text("Hello from the model.")])]),
        ]
    )
    with ModelServer(script) as server:
        yield server


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory, model: ModelServer
) -> Iterator[tuple[Service, dict[str, Any]]]:
    """The server (10,000 runs in its history) and the options pointing runs at the
    scripted model."""
    base = tmp_path_factory.mktemp("dashboard")
    home, root, claude_home = base / "home", base / "work", base / "claude-home"
    for folder in (home, root, claude_home):
        folder.mkdir()
    _seed(home, root)
    # Write is asked of a caller (the page); the other runs of the module call no tool.
    policy = base / "policy.yaml"
    policy.write_text("ask_timeout_s: 600\ndefault: allow\nrules:\n  - ask: Write\n")
    service = launch(home, root, "--permission-policy", str(policy))
    options = {"env": model.claude_env(home=claude_home, max_retries=0), "heartbeat_s": 0}
    options["retries"] = 0
    yield service, options
    service.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """One Chromium for the module. Not session-wide: sync Playwright holds an event loop
    in this thread while it runs, which the asyncio tests of later modules cannot share."""
    if not CHROMIUM.exists():
        pytest.skip(f"no browser: {CHROMIUM} is missing")
    with playwright_api.sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


class Visit:
    """A fresh browser context (its own cookies) on the server, saving a screenshot of
    its page into the test's folder at the end."""

    def __init__(self, browser: Any, service: Service, out: Path) -> None:
        self.service = service
        self.context = browser.new_context(base_url=service.url)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("dialog", self._dialog)
        self.out = out

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def login(self, token: str | None) -> None:
        self.page.goto("/ui/login")
        self.page.get_by_label("Service token").fill(token or "")
        self.page.get_by_role("button", name="Log in").click()
        self.page.wait_for_url("**/ui/runs")

    def close(self) -> None:
        self.page.screenshot(path=str(self.out / "screenshot.png"), full_page=True)
        self.context.close()


@pytest.fixture
def visit(browser: Any, served: tuple[Service, dict[str, Any]], tmp_path: Path) -> Iterator[Visit]:
    visit = Visit(browser, served[0], tmp_path)
    yield visit
    visit.close()
    assert not visit.errors, visit.errors


AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"


def serious_violations(page: Any) -> list[str]:
    """axe-core's serious and critical accessibility violations on ``page``."""
    page.evaluate(AXE.read_text())
    found: list[str] = page.evaluate(
        """async () => (await axe.run()).violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => `${v.id}: ${v.help} (${v.nodes.length})`)"""
    )
    return found


def _readonly_token(service: Service) -> str:
    return (service.home / "service-token-readonly").read_text().strip()


def _start(service: Service, prompt: str, options: dict[str, Any]) -> str:
    body = {"prompt": prompt, "options": {**options, "cwd": str(service.root)}}
    reply = httpx.post(f"{service.url}/runs", json=body, headers=service.headers(), timeout=30)
    assert reply.status_code == 202, reply.text
    run_id: str = reply.json()["run_id"]
    return run_id


def _wait_ended(service: Service, run_id: str) -> dict[str, Any]:
    def ended() -> dict[str, Any]:
        run: dict[str, Any] = httpx.get(
            f"{service.url}/runs/{run_id}", headers=service.headers()
        ).json()
        return {} if run.get("live") else run

    return wait_for(ended, timeout=120, what=f"run {run_id} ends")


def test_login_refuses_a_wrong_token_and_sets_a_strict_cookie(visit: Visit) -> None:
    page = visit.page
    page.goto("/ui/runs")
    page.wait_for_url("**/ui/login")
    assert serious_violations(page) == []
    page.get_by_label("Service token").fill("not-the-token")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid")
    assert page.get_by_label("Service token").get_attribute("aria-invalid") == "true"
    assert not visit.context.cookies()
    visit.login(visit.service.token)
    assert page.get_by_role("heading", name="Runs").is_visible()
    (cookie,) = visit.context.cookies()
    port = visit.service.url.rsplit(":", 1)[-1]
    assert cookie["name"] == f"cc_executor_session_{port}"
    assert cookie["httpOnly"] is True
    assert cookie["sameSite"] == "Strict"
    csp = page.request.get("/ui/runs").headers["content-security-policy"]
    assert "script-src 'self'" in csp
    assert "unsafe-inline" not in csp
    # The cookie works for the REST API too, but a change needs the CSRF token.
    assert page.request.get("/runs?limit=1").status == 200
    assert page.request.post("/runs", data={"prompt": "x"}).status == 403


def test_a_run_started_from_the_form_streams_and_cancels(
    visit: Visit, browser: Any, served: tuple[Service, dict[str, Any]]
) -> None:
    service, options = served
    visit.login(service.token)
    # A second tab on the run list filtered to running runs, to see the new run appear
    # there without a reload, and be marked when it stops running.
    listing = visit.context.new_page()
    listing.goto("/ui/runs?status=running")
    listing.wait_for_selector("#live-note:has-text('Live')")
    page = visit.page
    page.goto("/ui/new")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("#err-prompt")).to_contain_text("prompt")
    assert serious_violations(page) == []
    page.get_by_label("Prompt").fill("a slow story")
    page.get_by_text("More options").click()
    beating = {**options, "heartbeat_s": 0.5}  # the least the server allows
    page.get_by_label("Other options (JSON object)").fill(json.dumps(beating))
    page.get_by_role("button", name="Start").click()
    page.wait_for_url("**/ui/runs/*")
    run_id = page.url.rsplit("/", 1)[-1]
    page.locator("#transcript .assistant", has_text="tick").wait_for()
    # Heartbeats: the last one's time, rewritten in place, never a line each.
    # Not page.wait_for_function: its polling evaluates a string, which the page's CSP
    # (no 'unsafe-eval') refuses whenever the first check is false.
    expect(page.locator("#heartbeat")).to_have_attribute(
        "data-beats", re.compile(r"^(?:[2-9]|[1-9]\d+)$"), timeout=RUN_WAIT_MS
    )
    expect(page.locator("#heartbeat")).to_contain_text(re.compile(r"^Last heartbeat \d{4}-"))
    assert "heartbeat" not in page.locator("#transcript").inner_text().lower()
    row = listing.locator(f'tr[data-run-id="{run_id}"]')
    row.wait_for()
    assert "a slow story" in row.inner_text()
    expect(listing.get_by_text("No runs match.")).to_have_count(0)
    assert serious_violations(listing) == []
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#run-status")).to_have_text("paused")
    expect(row.locator(".status")).to_have_text("paused", timeout=RUN_WAIT_MS)
    expect(row).to_contain_text("no longer matches")
    assert serious_violations(listing) == []
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#run-status")).to_have_text("running")
    expect(row).not_to_contain_text("no longer matches", timeout=RUN_WAIT_MS)
    page.get_by_role("button", name="Cancel").click()
    page.wait_for_selector("#run-status:has-text('cancelled')")
    # The page loads again at the end, with what the server knows of the ended run.
    page.wait_for_selector('#run[data-live="0"] #transcript .assistant')
    expect(page.locator("#run-status")).to_have_text("cancelled")
    assert serious_violations(page) == []
    partial = page.locator("#transcript .assistant").inner_text()
    assert "tick" in partial
    assert len(partial) < len("tick " * 400)
    wait_for(lambda: not pids_in(service.root), what="no process left in the run's folder")
    listing.wait_for_selector(f'tr[data-run-id="{run_id}"] .status:has-text("cancelled")')
    expect(row).to_contain_text("no longer matches")
    assert page.get_by_role("button", name="Cancel").is_disabled()


def test_model_output_and_prompts_render_as_text(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    service, options = served
    run_id = _start(service, XSS, options)
    _wait_ended(service, run_id)
    visit.login(service.token)
    page = visit.page
    page.goto(f"/ui/runs/{run_id}")
    page.wait_for_selector("#transcript .assistant")
    # The escape character itself is in the page's text: shown, not interpreted.
    assert page.locator("pre.prompt").inner_text() == XSS
    assert page.locator("#answer").inner_text().startswith("<script>window.pwned = 1</script>")
    assert page.locator("pre.answer").last.inner_text().endswith("a THE END")
    assert len(page.locator("main").inner_text()) < BIG
    download = page.request.get(
        page.get_by_role("link", name="Download the whole answer").get_attribute("href") or ""
    )
    assert download.headers["content-disposition"].startswith("attachment")
    assert len(download.text()) > BIG
    assert page.locator("main img, main script").count() == 0
    assert page.evaluate("window.pwned") is None
    # Verify: each file's row reads its state; a file altered on disk reads its failure.
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verify-outcome")).to_have_text("Every receipt matches.")
    outcomes = page.locator('td[data-col="outcome"]')
    assert outcomes.count() >= 2
    assert set(outcomes.all_inner_texts()) == {"ok"}
    verified = httpx.get(
        f"{service.url}/runs/{run_id}/verify", headers=service.headers(), timeout=30
    ).json()
    prompt_file = next(a for a in verified["artifacts"] if a["name"] == "prompt")
    with open(prompt_file["path"], "a") as altered:
        altered.write("tampered")
    page.get_by_role("button", name="Verify").click()
    expect(page.locator("#verify-outcome")).to_have_text("Some receipts do not match.")
    cell = page.locator('tr[data-name="prompt"] td[data-col="outcome"]')
    expect(cell).to_contain_text("altered")
    expect(cell).to_contain_text("sha256 differs")
    page.goto("/ui/runs")
    row = page.locator(f'tr[data-run-id="{run_id}"]')
    assert "<img src=x onerror=alert(1)>" in row.inner_text()
    assert page.locator("main img").count() == 0
    assert not visit.dialogs


def test_the_read_only_token_reads_and_cannot_cancel(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    service, options = served
    readonly = _readonly_token(service)
    run_id = _start(service, "slow for the read-only test", options)
    try:
        visit.login(readonly)
        page = visit.page
        page.goto(f"/ui/runs/{run_id}")
        assert page.get_by_role("button", name="Cancel").count() == 0
        assert page.get_by_role("link", name="Start a run").count() == 0
        refused = page.evaluate(
            """async (id) => {
                const csrf = document.querySelector('meta[name="csrf-token"]').content;
                const r = await fetch(`/runs/${id}/cancel`,
                    {method: "POST", headers: {"X-CSRF-Token": csrf}});
                return [r.status, (await r.json()).error.code];
            }""",
            run_id,
        )
        assert refused == [403, "read_only"]
        as_reader = {"Authorization": f"Bearer {readonly}"}
        assert httpx.get(f"{service.url}/runs/{run_id}", headers=as_reader).status_code == 200
        cancel = httpx.post(f"{service.url}/runs/{run_id}/cancel", headers=as_reader)
        assert cancel.status_code == 403
        assert httpx.get(f"{service.url}/runs/{run_id}", headers=as_reader).json()["live"]
    finally:
        httpx.post(f"{service.url}/runs/{run_id}/cancel", headers=service.headers())
        _wait_ended(service, run_id)


def test_filters_find_one_run_among_ten_thousand(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    service, _ = served
    visit.login(service.token)
    page = visit.page
    page.goto("/ui/runs")
    assert page.locator("#runs tbody tr").count() == 50
    assert serious_violations(page) == []
    page.screenshot(path=str(visit.out / "runs.png"))
    first_page = page.locator("#runs tbody tr").first.get_attribute("data-run-id")
    page.get_by_role("link", name="Older runs").click()
    assert page.locator("#runs tbody tr").first.get_attribute("data-run-id") != first_page
    # A narrow window: the page reflows instead of scrolling sideways.
    page.set_viewport_size({"width": 380, "height": 800})
    page.goto("/ui/runs")
    assert page.evaluate("document.documentElement.scrollWidth") <= 380
    page.get_by_label("Prompt text").fill(NEEDLE)
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**q=needle-7777**")
    rows = page.locator("#runs tbody tr")
    assert rows.count() == 1
    assert "seeded prompt needle-7777" in rows.first.inner_text()
    assert "failed" in rows.first.inner_text()
    page.get_by_label("Status").select_option("ok")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**status=ok**")
    assert page.locator("#runs tbody tr").count() == 0
    assert page.get_by_text("No runs match.").is_visible()


def test_the_keyboard_alone_logs_in_opens_a_run_and_fixes_the_form(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    """No mouse: Tab, typing and Enter log in, filter, open a run, and reach every field of
    the new-run form, whose errors land next to their field and take the focus."""
    service, _ = served
    page = visit.page
    keys = page.keyboard

    def focused() -> str:
        return str(page.evaluate("document.activeElement.id || document.activeElement.textContent"))

    def tab_order(last: str) -> list[str]:
        """What Tab reaches, in order, until ``last``; a date field's day, month and year
        are one stop each, counted once."""
        order: list[str] = []
        while not order or order[-1] != last:
            keys.press("Tab")
            if not order or order[-1] != focused():
                order.append(focused())
            assert len(order) < 30, order
        return order

    page.goto("/ui/login")
    assert focused() == "token"  # the only field of the page has the focus at once
    keys.type(service.token)
    keys.press("Enter")
    page.wait_for_url("**/ui/runs")
    # The skip link comes first and passes the header; then the filters, then the runs.
    assert tab_order("Skip to content") == ["Skip to content"]
    assert page.locator(".skip").bounding_box()["x"] >= 0  # shown while focused
    keys.press("Enter")
    filters = ["f-status", "f-agent", "f-model", "f-from", "f-to", "f-q", "Filter"]
    first = page.locator("#runs tbody tr").first
    link, run_id = first.locator("a").inner_text(), first.get_attribute("data-run-id")
    assert tab_order(link) == [*filters, link]
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"  # a visible focus ring
    keys.press("Enter")
    page.wait_for_url(f"**/ui/runs/{run_id}")

    page.goto("/ui/new")
    assert tab_order("Skip to content") == ["Skip to content"]
    keys.press("Enter")  # to the form, past the header
    fields = ["o-prompt", "o-cwd", "o-agent", "o-model", "o-allowed_tools", "o-timeout"]
    assert tab_order("More options") == [*fields, "More options"]
    keys.press("Enter")  # opens the advanced section
    assert tab_order("Start") == ["o-options", "Start"]
    # A bad timeout, submitted with Enter from its field: the error is beside it, announced.
    page.focus("#o-prompt")
    keys.type("never started")
    page.focus("#o-timeout")
    keys.type("-5")
    keys.press("Enter")
    timeout = page.locator("#o-timeout")
    expect(page.locator("#err-timeout")).to_contain_text("timeout")
    expect(timeout).to_be_focused()
    assert timeout.get_attribute("aria-invalid") == "true"
    assert timeout.get_attribute("aria-describedby") == "err-timeout"
    assert page.locator("#err-form").inner_text() == ""
    # An option of the JSON box: its error is beside the box, not in the form's slot.
    keys.press("Control+A")
    keys.press("Backspace")
    page.focus("#o-options")
    keys.type('{"max_turns": "ten"}')
    page.focus("#o-model")
    keys.press("Enter")
    box = page.locator("#o-options")
    expect(page.locator("#err-options")).to_contain_text("max_turns")
    expect(box).to_be_focused()
    assert box.get_attribute("aria-invalid") == "true"
    assert box.get_attribute("aria-describedby") == "err-options hint-options"  # hint kept
    assert timeout.get_attribute("aria-invalid") is None
    assert page.locator("#err-form").inner_text() == ""
    # A misspelt option of the box: its message names the Folder field too ("did you
    # mean cwd?"), and it went beside that field rather than the box.
    page.fill("#o-options", '{"cwdd": "/"}')
    page.focus("#o-model")
    keys.press("Enter")
    expect(page.locator("#err-options")).to_contain_text("cwdd (did you mean cwd?)")
    expect(box).to_be_focused()
    assert page.locator("#err-cwd").inner_text() == ""
    assert serious_violations(page) == []


def test_the_overview_charts_a_period(visit: Visit, served: tuple[Service, dict[str, Any]]) -> None:
    service, _ = served
    visit.login(service.token)
    page = visit.page
    page.get_by_role("link", name="Overview").click()
    page.wait_for_url("**/ui/overview")
    for chart in ("Runs by status", "Cost per day (USD)", "Cost per model (USD)"):
        expect(page.get_by_role("img", name=chart)).to_be_visible()
    page.get_by_text("Runs by status as a table").click()
    # The seeded runs: every third one (i % 3 == 1) failed.
    expect(page.locator("table.figures tr", has_text="failed").first).to_contain_text("3333")
    assert serious_violations(page) == []
    # No fleet: no fleet section, and the API says why.
    assert page.get_by_role("heading", name="Fleet").count() == 0
    no_fleet = page.request.get("/fleet")
    assert no_fleet.status == 404
    assert "no fleet" in no_fleet.json()["error"]["message"]


def test_a_20_mb_answer_shows_its_head_and_tail_and_downloads_whole(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    service, options = served
    run_id = _start(service, "twenty megabytes please", options)
    ended = _wait_ended(service, run_id)
    assert ended["status"] == "ok", ended
    assert len(huge()) >= 20_000_000
    visit.login(service.token)
    page = visit.page
    page.goto(f"/ui/runs/{run_id}")
    answer = page.locator("pre.answer")
    expect(answer.first).to_contain_text("line 00000000 of the huge answer")
    expect(answer.last).to_contain_text(f"line {HUGE_LINES - 1:08d} of the huge answer")
    expect(page.locator("p.cut")).to_contain_text("characters not shown")
    # Responsive while the page replays the run's events (the answer's deltas among them):
    # a click is handled and a script round trip returns, then the replay ends.
    page.evaluate(
        """() => document.querySelector("h1").addEventListener("click",
            () => { document.body.dataset.clicked = "1"; })"""
    )
    page.locator("h1").click()
    page.wait_for_selector('body[data-clicked="1"]')
    assert page.evaluate("() => 6 * 7") == 42
    last_seq = httpx.get(f"{service.url}/runs/{run_id}", headers=service.headers()).json()
    page.wait_for_selector(f'#run[data-seq="{last_seq["last_seq"]}"]', timeout=RUN_WAIT_MS)
    # The transcript keeps the answer's tail only, and long text scrolls in its box: the
    # page stays a few screens tall (it was over 100,000 pixels, which a full-page
    # screenshot could not take in 30 s).
    kept = page.evaluate("() => document.querySelector('#transcript').textContent.length")
    assert 0 < kept <= 200_000
    assert page.evaluate("() => document.documentElement.scrollHeight") < 10_000
    assert serious_violations(page) == []  # the scrolling boxes take the keyboard's focus
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the whole answer").click()
    path = download.value.path()
    assert (
        hashlib.sha256(Path(path).read_bytes()).hexdigest()
        == hashlib.sha256(huge().encode()).hexdigest()
    )


def test_a_task_list_graph_follows_its_tasks(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    service, options = served
    tasks = [
        {"id": "first", "prompt": "one"},
        {"id": "second", "prompt": "two", "depends_on": ["first"]},
        {"id": "third", "prompt": "three", "depends_on": ["first"]},
    ]
    body = {"tasks": {"tasks": tasks}, "options": {**options, "cwd": str(service.root)}}
    reply = httpx.post(f"{service.url}/runs", json=body, headers=service.headers(), timeout=30)
    assert reply.status_code == 202, reply.text
    run_id = reply.json()["run_id"]
    visit.login(service.token)
    page = visit.page
    page.goto(f"/ui/runs/{run_id}")
    expect(page.get_by_role("img", name="Dependency graph of the tasks")).to_be_visible()
    # A list is cancelled, never paused: only the buttons the API accepts. Its Resume
    # (POST /tasks/{id}/resume) waits for the list to end without success.
    assert page.get_by_role("button", name="Cancel").count() == 1
    assert page.get_by_role("button", name="Pause").count() == 0
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()
    for task in ("first", "second", "third"):
        page.locator(f'g.task-node.t-ok[data-task="{task}"]').wait_for()
        expect(page.locator(f'tr[data-task="{task}"] [data-col="state"]')).to_have_text("ok")
        # How long each task ran, from its task_state events, in the table and tooltip.
        duration = page.locator(f'tr[data-task="{task}"] [data-col="duration"]')
        expect(duration).to_have_text(re.compile(r"^\d+\.\d$"))
        tip = page.locator(f'g.task-node[data-task="{task}"] title')
        expect(tip).to_have_text(re.compile(rf"^{task}: ok, \d+\.\d s$"))
    assert page.locator("svg.graph line.edge").count() == 2
    expect(page.locator("#run-status")).to_have_text("ok")
    expect(page.get_by_role("button", name="Resume")).to_be_disabled()  # nothing to resume
    assert serious_violations(page) == []


def test_a_cancelled_task_list_resumes_from_its_page(
    visit: Visit, served: tuple[Service, dict[str, Any]]
) -> None:
    service, options = served
    tasks = [
        {"id": "prepare", "prompt": "one"},
        {"id": "long", "prompt": "resumable work", "depends_on": ["prepare"]},
    ]
    body = {"tasks": {"tasks": tasks}, "options": {**options, "cwd": str(service.root)}}
    reply = httpx.post(f"{service.url}/runs", json=body, headers=service.headers(), timeout=30)
    assert reply.status_code == 202, reply.text
    run_id = reply.json()["run_id"]
    visit.login(service.token)
    page = visit.page
    page.goto(f"/ui/runs/{run_id}")
    resume = page.get_by_role("button", name="Resume")
    expect(resume).to_be_disabled()  # the list runs
    page.locator('g.task-node.t-running[data-task="long"]').wait_for(timeout=RUN_WAIT_MS)
    page.get_by_role("button", name="Cancel").click()
    # Cancelled, the list's page loads again, and offers to resume it.
    page.wait_for_selector('#run[data-live="0"]', timeout=RUN_WAIT_MS)
    expect(page.locator("#run-status")).to_have_text("cancelled")
    page.locator('g.task-node.t-cancelled[data-task="long"]').wait_for(timeout=RUN_WAIT_MS)
    expect(resume).to_be_enabled()
    resume.click()
    # Resumed under the same id: the kept task shows ok at once, the other runs again.
    page.wait_for_selector('#run[data-live="1"]', timeout=RUN_WAIT_MS)
    page.locator('g.task-node.t-ok[data-task="prepare"]').wait_for(timeout=RUN_WAIT_MS)
    page.wait_for_selector('#run[data-live="0"]', timeout=RUN_WAIT_MS)
    expect(page.locator("#run-status")).to_have_text("ok")
    for task in ("prepare", "long"):
        page.locator(f'g.task-node.t-ok[data-task="{task}"]').wait_for(timeout=RUN_WAIT_MS)
    expect(page.locator('tr[data-task="prepare"] [data-col="attempt"]')).to_have_text("1")
    expect(page.locator('tr[data-task="long"] [data-col="attempt"]')).to_have_text("2")
    expect(resume).to_be_disabled()
    assert serious_violations(page) == []


def test_pending_permission_requests_are_allowed_and_denied_in_the_page(
    visit: Visit, browser: Any, served: tuple[Service, dict[str, Any]], tmp_path: Path
) -> None:
    service, options = served
    run_id = _start(service, "approve two writes", {**options, "accept_denials": True})
    reader = Visit(browser, service, tmp_path / "read-only")
    (tmp_path / "read-only").mkdir()
    try:
        reader.login(_readonly_token(service))
        reader.page.goto(f"/ui/runs/{run_id}")
        visit.login(service.token)
        page = visit.page
        page.goto(f"/ui/runs/{run_id}")
        first = page.locator("#pending li", has_text="allowed.txt")
        first.wait_for()
        expect(first.locator(".pending-tool")).to_have_text("Tool: Write")
        # The tool's input is text: its markup shows as characters.
        expect(first.locator("pre.tool-input")).to_contain_text("<b>yes</b>")
        assert page.locator("#pending b").count() == 0
        expect(first.locator(".time-left")).to_contain_text("s left")
        assert serious_violations(page) == []
        # The read-only login sees the request, and no button to decide it.
        seen = reader.page.locator("#pending li", has_text="allowed.txt")
        seen.wait_for()
        assert reader.page.locator("#pending button").count() == 0
        first.get_by_role("button", name="Allow").click()
        second = page.locator("#pending li", has_text="denied.txt")
        second.wait_for()
        expect(first).to_have_count(0)
        expect(seen).to_have_count(0)
        page.screenshot(path=str(visit.out / "permission.png"))
        second.get_by_role("button", name="Deny").click()
        # The run ends; the page loads again showing how it ended.
        page.wait_for_selector('#run[data-live="0"]')
        expect(page.locator("#run-status")).to_have_text("ok")
        expect(page.locator("#answer")).to_contain_text("both decided")
        assert page.locator("#pending").count() == 0
    finally:
        reader.close()
    assert (service.root / "allowed.txt").read_text() == "<b>yes</b>"
    assert not (service.root / "denied.txt").exists()


def _sse(service: Service, run_id: str, after: int | None = None) -> list[dict[str, Any]]:
    """Every event of ``GET /runs/{run_id}/events`` until the stream ends."""
    headers = service.headers()
    if after is not None:
        headers["Last-Event-ID"] = str(after)
    url = f"{service.url}/runs/{run_id}/events"
    with httpx.stream("GET", url, headers=headers, timeout=60) as reply:
        assert reply.status_code == 200, reply.read()
        text = reply.read().decode()
    events = []
    for frame in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in frame.splitlines() if ": " in line)
        if "data" in fields:
            event = json.loads(fields["data"])
            assert fields["id"] == str(event["seq"])
            events.append(event)
    return events


def _workspace_run(service: Service, options: dict[str, Any]) -> str:
    """A run writing a file in a workspace of a fresh git repository; its Write, asked by
    the server's policy, allowed through the API. It has ended when this returns."""
    repo = service.root / "ws-repo"
    repo.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-C", str(repo), *args],
            check=True,
        )
    given = {**options, "cwd": str(repo), "workspace": "worktree"}
    body = {"prompt": "write a workspace file", "options": given}
    reply = httpx.post(f"{service.url}/runs", json=body, headers=service.headers(), timeout=30)
    assert reply.status_code == 202, reply.text
    run_id: str = reply.json()["run_id"]
    url = f"{service.url}/runs/{run_id}/permissions"

    def asked() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = httpx.get(url, headers=service.headers()).json()[
            "permissions"
        ]
        return found

    (request,) = wait_for(asked, timeout=120, what="the Write is asked")
    decided = httpx.post(
        f"{url}/{request['request_id']}/decision",
        json={"decision": "allow"},
        headers=service.headers(),
    )
    assert decided.status_code == 200, decided.text
    assert _wait_ended(service, run_id)["status"] == "ok"
    return run_id


def _check_workspace(page: Any) -> None:
    box = page.locator("#workspace")
    expect(box).to_contain_text("cc-executor/")
    expect(box.locator('tr[data-path="made.txt"] td[data-col="kind"]')).to_have_text("added")
    expect(page.locator("#diff")).to_contain_text("+made by the run")


def test_a_workspace_run_shows_its_diff_and_replays_on_another_server(
    browser: Any, served: tuple[Service, dict[str, Any]], tmp_path: Path
) -> None:
    service, options = served
    run_id = _workspace_run(service, options)
    here = Visit(browser, service, tmp_path)
    here.login(service.token)
    here.page.goto(f"/ui/runs/{run_id}")
    _check_workspace(here.page)
    expect(here.page.locator("#transcript .tool summary")).to_contain_text("Tool: Write")
    here.context.close()
    assert not here.errors, here.errors
    # A second server on the same history: a run is not in its memory. (Not the workspace
    # run: it ran in the run folder, outside the second server's allowed root.)
    run_id = _start(service, "a short hello", options)
    _wait_ended(service, run_id)
    second = launch(service.home, service.root)
    try:
        events = _sse(second, run_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        assert any(e["type"] == "text" and "Hello from the model." in e["text"] for e in events)
        assert events[-1]["type"] == "completed"
        assert events[-1]["status"] == "ok"
        assert _sse(second, run_id, after=len(events) - 1) == events[-1:]
        visit = Visit(browser, second, tmp_path)
        visit.login(second.token)
        page = visit.page
        page.goto(f"/ui/runs/{run_id}")
        expect(page.locator("#transcript .assistant")).to_contain_text("Hello from the model.")
        expect(page.locator("#run-status")).to_have_text("ok")
        visit.close()
        assert not visit.errors, visit.errors
    finally:
        second.stop()
