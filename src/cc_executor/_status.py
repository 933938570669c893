"""One status vocabulary for everything cc-executor runs: agent runs, commands, tasks, task
lists, queued service runs and history records.

Every state has one name with one meaning, its exit code for the ``cc-executor`` commands,
and whether it is final. The typed names each layer exports (``RunStatus``,
``ProcessStatus``, ``TaskStatus``, ``ListStatus``) are this one enum; which states each kind
of thing can reach is said in its docstring and in ``docs/statuses.md``.

A leaf module: the engine at the bottom imports it, so it imports nothing of ours.
"""

from __future__ import annotations

import enum


class Status(str, enum.Enum):
    """Where a run, command, task or task list is, or how it ended (the value is what JSON,
    the history and the commands show)."""

    # -- not final ------------------------------------------------------------------------
    QUEUED = "queued"
    """Accepted by the service, waiting for a free slot (``serve`` keeps it in the history
    and its request on disk until it starts, across a restart)."""
    PENDING = "pending"
    """A task not started (yet)."""
    RUNNING = "running"
    """In progress."""
    PAUSED = "paused"
    """Its process tree is stopped (SIGSTOP) until resumed."""

    # -- final ---------------------------------------------------------------------------
    OK = "ok"
    """Finished and succeeded: the agent reported success, the command exited 0, every
    task of the list ended ok."""
    ERROR = "error"
    """The agent reported an error (``error`` and ``api_error_status`` say which)."""
    FAILED = "failed"
    """Ran to its end without success: a command's non-zero exit (or a signal we did not
    send), a task whose last attempt did not end ok, a list with a failed task."""
    CRASHED = "crashed"
    """The agent CLI ended without a result (killed, crashed, or refused to start)."""
    RATE_LIMITED = "rate_limited"
    """The API refused with a rate limit (HTTP 429) and retries did not help."""
    MAX_TURNS = "max_turns"
    """The agent stopped at ``max_turns``."""
    BUDGET_EXCEEDED = "budget_exceeded"
    """The agent stopped at its own cost cap (``max_budget_usd``), or a task list reached
    ``budget_usd`` and started no further task, or a task or a fleet run was
    not started because its budget (the list's ``budget_usd``, the fleet's
    ``worker --budget-usd``) could not cover its reservation."""
    DENIED = "denied"
    """The agent's tool calls were refused (permissions), so the work asked for was not
    done."""
    TIMEOUT = "timeout"
    """Stopped by us at the total timeout; the result has what was produced so far."""
    IDLE_TIMEOUT = "idle_timeout"
    """Stopped by us after too long without any output (or none at all at first)."""
    CANCELLED = "cancelled"
    """Stopped by the caller (Ctrl-C, ``cancel()``, a remote cancel)."""
    INTERRUPTED = "interrupted"
    """Was running when the process supervising it (or the worker) was lost, or when the
    service stopping on SIGTERM ran out of its drain grace."""
    SPAWN_FAILED = "spawn_failed"
    """Could not be started (not installed, bad cwd, ...); nothing ran."""
    OOM_KILLED = "oom_killed"
    """Killed for using more memory than its limit."""
    LIMIT_EXCEEDED = "limit_exceeded"
    """Stopped for exceeding another resource limit (processes, output bytes, ...), or its
    output could not be kept whole (a full disk, a file size limit): see ``incomplete_files``."""
    SKIPPED = "skipped"
    """Never started: a dependency did not end ok, the list stopped, or (a batch's
    document) the batch's budget was spent."""
    USAGE_ERROR = "usage_error"
    """The command line or the options were invalid; nothing ran."""

    def __str__(self) -> str:
        return self.value

    @property
    def final(self) -> bool:
        """False while in progress (queued, pending, running, paused)."""
        return self not in _LIVE

    @property
    def ok(self) -> bool:
        """True for :attr:`OK` only."""
        return self is Status.OK

    def exit_code(self, *, by_user: bool = True) -> int:
        """The exit code of a ``cc-executor`` command that ended with this status.
        ``by_user``: a cancel came from the user's own Ctrl-C or signal (130); a remote
        cancel exits 1."""
        if self is Status.CANCELLED and not by_user:
            return 1
        return EXIT_CODES.get(self, 1)


_LIVE = frozenset({Status.QUEUED, Status.PENDING, Status.RUNNING, Status.PAUSED})

#: Exit codes, following GNU ``timeout`` where it has one; 1 for every status not listed.
EXIT_CODES = {
    Status.OK: 0,
    Status.USAGE_ERROR: 2,
    Status.DENIED: 3,
    Status.TIMEOUT: 124,
    Status.IDLE_TIMEOUT: 124,
    Status.SPAWN_FAILED: 125,
    Status.CANCELLED: 130,
    Status.OOM_KILLED: 137,
}
