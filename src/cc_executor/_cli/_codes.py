"""Exit codes shared by the commands, following GNU ``timeout`` where it has one."""

EXIT_TIMEOUT = 124
"""The run was stopped by its timeout (or idle timeout)."""
EXIT_CANNOT_START = 125
"""The command or agent CLI could not be started."""
EXIT_CANCELLED = 130
"""Interrupted (SIGINT/SIGTERM/SIGHUP); whatever was running was stopped first."""
