"""The watchdog: kills every registered tree when the supervising process dies.

One watchdog runs per supervising process, started on its first spawn, in a session of its
own (so a signal to the supervisor's process group does not take it down too). The
supervisor holds the write end of the watchdog's stdin and sends one line per event:

    +TOKEN SID TICKS  a tree was started (SID: the child's session id, TICKS: its start time)
    -TOKEN          that tree is finished and cleaned up

When stdin reaches EOF the supervisor is gone (exit, crash or SIGKILL: the kernel closes the
pipe in every case). The watchdog then SIGKILLs every tree still registered, sweeping until
nothing is left, and exits. The child itself also has a parent-death signal; this covers the
grandchildren that signal cannot reach.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import threading


class WatchdogClient:
    """The supervisor's side: starts the watchdog lazily and tells it about trees.

    Thread-safe. Never raises: if the watchdog cannot be started or has died, the trees stay
    protected by the child's parent-death signal and the supervisor's own cleanup, and a
    new watchdog is started on the next registration.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._proc: subprocess.Popen[bytes] | None = None
        self._live: dict[str, tuple[int | None, int | None]] = {}
        os.register_at_fork(after_in_child=self._forget_after_fork)

    def _forget_after_fork(self) -> None:
        # A forked copy of the supervisor must not keep the pipe open: the watchdog would
        # never see EOF. The copy starts its own watchdog if it supervises anything.
        proc = self._proc
        self._proc = None
        self._live = {}
        self._lock = threading.Lock()
        if proc is not None and proc.stdin is not None:
            with contextlib.suppress(OSError):
                os.close(proc.stdin.fileno())

    def _start(self) -> subprocess.Popen[bytes] | None:
        package_parent = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        )
        # -I -S: no site, no user paths, only this package's light watchdog module. The
        # watchdog lowers its own priority first (to nice 10 at least): it is started
        # while the supervised CLI boots, and its start-up must not take the CPU from it.
        code = (
            "import os, sys; os.nice(max(0, 10 - os.nice(0))); sys.path.insert(0, sys.argv[1]); "
            "from cc_executor._engine._guard import main; main()"
        )
        try:
            proc = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", code, package_parent],
                stdin=subprocess.PIPE,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
        except OSError:
            return None
        for token, (sid, ticks) in self._live.items():
            if not self._write(proc, f"+{token} {sid or ''} {ticks or ''}\n"):
                return None
        return proc

    @staticmethod
    def _write(proc: subprocess.Popen[bytes], line: str) -> bool:
        if proc.stdin is None:
            return False
        try:
            os.write(proc.stdin.fileno(), line.encode("ascii"))
        except OSError:
            return False
        return True

    def _send(self, line: str) -> None:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
            return  # _start replays self._live, which already includes this change
        if not self._write(self._proc, line):
            self._proc = self._start()

    def register(self, token: str, sid: int | None, ticks: int | None = None) -> None:
        """Protect the tree marked ``token`` (session ``sid``, whose leader started at
        ``ticks``) against our own death."""
        with self._lock:
            self._live[token] = (sid, ticks)
            self._send(f"+{token} {sid or ''} {ticks or ''}\n")

    def unregister(self, token: str) -> None:
        """The tree is cleaned up; the watchdog can forget it."""
        with self._lock:
            if self._live.pop(token, ...) is ...:
                return
            if self._proc is not None:
                self._write(self._proc, f"-{token}\n")

    @property
    def pid(self) -> int | None:
        """PID of the running watchdog, if any (for diagnostics and tests)."""
        proc = self._proc
        return proc.pid if proc is not None and proc.poll() is None else None


_client: WatchdogClient | None = None
_client_lock = threading.Lock()


def watchdog() -> WatchdogClient:
    """The process-wide watchdog client."""
    global _client  # noqa: PLW0603 - one watchdog per process by design
    with _client_lock:
        if _client is None:
            _client = WatchdogClient()
        return _client
