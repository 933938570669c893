"""``cc-executor attach``: a fleet run followed from another process, mid-run and after its
end, against a private Redis, a real worker and the real Claude Code CLI."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from cc_executor import start_run
from cc_executor._agents._types import AgentEvent, StatusEvent
from cc_executor._ids import new_run_id
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._wait import await_for
from tests.fleet.conftest import CLI, FleetBed, RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def stream(bed: FleetBed, run_id: str) -> list[tuple[int, dict[str, Any]]]:
    """The run's stream as Redis holds it: (SEQ from the entry's id, entry)."""
    found: Any = bed.redis.client().xrange(f"cc-executor:events:{run_id}")
    return [(int(i.decode().split("-")[1]), orjson.loads(f[b"e"])) for i, f in found]


def cc(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "CC_EXECUTOR_FLEET"}
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


def gated(gate: Path) -> Script:
    """A run that says something, then waits in a tool until ``gate`` exists."""
    command = f"until [ -e {gate} ]; do sleep 0.1; done; echo through"
    return Script(
        [
            Rule(
                answers=[
                    Reply([Text("before the gate"), ToolUse("Bash", {"command": command})]),
                    Reply([Text("after the gate")]),
                ]
            )
        ]
    )


async def test_attach_mid_run_sees_every_event_after_seq_in_order_then_the_result(
    fleet_bed: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    bed: FleetBed
    async with fleet_bed(gated(gate)) as bed:
        bed.start_worker()
        events: list[AgentEvent] = []
        handle = start_run(
            "wait for the gate",
            fleet=bed.url,
            cwd=str(bed.workdir),
            allowed_tools=["Bash"],
            on_event=events.append,
        )
        await await_for(lambda: any(e.type == "tool_use" for e in events), timeout=120)
        before = stream(bed, handle.run_id)
        assert [s for s, _ in before] == list(range(1, len(before) + 1))
        after = 2
        attach = subprocess.Popen(
            [CLI, "attach", handle.run_id, "--fleet", bed.url, "--after", str(after), "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert attach.stdout is not None
        first = await asyncio.to_thread(attach.stdout.readline)
        # The attacher is following while the run still waits at the gate.
        assert not handle.done
        gate.touch()
        result = await handle.wait()
        # Read on from the same buffered file (communicate() would skip what it holds).
        rest = await asyncio.to_thread(attach.stdout.read)
        assert attach.stderr is not None
        err = await asyncio.to_thread(attach.stderr.read)
        await asyncio.to_thread(attach.wait, 120)
        attach.stdout.close()
        attach.stderr.close()
    assert attach.returncode == 0, err
    lines = [json.loads(line) for line in [first, *rest.splitlines()]]
    *seen, last = lines
    entries = stream(bed, handle.run_id)
    wanted = [(s, e["event"]) for s, e in entries if s > after and e["kind"] == "event"]
    assert [(e["seq"], e["type"]) for e in seen] == [(s, e["type"]) for s, e in wanted]
    assert {e["run_id"] for e in seen} == {handle.run_id}
    assert [e.type for e in events][after:] == [e["type"] for e in seen]
    assert last["status"] == "ok"
    assert last["result"] == result.result == "after the gate"
    assert entries[-1][1]["kind"] == "result"


async def test_attach_after_the_end_replays_the_whole_stream(fleet_bed: Any) -> None:
    script = Script([Rule(answers=[Reply([Text("long done")])])])
    async with fleet_bed(script) as bed:
        bed.start_worker()
        events: list[AgentEvent] = []
        handle = start_run("answer", fleet=bed.url, cwd=str(bed.workdir), on_event=events.append)
        result = await handle.wait()
        replay = await asyncio.to_thread(cc, "attach", handle.run_id, "--fleet", bed.url, "--json")
        text = await asyncio.to_thread(cc, "attach", handle.run_id, "--fleet", bed.url)
    assert replay.returncode == 0, replay.stderr
    *seen, last = [json.loads(line) for line in replay.stdout.splitlines()]
    assert [e["seq"] for e in seen] == list(range(1, len(seen) + 1))
    assert [e["type"] for e in seen] == [e.type for e in events]
    assert last["run_id"] == handle.run_id
    assert last["status"] == "ok"
    assert last["result"] == result.result == "long done"
    # The text form: the answer on stdout, exit code as `run --fleet`.
    assert text.returncode == 0, text.stderr
    assert text.stdout == "long done\n"
    # Its last line is run --fleet's, cost and session included (they were left out).
    assert text.stderr.splitlines()[-1] == (
        f"ok · ${result.cost_usd:.4f} · {result.duration_s:.1f}s · run {handle.run_id} · "
        f"session {result.session_id}"
    )


def test_attach_to_an_unknown_run_says_which_in_one_line(redis_server: RedisServer) -> None:
    fresh = new_run_id()
    done = cc("attach", fresh, "--fleet", redis_server.url)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
    assert f"no run {fresh}" in done.stderr
    assert "never submitted" in done.stderr
    # An id of long ago: its run, if there was one, has expired.
    old = "0" * 10 + fresh[10:]
    done = cc("attach", old, "--fleet", redis_server.url)
    assert done.returncode == 1
    assert "it expired" in done.stderr
    done = cc("attach", "not-an-id", "--fleet", redis_server.url)
    assert done.returncode == 1
    assert "not a fleet run id" in done.stderr
    done = cc("attach", fresh, "--fleet", redis_server.url, "--after", "-1")
    assert done.returncode == 2
    assert "--after must be >= 0" in done.stderr


def _tree(cwd: Path) -> list[psutil.Process]:
    """The run's processes: those whose working folder is the run's (the CLI, its tools)."""
    found = []
    for proc in psutil.process_iter(["cwd"]):
        if proc.info["cwd"] == str(cwd):
            found.append(proc)
    return found


def _statuses(cwd: Path) -> set[str]:
    seen = set()
    for proc in _tree(cwd):
        with contextlib.suppress(psutil.Error):
            seen.add(proc.status())
    return seen


async def test_pause_mid_tool_stops_the_tree_on_its_worker_and_unpause_lets_it_end_ok(
    fleet_bed: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    async with fleet_bed(gated(gate)) as bed:
        events: list[AgentEvent] = []
        handle = start_run(
            "wait for the gate",
            fleet=bed.url,
            cwd=str(bed.workdir),
            allowed_tools=["Bash"],
            on_event=events.append,
        )
        # Queued (no worker yet): nothing to pause, said so.
        await await_for(lambda: bed.redis.client().llen("cc-executor:cc-executor-runs"), timeout=60)
        queued = await asyncio.to_thread(cc, "pause", handle.run_id, "--fleet", bed.url)
        assert queued.returncode == 1
        assert "is queued, not running yet" in queued.stderr
        assert handle.pause() is False
        bed.start_worker()
        await await_for(lambda: any(e.type == "tool_use" for e in events), timeout=120)
        await await_for(lambda: "until" in " ".join(_argvs(bed.workdir)), timeout=120)
        assert handle.pause() is True
        await await_for(lambda: _statuses(bed.workdir) == {"stopped"}, timeout=120)
        await await_for(lambda: "paused" in _status_events(events), timeout=120)
        gate.touch()  # a stopped tree does not see it until it is continued
        done = await asyncio.to_thread(cc, "unpause", handle.run_id, "--fleet", bed.url)
        assert done.returncode == 0, done.stderr
        assert "its worker was told to unpause it" in done.stderr
        result = await handle.wait()
        over = await asyncio.to_thread(cc, "pause", handle.run_id, "--fleet", bed.url)
    assert result.ok, result.error
    assert result.result == "after the gate"
    assert _status_events(events) == ["paused", "resumed"]
    assert handle.pause() is False
    assert over.returncode == 1
    assert "has ended: nothing to pause" in over.stderr


def _argvs(cwd: Path) -> list[str]:
    found = []
    for proc in _tree(cwd):
        with contextlib.suppress(psutil.Error):
            found.append(" ".join(proc.cmdline()))
    return found


def _status_events(events: list[AgentEvent]) -> list[str]:
    return [e.status for e in events if isinstance(e, StatusEvent) and e.status in _PAUSING]


_PAUSING = ("paused", "resumed")
