"""Starting a child before there is an event loop, for the engine to adopt later.

A console command pays for the interpreter and for its imports before it can spawn
anything (``cc-executor run``: about 130 ms, against a CLI that answers a trivial prompt in
under 400 ms). :func:`launch` lets it start the child first, with only the standard
library's ``os`` loaded, and import the rest while the child boots. The child is started
exactly as :class:`~cc_executor._engine.SupervisedProcess` starts one (a session of its
own, the tree token in its environment, the parent-death signal, default SIGPIPE, stdout
a file in the run directory, stderr a pipe, no shell) and then handed over with
``SupervisedProcess(launched=...)``, which supervises it from then on as if it had spawned
it: the time limits count from the spawn, nothing written in between is lost (stdout is
the file, and stderr waits in a 1 MiB pipe).

Until it is adopted, :meth:`Launched.abandon` is the way out: it kills the whole tree and
reaps the child.

Keep this module's imports to a few standard modules and the light engine modules: it
exists to run before everything else is imported.
"""

from __future__ import annotations

# The C module behind ``signal``: the same constants without the enum classes that
# ``signal`` builds on import (4 ms, before the CLI could start). Loaded at start-up anyway.
import _signal  # type: ignore[import-not-found,unused-ignore]
import os
import time

from cc_executor._engine import _tree
from cc_executor._engine._spawn import (
    SpawnError,
    check_cwd,
    resolve_executable,
    set_pipe_size,
    stdin_file,
    wrap_with_parent_death_signal,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

_OUTPUT_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
_READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW


class LaunchedChild:
    """The started process: what the supervisor needs of a ``subprocess.Popen``."""

    __slots__ = ("pid", "returncode")

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Reap the child if it has exited; its return code (``-N`` for signal N), or None
        while it runs."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:
                # Reaped by the kernel (SIGCHLD ignored by whoever started us): it is gone
                # and its status lost; as subprocess.Popen does, report 0.
                self.returncode = 0
                return self.returncode
            if pid == self.pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode


class Launched:
    """A child started by :func:`launch`, waiting to be adopted by a supervisor.

    The descriptors it holds (stdout's read-back, stderr's read end, the pidfd) pass to the
    supervisor with :meth:`take`; whatever is not taken is closed by :meth:`abandon`.
    """

    def __init__(
        self,
        *,
        argv: list[str],
        cwd: str,
        run_id: str,
        run_dir: str,
        token: str,
        child: LaunchedChild,
        fds: dict[str, int],
        start_ticks: int | None,
        t0: float,
        started_at: float,
    ) -> None:
        self.argv = argv
        """The command as asked for (without the parent-death wrapper)."""
        self.cwd = cwd
        self.run_id = run_id
        self.run_dir = run_dir
        self.token = token
        """The tree token in the child's ``CC_EXECUTOR_TREE``."""
        self.child = child
        self.start_ticks = start_ticks
        self.t0 = t0
        """``time.monotonic()`` just before the spawn: the time limits count from here."""
        self.started_at = started_at
        self._fds = fds
        self.adopted = False
        """Set by the supervisor that took the child over."""
        self.abandoned = False

    @property
    def pid(self) -> int:
        """The child's PID (also its session and process group id)."""
        return self.child.pid

    @property
    def stdout_path(self) -> str:
        """The file that is the child's stdout."""
        return os.path.join(self.run_dir, "stdout.log")

    def take(self, name: str) -> int | None:
        """Hand over descriptor ``name`` (``stdout``: read-back of the output file,
        ``stderr``: read end of the pipe, ``pidfd``): the caller closes it from now on."""
        return self._fds.pop(name, None)

    def abandon(self) -> bool:
        """Kill the whole tree, reap the child, close the descriptors: for a child that
        will not be adopted (the command failed before supervising it). True if this call
        did it; False once adopted or abandoned already."""
        if self.adopted or self.abandoned:
            return False
        self.abandoned = True
        if self.child.returncode is None:
            _tree.kill_tree([self.token], sid=self.pid, pgid=self.pid)
            _wait_gone(self.child)
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()
        return True


def _wait_gone(child: LaunchedChild, limit: float = 10.0) -> None:
    """Reap a SIGKILLed ``child``: at once, unless it is stuck in the kernel; then give
    up after ``limit`` seconds rather than hang."""
    deadline = time.monotonic() + limit
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)


