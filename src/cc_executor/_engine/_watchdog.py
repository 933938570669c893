"""The watchdog: kills every registered tree when the supervising process dies.

One watchdog runs per supervising process, started on its first spawn, in a session of its
own (so a signal to the supervisor's process group does not take it down too). The
supervisor holds the write end of the watchdog's stdin and sends one line per event:

    +TOKEN SID TICKS PIPE  a tree was started (SID: the child's session id, TICKS: its
                           start time), or is about to be (SID and TICKS empty; PIPE: the
                           inode of the pipe that will be the child's stderr)
    -TOKEN                 that tree is finished and cleaned up

When stdin reaches EOF the supervisor is gone (exit, crash or SIGKILL: the kernel closes the
pipe in every case). The watchdog then SIGKILLs every tree still registered, sweeping until
nothing is left, and exits. The child itself also has a parent-death signal; this covers the
grandchildren that signal cannot reach.

**No window at the spawn.** :func:`~cc_executor._engine._launch.launch` registers a tree
*before* it spawns the child, so the watchdog is in place whenever a child can exist. A
child is found by its tree token once it has exec'd (its environment is then the one it was
given), and before that by the write end of its stderr pipe, which it holds from the fork
on: the watchdog kills every process holding that pipe, then the tree. (The parent-death
signal alone cannot close that window: ``setpriv`` sets it after the exec, and a parent
that died before then is never signalled.)
"""

from __future__ import annotations

import _thread
import os
import sys


def _fork_exec(argv: list[str], stdin: int, null: int, close: list[int]) -> tuple[int, int]:
    """Fork the watchdog from a single-threaded process (the console before its CLI
    starts): it costs the parent the fork alone (``posix_spawn`` waits until the new
    process has been scheduled and exec'd: 3.4 ms median under load 8 on two cores, against
    0.35 ms). The child closes ``close`` (our ends of its pipes), then waits to exec the
    watchdog until :meth:`WatchdogClient.release` (once the CLI has started, so that the
    watchdog's own start does not compete with the console's) or until this process dies
    (the end of the gate pipe): it protects the trees from the fork on, since whatever it
    is told meanwhile waits in its stdin. Returns the PID and the gate's write end."""
    from cc_executor._engine._launch import inherited_fds

    gate_read, gate_write = os.pipe()
    inherited = inherited_fds()
    pid = os.fork()
    if pid == 0:  # the child: only system calls until the exec
        try:
            os.setsid()  # first: a Ctrl-C to the console's group must not reach it
            for fd in (*close, gate_write):
                os.close(fd)
            os.read(gate_read, 1)  # "go", or the end: this process is gone
            os.dup2(stdin, 0)
            os.dup2(null, 1)
            os.dup2(null, 2)
            for fd in inherited:
                try:  # noqa: SIM105 - contextlib is not loaded this early
                    os.close(fd)
                except OSError:
                    pass
            os.execv(argv[0], argv)  # noqa: S606 - never a shell, by design
        finally:
            os._exit(127)
    os.close(gate_read)
    return pid, gate_write


