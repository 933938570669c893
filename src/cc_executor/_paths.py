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


def private_dir(path: str, *, tighten: bool = True) -> str | None:
    """Make ``path`` and its missing parents readable by this account only (0700): prompts,
    answers and command lines are kept below it. With ``tighten``, a folder that already
    exists but that other accounts may read is made private (its special bits kept), and
    the returned warning says so (else None); a folder that is not cc-executor's to change
    (a link, another account's, a shared one with the sticky bit such as ``/tmp``, the home
    folder or ``/``) is left as it is, and the warning says to make it private.
    ``OSError`` if it cannot be made."""
    missing = []
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        missing.append(probe)
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    for folder in reversed(missing):
        # One at a time: os.makedirs gives the parents it creates the umask's mode.
        try:  # noqa: SIM105 - contextlib would cost the console's early start its import
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
    st = os.lstat(path)
    mode = st.st_mode & 0o7777
    if not tighten or not mode & 0o077:
        return None
    real = os.path.realpath(path)
    shared = (
        os.path.islink(path)
        or st.st_uid != os.geteuid()
        or mode & 0o1000  # sticky: a folder every account writes to (/tmp)
        or real in ("/", os.path.realpath(os.path.expanduser("~")))
    )
    if shared:
        return (
            f"{path} is readable by other accounts (mode {mode & 0o777:o}) and is not "
            "cc-executor's own folder to change: it holds prompts, answers and command "
            "lines; make it private (chmod 700) or set CC_EXECUTOR_HOME to a private folder"
        )
    os.chmod(path, mode & ~0o077)
    return (
        f"{path} was readable by other accounts (mode {mode & 0o777:o}); it now is not "
        f"(mode {mode & 0o700:o}): it holds prompts, answers and command lines"
    )


def make_run_dir(target: str, run_id: str, *, explicit: bool) -> tuple[str, str | None]:
    """Create the run folder ``target`` (0700) and return it with None, or with a warning
    when the data folder above a default one had to be made private (see
    :func:`private_dir`). When it cannot be created and it is the default one
    (``explicit`` False: an unwritable or broken ``CC_EXECUTOR_HOME``), a temporary folder
    is made instead and returned with a warning saying so: keeping records is never the
    reason a run fails. ``OSError`` with the reason when an explicit folder, or the
    temporary one too, cannot be made."""
    try:
        if explicit:
            os.makedirs(target, mode=0o700, exist_ok=True)
            return target, None
        warning = private_dir(data_home_path())
        private_dir(target, tighten=False)
        return target, warning
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


def pending_path() -> str:
    """The folder indexing the runs whose start is not in the history yet: one link per
    run, to its run folder, where its spawn marker is (see ``_engine._marker``)."""
    return os.path.join(data_home_path(), "pending")
