"""Fleet data movement: a run names a git URL + ref, its worker clones it into the run folder
and runs there; with a workspace, the worker pushes the run's branch back and the
submitter merges it from its own clone. Real workers, real Redis, real git remotes (local
bare repositories, ``file://`` URLs), the real Claude Code CLI."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cc_executor import start_run
from cc_executor._errors import RunRefused
from cc_executor._fleet import open_fleet
from cc_executor._ids import new_run_id
from cc_executor._run._fleet import run_message
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.fleet.conftest import CLI, FleetBed

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def bare_remote(root: Path) -> tuple[Path, str]:
    """A bare repository with one commit on ``main``; its folder and ``file://`` URL."""
    bare = root / "remote.git"
    git(root, "init", "-q", "--bare", "-b", "main", str(bare))
    src = root / "src"
    git(root, "clone", "-q", str(bare), str(src))
    (src / "readme.txt").write_text("hello\n")
    git(src, "add", "-A")
    git(src, "-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-q", "-m", "one")
    git(src, "push", "-q", "origin", "main")
    return bare, f"file://{bare}"


async def test_a_repo_run_works_in_a_clone_and_its_pushed_branch_is_merged(
    fleet_bed: Any, tmp_path: Path
) -> None:
    bare, url = bare_remote(tmp_path)
    write = ToolUse("Write", {"file_path": "fleet.txt", "content": "from the fleet\n"})
    script = Script([Rule(answers=[Reply([write]), Reply([Text("Done.")])])])
    bed: FleetBed
    async with fleet_bed(script) as bed:
        bed.start_worker("--allow-repo", f"file://{tmp_path}/*")
        handle = start_run(
            "write it",
            fleet=bed.url,
            repo=url,
            ref="main",
            workspace="worktree",
            allowed_tools=["Write"],
        )
        result = await handle.wait()
        assert result.ok, result.error
        receipt = result.workspace
        assert receipt is not None
        assert receipt["pushed"] is True, receipt
        assert receipt["remote"] == url
        # The worker ran it in a worktree of its clone of the remote, in the run folder.
        assert receipt["repo"] == str(Path(result.run_dir or "") / "repo")
        branch = f"cc-executor/{handle.run_id}"
        assert git(bare, "show", f"{branch}:fleet.txt") == "from the fleet"
        # The submitter, on its own machine (no run folder), merges from its clone.
        mine = tmp_path / "mine"
        git(tmp_path, "clone", "-q", url, str(mine))
        env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path / "submitter")}
        merged = await asyncio.to_thread(
            subprocess.run,
            [CLI, "workspace", "merge", handle.run_id],
            cwd=mine,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert merged.returncode == 0, merged.stderr
        assert (mine / "fleet.txt").read_text() == "from the fleet\n"

        # On the command line, without a workspace: the run works in the clone itself.
        done = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "write it", "--fleet", bed.url, "--repo", url, "--ref", "main",
             "--allowed-tools", "Write", "--json"],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        clone = Path(json.loads(done.stdout)["run_dir"]) / "repo"
        assert (clone / "readme.txt").read_text() == "hello\n"
        assert (clone / "fleet.txt").read_text() == "from the fleet\n"

        # A repo no --allow-repo pattern matches is refused, clearly.
        other = start_run("x", fleet=bed.url, repo="file:///elsewhere/app.git")
        with pytest.raises(RunRefused, match="is not allowed here"):
            await other.wait()
        # A transport helper never reaches git: refused at submission, and by the worker
        # when a message carries it anyway.
        with pytest.raises(ValueError, match="transport helper"):
            start_run("x", fleet=bed.url, repo="ext::sh")
        fleet = open_fleet(bed.url)
        try:
            run_id = new_run_id()
            await asyncio.to_thread(
                fleet.submit, run_message("x", run_id, {"repo": "ext::sh%20-c%20id"})
            )
            entries: list[dict[str, Any]] = []
            while not entries:
                entries = [e for _, e in await fleet.read(run_id, "0", 5)]
            assert entries[0]["kind"] == "refused"
            assert "transport helper" in entries[0]["error"]
        finally:
            await fleet.aclose()
