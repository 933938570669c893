"""Recording before the spawn (M6, L8), deterministically: the watchdog is in place before a
child exists, and a supervisor killed before the history holds a run's start leaves a spawn
marker that the next opening of the history turns into a row. (The sweep of kill moments
is ``test_kill_sweep.py``.)"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from cc_executor._engine import _marker
from cc_executor._engine._tree import find_tree, kill_orphaned_tree
from cc_executor._store import INTERRUPTED, Query, open_store
from tests._wait import wait_for

REPO = str(Path(__file__).resolve().parents[2])

#: Launches ``sleep`` with a spawn marker, then dies by SIGKILL before recording anything.
LAUNCH_AND_DIE = textwrap.dedent(
    """
    import os, signal, sys
    sys.path.insert(0, sys.argv[1])
    from cc_executor._engine._launch import launch
    run_dir = sys.argv[2]
    os.makedirs(run_dir)
    launched = launch(
        ["sh", "-c", "setsid sleep 1000 & exec sleep 1000", "api_key=sk-ant-0123456789abcdef"],
        cwd=run_dir, run_id=os.path.basename(run_dir), run_dir=run_dir,
        marker={"kind": "exec"},
    )
    print(launched.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)

#: Registers a tree with the watchdog as ``launch`` does just before its spawn, starts by
#: hand a child that holds the stderr pipe but not the tree token (a child that has not
#: exec'd yet looks like that), then dies by SIGKILL.
PENDING_AND_DIE = textwrap.dedent(
    """
    import os, signal, subprocess, sys
    sys.path.insert(0, sys.argv[1])
    from cc_executor._engine._watchdog import watchdog
    read_end, write_end = os.pipe()
    watchdog().register("cctpendingtest", None, None, pipe=os.fstat(write_end).st_ino)
    child = subprocess.Popen(["sleep", "1000"], stderr=write_end, start_new_session=True)
    print(child.pid, flush=True)
    os.kill(os.getpid(), signal.SIGKILL)
    """
)


def _gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


def test_a_child_that_has_not_exec_d_yet_dies_with_its_supervisor() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PENDING_AND_DIE, REPO],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    ).stdout
    pid = int(out)
    try:
        wait_for(lambda: _gone(pid), what="the watchdog killed the pipe's holder")
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_a_start_never_recorded_becomes_an_interrupted_row(
    cc_home: Path, history_backend: str
) -> None:
    run_dir = cc_home / "runs" / "marked00000001"
    cc_home.mkdir(parents=True)
    done = subprocess.run(
        [sys.executable, "-c", LAUNCH_AND_DIE, REPO, str(run_dir)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr
    pid = int(done.stdout)
    assert (run_dir / _marker.NAME).exists()
    assert [name for name, _ in _marker.pending()] == ["marked00000001"]
    store = open_store()
    try:
        (record,) = store.query(Query())
    finally:
        store.close()
    assert record.id == "marked00000001"
    assert record.status == INTERRUPTED
    assert record.kind == "exec"
    assert record.pid == pid
    assert record.run_dir == str(run_dir)
    assert "before the run's start was recorded" in (record.error or "")
    assert record.argv[-1] == "api_key=[REDACTED]"  # the marker's argv is redacted here
    assert not (run_dir / _marker.NAME).exists()
    assert _marker.pending() == []
    wait_for(lambda: _gone(pid), what="the command killed")
    assert record.tree_token
    wait_for(lambda: not find_tree([record.tree_token or ""]), what="its escaped grandchild killed")


def test_a_recorded_start_removes_the_marker(cc_home: Path) -> None:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "cc-executor"), "exec", "--json", "--", "true"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert '"status": "ok"' in done.stdout
    assert _marker.pending() == []
    assert not list((cc_home / "runs").glob(f"*/{_marker.NAME}"))


def test_a_token_read_from_disk_kills_only_a_tree(tmp_path: Path) -> None:
    """A damaged or planted record's token is not a pattern: text that every environment
    holds (here a name only this test's child holds) must not make the sweep kill."""
    name = f"HRNOTATOKEN{os.getpid()}"
    child = subprocess.Popen(["sleep", "1000"], env={**os.environ, name: "1"})
    try:
        kill_orphaned_tree(None, None, name)
        assert child.poll() is None
        assert not _gone(child.pid)
    finally:
        child.kill()
        child.wait()
