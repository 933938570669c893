"""The worker's ``--stream-max-bytes`` and ``cc-executor exec --fleet`` (issue 20/21): one
worker set-up for both (slow tests are few)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import pytest

from cc_executor._agents._types import AgentEvent, CommandOutputEvent, StatusEvent
from cc_executor._run._fleet import start_fleet_exec
from cc_executor.testing import Reply, Rule, Script, Text
from tests.fleet.conftest import CLI

#: 200 lines of output: far more than a 1 KiB stream keeps.
MANY = "i=0; while [ $i -lt 200 ]; do echo line$i; i=$((i+1)); done"


@pytest.mark.parametrize("size", ["12X", "0", "lots"])
def test_a_bad_stream_bound_is_one_line_and_exit_2(size: str) -> None:
    done = subprocess.run(
        [CLI, "worker", "--fleet", "unix:///nonexistent.sock", "--stream-max-bytes", size],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert "--stream-max-bytes" in done.stderr
    assert "size" in done.stderr


@pytest.mark.redis
@pytest.mark.slow
async def test_a_worker_bounds_streams_and_runs_exec_from_the_command_line(
    fleet_bed: Any,
) -> None:
    async with fleet_bed(Script([Rule(answers=[Reply([Text("unused")])])])) as bed:
        bed.start_worker("--allow-exec", "sh", "--stream-max-bytes", "1K")
        events: list[AgentEvent] = []
        handle = start_fleet_exec(
            ["sh", "-c", MANY], bed.url, on_event=events.append, cwd=str(bed.workdir)
        )
        result = await handle.wait()
        # exec --fleet: the output printed, the command's exit code ours.
        ran = await asyncio.to_thread(
            subprocess.run,
            [CLI, "exec", "--fleet", bed.url, "--cwd", str(bed.workdir), "--",
             "sh", "-c", "echo out; echo err >&2; exit 7"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        refused = await asyncio.to_thread(
            subprocess.run,
            [CLI, "exec", "--fleet", bed.url, "--cwd", str(bed.workdir), "--", "python3", "-V"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        # A resource limit goes with the command, enforced on its worker.
        limited = await asyncio.to_thread(
            subprocess.run,
            [CLI, "exec", "--fleet", bed.url, "--cwd", str(bed.workdir), "--json",
             "--max-output-bytes", "1K", "--", "sh", "-c", "yes | head -c 100000"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert (ran.returncode, ran.stdout, ran.stderr) == (7, "out\n", "err\n")
    assert limited.returncode == 1, limited.stderr
    assert json.loads(limited.stdout)["status"] == "limit_exceeded"
    assert refused.returncode == 125
    assert "not on this worker's exec allowlist" in refused.stderr
    assert len(refused.stderr.splitlines()) == 1, refused.stderr
    assert result.exit_code == 0, result
    said = [e.status for e in events if isinstance(e, StatusEvent)]
    assert "stream_limit" in said
    lines = [e.text for e in events if isinstance(e, CommandOutputEvent)]
    assert 0 < len(lines) < 50, lines


@pytest.mark.parametrize(
    ("flags", "said"),
    [
        (["--run-dir", "/tmp/x"], "--run-dir is not available with --fleet"),
        (["--timeout", "auto"], "--timeout auto is not available with --fleet"),
        (["--queue", "no good"], "queue"),
        (["--fleet-less", "--queue", "gpu"], "give --fleet too"),
    ],
)
def test_exec_fleet_refuses_what_only_a_local_exec_can_do(flags: list[str], said: str) -> None:
    fleet = [] if "--fleet-less" in flags else ["--fleet", "unix:///nonexistent.sock"]
    flags = [f for f in flags if f != "--fleet-less"]
    done = subprocess.run(
        [CLI, "exec", *fleet, *flags, "--", "true"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1, done.stderr
    assert said in done.stderr
