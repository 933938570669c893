"""Named queues: ``worker --queue NAME``, ``start_run(fleet=..., queue=NAME)``/``run --queue``,
and ``fleet status`` per queue."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from typing import Any

import pytest

from cc_executor import start_run
from cc_executor.testing import Reply, Rule, Script, Text
from tests.fleet.conftest import CLI

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def test_runs_go_only_to_the_workers_of_their_queue_and_status_counts_each(
    fleet_bed: Any,
) -> None:
    async with fleet_bed(Script([Rule(answers=[Reply([Text("done")])])])) as bed:
        gpu = bed.start_worker("--queue", "gpu", "--slots", "2")
        plain = bed.start_worker("--slots", "2")
        cwd = str(bed.workdir)
        on_gpu = [start_run(f"g{i}", fleet=bed.url, queue="gpu", cwd=cwd) for i in range(3)]
        anywhere = [start_run(f"d{i}", fleet=bed.url, cwd=cwd) for i in range(3)]
        results = await asyncio.gather(*(h.wait() for h in on_gpu + anywhere))
        by_cli = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "one more", "--fleet", bed.url, "--queue", "gpu", "--cwd", cwd, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        status = await asyncio.to_thread(
            subprocess.run,
            [CLI, "fleet", "status", "--json"],
            env={**os.environ, "CC_EXECUTOR_FLEET": bed.url},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert [r.status.value for r in results] == ["ok"] * 6
    assert all(str(gpu.data) in (r.run_dir or "") for r in results[:3])
    assert all(str(plain.data) in (r.run_dir or "") for r in results[3:])
    assert by_cli.returncode == 0, by_cli.stderr
    assert str(gpu.data) in json.loads(by_cli.stdout)["run_dir"]
    # The id that attach and cancel take is shown as the run is queued, not only at its end.
    run_id = json.loads(by_cli.stdout)["run_id"]
    assert by_cli.stderr.splitlines()[0] == (
        f"cc-executor run: run {run_id} queued on the fleet; from any machine: "
        f"cc-executor attach|cancel|pause {run_id} --fleet URL"
    )
    seen = json.loads(status.stdout)
    assert seen["queues"] == {
        "default": {"queued": 0, "running": 0},
        "gpu": {"queued": 0, "running": 0},
    }
    assert sorted(w["queues"] for w in seen["workers"]) == [["default"], ["gpu"]]


def test_a_bad_queue_name_is_one_line() -> None:
    done = subprocess.run(
        [CLI, "worker", "--fleet", "unix:///nonexistent/redis.sock", "--queue", "a:b"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("cc-executor worker: queue 'a:b': a queue name is")
