"""SIGKILL of ``exec`` and ``run`` at every moment of their start (M6, L8): 0 to 200 ms
after the run folder appears (just before the spawn), in 1 ms steps. After each kill no
process of the tree survives, and once the history is next opened it has a row for every
run that reached its spawn."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor._store import Query, open_store
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text
from tests._means import claude_path
from tests._wait import wait_for

CLI = str(Path(sys.executable).parent / "cc-executor")
#: Every process of one trial carries this variable (the supervisor, its watchdog, the
#: command and its descendants, whatever session they move to): a sweep of /proc finds
#: them independently of cc-executor's own bookkeeping.
MARK = "CC_EXECUTOR_SWEEP_MARK"
DELAYS_MS = range(201)


def _marked(value: str) -> list[int]:
    needle = f"{MARK}={value}\0".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                if needle in f.read():
                    found.append(int(name))
        except OSError:
            continue
    return found


def _runs(home: Path) -> set[str]:
    try:
        return set(os.listdir(home / "runs"))
    except FileNotFoundError:
        return set()


def _sweep(argv: Callable[[int], list[str]], env: dict[str, str], home: Path, tag: str) -> None:
    """Start ``argv(i)`` and SIGKILL it ``i`` ms after its run folder appears (made just
    before the marker and the spawn), for every delay ``i``; wait until nothing of the
    trial is left (the watchdog's cleanup included)."""
    for delay in DELAYS_MS:
        mark = f"{tag}-{os.getpid()}-{delay}"
        before = _runs(home)
        proc = subprocess.Popen(
            argv(delay),
            env={**env, MARK: mark},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(
            lambda before=before: _runs(home) - before,  # type: ignore[misc]
            interval=0.0002,
            what=f"the run folder of trial {delay}",
        )
        time.sleep(delay / 1000)  # the moment of the kill: the trial's parameter
        proc.kill()
        proc.wait()
        wait_for(
            lambda mark=mark: not _marked(mark),  # type: ignore[misc]
            timeout=60,
            what=f"no process left of the trial killed at {delay} ms",
        )


def _check_history(home: Path, trial_of: Callable[[str, list[str]], int | None]) -> None:
    """Every run folder holding the command's output file (made just before the spawn)
    has a row, once the history is opened (the opening turns the markers into rows)."""
    store = open_store(home / "history.sqlite3")
    try:
        records = store.query(Query())
    finally:
        store.close()
    rows = {r.id: r for r in records}
    spawned = sorted(p.name for p in (home / "runs").iterdir() if (p / "stdout.log").exists())
    assert spawned, "no trial reached its spawn"
    missing = [run_id for run_id in spawned if run_id not in rows]
    assert not missing, f"{len(missing)} of {len(spawned)} spawned runs have no row: {missing[:5]}"
    assert {r.status for r in records} <= {"interrupted", "ok", "cancelled"}
    assert not [r for r in records if r.status == "running"]
    for record in records:
        assert trial_of(record.prompt_preview or "", record.argv) is not None, record


@pytest.mark.slow
def test_sigkill_of_exec_at_every_moment_leaves_nothing(tmp_path: Path) -> None:
    home = tmp_path / "cc-home"
    env = {**os.environ, "CC_EXECUTOR_HOME": str(home)}
    started = tmp_path / "started"
    started.mkdir()

    def argv(delay: int) -> list[str]:
        # A tree: the command, and a grandchild that leaves its session (only the tree
        # token finds it), both waiting forever.
        script = f'touch "{started}/$1"; setsid sleep 1000 & exec sleep 1000'
        return [CLI, "exec", "--", "sh", "-c", script, "sh", f"sweep-{delay}"]

    _sweep(argv, env, home, "exec")
    _check_history(
        home, lambda _, argv: next((int(a[6:]) for a in argv if a.startswith("sweep-")), None)
    )
    # Every trial whose command ran has its row.
    store = open_store(home / "history.sqlite3")
    recorded = {a for r in store.query(Query()) for a in r.argv if a.startswith("sweep-")}
    store.close()
    ran = {p.name for p in started.iterdir()}
    assert ran <= recorded, sorted(ran - recorded)


@pytest.mark.slow
@pytest.mark.cli
def test_sigkill_of_run_at_every_moment_leaves_nothing(tmp_path: Path) -> None:
    claude = claude_path()
    assert claude is not None
    home = tmp_path / "cc-home"
    work = tmp_path / "work"
    work.mkdir()
    script = Script([Rule(answers=[Reply([Text("done")], delay=0.5)])])
    with ModelServer(script) as server:
        env = server.claude_env(home=tmp_path / "claude-home", base=os.environ, max_retries=0)
        env["CC_EXECUTOR_CLAUDE"] = claude
        env["CC_EXECUTOR_HOME"] = str(home)

        def argv(delay: int) -> list[str]:
            return [CLI, "run", f"sweep {delay}", "--quiet", "--cwd", str(work)]

        _sweep(argv, env, home, "run")
    _check_history(
        home,
        lambda preview, _: int(preview[6:]) if preview.startswith("sweep ") else None,
    )
