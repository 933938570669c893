"""Fleet mode end to end: a private Redis, workers as separate processes (each with its own
HOME and CC_EXECUTOR_HOME), the real Claude Code CLI against the scripted model server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
from asyncio.subprocess import PIPE
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor import start_run
from cc_executor._agents._types import AgentEvent
from cc_executor._errors import RunRefused
from cc_executor._fleet import open_fleet
from cc_executor._run._fleet import FleetRunHandle, cancel_fleet_run, run_message
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._wait import await_for
from tests.fleet.conftest import CLI, FleetBed

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def answer(text: str) -> Script:
    return Script([Rule(answers=[Reply([Text(text)])])])


async def test_one_run_goes_end_to_end_with_its_events_in_order_and_receipts(
    fleet_bed: Any,
) -> None:
    bed: FleetBed
    async with fleet_bed(answer("hello from the fleet")) as bed:
        worker = bed.start_worker()
        events: list[AgentEvent] = []
        handle = start_run("say hello", fleet=bed.url, on_event=events.append, cwd=str(bed.workdir))
        result = await handle.wait()
    assert result.ok, result.error
    assert result.result == "hello from the fleet"
    assert result.run_id == handle.run_id
    kinds = [e.type for e in events]
    assert kinds[0] == "run_started"
    assert kinds.index("init") < kinds.index("text") < kinds.index("result") == len(kinds) - 1
    # The run ran on the worker's machine: its folder and its history with receipts.
    assert result.run_dir is not None
    assert result.run_dir.startswith(str(worker.data))
    shown = worker.cc("show", result.run_id, "--json")
    assert shown.returncode == 0, shown.stderr
    record = json.loads(shown.stdout)
    assert record["status"] == "ok"
    assert record["artifacts"], record
    verified = worker.cc("verify", result.run_id)
    assert verified.returncode == 0, verified.stdout + verified.stderr


#: A tool call that lasts until it is killed (Claude Code refuses a long plain ``sleep``).
NEEDLE = "tail -f /dev/null"


def _in(cwd: str, needle: str | None = None) -> list[int]:
    """Processes running in ``cwd`` (any, or those whose argv holds ``needle``), as psutil
    sees them (not our own sweep)."""
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            argv = " ".join(proc.info["cmdline"] or [])
            if proc.info["cwd"] == cwd and (needle is None or needle in argv):
                found.append(proc.pid)
    return found


async def test_run_with_fleet_on_the_command_line_waits_and_prints_like_a_local_run(
    fleet_bed: Any,
) -> None:
    async with fleet_bed(answer("printed from afar")) as bed:
        bed.start_worker()
        done = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "say it", "--fleet", bed.url, "--cwd", str(bed.workdir), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout == "printed from afar\n"
        # A password on the command line is refused before anything is queued.
        refused = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "x", "--fleet", "redis://u:secret@localhost:1/0"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert refused.returncode == 2
    assert "CC_EXECUTOR_FLEET_PASSWORD" in refused.stderr
    assert "Traceback" not in refused.stderr


#: The test bed of issue 20: 50 runs submitted at once over 3 workers of 3 slots each.
RUNS, WORKERS, SLOTS = 50, 3, 3


async def test_fifty_runs_over_three_workers_all_end_ok_once_each_with_receipts(
    fleet_bed: Any,
) -> None:
    """Every run ends ok with its own answer, ran exactly once (one model request per prompt,
    one record across the workers' histories), its receipts verify on the machine that ran
    it, and all three workers took several."""
    jobs = [f"job {i:02d}" for i in range(RUNS)]
    script = Script(
        [Rule(match=f"^{job}$", answers=[Reply([Text(f"{job} done")])]) for job in jobs]
    )
    bed: FleetBed
    async with fleet_bed(script) as bed:
        workers = [bed.start_worker("--slots", str(SLOTS)) for _ in range(WORKERS)]
        handles = [start_run(job, fleet=bed.url, cwd=str(bed.workdir)) for job in jobs]
        results = await asyncio.gather(*(h.wait() for h in handles))
        prompts = [r.prompt for r in bed.server.message_requests]
        checks = await asyncio.gather(
            *(asyncio.to_thread(w.cc, "verify", "--last", str(RUNS + 1), "--json") for w in workers)
        )
    assert [r.status.value for r in results] == ["ok"] * RUNS, [r.error for r in results]
    assert [r.result for r in results] == [f"{job} done" for job in jobs]
    assert [r.run_id for r in results] == [h.run_id for h in handles]
    # Executed exactly once: one model request per prompt (a second copy would ask again).
    assert sorted(p for p in prompts if p in jobs) == jobs, prompts
    # One record per run across the machines, each verified where it ran.
    verified: dict[str, list[str]] = {}
    for worker, check in zip(workers, checks, strict=True):
        assert check.returncode == 0, check.stdout + check.stderr
        report = json.loads(check.stdout)
        assert report["ok"], report
        verified[worker.name] = [run["run_id"] for run in report["runs"]]
    ran = sorted(run_id for ids in verified.values() for run_id in ids)
    assert ran == sorted(r.run_id for r in results)
    for worker in workers:
        mine = [r.run_id for r in results if (r.run_dir or "").startswith(str(worker.data))]
        assert sorted(mine) == sorted(verified[worker.name])
        # Spread: every worker took several (3 slots each, 50 runs at once).
        assert len(mine) > SLOTS, {w: len(ids) for w, ids in verified.items()}


async def test_a_remote_cancel_mid_tool_kills_the_whole_tree_and_returns_the_partial_result(
    fleet_bed: Any,
) -> None:
    script = Script(
        [Rule(answers=[Reply([Text("working on it"), ToolUse("Bash", {"command": NEEDLE})])])]
    )
    async with fleet_bed(script) as bed:
        bed.start_worker()
        # From the shell, as a user would: `run --fleet` here, `cancel --fleet` elsewhere.
        argv = [CLI, "run", "sleep a while", "--fleet", bed.url, "--cwd", str(bed.workdir)]
        proc = await asyncio.create_subprocess_exec(
            *argv, "--allowed-tools", "Bash", "--json", stdout=PIPE, stderr=PIPE
        )
        try:
            assert proc.stderr is not None
            line = await asyncio.wait_for(proc.stderr.readline(), 120)
            # "cc-executor run: run ID queued on the fleet; ..."
            run_id = line.decode().split(" run ")[1].split()[0]
            await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
            cancel = await asyncio.to_thread(
                subprocess.run,
                [CLI, "cancel", run_id, "--fleet", bed.url],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert cancel.returncode == 0, cancel.stderr
            assert "its worker was told" in cancel.stderr
            out, err = await asyncio.wait_for(proc.communicate(), 120)
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
        result = json.loads(out)
        assert result["status"] == "cancelled", err
        assert result["partial"]
        assert "working on it" in result["result"]
        # Cancelled by someone else, not by its own console's Ctrl-C (130): exit 1.
        assert proc.returncode == 1, err
        # Nothing of the run is left: not the tool's sleep, not the CLI (killed, they die
        # when they next get a core: seconds on a loaded machine).
        await await_for(lambda: _in(str(bed.workdir)) == [], what="the run's processes gone")


async def test_a_queued_run_cancelled_is_removed_before_it_starts(fleet_bed: Any) -> None:
    async with fleet_bed(answer("never")) as bed:
        # A run the fleet never saw is unknown, and nothing is written under its id: it
        # was "queued: removed, it will not start" (exit 0), with a cancelled result.
        fleet = open_fleet(bed.url)
        try:
            assert await cancel_fleet_run(fleet, "01abcdefghjkmnpqrstvwxyz01") == "unknown"
            assert not await fleet.known("01abcdefghjkmnpqrstvwxyz01")
        finally:
            await fleet.aclose()
        handle = start_run("wait in line", fleet=bed.url, cwd=str(bed.workdir))
        await await_for(lambda: bed.redis.client().llen("cc-executor:cc-executor-runs"), timeout=60)
        handle.cancel()
        result = await handle.wait()
        assert result.status.value == "cancelled"
        assert "never started" in (result.error or "")
        worker = bed.start_worker()
        # The worker takes the message and drops it: the queue empties, no CLI starts.
        await await_for(
            lambda: not bed.redis.client().llen("cc-executor:cc-executor-runs"), timeout=60
        )
        await await_for(lambda: "delivery dropped (over)" in worker.log.read_text(), timeout=60)
    assert bed.server.message_requests == []


async def test_a_worker_refuses_a_cwd_outside_its_allowed_dirs_with_a_clear_error(
    fleet_bed: Any, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    async with fleet_bed(answer("never")) as bed:
        bed.start_worker()
        handle = start_run("look around", fleet=bed.url, cwd=str(outside))
        # The worker is the one to start with more --allow-dir: it said "the server".
        with pytest.raises(
            RunRefused,
            match=r"is outside the allowed directories \(start the worker with --allow-dir",
        ) as caught:
            await handle.wait()
        assert f"refused run {handle.run_id}" in str(caught.value)
        # And on the command line: one line, no traceback.
        done = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "look", "--fleet", bed.url, "--cwd", str(outside), "--quiet"],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert done.returncode == 1
    assert "outside the allowed directories" in done.stderr
    assert "Traceback" not in done.stderr
    assert bed.server.message_requests == []


async def test_a_run_longer_than_every_configured_timeout_runs_exactly_once(
    fleet_bed: Any,
) -> None:
    """The broker's heartbeat timeout and the lease last 1 s; the run about 4 s."""
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": "sleep 4"})]),
                    Reply([Text("slept once")]),
                ]
            )
        ]
    )
    async with fleet_bed(script) as bed:
        workers = [bed.start_worker("--heartbeat-timeout", "1") for _ in range(2)]
        events: list[AgentEvent] = []
        handle = start_run(
            "sleep then answer",
            fleet=bed.url,
            cwd=str(bed.workdir),
            allowed_tools=["Bash"],
            on_event=events.append,
        )
        result = await handle.wait()
        assert result.ok, result.error
        assert result.duration_s > 4
        assert result.result == "slept once"
        assert [e.type for e in events].count("run_started") == 1
        assert len(bed.server.message_requests) == 2  # one first turn, one after the tool
        histories = [json.loads(w.cc("history", "--json").stdout) for w in workers]
    assert sorted(len(h) for h in histories) == [0, 1]


