"""Starting a child: the one spawn path of cc-executor, usable before there is an event loop.

:class:`~cc_executor._engine.SupervisedProcess` starts every child with :func:`launch` and
adopts it. A console command pays for the interpreter and for its imports before it can
spawn anything (``cc-executor run``: about 130 ms, against a CLI that answers a trivial
prompt in under 400 ms), so it calls :func:`launch` itself first, with only the standard
library's ``os`` loaded, imports the rest while the child boots, and then hands the child
over with ``SupervisedProcess(launched=...)``, which supervises it from then on as if it
had spawned it: the time limits count from the spawn, nothing written in between is lost
(stdout is the file, and stderr waits in a 1 MiB pipe).

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

from cc_executor._engine import _marker, _tree
from cc_executor._engine._spawn import (
    SpawnError,
    check_cwd,
    resolve_executable,
    set_pipe_size,
    stdin_file,
    wrap_with_parent_death_signal,
)
from cc_executor._engine._watchdog import watchdog

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

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

    The descriptors it holds (``stdout``: the output file's read-back or the pipe's read
    end, ``stderr``: the pipe's read end, ``stdin``: a pipe's write end, ``pidfd``) pass to
    the supervisor with :meth:`take`; whatever is not taken is closed by :meth:`abandon`.
    """

    def __init__(
        self,
        *,
        argv: list[str],
        cwd: str,
        run_id: str,
        run_dir: str,
        token: str,
        child: LaunchedChild | Any,
        fds: dict[str, int],
        start_ticks: int | None,
        t0: float,
        started_at: float,
        cgroup: Any = None,
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
        self.cgroup = cgroup
        """The run's :class:`~cc_executor._engine._cgroup.RunCgroup` (None without limits
        needing one); the supervisor removes it once the tree is gone."""
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
        if self.cgroup is not None:
            self.cgroup.remove()
        watchdog().unregister(self.token)
        _marker.clear(self.run_id, self.run_dir)  # no run will be recorded for it
        return True


def _wait_gone(child: LaunchedChild | Any, limit: float = 10.0) -> None:
    """Reap a SIGKILLed ``child``: at once, unless it is stuck in the kernel; then give
    up after ``limit`` seconds rather than hang."""
    deadline = time.monotonic() + limit
    while child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)


def inherited_fds() -> list[int]:
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


def single_threaded() -> bool:
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


#: ``launch(stdin=...)``: a pipe whose write end the caller gets (``take("stdin")``), or
#: the null device.
PIPE = -1
DEVNULL = -3


