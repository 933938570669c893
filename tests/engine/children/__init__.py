"""Small programs the engine tests run as real child processes."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent


def child(name: str, *args: object) -> list[str]:
    """argv that runs ``children/<name>.py`` with this interpreter."""
    return [sys.executable, str(HERE / f"{name}.py"), *map(str, args)]


def sh_chatty(lines: int, pause: float) -> list[str]:
    """argv of a shell printing ``lines`` lines ``pause`` s apart. For idle clocks of a
    fraction of a second, which count from the spawn: a shell prints its first line within
    a millisecond of CPU, where Python's start takes tens of them (so, on a loaded machine,
    can outlast the clock and time the run out before the behaviour under test)."""
    loop = f'i=0; while [ "$i" -lt {lines} ]; do echo "line $i"; i=$((i + 1)); sleep {pause}; done'
    return ["sh", "-c", loop]
