"""Small programs the engine tests run as real child processes."""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).parent


def child(name: str, *args: object) -> list[str]:
    """argv that runs ``children/<name>.py`` with this interpreter."""
    return [sys.executable, str(HERE / f"{name}.py"), *map(str, args)]
