"""Exit codes shared by the commands: those of the status vocabulary
(:data:`cc_executor._status.EXIT_CODES`), by name."""

from cc_executor._status import EXIT_CODES, Status

EXIT_USAGE = EXIT_CODES[Status.USAGE_ERROR]
"""Invalid command line or options; nothing ran."""
EXIT_TIMEOUT = EXIT_CODES[Status.TIMEOUT]
"""The run was stopped by its timeout (or idle timeout)."""
EXIT_CANNOT_START = EXIT_CODES[Status.SPAWN_FAILED]
"""The command or agent CLI could not be started."""
EXIT_CANCELLED = EXIT_CODES[Status.CANCELLED]
"""Interrupted (Ctrl-C); whatever was running was stopped first. SIGTERM and SIGHUP
exit the shell's way instead, see :func:`signal_exit`."""
EXIT_OOM_KILLED = EXIT_CODES[Status.OOM_KILLED]
"""Killed for using more memory than its limit (``--memory-max``), as a SIGKILL would exit."""


def signal_exit(signals: list[int]) -> int:
    """The exit code of a command stopped the orderly way by the first of ``signals``
    (those it received): 128 + its number, as a shell reports a program killed by it
    (130 SIGINT, 143 SIGTERM, 129 SIGHUP), so a supervisor tells a Ctrl-C from its own
    SIGTERM; :data:`EXIT_CANCELLED` when none was received."""
    return 128 + signals[0] if signals else EXIT_CANCELLED
