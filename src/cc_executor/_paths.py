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


def make_run_dir(target: str, run_id: str, *, explicit: bool) -> tuple[str, str | None]:
    """Create the run folder ``target`` (0700) and return it with None. When it cannot be
    created and it is the default one (``explicit`` False: an unwritable or broken
    ``CC_EXECUTOR_HOME``), a temporary folder is made instead and returned with a warning
    saying so: keeping records is never the reason a run fails. ``OSError`` with the reason
    when an explicit folder, or the temporary one too, cannot be made."""
    try:
        os.makedirs(target, mode=0o700, exist_ok=True)
        return target, None
    except OSError as exc:
        if explicit:
            raise OSError(
                exc.errno, f"cannot create run directory {target}: {exc.strerror}"
            ) from None
        import tempfile  # only here: 3 ms of imports (shutil, random, bz2, lzma)

        try:
            fallback = tempfile.mkdtemp(prefix=f"cc-executor-{run_id}-")
        except OSError as exc2:
            raise OSError(
                exc2.errno,
                f"cannot create a run directory ({target}: {exc.strerror}; "
                f"temporary folder: {exc2.strerror})",
            ) from None
        return (
            fallback,
            f"run directory {target} unusable ({exc.strerror}); output kept in {fallback}",
        )
