"""MCP ``verify_run`` on a run whose stored file is now a FIFO or a symlink: it answers
with the reason, and the server keeps answering other calls meanwhile."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.service.conftest import CLI
from tests.service.test_mcp import data, stdio_client_for

pytestmark = pytest.mark.slow

#: Only a guard against the hang this file tests; each call takes milliseconds.
HANG_GUARD_S = 60


def finished_exec(cwd: Path) -> tuple[str, Path]:
    # In the server's allowed folder: a run of another folder is not a remote caller's.
    done = subprocess.run(
        [CLI, "exec", "--json", "--", "echo", "hello"],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["status"] == "ok", result
    return str(result["run_id"]), Path(result["run_dir"]) / "stdout.log"


@pytest.mark.parametrize("kind", ["fifo", "symlink"])
async def test_verify_run_answers_and_the_server_stays_responsive(
    cc_home: Path, root: Path, kind: str
) -> None:
    run_id, stdout_log = finished_exec(root)
    stdout_log.unlink()
    if kind == "fifo":
        os.mkfifo(stdout_log)
    else:
        stdout_log.symlink_to("/dev/zero")
    async with stdio_client_for(cc_home, root) as client:
        verifying = asyncio.ensure_future(client.call_tool("verify_run", {"run_id": run_id}))
        listing = asyncio.ensure_future(client.call_tool("list_runs", {"limit": 5}))
        done, _ = await asyncio.wait({verifying, listing}, timeout=HANG_GUARD_S)
        if len(done) < 2:
            verifying.cancel()
            listing.cancel()
        assert listing in done, "list_runs got no answer while verify_run ran"
        assert verifying in done, "verify_run never answered"
        listed = data(listing.result())
        assert run_id in [r["run_id"] for r in listed["runs"]]
        report = data(verifying.result())
    assert report["ok"] is False
    assert report["unaltered"] is False
    entry = next(a for a in report["artifacts"] if a["name"] == "stdout")
    assert entry["state"] == "altered"
    what = "a FIFO" if kind == "fifo" else "a symbolic link"
    assert entry["reason"] == f"{stdout_log} is now {what}, not a regular file (not read)"
