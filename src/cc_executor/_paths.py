"""Where cc-executor keeps its data: ``$CC_EXECUTOR_HOME`` or the user data dir."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from pathlib import Path


def data_home_path() -> str:
    """:func:`data_home` as a string, without importing :mod:`pathlib` (the console's
    early start uses it) nor, when ``$CC_EXECUTOR_HOME`` is set, platformdirs."""
    override = os.environ.get("CC_EXECUTOR_HOME")
    if override:
        return os.path.expanduser(override)
    from platformdirs import user_data_dir

    return user_data_dir("cc-executor", appauthor=False)


def data_home() -> Path:
    """The data directory: ``$CC_EXECUTOR_HOME`` when set, else the platform's user data dir
    (``~/.local/share/cc-executor`` on Linux). Not created here."""
    from pathlib import Path

    return Path(data_home_path())


def runs_path() -> str:
    """:func:`runs_dir` as a string, without importing :mod:`pathlib`."""
    return os.path.join(data_home_path(), "runs")


def runs_dir() -> Path:
    """The folder holding one sub-folder per run (output files, event logs)."""
    from pathlib import Path

    return Path(runs_path())
