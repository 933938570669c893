"""``cc-executor attach RUN_ID`` without ``--fleet``: a local run started by another
process is followed live from its run folder's event log, then its result is printed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor._status import Status
from cc_executor.testing import Reply, Rule, Script, Text
from tests._wait import wait_for
from tests.run.test_control import running_id

pytestmark = pytest.mark.slow

CLI = str(Path(sys.executable).parent / "cc-executor")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("CC_EXECUTOR_FLEET", None)
    return env


def test_a_local_exec_run_is_followed_live_then_replayed_from_after(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    # Two lines, then the command waits on the FIFO for the test, then a third line.
    script = f"echo one; echo two; read x < {gate}; echo three; exit 3"
    run = subprocess.Popen(
        [CLI, "exec", "--", "sh", "-c", script],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    attach = None
    try:
        run_id = wait_for(running_id, timeout=60, what="the exec run is recorded")
        assert run_id is not None
        attach = subprocess.Popen(
            [CLI, "attach", run_id, "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_env(),
        )
        assert attach.stdout is not None
        # Mid-run: the lines written so far arrive while the command still waits.
        live = [json.loads(attach.stdout.readline()) for _ in range(2)]
        assert [(e["seq"], e["type"], e["text"]) for e in live] == [
            (1, "output", "one"),
            (2, "output", "two"),
        ]
        assert all(e["run_id"] == run_id for e in live)
        assert run.poll() is None
        with open(gate, "w") as f:
            f.write("go\n")
        out, err = attach.communicate(timeout=120)
        run.wait(120)
    finally:
        for proc in (run, attach):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
    lines = [json.loads(line) for line in out.splitlines()]
    assert [(e["seq"], e["text"]) for e in lines[:-1]] == [(3, "three")], err
    result = lines[-1]
    assert result["run_id"] == run_id
    assert result["status"] == "failed"
    assert result["exit_code"] == 3
    assert attach.returncode == Status.FAILED.exit_code(), err

    # A finished run replays what is after --after, then its result, and exits.
    again = subprocess.run(
        [CLI, "attach", run_id, "--after", "1", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    replayed = [json.loads(line) for line in again.stdout.splitlines()]
    assert [(e["seq"], e["text"]) for e in replayed[:-1]] == [(2, "two"), (3, "three")]
    assert replayed[-1]["status"] == "failed"
    assert again.returncode == attach.returncode, again.stderr
    # The text view prints the result line on stderr, as for a fleet run.
    text = subprocess.run(
        [CLI, "attach", run_id],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert "failed · " in text.stderr, text.stderr
    assert f"run {run_id}" in text.stderr
    assert text.returncode == attach.returncode


def test_an_unknown_local_run_is_one_line_exit_2() -> None:
    done = subprocess.run(
        [CLI, "attach", "01abcdefghjkmnpqrstvwxyz01"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(),
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr == (
        "cc-executor attach: no run 01abcdefghjkmnpqrstvwxyz01 in this machine's history "
        "(a fleet run? give --fleet URL or set CC_EXECUTOR_FLEET)\n"
    )
    assert done.stdout == ""


async def test_a_finished_claude_run_replays_its_events_and_answer(bed: Any) -> None:
    script = Script([Rule(answers=[Reply([Text("the answer")])])])
    async with bed(script) as b:
        env = {**_env(), **b.server.claude_env(home=b.home, max_retries=0)}
        env["CC_EXECUTOR_CLAUDE"] = b.claude
        ran = await asyncio.to_thread(
            subprocess.run,
            [CLI, "run", "hello", "--json"],
            cwd=b.workdir, env=env, capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    shown = await asyncio.to_thread(
        subprocess.run,
        [CLI, "attach", run_id, "--json"],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    kinds = [e["type"] for e in lines[:-1]]
    assert "text" in kinds, kinds
    assert [e["seq"] for e in lines[:-1]] == list(range(1, len(kinds) + 1))
    assert lines[-1]["status"] == "ok"
    assert lines[-1]["result"] == "the answer"
    assert shown.returncode == 0, shown.stderr
    plain = await asyncio.to_thread(
        subprocess.run,
        [CLI, "attach", run_id],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.endswith("the answer\n"), plain.stdout


def test_a_run_whose_supervisor_died_ends_interrupted(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    run = subprocess.Popen(
        [CLI, "exec", "--", "sh", "-c", f"echo one; read x < {gate}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=_env(),
    )
    try:
        run_id = wait_for(running_id, timeout=60, what="the exec run is recorded")
        assert run_id is not None
        run.kill()  # the supervisor dies; its row stays "running"
        run.wait()
        done = subprocess.run(
            [CLI, "attach", run_id, "--json"],
            capture_output=True,
            text=True,
            timeout=120,
            env=_env(),
            check=False,
        )
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        _release(gate)
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert lines[-1]["status"] == "interrupted", done.stderr
    assert done.returncode == Status.INTERRUPTED.exit_code()


def _release(fifo: Path) -> None:
    """Let a command still waiting on ``fifo`` (if any) read end of file and exit."""
    with contextlib.suppress(OSError):  # no reader left: nothing to release
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
