"""Fleet workers on one PostgreSQL history, each a "machine" with a host name of its own
(a ``sitecustomize`` on the worker's ``PYTHONPATH`` names it): a worker SIGKILLed mid-run
has its attempt's row marked ``interrupted`` by the worker that recovers the run, and a
third machine shows and verifies the run from the shared history; the submitter lists,
diffs, merges and discards a workspace run's branch in a shared repository from the
receipt the history holds."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_executor import start_run
from cc_executor._run._fleet import start_fleet_exec
from cc_executor._store import Query
from cc_executor._store._location import parse_postgres_url
from cc_executor._store._postgres import PostgresStore
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._postgres import PostgresServer
from tests._wait import await_for
from tests.fleet.conftest import CLI, FleetBed
from tests.fleet.test_fleet_runs import NEEDLE, _in

pytestmark = [pytest.mark.redis, pytest.mark.postgres, pytest.mark.slow]

SITECUSTOMIZE = """\
import os, socket
_name = os.environ.get("CCX_TEST_HOSTNAME")
if _name:
    socket.gethostname = lambda: _name
"""


def _machine(tmp_path: Path, url: str, name: str) -> dict[str, str]:
    folder = tmp_path / "hostname"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(SITECUSTOMIZE)
    return {"PYTHONPATH": str(folder), "CCX_TEST_HOSTNAME": name, "CC_EXECUTOR_HISTORY": url}


async def test_a_lost_workers_attempt_is_marked_interrupted_in_the_shared_history(
    fleet_bed: Any, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    postgres_server.sql("DROP DATABASE IF EXISTS fleet_loss")
    postgres_server.sql("CREATE DATABASE fleet_loss")
    url = postgres_server.url("fleet_loss")
    command = f"if [ -e go ]; then echo again; else {NEEDLE}; fi"
    script = Script(
        [
            Rule(
                answers=[
                    Reply([Text("first half, "), ToolUse("Bash", {"command": command})]),
                    Reply([Text("not resumed: a restart from the prompt")]),
                    Reply([Text("second half: the answer, whole")]),
                ]
            )
        ]
    )
    pg = PostgresStore(parse_postgres_url(url), readonly=False)
    bed: FleetBed
    try:
        async with fleet_bed(script) as bed:
            first = bed.start_worker(
                "--heartbeat-timeout", "2", env=_machine(tmp_path, url, "machine-one")
            )
            handle = start_run(
                "do it in two halves", fleet=bed.url, cwd=str(bed.workdir), allowed_tools=["Bash"]
            )
            run_id = handle.run_id
            await await_for(lambda: _in(str(bed.workdir), NEEDLE), timeout=120)
            client = bed.redis.client()
            key = f"cc-executor:transcript:{run_id}"
            await await_for(lambda: b"tool_use" in (client.get(key) or b""), timeout=60)
            # The first attempt's events reach the shared history while it runs.
            await await_for(
                lambda: b"tool_use" in (pg.file_content(run_id, "events") or b""),
                timeout=60,
                what="the running attempt's events streamed into PostgreSQL",
            )
            first.stop(signal.SIGKILL)
            second = bed.start_worker(
                "--heartbeat-timeout", "2", env=_machine(tmp_path, url, "machine-two")
            )
            result = await handle.wait()
            assert result.ok, result.error
            assert result.result == "second half: the answer, whole"
            third = _machine(tmp_path, url, "machine-three")
            third_env = {**second.env, **third}
            third_env["CC_EXECUTOR_HOME"] = str(tmp_path / "machine-three")

            lost = pg.get(run_id)
            assert lost is not None
            assert lost.host == "machine-one"
            assert lost.status == "interrupted", lost.error
            assert "lost" in (lost.error or "")
            assert "attempt 2 continues it" in (lost.error or ""), lost.error
            # The killed worker's streamed events are kept.
            assert b"tool_use" in (pg.file_content(run_id, "events") or b"")
            rows = pg.query(Query(limit=10))
            final = [r for r in rows if r.id != run_id]
            assert [(r.host, r.status) for r in final] == [("machine-two", "ok")]

            shown = await _cc(third_env, "show", run_id, "--events")
            assert shown.returncode == 0, shown.stderr
            assert "tool_use" in shown.stdout or "Bash" in shown.stdout, shown.stdout
            verified = await _cc(third_env, "verify", final[0].id, "--json")
            assert verified.returncode == 0, verified.stdout + verified.stderr
            assert orjson.loads(verified.stdout)
    finally:
        pg.close()


async def _cc(env: dict[str, str], *args: str, cwd: Path | None = None) -> Any:
    import asyncio

    return await asyncio.to_thread(
        subprocess.run,
        [CLI, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


async def test_the_submitter_merges_a_shared_repositorys_workspace_from_the_history(
    fleet_bed: Any, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    postgres_server.sql("DROP DATABASE IF EXISTS fleet_workspace")
    postgres_server.sql("CREATE DATABASE fleet_workspace")
    url = postgres_server.url("fleet_workspace")
    write = ToolUse("Write", {"file_path": "fleet.txt", "content": "from the fleet\n"})
    bed: FleetBed
    async with fleet_bed(Script([Rule(answers=[Reply([write]), Reply([Text("Done.")])])])) as bed:
        # The shared folder (the same path on every machine) is a repository.
        repo = bed.workdir
        _git(repo, "init", "-q", "-b", "main")
        (repo / "readme.txt").write_text("hello\n")
        _git(repo, "add", "-A")
        _git(repo, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "one")
        worker = bed.start_worker(env=_machine(tmp_path, url, "machine-one"))
        handle = start_run(
            "write it", fleet=bed.url, cwd=str(repo), workspace="worktree", allowed_tools=["Write"]
        )
        result = await handle.wait()
        assert result.ok, result.error
        assert result.workspace is not None
        branch = f"cc-executor/{handle.run_id}"
        assert result.workspace["branch"] == branch
        # The worker's machine is gone from here: its run folder (receipt, patch, worktree)
        # is not on the submitter's machine, only the shared repository and the history.
        worker.stop()
        worker.data.rename(worker.data.with_name("elsewhere"))

    submitter = {
        **os.environ,
        **_machine(tmp_path, url, "machine-two"),
        "CC_EXECUTOR_HOME": str(tmp_path / "submitter"),
    }
    listed = await _cc(submitter, "workspace", "list", "--json", cwd=repo)
    assert listed.returncode == 0, listed.stderr
    [item] = orjson.loads(listed.stdout)["workspaces"]
    assert item["changes"] == [{"path": "fleet.txt", "kind": "added"}], item
    assert item["base"] == _git(repo, "rev-parse", "main")
    # From any folder: the receipt names the shared repository.
    diff = await _cc(submitter, "workspace", "diff", handle.run_id, cwd=tmp_path)
    assert diff.returncode == 0, diff.stderr
    assert "+from the fleet" in diff.stdout
    merged = await _cc(submitter, "workspace", "merge", handle.run_id, cwd=tmp_path)
    assert merged.returncode == 0, merged.stderr
    assert "fast-forward" in merged.stdout
    assert (repo / "fleet.txt").read_text() == "from the fleet\n"
    discarded = await _cc(submitter, "workspace", "discard", handle.run_id, cwd=tmp_path)
    assert discarded.returncode == 0, discarded.stderr
    assert _git(repo, "branch", "--list", branch) == ""
    assert _git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_an_idle_worker_writes_what_an_outage_left_pending_once_the_database_is_back(
    fleet_bed: Any, postgres_server: PostgresServer, tmp_path: Path
) -> None:
    postgres_server.sql("DROP DATABASE IF EXISTS fleet_outage")
    postgres_server.sql("CREATE DATABASE fleet_outage")
    url = postgres_server.url("fleet_outage")
    bed: FleetBed
    async with fleet_bed(Script([Rule(answers=[Reply([Text("unused")])])])) as bed:
        bed.start_worker("--allow-exec", "sh", env=_machine(tmp_path, url, "machine-one"))
        postgres_server.halt()
        try:
            handle = start_fleet_exec(["sh", "-c", "echo recorded"], bed.url, cwd=str(bed.workdir))
            result = await handle.wait()
        finally:
            postgres_server.resume()
        assert result.ok, result.error
        assert any("written to the database when it is back" in w for w in result.warnings)
        pg = PostgresStore(parse_postgres_url(url), readonly=True)
        try:
            # No run starts after the outage: the worker's own sync loop writes the row.
            await await_for(
                lambda: pg.get(result.run_id) is not None,
                timeout=120,
                what="the run recorded during the outage written to PostgreSQL",
            )
        finally:
            pg.close()
