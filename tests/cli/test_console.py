"""The console script itself: exit codes and quiet ends when its output goes nowhere."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "cc-executor")


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_output_descriptor_is_not_a_crash(closed: int) -> None:
    """Started with stdout or stderr closed (``>&-``), a command still ends with its own
    exit code, not with a traceback about the missing stream."""
    code = f"import os; os.close({closed}); os.execv({CLI!r}, [{CLI!r}, '--version'])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done
    assert b"Traceback" not in done.stderr


def test_version_and_exit_code_of_a_usage_error() -> None:
    done = subprocess.run([CLI, "--version"], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith(b"cc-executor ")
    bad = subprocess.run([CLI, "run"], capture_output=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert b"the following arguments are required" in bad.stderr
