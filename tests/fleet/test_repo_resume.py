"""A lost worker's ``repo`` run goes on from its pushed branch: while it runs, its worker
pushes checkpoints of the workspace to the run's branch; a worker SIGKILLed mid-run is
recovered by another, which clones the repo, goes on from that branch with the Claude Code
session carried over, and pushes the whole work (real processes, a real git remote)."""

from __future__ import annotations

import contextlib
import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import psutil
import pytest

from cc_executor import start_run
from cc_executor._agents._types import AgentEvent
from cc_executor._service._worker import CONTINUE_PROMPT
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._wait import await_for
from tests.fleet.conftest import FleetBed
from tests.fleet.test_data import bare_remote, git
from tests.fleet.test_fleet_runs import NEEDLE

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _running(needle: str, under: Path) -> list[psutil.Process]:
    """Processes whose argv holds ``needle`` running in a folder under ``under``."""
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if needle in " ".join(proc.info["cmdline"] or []) and str(
                proc.info["cwd"] or ""
            ).startswith(str(under)):
                found.append(proc)
    return found


def _has_branch(bare: Path, branch: str) -> bool:
    done = subprocess.run(
        ["git", "-C", str(bare), "rev-parse", "-q", "--verify", f"refs/heads/{branch}"],
        capture_output=True,
        check=False,
    )
    return done.returncode == 0


async def test_a_lost_repo_run_resumes_from_its_pushed_branch_on_another_worker(
    fleet_bed: Any, tmp_path: Path
) -> None:
    bare, url = bare_remote(tmp_path)
    base = git(bare, "rev-parse", "main")
    first = ToolUse("Write", {"file_path": "first.txt", "content": "from the first worker\n"})
    second = ToolUse("Write", {"file_path": "second.txt", "content": "from the second\n"})
    script = Script(
        [
            Rule(
                answers=[
                    Reply([first]),
                    Reply([ToolUse("Bash", {"command": NEEDLE})]),  # killed here
                    Reply([Text("not resumed")]),
                    # Turn 3 on --resume: Write, Bash, and Claude Code's closing of the
                    # interrupted turn.
                    Reply([ToolUse("Bash", {"command": "cat first.txt"})]),
                    Reply([second]),
                    Reply([Text("done on the second worker")]),
                ]
            )
        ]
    )
    allow = ("--allow-repo", f"file://{tmp_path}/*", "--heartbeat-timeout", "2")
    bed: FleetBed
    async with fleet_bed(script) as bed:
        lost = bed.start_worker(*allow)
        events: list[AgentEvent] = []
        handle = start_run(
            "write two files",
            fleet=bed.url,
            repo=url,
            ref="main",
            workspace="worktree",
            allowed_tools=["Write", "Bash"],
            on_event=events.append,
        )
        branch = f"cc-executor/{handle.run_id}"
        await await_for(lambda: _running(NEEDLE, lost.data), timeout=120, what="the tool runs")
        # The first file was pushed as a checkpoint, and the fleet knows it; the session
        # transcript, tool call included, was shipped.
        await await_for(lambda: _has_branch(bare, branch), timeout=60, what="a checkpoint")
        client = bed.redis.client()
        await await_for(lambda: client.get(f"cc-executor:checkpoint:{handle.run_id}"), timeout=60)
        key = f"cc-executor:transcript:{handle.run_id}"
        await await_for(lambda: NEEDLE.encode() in (client.get(key) or b""), timeout=60)
        assert git(bare, "show", f"{branch}:first.txt") == "from the first worker"
        lost.stop(signal.SIGKILL)
        await await_for(lambda: not _running(NEEDLE, lost.data), timeout=60)
        other = bed.start_worker(*allow)
        result = await handle.wait()
        raw: Any = client.xrange(f"cc-executor:events:{handle.run_id}")
    assert result.ok, result.error
    assert result.result == "done on the second worker"
    assert (result.run_dir or "").startswith(str(other.data))
    stream = [orjson.loads(e[b"e"]) for _, e in raw]
    interrupted = [e["result"]["error"] for e in stream if e["kind"] == "interrupted"]
    assert len(interrupted) == 1
    assert "resumes its session" in interrupted[0]
    assert f"on its pushed branch {branch}" in interrupted[0]
    statuses = [getattr(e, "status", "") for e in events]
    assert any(s.startswith("checkpoint_pushed: ") for s in statuses), statuses
    assert any(s.startswith("session_resumed: ") for s in statuses), statuses
    # The resumed attempt worked on the earlier attempt's files.
    outputs = [str(getattr(e, "content", "")) for e in events if e.type == "tool_result"]
    assert any("from the first worker" in o for o in outputs), outputs
    # Its receipt lists the work of both attempts, from the first attempt's base, and the
    # whole of it is on the run's branch.
    receipt = result.workspace
    assert receipt is not None
    assert receipt["pushed"] is True, receipt
    assert receipt["branch"] == branch
    assert receipt["base"] == base
    assert sorted(c["path"] for c in receipt["changes"]) == ["first.txt", "second.txt"]
    assert git(bare, "show", f"{branch}:first.txt") == "from the first worker"
    assert git(bare, "show", f"{branch}:second.txt") == "from the second"
    # The model saw the session go on: the resumed request holds the first attempt's calls.
    bodies = [orjson.dumps(r.body).decode() for r in bed.server.message_requests]
    resumed = [b for b in bodies if CONTINUE_PROMPT.decode()[:40] in b]
    assert resumed
    assert "first.txt" in resumed[0]
    assert NEEDLE in resumed[0]
