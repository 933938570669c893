"""``cc-executor`` as a child process, the way a user's shell runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

#: The console script installed beside this interpreter.
CLI = str(Path(sys.executable).parent / "cc-executor")


def cc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``cc-executor ARGS`` to its end and return what it did. The timeout only turns a
    hang into a failure: it is no speed bound."""
    return subprocess.run(
        [CLI, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