def _inherited_fds() -> list[int]:
    """Our descriptors above 2 that a child would inherit."""
    found = []
    try:
        names = os.listdir("/proc/self/fd")
    except OSError:
        return []
    for name in names:
        fd = int(name)
        if fd > 2:
            try:
                if os.get_inheritable(fd):
                    found.append(fd)
            except OSError:
                continue  # the descriptor listdir itself used, closed by now
    return found


def _single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def launch(
    argv: Sequence[str],
    *,
    cwd: str,
    run_id: str,
    run_dir: str,
    stdin_path: str,
    extra_env: Mapping[str, str] | None = None,
    parent_death_signal: bool = True,
) -> Launched:
    """Start ``argv`` the way the engine does, with ``stdin_path`` as its stdin and
    ``run_dir/stdout.log`` (created here; ``run_dir`` must exist) as its stdout.

    For a single-threaded process only (a console command before it starts anything): the
    working directory is changed around the spawn, because ``os.posix_spawn`` has no
    ``cwd``. Raises :class:`SpawnError` with the reason when the child cannot be started
    (the caller then goes the ordinary way, which reports the problem in full).
    """
    if not _single_threaded():
        raise SpawnError("launch() needs a single-threaded process")
    cwd = os.path.abspath(cwd)
    check_cwd(cwd)
    env = dict(os.environ)
    if extra_env:
        env.update(extra_env)
    executable = resolve_executable(argv[0], cwd=cwd, env=env)
    token = _tree.new_tree_token()
    env[_tree.TREE_ENV] = _tree.child_tree_env(env.get(_tree.TREE_ENV), token)
    full = (
        wrap_with_parent_death_signal(argv, executable)
        if parent_death_signal
        else [executable, *argv[1:]]
    )
    stdout_path = os.path.join(run_dir, "stdout.log")
    mine: dict[str, int] = {}
    theirs: list[int] = []
    here = -1
    pid = -1
    try:
        theirs.append(stdin_file(stdin_path))
        theirs.append(os.open(stdout_path, _OUTPUT_FLAGS, 0o600))
        mine["stdout"] = os.open(stdout_path, _READ_FLAGS)
        mine["stderr"], err_write = os.pipe()
        theirs.append(err_write)
        set_pipe_size(mine["stderr"])
        actions: list[tuple[int, ...]] = [
            (os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(theirs)
        ]
        # posix_spawn has no close_fds: close what we inherited as inheritable (a make
        # jobserver, a caller's pipe), as subprocess's close_fds=True does; ours are all
        # close-on-exec already.
        actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in _inherited_fds()]
        here = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            os.chdir(cwd)
            t0 = time.monotonic()
            started_at = time.time()
            pid = os.posix_spawn(
                full[0],
                full,
                env,
                file_actions=actions,
                setsid=True,
                # As subprocess's restore_signals: Python ignores SIGPIPE and SIGXFSZ, and
                # an ignored signal stays ignored across exec.
                setsigdef=(_signal.SIGPIPE, _signal.SIGXFSZ),
            )
        finally:
            os.fchdir(here)
        child = LaunchedChild(pid)
        try:
            mine["pidfd"] = os.pidfd_open(pid)
        except (AttributeError, OSError):
            mine.pop("pidfd", None)  # the supervisor then waits for the exit in a thread
        ticks = _tree.start_ticks(pid)
    except BaseException as exc:
        for fd in mine.values():
            os.close(fd)
        if pid > 0:  # started, but what follows failed (or a signal came): no orphan
            _tree.kill_tree([token], sid=pid, pgid=pid)
            _wait_gone(LaunchedChild(pid))
        if isinstance(exc, OSError):
            raise SpawnError(
                f"cannot start {argv[0]}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
            ) from None
        raise
    finally:
        for fd in theirs:
            os.close(fd)
        if here >= 0:
            os.close(here)
    return Launched(
        argv=list(argv),
        cwd=cwd,
        run_id=run_id,
        run_dir=run_dir,
        token=token,
        child=child,
        fds=mine,
        start_ticks=ticks,
        t0=t0,
        started_at=started_at,
    )