async def test_a_second_delivery_of_a_live_run_is_dropped(fleet_bed: Any) -> None:
    script = Script([Rule(answers=[Reply([ToolUse("Bash", {"command": NEEDLE})])])])
    async with fleet_bed(script) as bed:
        workers = [bed.start_worker() for _ in range(2)]
        handle = start_run("block", fleet=bed.url, cwd=str(bed.workdir), allowed_tools=["Bash"])
        await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
        # The broker delivers the same run again (as after a missed heartbeat).
        assert isinstance(handle, FleetRunHandle)
        await asyncio.to_thread(open_fleet(bed.url).submit, handle._message)
        await await_for(
            lambda: any("delivery dropped (held)" in w.log.read_text() for w in workers),
            timeout=120,
        )
        handle.cancel()
        result = await handle.wait()
    assert result.status.value == "cancelled"
    assert len(bed.server.message_requests) == 1


async def test_sigterm_past_the_grace_interrupts_the_run_and_another_worker_finishes_it(
    fleet_bed: Any,
) -> None:
    command = f"if [ -e go ]; then echo resumed; else {NEEDLE}; fi"
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": command})]),
                    Reply([Text("restarted from the prompt")]),
                    # Resumed: Claude Code closed the interrupted turn with one of its own.
                    Reply([Text("finished")]),
                ]
            )
        ]
    )
    async with fleet_bed(script) as bed:
        first = bed.start_worker("--grace", "0")
        events: list[AgentEvent] = []
        handle = start_run(
            "do it",
            fleet=bed.url,
            cwd=str(bed.workdir),
            allowed_tools=["Bash"],
            on_event=events.append,
        )
        await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
        assert await asyncio.to_thread(first.stop) == 0
        assert _in(str(bed.workdir)) == []  # its tree went with it
        (bed.workdir / "go").touch()
        second = bed.start_worker()
        result = await handle.wait()
        assert result.ok, result.error
        assert result.result == "finished"
        assert [e.type for e in events].count("run_started") == 2
        # Under on_worker_lost=resume (the default) the session went on on the second.
        assert any(getattr(e, "status", "").startswith("session_resumed: ") for e in events)
        assert result.run_dir is not None
        assert result.run_dir.startswith(str(second.data))
        interrupted = json.loads(first.cc("history", "--json").stdout)
        assert [r["status"] for r in interrupted] == ["interrupted"]
        assert "past its grace of 0 s" in interrupted[0]["error"]


