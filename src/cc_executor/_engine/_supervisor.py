"""The supervisor: one child process, fed, drained, bounded in time, and cleaned up.

Lifecycle of a :class:`SupervisedProcess`:

1. ``start()`` checks the program, cwd and stdin, creates the run directory and output
   files, and spawns the child in a session of its own with a tree token in its
   environment and a parent-death signal, all in one of the engine's spawn threads (so
   that many starts at once do not stall the event loop). Any failure up to here ends
   the run as ``spawn_failed`` with a specific ``error``; nothing is raised.
2. Both pipes are read from the event loop as soon as the child exists, whatever anyone
   else is doing, into the output files; a pidfd says when the child exits.
3. The run ends when the child exits (then leftover descendants are terminated), or when a
   timeout or the caller stops it (then the whole tree gets SIGTERM, a grace period, and
   SIGKILL). Either way the pipes are drained to EOF, so every byte the tree wrote is kept.
4. The child is reaped only after the tree is cleaned up: until then its PID, and so its
   process group id, cannot be reused, which makes ``killpg`` safe.

Cancellation: if the task awaiting ``wait()``/``run_process()`` is cancelled, the tree is
terminated (with the grace period) and then the cancellation propagates. If the event loop
itself tears the supervisor down, the tree is SIGKILLed at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import signal
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

from cc_executor._engine import _tree
from cc_executor._engine._capture import StreamCapture
from cc_executor._engine._cgroup import Limits, RunCgroup
from cc_executor._engine._events import EventQueue, LineFramer, QuietLines, record_blocks
from cc_executor._engine._launch import DEVNULL, PIPE, Launched, LaunchedChild, launch
from cc_executor._engine._spawn import (
    SpawnError,
    check_cwd,
    resolve_executable,
    set_pipe_size,
    stdin_file,
)
from cc_executor._engine._types import (
    LifecycleEvent,
    LifecycleKind,
    OutputEvent,
    ProcessEvent,
    ProcessResult,
    ProcessStatus,
    StdinSource,
    Stream,
    TimeoutKind,
)
from cc_executor._engine._watchdog import watchdog
from cc_executor._ids import new_run_id
from cc_executor._paths import make_run_dir, runs_dir

DEFAULT_GRACE = 5.0
DEFAULT_MEMORY_BUDGET = 8 * 1024 * 1024
DEFAULT_QUEUE_BUDGET = 16 * 1024 * 1024
DEFAULT_MAX_LINE_MEMORY = 64 * 1024 * 1024
DEFAULT_TAIL_BYTES = 8192
DEFAULT_DRAIN_TIMEOUT = 2.0

#: Polling of a stdout file: soon again after output, backing off to the maximum when idle
#: (at once while a flood is still unread; the child's exit triggers a final read at once).
#: 5 ms rather than 1 ms: a wake-up per millisecond while the CLI streams competed with it
#: for the CPU (paired runs, 2 MB answer: -8 ms median overhead), and no reader of
#: progress notices 5 ms.
_TAIL_MIN_DELAY = 0.005
_TAIL_MAX_DELAY = 0.05
_SMALL_READ = 64 * 1024
_LARGE_READ = 1024 * 1024
_STREAMS: tuple[Stream, Stream] = ("stdout", "stderr")
#: Looking at the cgroup's counters (or sampling /proc): soon after the start, then backing
#: off; the kernel enforces the limits itself, this only notices it and measures.
_LIMIT_FIRST_DELAY = 0.02
_LIMIT_MAX_DELAY = 0.5
_HAVE_PIDFD = hasattr(os, "pidfd_open")

T = TypeVar("T")


#: Threads that start children (see ``SupervisedProcess._spawn_off_loop``). Never shut down
#: before the interpreter exits: a child's parent-death signal fires when the thread that
#: started it ends, so the threads must live as long as the children may.
_SPAWN_THREADS = 2
_spawn_pool: ThreadPoolExecutor | None = None
_spawn_pool_lock = threading.Lock()


def _spawner() -> ThreadPoolExecutor:
    global _spawn_pool  # noqa: PLW0603 - one pool per process by design
    with _spawn_pool_lock:
        if _spawn_pool is None:
            _spawn_pool = ThreadPoolExecutor(_SPAWN_THREADS, thread_name_prefix="cc-spawn")
        return _spawn_pool


def _forget_spawner_after_fork() -> None:
    # A forked copy has none of the pool's threads, but the pool would believe it has idle
    # ones and queue its spawns for nobody: the copy makes a pool of its own.
    global _spawn_pool, _spawn_pool_lock  # noqa: PLW0603
    _spawn_pool = None
    _spawn_pool_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_spawner_after_fork)


def _abandon_unadopted(future: Future[Launched]) -> None:
    """A spawn whose caller was cancelled meanwhile: kill the child nobody will supervise."""
    if future.cancelled() or future.exception() is not None:
        return
    launched = future.result()
    launched.abandon()
    watchdog().unregister(launched.token)


def _signal_name(returncode: int) -> str:
    try:
        return signal.Signals(-returncode).name
    except ValueError:
        return f"SIG{-returncode}"


class SupervisedProcess:
    """One supervised child process and its whole descendant tree.

    Create it through :func:`open_process` or :func:`run_process`; see those for the
    options. Methods are for the event loop thread that started it.
    """

    def __init__(
        self,
        argv: Sequence[str | os.PathLike[str]],
        *,
        stdin: StdinSource = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        extra_env: Mapping[str, str] | None = None,
        timeout: float | None = None,
        idle_timeout: float | None = None,
        first_output_timeout: float | None = None,
        grace: float = DEFAULT_GRACE,
        run_id: str | None = None,
        run_dir: str | os.PathLike[str] | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        queue_budget: int = DEFAULT_QUEUE_BUDGET,
        max_line_memory: int = DEFAULT_MAX_LINE_MEMORY,
        tail_bytes: int = DEFAULT_TAIL_BYTES,
        parent_death_signal: bool = True,
        kill_descendants: bool = True,
        drain_timeout: float = DEFAULT_DRAIN_TIMEOUT,
        events: bool = True,
        stdout_to_file: bool = False,
        launched: Launched | None = None,
        marker: Mapping[str, str] | None = None,
        quiet_line: Callable[[bytes], bool] | None = None,
        limits: Limits | None = None,
    ) -> None:
        if launched is not None:
            # A child the console started before the event loop existed: take it over.
            if stdin is not None or not stdout_to_file:
                raise ValueError("a launched child has its stdin and stdout already")
            argv, cwd, run_id, run_dir = (
                launched.argv,
                launched.cwd,
                launched.run_id,
                launched.run_dir,
            )
        if isinstance(argv, (str, bytes)):
            raise TypeError("argv must be a list of arguments, not a string (no shell is used)")
        self.argv = [os.fspath(a) for a in argv]
        if not self.argv:
            raise ValueError("argv is empty: nothing to run")
        for name, value in (
            ("timeout", timeout),
            ("idle_timeout", idle_timeout),
            ("first_output_timeout", first_output_timeout),
        ):
            if value is not None and not value > 0:  # "not >": NaN is refused too
                raise ValueError(f"{name} must be positive, got {value}")
        if not grace >= 0:
            raise ValueError(f"grace must be >= 0, got {grace}")
        self.run_id = run_id or new_run_id()
        self.cwd = os.path.abspath(os.fspath(cwd)) if cwd is not None else os.getcwd()
        self._stdin_source = stdin
        self._env = dict(os.environ if env is None else env)
        if extra_env:
            self._env.update(extra_env)
        self._timeout = timeout
        self._idle_timeout = idle_timeout
        #: Holds on the idle and first-output clocks (see hold_quiet_clocks).
        self._holds = 0
        self._held_since = 0.0
        self._held_total = 0.0
        self._first_output_timeout = first_output_timeout
        self._grace = grace
        self._run_dir_option = run_dir
        self._memory_budget = memory_budget
        self._max_line_memory = max_line_memory
        self._tail_bytes = tail_bytes
        self._pdeathsig = parent_death_signal
        self._kill_descendants = kill_descendants
        self._drain_timeout = drain_timeout
        self._stdout_to_file = stdout_to_file
        self._tail_timer: asyncio.TimerHandle | None = None
        self._tail_delay = _TAIL_MIN_DELAY
        self._queue = EventQueue(memory_budget=queue_budget) if events else None
        self._events_taken = False
        #: Judges stdout for the idle and first-output timers (None: every byte counts).
        self._quiet = QuietLines(quiet_line) if quiet_line is not None else None
        if limits and launched is not None and limits.cgroup_limits and launched.cgroup is None:
            raise ValueError("a launched child without its cgroup cannot take limits")
        self._limits = limits if limits else None
        self._cgroup: RunCgroup | None = None
        #: Why a limit stopped the run (the error of the result), once one did.
        self._limit_error: str | None = None
        self._limit_hit = ProcessStatus.LIMIT_EXCEEDED  # or OOM_KILLED, with the error
        self._limit_timer: asyncio.TimerHandle | None = None
        self._limit_delay = _LIMIT_FIRST_DELAY
        self._peak_memory = 0
        self._output_dropped = 0
        self._cpu_time = 0.0

        self._launched = launched
        #: The fields of the spawn marker written before the spawn (see ``_marker``);
        #: None writes none. May be set until :meth:`start`.
        self.marker = marker
        self._token = launched.token if launched is not None else _tree.new_tree_token()
        self._popen: subprocess.Popen[bytes] | LaunchedChild | None = None
        self._pidfd: int | None = None
        self._sid: int | None = None
        self._start_ticks: int | None = None
        self._run_dir: str | None = None
        self._captures: dict[Stream, StreamCapture] = {}
        self._fds: dict[Stream, int] = {}
        self._bufs: dict[Stream, bytearray] = {}
        self._eof: dict[Stream, asyncio.Future[None]] = {}
        self._warnings: list[str] = []
        self._result: ProcessResult | None = None
        self._main: asyncio.Task[ProcessResult] | None = None
        self._registered = False
        #: Done once start() has spawned and adopted the child, or given up; a pause or a
        #: stop asked for meanwhile waits in the two fields below and is done right after.
        self._starting: asyncio.Future[None] | None = None
        self._pause_pending = False
        self._stop_pending: tuple[ProcessStatus, TimeoutKind | None, float | None] | None = None

        self._stdin_fd: int | None = None
        self._stdin_view: memoryview | None = None
        self._stdin_written = 0

        self._t0 = 0.0
        self._started_at = 0.0
        self._last_activity = 0.0
        self._seen_output = False
        self._paused_at: float | None = None
        self._paused_total = 0.0
        self._timer: asyncio.TimerHandle | None = None
        self._stop_reason: tuple[ProcessStatus, TimeoutKind | None, float | None] | None = None
        self._kill_signal: str | None = None
        self._descendants_killed = 0
        #: Descendants found only by parent PID (PID: start time): signalled until gone.
        self._descendants: dict[int, int] = {}

    # ----------------------------------------------------------------- public surface

    @property
    def pid(self) -> int | None:
        """The child's PID (None if it never started)."""
        return self._popen.pid if self._popen is not None else None

    @property
    def start_ticks(self) -> int | None:
        """The child's start time (clock ticks since boot), read right after the spawn: with
        the PID it identifies the process for crash recovery."""
        return self._start_ticks

    @property
    def run_dir(self) -> str | None:
        """The folder holding ``stdout.log`` and ``stderr.log``."""
        return self._run_dir

    @property
    def tree_token(self) -> str:
        """The token in ``CC_EXECUTOR_TREE`` of every process of this tree."""
        return self._token

    @property
    def result(self) -> ProcessResult | None:
        """The result once the run is over, else None."""
        return self._result

    @property
    def paused(self) -> bool:
        """True while the tree is stopped by :meth:`pause` (or will be, once started)."""
        return self._paused_at is not None or self._pause_pending

    @property
    def _being_started(self) -> bool:
        return self._main is None and self._starting is not None and not self._starting.done()

    @property
    def running(self) -> bool:
        """True from a successful spawn until the child has exited."""
        return self._main is not None and not self._exit.done()

    async def start(self) -> None:
        """Spawn the child (in a spawn thread) and start supervising it. Never raises for
        spawn problems: the run then ends at once with status ``spawn_failed``. Cancelled
        meanwhile, it kills the child the spawn thread goes on to start, and raises."""
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._t0 = loop.time()
        self._started_at = time.time()
        self._last_activity = self._t0
        self._exit: asyncio.Future[None] = loop.create_future()
        self._stop: asyncio.Future[None] = loop.create_future()
        self._starting = loop.create_future()
        try:
            launched = self._launched
            if launched is None:
                launched = await self._spawn_off_loop()
            # The clocks count from the real spawn, not from the adoption.
            self._t0 = loop.time() - (time.monotonic() - launched.t0)
            self._started_at = launched.started_at
            self._last_activity = self._t0
            self._adopt(launched)
        except SpawnError as exc:
            self._close_fds()
            self._finish(ProcessStatus.SPAWN_FAILED, error=str(exc))
            return
        except asyncio.CancelledError:
            self._close_fds()
            self._finish(ProcessStatus.CANCELLED, error="cancelled while it was being started")
            raise
        finally:
            self._starting.set_result(None)
        self._emit("started", pid=self.pid, run_dir=self._run_dir)
        self._main = loop.create_task(self._supervise(), name=f"supervise-{self.run_id}")
        self._limit_timer = loop.call_later(_LIMIT_FIRST_DELAY, self._check_limits)
        if self._stdout_to_file:
            # Written before the adoption (the console's early start, or while the loop was
            # busy after the spawn thread returned): read now, before the timers judge.
            self._catch_up()
        self._arm_timer()
        if self._stop_pending is not None:
            self._request_stop(*self._stop_pending)
        elif self._pause_pending:
            self._pause_pending = False
            self.pause()

    async def wait(self) -> ProcessResult:
        """Wait for the end of the run and return its result.

        If the awaiting task is cancelled, the tree is terminated (SIGTERM, grace, SIGKILL)
        before the cancellation propagates; the result then says ``cancelled``.
        """
        if self._result is not None:
            return self._result
        if self._being_started:
            assert self._starting is not None
            await asyncio.shield(self._starting)
            if self.result is not None:  # it never started, or spawn failed
                return self.result
        assert self._main is not None, "start() was not called"
        try:
            return await asyncio.shield(self._main)
        except asyncio.CancelledError:
            await self.aclose()
            raise

    async def cancel(self) -> ProcessResult:
        """Stop the run (SIGTERM to the tree, grace, SIGKILL) and return its result, with
        status ``cancelled`` unless it had already ended."""
        self._request_stop(ProcessStatus.CANCELLED, None, None)
        return await self.wait()

    async def aclose(self) -> None:
        """Make sure nothing is left running: stop the run if it is still going and wait for
        the cleanup. If cancelled while waiting out the grace period, SIGKILL at once."""
        if self._being_started:
            assert self._starting is not None
            self._request_stop(ProcessStatus.CANCELLED, None, None)
            await asyncio.shield(self._starting)
        if self._main is None or self._main.done():
            return
        self._request_stop(ProcessStatus.CANCELLED, None, None)
        try:
            await asyncio.shield(self._main)
        except asyncio.CancelledError:
            self._hard_kill()
            raise

    def pause(self) -> bool:
        """SIGSTOP the whole tree; False if not running or already paused. Timeouts do not
        count paused time, and the idle clock restarts on :meth:`resume`."""
        if self._being_started and not self._pause_pending:
            self._pause_pending = True
            return True
        if not self.running or self.paused:
            return False
        self._signal_tree(signal.SIGSTOP)
        self._paused_at = self._loop.time()
        if self._timer is not None:
            self._timer.cancel()
        self._emit("paused")
        return True

    def hold_quiet_clocks(self) -> None:
        """Stop the idle and first-output clocks (not the total timeout) until as many
        :meth:`release_quiet_clocks` calls: the child is waiting on its supervisor (a
        permission decision), not stuck."""
        if self._holds == 0:
            self._held_since = self._loop.time()
        self._holds += 1
        self._arm_timer()

    def release_quiet_clocks(self) -> None:
        """Undo one :meth:`hold_quiet_clocks`; the last one restarts both clocks from now."""
        if self._holds == 0:
            return
        self._holds -= 1
        if self._holds == 0:
            now = self._loop.time()
            self._held_total += now - self._held_since
            self._last_activity = max(self._last_activity, now)
            self._arm_timer()

    def resume(self) -> bool:
        """SIGCONT the whole tree; False if it was not paused."""
        if self._pause_pending:
            self._pause_pending = False
            return True
        if self._paused_at is None:
            return False
        self._signal_tree(signal.SIGCONT)
        now = self._loop.time()
        self._paused_total += now - self._paused_at
        self._paused_at = None
        self._last_activity = now
        self._emit("resumed")
        self._arm_timer()
        return True

    async def events(
        self, *, lines: bool = True, chunks: bool = False, lifecycle: bool = True
    ) -> AsyncIterator[ProcessEvent]:
        """Iterate over the run's events, from the very first byte, ending after ``exited``.

        ``lines``: stdout/stderr framed into lines; ``chunks``: the raw reads; ``lifecycle``:
        started/paused/resumed/timeout/terminating/killing/exited. One iteration per
        process. A slow consumer never slows the draining: what it has not taken yet waits
        in a bounded queue and, past its budget, in the output files.
        """
        if self._queue is None:
            raise RuntimeError("events were not enabled for this process (events=False)")
        if self._events_taken:
            raise RuntimeError("events() can be iterated only once per process")
        self._events_taken = True
        queue = self._queue
        framers = {
            s: LineFramer(s, self._captures[s], self._max_line_memory)
            for s in _STREAMS
            if s in self._captures
        }
        while True:
            item = await queue.get()
            if item is None:
                return
            if isinstance(item, LifecycleEvent):
                if item.kind == "exited" and lines:
                    for framer in framers.values():
                        last = framer.finish(item.t)
                        if last is not None:
                            yield last
                if lifecycle:
                    yield item
                continue
            capture = self._captures[item.stream]
            for offset, block in record_blocks(item, capture):
                if chunks:
                    yield OutputEvent(item.stream, "chunk", offset, len(block), item.t, True, block)
                if lines:
                    for event in framers[item.stream].feed(block, offset, item.t):
                        yield event

    # ----------------------------------------------------------------- spawning

    async def _spawn_off_loop(self) -> Launched:
        """:meth:`_spawn` in the engine's spawn thread: a fork and exec, the checks, the run
        folder and (the first time) the watchdog's own start take milliseconds each, and
        many runs starting at once would otherwise stall the caller's event loop for all
        of them together. Cancelled while it runs, the child it starts is killed."""
        try:
            future = _spawner().submit(self._spawn)
        except RuntimeError as exc:  # the interpreter is shutting down
            raise SpawnError(f"cannot start {self.argv[0]}: {exc}") from None
        try:
            return await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            future.add_done_callback(_abandon_unadopted)
            raise

    def _spawn(self) -> Launched:
        """Start the child with :func:`~cc_executor._engine._launch.launch` (the one spawn
        path) and protect it with the watchdog; runs in the spawn thread. The cwd and the
        executable are checked before the run folder is made, so that a run that cannot
        start leaves no folder behind."""
        check_cwd(self.cwd)
        resolve_executable(self.argv[0], cwd=self.cwd, env=self._env)
        stdin = self._prepare_stdin()
        try:
            self._make_run_dir()
            assert self._run_dir is not None
            launched = launch(
                self.argv,
                cwd=self.cwd,
                run_id=self.run_id,
                run_dir=self._run_dir,
                stdin=stdin,
                stdout_to_file=self._stdout_to_file,
                env=self._env,
                parent_death_signal=self._pdeathsig,
                token=self._token,
                marker=self.marker,
                limits=self._limits,
            )
        finally:
            if stdin >= 0:
                os.close(stdin)
        watchdog().register(launched.token, launched.pid, launched.start_ticks)
        self._registered = True
        return launched

    def _adopt(self, launched: Launched) -> None:
        """Take over a child started by :func:`~cc_executor._engine._launch.launch`."""
        self._run_dir = launched.run_dir
        path = launched.stdout_path
        try:
            if self._stdout_to_file:
                self._captures["stdout"] = StreamCapture(
                    path,
                    memory_budget=self._memory_budget,
                    tail_bytes=0,
                    child_writes=True,
                    create=False,
                )
            else:
                self._captures["stdout"] = StreamCapture(
                    path, memory_budget=self._memory_budget, tail_bytes=0
                )
            path = os.path.join(launched.run_dir, "stderr.log")
            self._captures["stderr"] = StreamCapture(
                path, memory_budget=self._memory_budget, tail_bytes=self._tail_bytes
            )
        except OSError as exc:
            launched.abandon()
            if self._registered:
                watchdog().unregister(self._token)
                self._registered = False
            raise SpawnError(f"cannot create output file {path}: {exc.strerror}") from None
        launched.adopted = True
        self._cgroup = launched.cgroup
        self._popen = launched.child
        self._sid = launched.pid
        self._start_ticks = launched.start_ticks
        self._pidfd = launched.take("pidfd")
        for stream in _STREAMS:
            fd = launched.take(stream)
            assert fd is not None
            self._fds[stream] = fd
        self._stdin_fd = launched.take("stdin")
        self._attach()

    def _catch_up(self) -> None:
        """An adopted child may have written before we were here: read its output file
        now, before the timers judge it idle or silent (output found counts as activity at
        the adoption; when exactly it was written is not known)."""
        if self._tail_timer is not None:
            self._tail_timer.cancel()
            self._tail_timer = None
        self._tail("stdout")

    def _attach(self) -> None:
        """Supervise the started child: register it, watch its exit, read its output (and
        feed its stdin) from the event loop."""
        assert self._popen is not None
        assert self._sid is not None
        if not self._registered:  # a child the console launched: registered here
            watchdog().register(self._token, self._sid, self._start_ticks)
            self._registered = True
        self._watch_exit()
        for stream in _STREAMS:
            fd = self._fds[stream]
            self._eof[stream] = self._loop.create_future()
            if self._captures[stream].child_writes:  # a file the child writes: read it back
                self._captures[stream].close()  # only the child's tree holds it open now
                self._bufs[stream] = bytearray(_LARGE_READ)
                self._tail_timer = self._loop.call_later(_TAIL_MIN_DELAY, self._tail, stream)
                continue
            os.set_blocking(fd, False)
            set_pipe_size(fd)
            self._bufs[stream] = bytearray(_SMALL_READ)
            self._loop.add_reader(fd, self._on_readable, stream)
        if self._stdin_fd is not None:
            os.set_blocking(self._stdin_fd, False)
            set_pipe_size(self._stdin_fd)
            self._loop.add_writer(self._stdin_fd, self._on_writable)

    def _prepare_stdin(self) -> int:
        """The child's stdin for :func:`launch`: :data:`PIPE` (the data is written from the
        event loop), :data:`DEVNULL`, or a descriptor this process closes after the spawn."""
        source = self._stdin_source
        if source is None:
            return DEVNULL
        if isinstance(source, (bytes, bytearray, memoryview, str)):
            data = source.encode("utf-8") if isinstance(source, str) else bytes(source)
            if not data:
                return DEVNULL
            self._stdin_view = memoryview(data)
            return PIPE
        if isinstance(source, (Path, os.PathLike)):
            return stdin_file(source)
        try:
            fd = source.fileno()
        except (AttributeError, OSError, ValueError) as exc:
            raise SpawnError(f"stdin object has no usable file descriptor: {exc}") from None
        return os.dup(fd)

    def _make_run_dir(self) -> None:
        option = self._run_dir_option
        target = os.fspath(option) if option is not None else str(runs_dir() / self.run_id)
        try:
            self._run_dir, warning = make_run_dir(target, self.run_id, explicit=option is not None)
        except OSError as exc:
            raise SpawnError(exc.strerror or str(exc)) from None
        if warning:
            self._warnings.append(warning)

    def _watch_exit(self) -> None:
        assert self._popen is not None
        pid = self._popen.pid
        if _HAVE_PIDFD and self._pidfd is None:
            try:
                self._pidfd = os.pidfd_open(pid)
            except OSError:
                self._pidfd = None
        if self._pidfd is not None:
            self._loop.add_reader(self._pidfd, self._on_exit_ready)
            return

        # No pidfd (old kernel, other OS): a thread waits without reaping.
        def waiter() -> None:
            with contextlib.suppress(ChildProcessError):
                os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)
            self._loop.call_soon_threadsafe(self._set_exited)

        threading.Thread(target=waiter, name=f"wait-{pid}", daemon=True).start()

    def _on_exit_ready(self) -> None:
        assert self._pidfd is not None
        self._loop.remove_reader(self._pidfd)
        self._set_exited()

    def _set_exited(self) -> None:
        if not self._exit.done():
            self._exit.set_result(None)
        if self._timer is not None:
            self._timer.cancel()

    # ----------------------------------------------------------------- I/O

    def _tail(self, stream: Stream, final: bool = False) -> None:
        """Read what the child added to its output file. Polled: again after 5 ms while
        output flows, backing off to 50 ms while it is quiet; ``final`` reads to the end."""
        self._tail_timer = None
        fd = self._fds.get(stream)
        if fd is None:
            return
        buf = self._bufs[stream]
        got = 0
        deadline = time.monotonic() + self._drain_timeout
        while final or got < 8 * _LARGE_READ:  # stay responsive during a flood
            try:
                n = os.readv(fd, [buf])
            except OSError as exc:
                self._warnings.append(f"cannot read {stream} back: {exc.strerror or exc}")
                self._close_stream(stream)
                return
            if n == 0:
                break
            got += n
            self._ingest(stream, buf, n)
            if final and time.monotonic() > deadline:
                break
        if final:
            # A writer outside the tree (or kill_descendants=False) may still be at it.
            with contextlib.suppress(OSError):
                extra = os.fstat(fd).st_size - self._captures[stream].size
                if extra > 0 and self._output_dropped:
                    os.truncate(self._captures[stream].path, self._captures[stream].size)
                elif extra > 0:
                    self._warnings.append(
                        f"{stream}: {extra} bytes written to {self._captures[stream].path} "
                        "after the end are not counted in the result"
                    )
            self._close_stream(stream)
            return
        self._tail_delay = _TAIL_MIN_DELAY if got else min(self._tail_delay * 2, _TAIL_MAX_DELAY)
        flood = got >= 8 * _LARGE_READ  # more is likely waiting: read on at once
        self._tail_timer = self._loop.call_later(
            0.0 if flood else self._tail_delay, self._tail, stream
        )

    def _on_readable(self, stream: Stream) -> None:
        fd = self._fds[stream]
        buf = self._bufs[stream]
        try:
            n = os.readv(fd, [buf])
        except BlockingIOError:
            return
        except OSError:
            n = 0
        if n == 0:
            self._close_stream(stream)
            return
        self._ingest(stream, buf, n)
        if n == len(buf) and n < _LARGE_READ:
            self._bufs[stream] = bytearray(_LARGE_READ)

    def _ingest(self, stream: Stream, buf: bytearray, n: int) -> None:
        now = self._loop.time()
        capture = self._captures[stream]
        if self._limits is not None and self._limits.max_output_bytes is not None:
            n = self._within_output_limit(self._limits.max_output_bytes, n)
            if n == 0:
                return
        with memoryview(buf)[:n] as view:
            capture.feed(view)
            if self._queue is not None:
                self._queue.push_output(stream, capture.size - n, view, now)
        if self._quiet is not None and stream == "stdout" and not self._quiet.progress(buf, n):
            return  # only quiet lines: the child is waiting, not working
        self._last_activity = now
        self._seen_output = True

    def _close_stream(self, stream: Stream) -> None:
        fd = self._fds.pop(stream, None)
        if fd is not None:
            if self._stdout_to_file and stream == "stdout":
                if self._tail_timer is not None:
                    self._tail_timer.cancel()
                    self._tail_timer = None
            else:
                self._loop.remove_reader(fd)
            os.close(fd)
        self._bufs.pop(stream, None)
        future = self._eof.get(stream)
        if future is not None and not future.done():
            future.set_result(None)

    def _on_writable(self) -> None:
        assert self._stdin_fd is not None
        assert self._stdin_view is not None
        try:
            n = os.write(self._stdin_fd, self._stdin_view[self._stdin_written :][:_LARGE_READ])
        except BlockingIOError:
            return
        except OSError as exc:
            total = len(self._stdin_view)
            if self._stdin_written < total:
                self._warnings.append(
                    f"stdin: the child stopped reading after {self._stdin_written} of "
                    f"{total} bytes ({exc.strerror})"
                )
            self._close_stdin()
            return
        self._stdin_written += n
        if self._stdin_written >= len(self._stdin_view):
            self._close_stdin()

    def _close_stdin(self) -> None:
        if self._stdin_fd is not None:
            self._loop.remove_writer(self._stdin_fd)
            os.close(self._stdin_fd)
            self._stdin_fd = None
        self._stdin_view = None

    def _close_fds(self) -> None:
        for stream in list(self._fds):
            self._close_stream(stream)
        self._close_stdin()
        if self._pidfd is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(self._pidfd)
            os.close(self._pidfd)
            self._pidfd = None
        for capture in self._captures.values():
            capture.close()

    # ----------------------------------------------------------------- time bounds

    def _deadline(self) -> tuple[float, ProcessStatus, TimeoutKind, float] | None:
        best: tuple[float, ProcessStatus, TimeoutKind, float] | None = None
        start = self._t0 + self._paused_total
        candidates: list[tuple[float, ProcessStatus, TimeoutKind, float]] = []
        if self._timeout is not None:
            candidates.append(
                (start + self._timeout, ProcessStatus.TIMEOUT, "total", self._timeout)
            )
        held = self._holds > 0
        if self._first_output_timeout is not None and not self._seen_output and not held:
            candidates.append(
                (
                    start + self._held_total + self._first_output_timeout,
                    ProcessStatus.IDLE_TIMEOUT,
                    "first_output",
                    self._first_output_timeout,
                )
            )
        if self._idle_timeout is not None and not held:
            candidates.append(
                (
                    self._last_activity + self._idle_timeout,
                    ProcessStatus.IDLE_TIMEOUT,
                    "idle",
                    self._idle_timeout,
                )
            )
        for candidate in candidates:
            if best is None or candidate[0] < best[0]:
                best = candidate
        return best

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self._deadline()
        if deadline is not None and not self.paused and not self._exit.done():
            self._timer = self._loop.call_at(deadline[0], self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        deadline = self._deadline()
        if deadline is None or self.paused or self._exit.done():
            return
        when, status, kind, after = deadline
        if self._loop.time() + 0.001 < when:
            # Output arrived since the timer was armed: the idle deadline moved on.
            self._arm_timer()
            return
        self._emit("timeout", kind=kind, after=after)
        self._request_stop(status, kind, after)

    def _request_stop(
        self, status: ProcessStatus, kind: TimeoutKind | None, after: float | None
    ) -> None:
        if self._being_started:
            self._stop_pending = self._stop_pending or (status, kind, after)
            return
        if self._main is None or self._stop.done() or self._exit.done():
            return
        self._stop_reason = (status, kind, after)
        self._stop.set_result(None)

    # ----------------------------------------------------------------- resource limits

    def _within_output_limit(self, limit: int, n: int) -> int:
        """How many of ``n`` new bytes may be kept under ``max_output_bytes``. The first
        read past it stops the tree at once (SIGKILL: a flood would fill the disk during a
        grace period); the bytes beyond the limit are dropped, and a stdout file the child
        wrote itself is cut back to the limit at the end."""
        room = limit - sum(c.size for c in self._captures.values())
        if n <= room:
            return n
        self._output_dropped += n - max(room, 0)
        if self._limit_error is None:
            self._limit_error = f"output limit exceeded: max_output_bytes {limit} ({_size(limit)})"
            self._grace = 0.0
            self._request_stop(ProcessStatus.LIMIT_EXCEEDED, None, None)
        return max(room, 0)

    def _check_limits(self) -> None:
        """Polled while the child runs: stop the tree once the kernel enforced a limit on
        it (an OOM kill, a refused fork), and sample its usage where no cgroup counts it.
        Every 20 ms at first, backing off to 0.5 s: two small file reads with a cgroup."""
        self._limit_timer = None
        if self._exit.done() or self._stop.done():
            return
        self._limit_breach()
        if self._limit_error is not None:
            self._request_stop(self._limit_hit, None, None)
            return
        self._sample()
        self._limit_delay = min(self._limit_delay * 2, _LIMIT_MAX_DELAY)
        self._limit_timer = self._loop.call_later(self._limit_delay, self._check_limits)

    def _limit_breach(self) -> None:
        """Set ``_limit_error`` if the kernel enforced a limit on the tree."""
        cgroup, limits = self._cgroup, self._limits
        if cgroup is None or limits is None or self._limit_error is not None:
            return
        kills = cgroup.oom_kills()
        if kills and limits.memory_max is not None:
            peak = cgroup.peak_memory()
            self._limit_hit = ProcessStatus.OOM_KILLED
            self._limit_error = (
                f"memory limit exceeded: memory_max {_size(limits.memory_max)}; the kernel "
                f"killed {kills} process(es) of the tree (peak {_size(peak)})"
            )
            return
        refused = cgroup.pids_refused()
        if refused and limits.pids_max is not None:
            peak = cgroup.pids_peak()
            self._limit_error = (
                f"process limit reached: pids_max {limits.pids_max}; {refused} fork(s) "
                f"refused (peak {peak} processes)"
            )

    def _sample(self) -> None:
        if self._cgroup is not None:
            self._cgroup.sample_memory()
            return
        if self._sid is None:
            return
        usage = _tree.tree_usage(self._sid)
        if usage is not None:
            self._peak_memory = max(self._peak_memory, usage[0])
            self._cpu_time = max(self._cpu_time, usage[1])

    def _usage(self) -> tuple[int | None, float | None, float | None, str | None]:
        """Peak memory, CPU time, CPU throttled time, and where they come from."""
        cgroup = self._cgroup
        if cgroup is not None:
            return (
                cgroup.peak_memory(),
                cgroup.cpu_time(),
                cgroup.cpu_throttled(),
                f"cgroup v{cgroup.version}",
            )
        if self._sid is None:
            return None, None, None, None
        return self._peak_memory or None, self._cpu_time or None, None, "sampled"

    def _remove_cgroup(self) -> None:
        if self._cgroup is not None and not self._cgroup.remove():
            self._warnings.append(
                "the run's cgroup could not be removed: "
                + ", ".join(dict.fromkeys(self._cgroup.folders.values()))
            )

    # ----------------------------------------------------------------- tree control

    def _pgid(self) -> int | None:
        # Safe until we reap the child: an unreaped PID (and its group id) cannot be reused.
        return self._sid if self._popen is not None and self._popen.returncode is None else None

    def _signal_tree(self, sig: int) -> int:
        return _tree.signal_tree(
            [self._token], sig, sid=self._sid, pgid=self._pgid(), known=self._descendants, own=True
        )

    def _hard_kill(self) -> None:
        if self._popen is not None and self._popen.returncode is None:
            self._descendants_killed += _tree.kill_tree(
                [self._token], sid=self._sid, pgid=self._pgid(), own=True
            )

    async def _tree_gone(self) -> None:
        await self._exit
        # Other processes' exits give us no event to wait on: poll the (cheap) sweep, soon
        # at first (a terminated leftover is usually gone within a millisecond or two: a
        # fixed 50 ms added that to every run of an agent that leaves one, such as Codex).
        delay = 0.001
        while _tree.find_tree([self._token], self._sid, own=True) or any(
            _tree.start_ticks(pid) == started for pid, started in self._descendants.items()
        ):
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)

    async def _kill_all(self) -> None:
        for _ in range(50):
            if self._signal_tree(signal.SIGKILL) == 0 and self._exit.done():
                return
            await asyncio.sleep(0.005)

    async def _terminate(self) -> None:
        self._emit("terminating", signal="SIGTERM", grace=self._grace)
        self._signal_tree(signal.SIGTERM)
        if self._paused_at is not None:
            # Stopped processes cannot act on SIGTERM until they are continued.
            self._signal_tree(signal.SIGCONT)
            self._paused_at = None
        self._kill_signal = "SIGTERM"
        try:
            await asyncio.wait_for(self._tree_gone(), self._grace)
        except asyncio.TimeoutError:
            self._emit("killing", signal="SIGKILL")
            self._kill_signal = "SIGKILL"
            await self._kill_all()

    async def _cleanup_descendants(self) -> None:
        members = _tree.find_tree([self._token], self._sid, own=True)
        if not members:
            return
        self._descendants_killed = len(members)
        self._warnings.append(
            f"{len(members)} descendant process(es) outlived the child; terminated them"
        )
        self._signal_tree(signal.SIGTERM)
        try:
            await asyncio.wait_for(self._tree_gone(), self._grace)
        except asyncio.TimeoutError:
            await self._kill_all()

    async def _drain(self) -> None:
        if self._stdout_to_file and "stdout" in self._fds:
            # No end of file to wait for: the child's tree is gone, read what it left.
            self._tail("stdout", final=True)
        pending = [f for f in self._eof.values() if not f.done()]
        if not pending:
            return
        _, still = await asyncio.wait(pending, timeout=self._drain_timeout)
        if still:
            held = [s for s, f in self._eof.items() if not f.done()]
            self._warnings.append(
                f"{'/'.join(held)} still held open by a process outside the tree "
                f"{self._drain_timeout:g} s after the end; stopped reading"
            )
            for stream in held:
                self._close_stream(stream)

    # ----------------------------------------------------------------- the run

    async def _supervise(self) -> ProcessResult:
        try:
            await asyncio.wait({self._exit, self._stop}, return_when=asyncio.FIRST_COMPLETED)
            if self._stop_reason is not None:
                await self._terminate()
            elif self._kill_descendants:
                await self._cleanup_descendants()
            if not self._exit.done():
                # SIGKILLed but not gone (uninterruptible sleep): do not wait forever.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(asyncio.shield(self._exit), 10.0)
            await self._drain()
        except asyncio.CancelledError:
            # The loop is tearing us down: no time for a grace period.
            self._hard_kill()
            self._reap_and_finish()
            raise
        return self._reap_and_finish()

    def _reap_and_finish(self) -> ProcessResult:
        assert self._popen is not None
        if self._limit_timer is not None:
            self._limit_timer.cancel()
            self._limit_timer = None
        # The kernel may have enforced a limit since the last look (the child killed by
        # the OOM killer exits before we poll): its counters decide.
        self._limit_breach()
        if self._limit_error is not None:
            self._stop_reason = (self._limit_hit, None, None)
        self._sample()  # the child is a zombie still: its CPU time is readable
        returncode = self._popen.poll()
        if returncode is None:
            self._warnings.append("the child could not be reaped (still in the kernel)")
        self._close_fds()
        if self._registered:
            watchdog().unregister(self._token)
            self._registered = False
        exit_code = signal_name = None
        if returncode is not None:
            if returncode >= 0:
                exit_code = returncode
            else:
                signal_name = _signal_name(returncode)
        if self._stop_reason is not None:
            status, kind, after = self._stop_reason
            if self._limit_error is not None:
                error = self._limit_error
                if self._output_dropped:
                    error += f"; {self._output_dropped} bytes beyond it dropped"
            elif kind is None or after is None:
                error = "cancelled"
            else:
                error = f"{_TIMEOUT_PHRASES[kind]} {after:g} s"
            if self._kill_signal is not None:
                error += f"; stopped with {self._kill_signal}"
            if self._kill_signal == "SIGKILL" and self._grace > 0:
                error += f" after a {self._grace:g} s grace period"
            return self._finish(
                status,
                exit_code=exit_code,
                signal_name=signal_name,
                timed_out=kind,
                timeout_after=after,
                error=error,
                partial=True,
            )
        if exit_code == 0:
            return self._finish(ProcessStatus.OK, exit_code=exit_code, signal_name=signal_name)
        tail = self._captures["stderr"].tail().decode("utf-8", "replace").strip()
        last_line = tail.splitlines()[-1][:300] if tail else ""
        error = (
            f"exited with code {exit_code}"
            if exit_code is not None
            else (f"killed by {signal_name}" if signal_name else "exit status unknown")
        )
        if last_line:
            error += f": {last_line}"
        return self._finish(
            ProcessStatus.FAILED, exit_code=exit_code, signal_name=signal_name, error=error
        )

    def _finish(
        self,
        status: ProcessStatus,
        *,
        exit_code: int | None = None,
        signal_name: str | None = None,
        timed_out: TimeoutKind | None = None,
        timeout_after: float | None = None,
        error: str | None = None,
        partial: bool = False,
    ) -> ProcessResult:
        now = self._loop.time()
        peak_memory, cpu_time, cpu_throttled, measured = self._usage()
        self._remove_cgroup()
        out = self._captures.get("stdout")
        err = self._captures.get("stderr")
        warnings = list(self._warnings)
        incomplete: list[str] = []
        on_disk: dict[str, tuple[int, str]] = {}
        for stream, capture in (("stdout", out), ("stderr", err)):
            if capture is not None and capture.write_error:
                warnings.append(
                    capture.write_error + f"; the file holds only its first {capture.file_size} of "
                    f"{capture.size} bytes"
                    + (f"; {capture.lost} bytes lost" if capture.lost else "; the rest in memory")
                )
                if error is None:
                    error = capture.write_error
            if capture is not None and capture.incomplete:
                incomplete.append(capture.path)
                on_disk[stream] = (capture.file_size, capture.file_sha256)
        # The output is not all where it should be: whatever the status, it is partial, and
        # a success whose output was not kept whole is not reported as one.
        partial = partial or bool(incomplete)
        if incomplete and status is ProcessStatus.OK:
            status = ProcessStatus.LIMIT_EXCEEDED

        def memory(capture: StreamCapture | None) -> bytes | None:
            if capture is None:
                return b""
            if capture.write_error:
                return capture.read_all()
            return capture.memory

        result = ProcessResult(
            run_id=self.run_id,
            argv=list(self.argv),
            cwd=self.cwd,
            status=status,
            exit_code=exit_code,
            signal=signal_name,
            pid=self.pid,
            duration_s=now - self._t0,
            started_at=self._started_at,
            ended_at=time.time(),
            partial=partial,
            timed_out=timed_out,
            timeout_after=timeout_after,
            kill_signal=self._kill_signal,
            stdout_path=out.path if out else None,
            stderr_path=err.path if err else None,
            stdout_bytes=out.size if out else 0,
            stderr_bytes=err.size if err else 0,
            stdout_sha256=out.sha256 if out else _EMPTY_SHA256,
            stderr_sha256=err.sha256 if err else _EMPTY_SHA256,
            stderr_tail=err.tail().decode("utf-8", "replace") if err else "",
            error=error,
            run_dir=self._run_dir,
            descendants_killed=self._descendants_killed,
            stdin_bytes_written=self._stdin_written,
            warnings=warnings,
            incomplete_files=incomplete,
            peak_memory_bytes=peak_memory,
            cpu_time_s=cpu_time,
            cpu_throttled_s=cpu_throttled,
            usage_source=measured,
            _stdout_memory=memory(out),
            _stderr_memory=memory(err),
            _on_disk=on_disk,
        )
        self._result = result
        self._emit(
            "exited",
            status=status.value,
            exit_code=exit_code,
            signal=signal_name,
            duration_s=result.duration_s,
        )
        if self._queue is not None:
            self._queue.close()
        return result

    def _emit(self, event: LifecycleKind, **detail: Any) -> None:
        if self._queue is not None:
            self._queue.push_lifecycle(LifecycleEvent(event, self._loop.time(), detail))