def launch(
    argv: Sequence[str],
    *,
    cwd: str,
    run_id: str,
    run_dir: str,
    stdin_path: str | None = None,
    stdin: int | str | None = None,
    stdout_to_file: bool = True,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    parent_death_signal: bool = True,
    token: str | None = None,
    marker: Mapping[str, str] | None = None,
    limits: Any = None,
) -> Launched:
    """Start ``argv`` the engine's way (the one spawn path of cc-executor): a session of its
    own, the tree token in its environment, the parent-death signal, SIGPIPE and SIGXFSZ
    at their defaults, no inherited descriptors, no shell; stderr a pipe.

    ``stdin``: a file's path, a descriptor (given to the child; the caller keeps its own),
    :data:`PIPE` or :data:`DEVNULL` (the default); ``stdin_path`` is the same as a path.
    ``stdout_to_file``: stdout is ``run_dir/stdout.log``, created here (``run_dir`` must
    exist), which the child writes itself; else a pipe. ``env``: the child's whole
    environment (default ``os.environ``), plus ``extra_env``. ``token``: the tree token
    (default: a new one). ``marker``: write the spawn marker in ``run_dir`` with these
    fields besides the engine's own (see ``_marker``), before the spawn, then add the
    child's PID.

    ``limits``: a :class:`~cc_executor._engine._cgroup.Limits`; those needing a cgroup get
    one of the run's own, which the child joins before it execs (through the cgroup
    module's gate); SpawnError saying why when they cannot be enforced here.

    The tree is registered with the watchdog *before* the spawn (see ``_watchdog``): from
    the moment the child exists, a SIGKILL of this process takes its whole tree with it.

    In a single-threaded process (a console command before it starts anything) the child
    is started with ``os.posix_spawn``, the fastest way, and the working directory is
    changed around the call because ``posix_spawn`` has no ``cwd``; with other threads
    running, that change would be seen by them, so the same child is started with
    ``subprocess``'s fork and exec, which sets the cwd in the child. Raises
    :class:`SpawnError` with the reason when the child cannot be started.
    """
    cwd = os.path.abspath(cwd)
    check_cwd(cwd)
    full_env = dict(os.environ if env is None else env)
    if extra_env:
        full_env.update(extra_env)
    executable = resolve_executable(argv[0], cwd=cwd, env=full_env)
    token = token or _tree.new_tree_token()
    full_env[_tree.TREE_ENV] = _tree.child_tree_env(full_env.get(_tree.TREE_ENV), token)
    full = [executable, *argv[1:]]
    cgroup: Any = None
    gate: list[int] = []  # the gate's pipe while it is open (see _cgroup.GATE)
    stdout_path = os.path.join(run_dir, "stdout.log")
    mine: dict[str, int] = {}
    theirs: list[int] = []
    pid = -1
    child: LaunchedChild | Any = None
    marked = False
    registered = False
    watchdog().ensure()  # before the child's descriptors exist: a fork would copy them
    try:
        if marker is not None:
            marked = _marker.write(
                run_dir,
                run_id,
                argv=argv,
                cwd=cwd,
                token=token,
                started_at=time.time(),
                fields=marker,
            )
        # After the marker: a supervisor killed from here on leaves a row whose recovery
        # removes the cgroup too.
        if limits is not None and limits.cgroup_limits:
            from cc_executor._engine import _cgroup

            problem = _cgroup.support().missing(limits)
            if problem is not None:
                raise SpawnError(problem)
            try:
                cgroup = _cgroup.RunCgroup.create(run_id, limits)
            except OSError as exc:
                raise SpawnError(
                    f"cannot make the run's cgroup for {', '.join(limits.cgroup_limits)}: "
                    f"{exc.strerror or exc}"
                ) from None
            import sys

            gate.extend(os.pipe())
            os.set_inheritable(gate[0], True)
            full = [sys.executable, "-I", "-S", "-c", _cgroup.GATE, str(gate[0]), *full]
        if parent_death_signal:
            full = wrap_with_parent_death_signal(full, full[0])
        source = stdin_path if stdin is None else stdin
        if source is None or source == DEVNULL:
            theirs.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        elif source == PIPE:
            read_end, mine["stdin"] = os.pipe()
            theirs.append(read_end)
        elif isinstance(source, int):
            theirs.append(os.dup(source))
        else:
            theirs.append(stdin_file(source))
        if stdout_to_file:
            theirs.append(os.open(stdout_path, _OUTPUT_FLAGS, 0o600))
            mine["stdout"] = os.open(stdout_path, _READ_FLAGS)
        else:
            mine["stdout"], out_write = os.pipe()
            theirs.append(out_write)
        mine["stderr"], err_write = os.pipe()
        theirs.append(err_write)
        set_pipe_size(mine["stderr"])
        watchdog().register(token, None, None, pipe=os.fstat(err_write).st_ino)
        registered = True
        t0 = time.monotonic()
        started_at = time.time()
        keep = tuple(gate[:1])
        if single_threaded():
            pid = _posix_spawn(full, full_env, cwd, theirs, keep)
            child = LaunchedChild(pid)
        else:
            child = _fork_exec(full, full_env, cwd, theirs, keep)
            pid = child.pid
        if gate:
            # In its cgroup before it runs anything of its own: then let it exec.
            os.close(gate.pop(0))
            cgroup.add(pid)
            os.write(gate[0], b"g")
            os.close(gate.pop())
        ticks = _tree.start_ticks(pid, zombie=True)  # not reaped yet: its PID is ours
        watchdog().register(token, pid, ticks)
        watchdog().release()  # the CLI is started: the watchdog's own start may follow
        if marked:
            _marker.add_child(run_dir, pid, ticks)
        try:
            mine["pidfd"] = os.pidfd_open(pid)
        except (AttributeError, OSError):
            mine.pop("pidfd", None)  # the supervisor then waits for the exit in a thread
    except BaseException as exc:
        for fd in mine.values():
            os.close(fd)
        if pid > 0:  # started, but what follows failed (or a signal came): no orphan
            _tree.kill_tree([token], sid=pid, pgid=pid)
            _wait_gone(child if child is not None else LaunchedChild(pid))
        if registered:
            watchdog().unregister(token)
        if marked:
            _marker.clear(run_id, run_dir)  # nothing ran: the caller records the failure
        for fd in gate:
            os.close(fd)
        if cgroup is not None:
            cgroup.remove()
        if isinstance(exc, OSError):
            raise SpawnError(
                f"cannot start {argv[0]}: {exc.strerror or exc}"
                + (f" ({exc.filename})" if exc.filename else "")
            ) from None
        raise
    finally:
        for fd in theirs:
            os.close(fd)
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
        cgroup=cgroup,
    )


def _posix_spawn(
    full: list[str], env: dict[str, str], cwd: str, theirs: list[int], keep: tuple[int, ...] = ()
) -> int:
    """``posix_spawn`` with ``theirs`` as descriptors 0, 1, 2, in ``cwd`` (changed around
    the call: for a single-threaded process only)."""
    actions: list[tuple[int, ...]] = [
        (os.POSIX_SPAWN_DUP2, fd, target) for target, fd in enumerate(theirs)
    ]
    # posix_spawn has no close_fds: close what we inherited as inheritable (a make
    # jobserver, a caller's pipe), as subprocess's close_fds=True does; ours are all
    # close-on-exec already.
    actions += [(os.POSIX_SPAWN_CLOSE, fd) for fd in inherited_fds() if fd not in keep]
    # O_PATH: coming back needs no read permission on our own working directory.
    here = os.open(".", getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.chdir(cwd)
        return os.posix_spawn(
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
        os.close(here)


def _fork_exec(
    full: list[str], env: dict[str, str], cwd: str, theirs: list[int], keep: tuple[int, ...] = ()
) -> Any:
    """The same start with ``subprocess`` (fork and exec, cwd set in the child): safe with
    other threads running. The ``Popen`` object is the child handle (its ``poll``)."""
    import subprocess

    return subprocess.Popen(
        full,
        stdin=theirs[0],
        stdout=theirs[1],
        stderr=theirs[2],
        cwd=cwd,
        env=env,
        start_new_session=True,
        close_fds=True,
        pass_fds=keep,
        restore_signals=True,
    )
