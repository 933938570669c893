"""Agent homes: the config, login and session folder an agent CLI gets for a run.

An agent whose adapter names a ``home_variable`` (Codex: ``CODEX_HOME``, Gemini:
``GEMINI_CLI_HOME``) gets a home of its own per session, ``agent-home`` in the folder of
the run that starts the session (not under ``/tmp``: Codex refuses its helper binaries
there). A run that resumes a session uses the home of the run that made it, found through
the history: the newest run of that agent whose ``session_id`` is the one resumed and whose
folder holds an ``agent-home``; else, for a run whose end was never recorded, a home that
holds the session (``AgentAdapter.holds_session``). The resuming run's folder gets an
``agent-home`` symlink to it, so every run of the session names its home. The caller's own
home is used instead with ``use_login``, or when ``env`` sets the variable itself. Claude
Code always uses the caller's home (``~/.claude``): its sessions and login stay where the
user has them.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cc_executor._agents._base import AgentAdapter

#: The agent home's folder name inside a run folder.
AGENT_HOME = "agent-home"


def own_home(adapter: AgentAdapter, options: Any) -> bool:
    """Whether a run with ``options`` gets an agent home of its own (else the caller's)."""
    variable = adapter.home_variable
    return (
        variable is not None
        and not getattr(options, "use_login", False)
        and variable not in options.env
    )


def new_home(run_dir: str) -> str:
    """The agent home of a session started by the run in ``run_dir``."""
    return os.path.join(run_dir, AGENT_HOME)


def session_home(adapter: AgentAdapter, session_id: str) -> str:
    """The agent home of ``session_id``, from the history; ``ValueError`` saying why when
    there is none."""
    from cc_executor._store import HistoryError, Query, open_store

    try:
        store = open_store(readonly=True)
    except HistoryError as exc:
        raise ValueError(
            f"cannot resume {adapter.title} session {session_id}: the history that knows its "
            f"agent home cannot be read ({exc})"
        ) from None
    try:
        records = store.query(Query(agent=adapter.name))
    finally:
        store.close()
    runs = [r for r in records if r.session_id == session_id]
    for record in runs:
        home = _home_of(record.run_dir)
        if home is not None:
            return home
    # A run whose end was never recorded (its supervisor killed, its task list interrupted)
    # has no session id in the history: its home is asked.
    for record in records:
        home = _home_of(record.run_dir) if record.session_id is None else None
        if home is not None and adapter.holds_session(home, session_id):
            return home
    if runs:
        why = (
            "its runs kept no agent home (made with use_login, or its run folder was removed):"
            " resume it with --use-login if it lives in your own agent home"
        )
    else:
        why = (
            "no run in the history has that session (a run not recorded, or a session of "
            "your own agent home: resume it with --use-login)"
        )
    raise ValueError(f"cannot resume {adapter.title} session {session_id}: {why}")


def _home_of(run_dir: str | None) -> str | None:
    home = os.path.join(run_dir, AGENT_HOME) if run_dir else None
    return os.path.realpath(home) if home is not None and os.path.isdir(home) else None


def link_home(run_dir: str, home: str) -> None:
    """Name ``home`` in ``run_dir`` (an ``agent-home`` symlink), so that a later resume
    finds it from this run too; best effort."""
    with contextlib.suppress(OSError):
        os.symlink(home, new_home(run_dir), target_is_directory=True)
