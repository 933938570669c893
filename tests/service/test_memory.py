"""Issue 18 L11: the service's memory is bounded by bytes, not by a count of events, and a
client still gets every byte of a huge line (read back from the run's files)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import psutil
import pytest

from cc_executor.testing import Reply, Rule, Script, Text
from tests.service.conftest import Service, sse_events

#: One line per run.
LINE = 40 * 1024 * 1024
RUNS = 4


def rss(service: Service) -> int:
    return int(psutil.Process(service.proc.pid).memory_info().rss)


async def test_finished_runs_with_huge_lines_keep_them_on_disk(
    start: Callable[..., Service], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Four finished runs with one 100 MB line each took the server from 112 to 494 MB: the
    lines were kept in memory. Now the growth after RUNS such runs, each streamed to a
    client, is a small fraction of ONE line."""
    # glibc gives every buffer over 128 KiB back to the system when it is freed (not kept
    # for reuse), so that RSS shows what the server keeps, not what its allocator caches.
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", str(128 * 1024))
    service = start("--allow-exec", sys.executable)
    code = f"import sys\nsys.stdout.write('x' * {LINE} + '\\n')\nsys.stdout.write('after\\n')\n"
    async with service.client() as client:
        # One small run first, so the baseline has everything a run imports.
        warm = await client.post("/runs", json={"argv": [sys.executable, "-c", "print(1)"]})
        await sse_events(client, warm.json()["run_id"])
        before = rss(service)
        for _ in range(RUNS):
            response = await client.post("/runs", json={"argv": [sys.executable, "-c", code]})
            assert response.status_code == 202, response.text
            events = await sse_events(client, response.json()["run_id"])
            lines = [e["text"] for e in events if e["type"] == "output"]
            assert [len(t) for t in lines] == [LINE, len("after")]
            assert lines[0] == "x" * LINE
            assert events[-1]["status"] == "ok"
        # Replayed again after the run ended: still whole.
        again = await sse_events(client, response.json()["run_id"])
        assert [len(e["text"]) for e in again if e["type"] == "output"] == [LINE, 5]
        after_all = rss(service)
    # Kept in memory, each run would add a line (4.6 lines in all before the fix).
    assert (after_all - before) / LINE < 0.1, (before, after_all)


async def test_max_event_bytes_bounds_what_a_run_keeps_for_replay(
    start: Callable[..., Service],
) -> None:
    """`serve --max-event-bytes`: a run printing 4 MB in 10 KB lines keeps at most the
    budget in memory; a follower after the end gets a gap, then the newest lines and the
    end (before, the server kept the run's 10,000 newest events, 100 MB of such lines)."""
    service = start("--allow-exec", sys.executable, "--max-event-bytes", "1000000")
    code = "for i in range(400):\n    print(f'{i:04} ' + 'x' * 10_000)\n"
    async with service.client() as client:
        response = await client.post("/runs", json={"argv": [sys.executable, "-c", code]})
        run_id = response.json()["run_id"]
        await sse_events(client, run_id)  # to the end
        replay = await sse_events(client, run_id)
    assert replay[0]["type"] == "gap"
    kept = [e for e in replay if e["type"] == "output"]
    assert 0 < sum(len(e["text"]) for e in kept) < 1_000_000
    assert kept[-1]["text"].startswith("0399 ")
    assert replay[-1]["type"] == "completed"


#: A Claude Code answer (the CLI prints it whole on one line, twice).
ANSWER = 8 * 1024 * 1024


@pytest.mark.cli
async def test_huge_claude_answers_are_kept_on_disk(
    start: Callable[..., Service], bed: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other events that can be huge (the answer's text block, the result event and the
    run's result) go to the spool: finished Claude Code runs with an 8 MB answer each keep
    a small fraction of one answer, and every client still gets the whole answer."""
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", str(128 * 1024))
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", str(128 * 1024))
    # The answer streams in 64 KiB deltas: the budget keeps the newest 2 MB of them.
    service = start("--max-event-bytes", str(2 * 1024 * 1024))
    answer = "".join(f"{i:07} lorem ipsum dolor sit amet.\n" for i in range(ANSWER // 36))
    script = Script([Rule(answers=[Reply([Text(answer)], chunk_size=64 * 1024)])])
    async with bed(script) as b, service.client() as client:
        after_first = 0
        for i in range(RUNS):
            response = await client.post("/runs", json={"prompt": "hi", "options": b.options()})
            assert response.status_code == 202, response.text
            run_id = response.json()["run_id"]
            events = await sse_events(client, run_id)
            run = (await client.get(f"/runs/{run_id}")).json()
            assert run["status"] == "ok", run
            assert run["result"]["result"] == answer
            texts = [e["text"] for e in events if e["type"] == "text"]
            assert texts == [answer]
            assert [e["result"] for e in events if e["type"] == "result"] == [answer]
            del events, run, texts
            if i == 0:
                after_first = rss(service)
        after_all = rss(service)
    # Before: each run kept its answer three times over (text, result, the run's result).
    assert (after_all - after_first) / ANSWER < 0.25, (after_first, after_all)