_TIMEOUT_PHRASES: dict[TimeoutKind, str] = {
    "total": "timed out after",
    "idle": "no output for",
    "first_output": "no output within",
}


def _size(value: int | None) -> str:
    """Bytes as a person reads them (``64 MiB``)."""
    if value is None:
        return "unknown"
    amount = float(value)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if amount < 1024 or unit == "GiB":
            return f"{amount:.0f} {unit}" if unit == "bytes" else f"{amount:.1f} {unit}"
        amount /= 1024
    return f"{value} bytes"


_EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


# --------------------------------------------------------------------- entry points


@asynccontextmanager
async def open_process(
    argv: Sequence[str | os.PathLike[str]], **options: Any
) -> AsyncIterator[SupervisedProcess]:
    """Start a supervised process; on leaving the block nothing of it is left running.

    Inside the block, iterate ``proc.events()``, call ``pause()``/``resume()``/``cancel()``,
    or ``await proc.wait()``. Leaving the block early (an exception, a ``break``, a
    cancellation) terminates the tree. Options are those of :func:`run_process` except the
    callbacks.

    Example::

        async with open_process(["make", "test"], timeout=600) as proc:
            async for event in proc.events():
                print(event)
        print(proc.result.status)
    """
    proc = SupervisedProcess(argv, **options)
    await proc.start()
    try:
        yield proc
    finally:
        await proc.aclose()


