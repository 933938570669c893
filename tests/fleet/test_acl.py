"""A fleet on a Redis whose only user is an ACL user limited to cc-executor's keys and
channels, without the dangerous commands (docs/fleet.md, "Securing Redis"): a worker and
a submitter take its credentials from the environment, never from the command line; a
wrong password is one line, exit 2."""

from __future__ import annotations

import asyncio
import os
import subprocess
from typing import Any

import pytest

from cc_executor.testing import Reply, Rule, Script, Text
from tests.fleet.conftest import CLI, FleetBed, RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]

USER = "fleet"
SECRET = "a-long-random-secret"


def _lock(server: RedisServer) -> None:
    """The ACL of docs/fleet.md: one user for cc-executor, the default user off."""
    client = server.client()
    # As redis.conf's `user fleet on >SECRET ~cc-executor* &cc-executor* +@all -@dangerous`.
    client.acl_setuser(
        USER,
        enabled=True,
        passwords=[f"+{SECRET}"],
        keys=["cc-executor*"],
        channels=["cc-executor*"],
        commands=["+@all", "-@dangerous"],
    )
    client.acl_setuser("default", enabled=False)
    client.close()


async def test_an_acl_user_from_the_environment_runs_exec_on_the_fleet(
    fleet_bed: Any, redis_server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _lock(redis_server)
    # The worker (started with os.environ as its base) and the submitter both read these.
    monkeypatch.setenv("CC_EXECUTOR_FLEET_USERNAME", USER)
    monkeypatch.setenv("CC_EXECUTOR_FLEET_PASSWORD", SECRET)
    bed: FleetBed
    async with fleet_bed(Script([Rule(answers=[Reply([Text("unused")])])])) as bed:
        worker = bed.start_worker("--allow-exec", "sh")
        assert SECRET not in " ".join(worker.proc.args)  # type: ignore[arg-type]
        ran = await asyncio.to_thread(
            subprocess.run,
            [CLI, "exec", "--fleet", bed.url, "--cwd", str(bed.workdir), "--",
             "sh", "-c", "echo through the acl"],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        wrong = {**os.environ, "CC_EXECUTOR_FLEET_PASSWORD": "not-it"}
        refused = await asyncio.to_thread(
            subprocess.run,
            [CLI, "exec", "--fleet", bed.url, "--cwd", str(bed.workdir), "--", "sh", "-c", "true"],
            env=wrong, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        run_refused = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "hello", "--fleet", bed.url, "--cwd", str(bed.workdir), "--quiet"],
            env=wrong, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert (ran.returncode, ran.stdout) == (0, "through the acl\n"), ran.stderr
    for done in (refused, run_refused):
        assert done.returncode == 2, done.stderr
        assert done.stdout == ""
        assert len(done.stderr.splitlines()) == 1, done.stderr
        assert "invalid username-password pair" in done.stderr
        assert "not-it" not in done.stderr
