"""Fleet details of issue 20 an audit found untested: the CLI's own retries are 0 on a
fleet run whatever its submitter says."""

from __future__ import annotations

from typing import Any

import pytest

from cc_executor import start_run
from cc_executor.testing import HttpErrorReply, Reply, Rule, Script, Text
from tests.fleet.conftest import FleetBed


@pytest.mark.redis
@pytest.mark.slow
async def test_a_fleet_runs_cli_never_retries_whatever_its_submitter_says(
    fleet_bed: Any,
) -> None:
    # The first request gets a 500, which Claude Code retries itself when allowed to.
    script = Script([Rule(answers=[Reply([Text("done")], errors_before=[HttpErrorReply(500)])])])
    bed: FleetBed
    async with fleet_bed(script) as bed:
        # Neither the worker's environment nor the submitter's env ask for 0 retries.
        bed.start_worker(max_retries=5)
        handle = start_run(
            "hello",
            fleet=bed.url,
            cwd=str(bed.workdir),
            env={"CLAUDE_CODE_MAX_RETRIES": "5"},
            retries=0,
        )
        result = await handle.wait()
        requests = bed.server.message_requests
    # One request: the CLI gave up at the 500 instead of retrying it.
    assert len(requests) == 1, len(requests)
    assert result.status.value != "ok", result
