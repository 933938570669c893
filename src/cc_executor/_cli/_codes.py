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
"""Interrupted (SIGINT/SIGTERM/SIGHUP); whatever was running was stopped first."""
EXIT_OOM_KILLED = EXIT_CODES[Status.OOM_KILLED]
"""Killed for using more memory than its limit (``--memory-max``), as a SIGKILL would exit."""