async def test_a_message_cannot_widen_what_a_worker_runs(fleet_bed: Any) -> None:
    """Another agent than the worker's, or a server-only option (the executable to run):
    refused by the worker, whatever the submitter checked."""
    async with fleet_bed(answer("never")) as bed:
        bed.start_worker("--agent", "claude")
        other = start_run("x", fleet=bed.url, cwd=str(bed.workdir), agent="codex")
        with pytest.raises(RunRefused, match="agent 'codex' is not run by this worker"):
            await other.wait()
        chosen = start_run("x", fleet=bed.url, cwd=str(bed.workdir), agent_path="/bin/sh")
        with pytest.raises(RunRefused, match="set by the worker only: agent_path"):
            await chosen.wait()
    assert bed.server.message_requests == []


async def test_a_malformed_message_is_refused_back_to_its_submitter(fleet_bed: Any) -> None:
    """A message is data: an empty prompt or options that are not an object come back as
    refusals (nothing runs, the submitter does not wait forever)."""
    async with fleet_bed(answer("never")) as bed:
        bed.start_worker()
        fleet = open_fleet(bed.url)
        try:
            cases: list[tuple[dict[str, Any], str]] = [
                ({"prompt_b64": ""}, "the prompt is empty"),
                ({"options": ["cwd"]}, "options are not an object"),
                ({"version": 99}, "run message version 99"),
            ]
            for n, (change, reason) in enumerate(cases):
                run_id = f"01abcdefghjkmnpqrstvwxyz0{n}"
                message = {**run_message("x", run_id, {}), **change}
                await asyncio.to_thread(fleet.submit, message)
                entries: list[dict[str, Any]] = []
                while not entries:
                    entries = [e for _, e in await fleet.read(run_id, "0", 5)]
                assert entries[0]["kind"] == "refused"
                assert reason in entries[0]["error"]
        finally:
            await fleet.aclose()
    assert bed.server.message_requests == []