class WatchdogClient:
    """The supervisor's side: starts the watchdog lazily and tells it about trees.

    Thread-safe. Never raises: if the watchdog cannot be started or has died, the trees stay
    protected by the child's parent-death signal and the supervisor's own cleanup, and a
    new watchdog is started on the next registration.

    Light on purpose (``os``, ``sys`` and ``_thread``): the console registers its first
    tree before it starts the agent CLI, before anything else is imported.
    """

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._pid: int | None = None
        self._fd: int | None = None
        #: The write end of the gate a forked watchdog waits behind (see ``_fork_exec``).
        self._gate: int | None = None
        self._live: dict[str, tuple[int | None, int | None, int | None]] = {}
        os.register_at_fork(after_in_child=self._forget_after_fork)

    def _forget_after_fork(self) -> None:
        # A forked copy of the supervisor must not keep the pipe open: the watchdog would
        # never see EOF. The copy starts its own watchdog if it supervises anything.
        fds = (self._fd, self._gate)
        self._pid = self._fd = self._gate = None
        self._live = {}
        self._lock = _thread.allocate_lock()
        for fd in fds:
            if fd is not None:
                try:  # noqa: SIM105 - contextlib is not loaded this early
                    os.close(fd)
                except OSError:
                    pass

    def _start(self, *, gated: bool = False) -> bool:
        """Start the watchdog (no ``subprocess``: the console does this before its CLI
        starts) and replay the live trees to it. ``gated``: a forked watchdog waits for
        :meth:`release` (or our death) before it starts Python."""
        from cc_executor._engine._launch import inherited_fds, single_threaded

        package_parent = os.path.dirname(
            os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        )
        # -I -S: no site, no user paths, only this package's light watchdog module.
        code = (
            "import sys; sys.path.insert(0, sys.argv[1]); "
            "from cc_executor._engine._guard import main; main()"
        )
        try:
            read_end, write_end = os.pipe()
        except OSError:
            return False
        try:
            null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return False
        argv = [sys.executable, "-I", "-S", "-c", code, package_parent]
        gate = None
        try:
            if single_threaded():
                pid, gate = _fork_exec(argv, read_end, null, [write_end])
            else:
                actions: list[tuple[int, ...]] = [
                    (os.POSIX_SPAWN_DUP2, read_end, 0),
                    (os.POSIX_SPAWN_DUP2, null, 1),
                    (os.POSIX_SPAWN_DUP2, null, 2),
                ]
                actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds()]
                pid = os.posix_spawn(
                    sys.executable, argv, os.environ, file_actions=actions, setsid=True
                )
        except OSError:
            os.close(write_end)
            return False
        finally:
            os.close(read_end)
            os.close(null)
        # Nice 10 at least from its first instruction: it starts while the supervised CLI
        # boots, and its start-up must not take the CPU from it (one system call here).
        try:  # noqa: SIM105 - contextlib is not loaded this early
            os.setpriority(os.PRIO_PROCESS, pid, max(10, os.getpriority(os.PRIO_PROCESS, 0)))
        except OSError:
            pass
        self._pid, self._fd, self._gate = pid, write_end, gate
        if not gated:
            self._open_gate()
        return all(self._write(self._line(token, entry)) for token, entry in self._live.items())

    @staticmethod
    def _line(token: str, entry: tuple[int | None, int | None, int | None]) -> str:
        sid, ticks, pipe = entry
        return f"+{token} {sid or ''} {ticks or ''} {pipe or ''}\n"

    def _alive(self) -> bool:
        if self._pid is None:
            return False
        try:
            pid, _ = os.waitpid(self._pid, os.WNOHANG)
        except ChildProcessError:
            return False  # reaped by someone else: gone
        return pid == 0

    def _write(self, line: str) -> bool:
        if self._fd is None:
            return False
        try:
            os.write(self._fd, line.encode("ascii"))
        except OSError:
            return False
        return True

    def _drop(self) -> None:
        for fd in (self._fd, self._gate):
            if fd is not None:
                try:  # noqa: SIM105 - contextlib is not loaded this early
                    os.close(fd)
                except OSError:
                    pass
        self._pid = self._fd = self._gate = None

    def release(self) -> None:
        """Let a watchdog waiting behind its gate (see ``_fork_exec``) start now."""
        with self._lock:
            self._open_gate()

    def _open_gate(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            try:  # noqa: SIM105 - contextlib is not loaded this early
                os.close(gate)  # the end of the pipe is the "go"
            except OSError:
                pass

    def ensure(self) -> None:
        """Have a watchdog (started now if there is none): call it before a child's
        descriptors exist, so that a forked watchdog does not hold copies of them."""
        with self._lock:
            if not self._alive():
                self._drop()
                if not self._start(gated=True):
                    self._drop()

    def _send(self, line: str) -> None:
        if self._alive() and self._write(line):
            return
        self._drop()
        if not self._start():  # replays self._live, which already includes this change
            self._drop()

    def register(
        self, token: str, sid: int | None, ticks: int | None = None, *, pipe: int | None = None
    ) -> None:
        """Protect the tree marked ``token`` (session ``sid``, whose leader started at
        ``ticks``) against our own death. Before the spawn: ``sid`` None and ``pipe`` the
        inode of the child's stderr pipe, which finds the child until it has exec'd."""
        with self._lock:
            old = self._live.get(token)
            entry = (sid, ticks, pipe if pipe is not None else (old[2] if old else None))
            self._live[token] = entry
            self._send(self._line(token, entry))

    def unregister(self, token: str) -> None:
        """The tree is cleaned up; the watchdog can forget it."""
        with self._lock:
            if self._live.pop(token, None) is None:
                return
            self._write(f"-{token}\n")

    @property
    def pid(self) -> int | None:
        """PID of the running watchdog, if any (for diagnostics and tests)."""
        return self._pid if self._alive() else None


_client: WatchdogClient | None = None
_client_lock = _thread.allocate_lock()


def watchdog() -> WatchdogClient:
    """The process-wide watchdog client."""
    global _client  # noqa: PLW0603 - one watchdog per process by design
    with _client_lock:
        if _client is None:
            _client = WatchdogClient()
        return _client