Callback = Callable[[Any], "Awaitable[Any] | Any"]


async def _dispatch(
    proc: SupervisedProcess,
    on_event: Callback | None,
    on_line: Callback | None,
    on_chunk: Callback | None,
) -> None:
    async for event in proc.events(
        lines=on_line is not None or on_event is not None,
        chunks=on_chunk is not None,
        lifecycle=on_event is not None,
    ):
        if isinstance(event, OutputEvent):
            callback = on_line if event.kind == "line" else on_chunk
            if callback is not None:
                outcome = callback(event)
                if inspect.isawaitable(outcome):
                    await outcome
            if on_event is None or event.kind == "chunk":
                continue
        if on_event is not None:
            outcome = on_event(event)
            if inspect.isawaitable(outcome):
                await outcome


async def run_process(
    argv: Sequence[str | os.PathLike[str]],
    *,
    stdin: StdinSource = None,
    cwd: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    extra_env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    idle_timeout: float | None = None,
    first_output_timeout: float | None = None,
    grace: float = DEFAULT_GRACE,
    on_line: Callback | None = None,
    on_chunk: Callback | None = None,
    on_event: Callback | None = None,
    **options: Any,
) -> ProcessResult:
    """Run ``argv`` (never through a shell) under supervision and return its result.

    - ``stdin``: None (``/dev/null``), bytes, str (UTF-8), a path, or a file object.
    - ``cwd``, ``env`` (whole environment; default: ours), ``extra_env`` (added on top).
    - ``timeout`` (total), ``idle_timeout`` (no output for that long), ``first_output_timeout``
      (no output at all by then): seconds. On expiry the tree gets SIGTERM, ``grace``
      seconds, then SIGKILL; the result keeps every byte written and says ``partial``.
    - ``on_line(OutputEvent)``, ``on_chunk(OutputEvent)``, ``on_event(event)``: sync or async
      callbacks, called in order from a task of their own so they never stall the draining.
      If one raises, the run is cancelled and the exception propagates.
    - Further options (see :class:`SupervisedProcess`): ``run_id``, ``run_dir``,
      ``memory_budget``, ``queue_budget``, ``max_line_memory``, ``tail_bytes``,
      ``parent_death_signal``, ``kill_descendants``, ``drain_timeout``, ``stdout_to_file``
      (the child writes ``stdout.log`` itself, as with ``cmd > file``, and it is read back as
      it grows, polled every 1-50 ms: no pipe for a fast writer to wait on. Then a full disk
      or a file size limit hits the child's own writes, where a pipe would let us keep the
      bytes in memory), ``quiet_line`` (a predicate over complete stdout lines:
      those it calls quiet, such as a CLI's "reconnecting" notices, do not count as output
      for ``idle_timeout`` and ``first_output_timeout``, so a child that only waits is still
      stopped; see :class:`~cc_executor._engine._events.QuietLines`), ``limits`` (a
      :class:`~cc_executor._engine._cgroup.Limits`: memory, CPU and process limits of the
      whole tree in a cgroup of its own, ending ``oom_killed`` or ``limit_exceeded``, and
      the output limit; see docs/limits.md).

    Spawn problems come back as status ``spawn_failed``; only programming errors (an empty
    or string ``argv``, a negative timeout) raise. Cancelling the awaiting task terminates
    the tree, then re-raises ``CancelledError``.
    """
    wants_events = on_line is not None or on_chunk is not None or on_event is not None
    proc = SupervisedProcess(
        argv,
        stdin=stdin,
        cwd=cwd,
        env=env,
        extra_env=extra_env,
        timeout=timeout,
        idle_timeout=idle_timeout,
        first_output_timeout=first_output_timeout,
        grace=grace,
        events=wants_events,
        **options,
    )
    await proc.start()
    if proc.result is not None or not wants_events:
        return await proc.wait() if proc.result is None else proc.result
    consumer = asyncio.ensure_future(_dispatch(proc, on_event, on_line, on_chunk))
    waiter = asyncio.ensure_future(proc.wait())
    try:
        await asyncio.wait({consumer, waiter}, return_when=asyncio.FIRST_COMPLETED)
        if consumer.done() and not consumer.cancelled() and consumer.exception() is not None:
            # A callback raised: stop the run, then let the caller see the error.
            await proc.aclose()
            await waiter
            await consumer
        result = await waiter
        await consumer
    except asyncio.CancelledError:
        consumer.cancel()
        await proc.aclose()
        raise
    return result


def run_sync(coro: Awaitable[T]) -> T:
    """Run ``coro`` to completion from synchronous code, even inside a running loop (it
    then runs on a fresh loop in a worker thread)."""

    async def main() -> T:
        return await coro

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, main()).result()


def run_process_sync(argv: Sequence[str | os.PathLike[str]], **options: Any) -> ProcessResult:
    """:func:`run_process` for synchronous code. Ctrl-C terminates the tree, then raises
    ``KeyboardInterrupt``."""
    return run_sync(run_process(argv, **options))