async def test_an_on_event_that_raises_stops_the_run_on_its_worker(fleet_bed: Any) -> None:
    """As for a local run: the exception reaches the caller and nothing is left running."""
    script = Script([Rule(answers=[Reply([ToolUse("Bash", {"command": NEEDLE})])])])

    class Stop(Exception):
        pass

    def on_event(event: AgentEvent) -> None:
        if event.type == "tool_use":
            raise Stop

    async with fleet_bed(script) as bed:
        worker = bed.start_worker()
        handle = start_run(
            "block", fleet=bed.url, cwd=str(bed.workdir), allowed_tools=["Bash"], on_event=on_event
        )
        with pytest.raises(Stop):
            await handle.wait()
        await await_for(
            lambda: (
                [r["status"] for r in json.loads(worker.cc("history", "--json").stdout)]
                == ["cancelled"]
            ),
            timeout=120,
        )
        await await_for(lambda: _in(str(bed.workdir)) == [], what="the run's processes gone")


async def test_fleet_status_shows_the_workers_and_the_queued_and_running_runs(
    fleet_bed: Any,
) -> None:
    script = Script(
        [Rule(answers=[Reply([Text("working on it"), ToolUse("Bash", {"command": NEEDLE})])])]
    )

    def status(*flags: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [CLI, "fleet", "status", *flags],
            env={**os.environ, "CC_EXECUTOR_FLEET": bed.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    async with fleet_bed(script) as bed:
        worker = bed.start_worker("--slots", "1")
        options = {"fleet": bed.url, "cwd": str(bed.workdir), "allowed_tools": ["Bash"]}
        first = start_run("hold the slot", **options)
        await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
        second = start_run("wait in line", **options)
        await await_for(lambda: bed.redis.client().llen("cc-executor:cc-executor-runs"), timeout=60)
        # The worker heartbeats when a run starts or ends: wait for the one saying so.
        await await_for(
            lambda: json.loads(status("--json").stdout)["workers"][0]["busy"] == 1, timeout=60
        )
        shown = await asyncio.to_thread(status, "--json")
        text = await asyncio.to_thread(status)
        for handle in (second, first):
            handle.cancel()
            await handle.wait()
    assert shown.returncode == 0, shown.stderr
    seen = json.loads(shown.stdout)
    (w,) = seen["workers"]
    assert (w["pid"], w["slots"], w["busy"]) == (worker.proc.pid, 1, 1)
    assert "claude" in w["agents"]
    assert seen["queues"] == {"default": {"queued": 1, "running": 1}}
    assert text.returncode == 0, text.stderr
    assert "1 worker(s)" in text.stdout
    assert f"pid {worker.proc.pid}  1/1 busy" in text.stdout
    assert "queue default: 1 queued, 1 running" in text.stdout
