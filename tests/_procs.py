"""Processes seen from outside (psutil, not our own sweep): what the tree guarantees are
checked against."""

from __future__ import annotations

import contextlib
from pathlib import Path

import psutil


def pids_in(cwd: Path) -> list[int]:
    """The processes whose working directory is ``cwd``: an agent CLI, its wrappers and the
    commands it started there."""
    pids = []
    for proc in psutil.process_iter(["cwd"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(cwd):
                pids.append(proc.pid)
    return pids


def running_in(cwd: Path, command: str) -> bool:
    """Whether a process in ``cwd`` has ``command`` in its command line."""
    for pid in pids_in(cwd):
        with contextlib.suppress(psutil.Error):
            if command in " ".join(psutil.Process(pid).cmdline()):
                return True
    return False
