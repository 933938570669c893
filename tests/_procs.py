"""Processes seen from outside (psutil, not our own sweep): what the tree guarantees are
checked against."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import psutil

from cc_executor.testing import Reply, Text, ToolUse

#: A tool call that lasts until it is killed (Claude Code refuses a long plain ``sleep``).
NEEDLE = "tail -f /dev/null"

#: An answer that says "working on it", then runs :data:`NEEDLE` with Bash: a run that
#: holds still, with a partial answer, until it is paused or cancelled.
HOLD = Reply([Text("working on it"), ToolUse("Bash", {"command": NEEDLE})])


def pids_in(cwd: Path) -> list[int]:
    """The processes whose working directory is ``cwd``: an agent CLI, its wrappers and the
    commands it started there."""
    pids = []
    for proc in psutil.process_iter(["cwd"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(cwd):
                pids.append(proc.pid)
    return pids


def pids_running(cwd: Path, command: str) -> list[int]:
    """The processes in ``cwd`` that have ``command`` in their command line."""
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(cwd) and command in " ".join(proc.info["cmdline"] or []):
                found.append(proc.pid)
    return found


def running_in(cwd: Path, command: str) -> bool:
    """Whether a process in ``cwd`` has ``command`` in its command line."""
    return bool(pids_running(cwd, command))


def run_cgroups(run_id: str) -> list[str]:
    """The cgroups of run ``run_id`` (and of its later attempts, ``<id>-N``) still there. Only
    the run's own: the runs of the other xdist worker (and of anyone else on the machine)
    have theirs beside them, so an empty parent would prove nothing."""
    from cc_executor._engine._cgroup import leftover_groups

    return [
        group
        for group in leftover_groups()
        if os.path.basename(group) == run_id or os.path.basename(group).startswith(f"{run_id}-")
    ]
