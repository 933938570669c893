"""Plain commands on a fleet (``start_fleet_exec``, ``worker --allow-exec``) and the wake-up
a submit publishes for idle workers."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cc_executor._agents._types import AgentEvent, CommandOutputEvent
from cc_executor._errors import RunRefused
from cc_executor._fleet import open_fleet
from cc_executor._run._fleet import run_message, start_fleet_exec
from cc_executor.testing import Reply, Rule, Script, Text
from tests.fleet.conftest import RedisServer
from tests.run.test_git import hostile_repo

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_a_command_runs_on_a_worker_with_its_output_as_events(fleet_bed: Any) -> None:
    async with fleet_bed(Script([Rule(answers=[Reply([Text("unused")])])])) as bed:
        worker = bed.start_worker("--allow-exec", "sh", "--allow-exec", "git status")
        events: list[AgentEvent] = []
        handle = start_fleet_exec(
            ["sh", "-c", "echo one; echo two >&2; exit 3"],
            bed.url,
            on_event=events.append,
            cwd=str(bed.workdir),
        )
        result = await handle.wait()
        # Its resource limits go with it and are enforced on the worker.
        flood = start_fleet_exec(
            ["sh", "-c", "yes | head -c 1000000"],
            bed.url,
            cwd=str(bed.workdir),
            max_output_bytes="4K",
        )
        flooded = await flood.wait()
        # An allowed `git status` runs nothing the repository's configuration names (F8.8).
        repo, marker = hostile_repo(bed.workdir)
        status_events: list[AgentEvent] = []
        status = await start_fleet_exec(
            ["git", "status", "--porcelain"],
            bed.url,
            on_event=status_events.append,
            cwd=str(repo),
        ).wait()
        refused = start_fleet_exec(["python3", "-c", "pass"], bed.url, cwd=str(bed.workdir))
        with pytest.raises(RunRefused, match="not on this worker's exec allowlist"):
            await refused.wait()
        with pytest.raises(ValueError, match="max_output_bytes"):
            start_fleet_exec(["sh"], bed.url, cwd=str(bed.workdir), max_output_bytes="lots")
    assert result.status.value == "failed", result
    assert result.exit_code == 3
    assert str(worker.data) in (result.run_dir or "")
    lines = [(e.stream, e.text) for e in events if isinstance(e, CommandOutputEvent)]
    assert sorted(lines) == [("stderr", "two"), ("stdout", "one")]
    assert status.status.value == "ok", status
    assert any(isinstance(e, CommandOutputEvent) and e.text == " M a.txt" for e in status_events), (
        status_events
    )
    assert not marker.exists()
    assert flooded.status.value == "limit_exceeded", flooded
    assert "max_output_bytes 4096" in (flooded.error or "")


async def test_a_submit_wakes_the_workers_of_its_queue(redis_server: RedisServer) -> None:
    listener = redis_server.client().pubsub(ignore_subscribe_messages=True)
    listener.subscribe("cc-executor:wake")
    fleet = open_fleet(redis_server.url)
    try:
        await asyncio.to_thread(
            fleet.submit, {**run_message("hi", "01abcdefghjkmnpqrstvwxyz01", {}), "queue": "gpu"}
        )
        # The subscription's confirmation comes first (read as None), then the wake-up.
        got: list[Any] = []
        for _ in range(3):
            got.append(await asyncio.to_thread(listener.get_message, timeout=30))
            if got[-1] is not None:
                break
        message = got[-1]
        assert message is not None, "no wake-up published"
    finally:
        await fleet.aclose()
        listener.close()
    assert message["data"] == b"cc-executor-runs-gpu"
