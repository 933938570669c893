"""Where cc-executor keeps its data: ``$CC_EXECUTOR_HOME`` or the user data dir."""

from __future__ import annotations

import os
from pathlib import Path


def data_home() -> Path:
    """The data directory: ``$CC_EXECUTOR_HOME`` when set, else the platform's user data dir
    (``~/.local/share/cc-executor`` on Linux). Not created here."""
    override = os.environ.get("CC_EXECUTOR_HOME")
    if override:
        return Path(override).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("cc-executor", appauthor=False))


def runs_dir() -> Path:
    """The folder holding one sub-folder per run (output files, event logs)."""
    return data_home() / "runs"
