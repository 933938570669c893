"""``cc-executor worker``: one machine of a fleet. It takes runs from the fleet's queue, runs
each with the local engine (its run folder and history on this machine), streams its
events to the fleet and obeys the control channel.

A run message is untrusted data: before anything starts, the worker applies the same
checks as the service (:class:`~cc_executor._service._policy.RunPolicy`: ``cwd`` and
``add_dirs`` inside ``--allow-dir``, no server-only option, only the environment variables
an agent is configured with) and its own list of agents, and sends a refusal back to the
submitter instead. A run is started only by the holder of its lease, so a second delivery
of a run in progress (a broker that thought this worker gone) is dropped.

A run's permission policy comes in its message as data (its rules), parsed like any
option and applied here; its ``ask`` requests are answered by the submitter through the
fleet (:meth:`FleetWorker._decider`), denied at the policy's timeout.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import glob
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cc_executor._agents import ADAPTERS
from cc_executor._agents._types import (
    CommandOutputEvent,
    RunStartedEvent,
    RunStatus,
    StatusEvent,
)
from cc_executor._errors import FleetError, HistoryError, RunRefused, ServiceError
from cc_executor._fleet import open_fleet
from cc_executor._fleet._base import (
    CANCEL,
    DEFAULT_QUEUE,
    PAUSE,
    PERMISSION,
    RESUME,
    Fleet,
    Lease,
    check_queue,
)
from cc_executor._ids import new_run_id
from cc_executor._run._budget import BudgetGuard, BudgetSettings, open_fleet_guard
from cc_executor._run._fleet import MESSAGE_VERSION, decision_from_message
from cc_executor._run._git import git_env, git_overrides
from cc_executor._run._options import RunOptions
from cc_executor._run._permissions import Decider, PermissionDecision, PermissionRequest
from cc_executor._run._policy import Policy, parse_policy
from cc_executor._run._prepare import PERMISSION_HOOK_AGENTS
from cc_executor._run._result import RunResult
from cc_executor._run._runner import RunHandle, start_run
from cc_executor._run._workspace import BRANCH_PREFIX
from cc_executor._service._policy import RunPolicy
from cc_executor._service._ratelimit import SharedLimits
from cc_executor._status import Status
from cc_executor._store import HistoryStore, history_location, open_store
from cc_executor._store._location import is_postgres
from cc_executor._version import __version__

log = logging.getLogger("cc_executor.worker")

#: The shortest time between two heartbeats sent for a change of the runs in progress.
_CHANGE_GAP_S = 0.25
#: A run id as :func:`~cc_executor._ids.new_run_id` makes them (it names a folder here).
_RUN_ID = re.compile(r"[0-9a-z]{26}")
#: Seconds between two looks for a submitter's permission answer when no word of it came
#: on the control channel (a message lost while the worker was not listening).
_ANSWER_POLL_S = 2.0


@dataclass
class WorkerConfig:
    """What one worker offers: ``slots`` runs at once, taken from the fleet's ``queues``,
    runs whose ``cwd`` is inside ``allow_dirs``, of the ``agents`` named (empty: every
    agent), and ``grace_s`` seconds for runs to finish on SIGTERM. ``heartbeat_timeout_s``:
    after this long without a heartbeat, the broker and the leases count the worker lost."""

    fleet: str
    slots: int = 1
    allow_dirs: Sequence[str] = ()
    agents: Sequence[str] = ()
    allow_env: Sequence[str] = ()
    grace_s: float = 30.0
    heartbeat_timeout_s: float = 10.0
    queues: Sequence[str] = (DEFAULT_QUEUE,)
    #: Programs (names on PATH or paths, each optionally with the arguments a command must
    #: start with, as ``serve --allow-exec``) a run message may run as a plain command.
    allow_exec: Sequence[str] = ()
    #: The byte bound of a run's event stream in the fleet (None: the fleet's default).
    stream_max_bytes: int | None = None
    #: Patterns of the git URLs a run may name as its ``repo`` (``--allow-repo``).
    allow_repos: Sequence[str] = ()
    #: The fleet's budget this worker keeps (``--budget-usd``); None: no budget check.
    budget: BudgetSettings | None = None
    worker_id: str = field(default_factory=lambda: f"{socket.gethostname()}-{os.getpid()}")
    #: Runs in flight per credential across the fleet (0: the fleet's setting, if any);
    #: the first back-off after a 429 or overload (_ratelimit.py).
    max_concurrent_per_credential: int = 0
    limit_backoff_s: float = 1.0


@dataclass
class _Active:
    handle: _Handle
    lease: Lease
    #: Adds an event to the run's stream, in order with the agent's.
    note: Callable[[Any], None]
    #: The agent's session (from its init event) and how much of its transcript was
    #: shipped to the fleet: (session id, transcript path, bytes shipped).
    session: list[Any] = field(default_factory=lambda: [None, None, 0])
    shipping: asyncio.Lock = field(default_factory=asyncio.Lock)
    #: A repo run's checkpoints: the commit pushed last, and the one the fleet knows of.
    checkpoint: list[str | None] = field(default_factory=lambda: [None, None])
    interrupted: bool = False
    #: Set when the lease was lost: another worker may run the run now, this copy stops
    #: and sends nothing more.
    lost: bool = False
    #: One event per permission request waiting for its submitter's answer: set when the
    #: control channel says an answer came.
    asks: set[asyncio.Event] = field(default_factory=set)
    #: Set when the run has ended: its lease keeper stops even if its cancellation was
    #: lost (a cancel that lands inside a Redis call can be swallowed there).
    ended: bool = False


class FleetWorker:
    """See the module's docstring; :meth:`serve` runs until SIGTERM or SIGINT."""

    def __init__(self, config: WorkerConfig) -> None:
        if config.slots < 1:
            raise ValueError(f"--slots must be at least 1, got {config.slots}")
        for queue in config.queues:
            check_queue(queue)
        for name in config.agents:
            if name not in ADAPTERS:
                raise ValueError(f"--agent {name!r}: unknown agent ({', '.join(sorted(ADAPTERS))})")
        self.config = config
        # Without --agent a worker runs every agent (claude for a run naming none).
        agents = config.agents or ["claude", *sorted(set(ADAPTERS) - {"claude"})]
        self.policy = RunPolicy(
            config.allow_dirs,
            config.allow_exec,
            allow_env=config.allow_env,
            agents=agents,
            allow_repos=config.allow_repos,
            host="worker",
        )
        self.fleet: Fleet = open_fleet(config.fleet)
        self.limits = SharedLimits(
            self.fleet.limits(),
            cap=config.max_concurrent_per_credential,
            hold_s=config.heartbeat_timeout_s,
            backoff_s=config.limit_backoff_s,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._active: dict[str, _Active] = {}
        #: The runs being started, and whether a cancel came for each meanwhile.
        self._starting: dict[str, bool] = {}
        self._draining = threading.Event()
        self._stop = asyncio.Event()
        #: Set while no run is in progress.
        self._idle = asyncio.Event()
        self._idle.set()
        #: Set when the number of runs in progress changes: heartbeat now, so `fleet status`
        #: shows what the worker is doing, not what it did a heartbeat interval ago.
        self._changed = asyncio.Event()
        self.budget: BudgetGuard | None = None

    # -- the checks ------------------------------------------------------------------
    def check(self, message: Mapping[str, Any]) -> tuple[bytes, dict[str, Any]]:
        """The prompt and options of a run message this worker may run; raises
        :class:`RunRefused` saying why not."""
        if message.get("version") != MESSAGE_VERSION:
            raise RunRefused(
                f"run message version {message.get('version')!r}: this worker reads "
                f"version {MESSAGE_VERSION} (cc-executor {__version__})"
            )
        try:
            prompt = base64.b64decode(str(message.get("prompt_b64", "")), validate=True)
        except (binascii.Error, ValueError):
            raise RunRefused("the run message's prompt is not valid base64") from None
        if not prompt.strip():
            raise RunRefused("the prompt is empty: the agent needs something to do")
        options = message.get("options")
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise RunRefused("the run message's options are not an object")
        try:
            agent = options.get("agent", self.policy.agents[0])
            if agent not in self.policy.agents:
                raise RunRefused(
                    f"agent {agent!r} is not run by this worker (it runs "
                    f"{', '.join(self.policy.agents)})"
                )
            self.policy.check_agent_options(options, "")
            options = dict(options)
            if options.get("repo") is None:  # with a repo, the run's cwd is its clone
                options["cwd"] = self.policy.check_cwd(options.get("cwd"))
            env = dict(options.get("env") or {})
            # Back-off is the fleet's business: the CLI's own retries would hide 429s.
            env["CLAUDE_CODE_MAX_RETRIES"] = "0"  # forced: a submitter's value never wins
            options["env"] = env
            RunOptions.from_kwargs(options)
        except (ServiceError, TypeError, ValueError) as exc:
            raise RunRefused(str(exc)) from None
        return prompt, options

    def check_policy(self, message: Mapping[str, Any], options: Mapping[str, Any]) -> Policy | None:
        """The permission policy a run message carries (its rules, as data), checked like
        any option; raises :class:`RunRefused` saying what is wrong."""
        data = message.get("policy")
        if data is None:
            return None
        try:
            policy = parse_policy(data, "the run's permission policy")
        except ValueError as exc:
            raise RunRefused(str(exc)) from None
        agent = options.get("agent", "claude")
        if agent not in PERMISSION_HOOK_AGENTS:
            raise RunRefused(
                f"permission_policy: the {agent} agent has no permission hook, so its rules "
                "cannot be applied while the run goes on: use the claude agent for a policy"
            )
        return policy

    def _decider(self, run_id: str) -> Decider:
        """The decider of a fleet run's ``ask``: its submitter, over the fleet. The request
        is in the run's stream already (its ``permission_request`` event); the answer is
        kept in the broker and announced on the control channel. The run's broker bounds
        the wait by the policy's ``ask_timeout_s`` (then the call is denied)."""

        async def decide(request: PermissionRequest) -> PermissionDecision:
            asked = asyncio.Event()
            active = self._active.get(run_id)
            if active is not None:
                active.asks.add(asked)
            try:
                while True:
                    with contextlib.suppress(FleetError):
                        found = await self.fleet.answered(run_id, request.id)
                        if found is not None:
                            return decision_from_message(found, "submitter")
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(asked.wait(), _ANSWER_POLL_S)
                    asked.clear()
            finally:
                if active is not None:
                    active.asks.discard(asked)

        return decide

    def check_exec(self, message: Mapping[str, Any]) -> tuple[list[str], dict[str, Any]]:
        """The argv (its program resolved) and options of a command message this worker
        may run (``--allow-exec``); raises :class:`RunRefused` saying why not."""
        if message.get("version") != MESSAGE_VERSION:
            raise RunRefused(f"run message version {message.get('version')!r}")
        argv, options = message.get("argv"), message.get("options")
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise RunRefused("the run message's options are not an object")
        try:
            executable = self.policy.executable(argv)
            assert isinstance(argv, list)
            options = dict(options)
            self.policy.check_exec_options(options)
            options["cwd"] = self.policy.check_cwd(options.get("cwd"))
            options["env"] = self.policy.check_env(options.get("env"), command=argv)
        except ServiceError as exc:
            raise RunRefused(str(exc)) from None
        return [executable, *argv[1:]], options

    # -- the loop --------------------------------------------------------------------
    def serve(self) -> int:
        """Take runs until SIGTERM/SIGINT, then drain (see :meth:`_drain`)."""
        return asyncio.run(self._serve())

    async def _serve(self) -> int:
        self._loop = asyncio.get_running_loop()
        await self.fleet.check()
        await self.limits.start()
        if self.config.budget is not None:
            self.budget = await open_fleet_guard(
                self.config.fleet, self.config.budget, cancel=self.fleet.request_cancel
            )
        for sig in (signal.SIGTERM, signal.SIGINT):
            self._loop.add_signal_handler(sig, self._stop.set)
        # Open for the worker's whole life: its sync loop writes the runs a PostgreSQL
        # outage left pending once the database is back, also while no run goes on.
        history = await asyncio.to_thread(_keep_history)
        consumer = await asyncio.to_thread(
            self.fleet.serve,
            self._deliver,
            slots=self.config.slots,
            heartbeat_timeout_s=self.config.heartbeat_timeout_s,
            queues=self.config.queues,
        )
        beat = asyncio.ensure_future(self._heartbeats())
        control = asyncio.ensure_future(self._control())
        reaper = asyncio.ensure_future(self._reap())
        log.info(
            "worker %s: %d slot(s) on the fleet at %s",
            self.config.worker_id,
            self.config.slots,
            self.fleet.url,
        )
        print(f"cc-executor worker {self.config.worker_id} ready", flush=True)
        await self._stop.wait()
        await self._drain(consumer)
        for task in (beat, control, reaper):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self.budget is not None:
            await self.budget.aclose()
        await self.fleet.aclose()
        if history is not None:
            await asyncio.to_thread(history.close)
        return 0

    async def _drain(self, consumer: Any) -> None:
        """Stop taking work; give the runs in progress ``grace_s`` to finish; then cancel
        what is left as ``interrupted`` and put it back on the queue for another worker."""
        self._draining.set()
        self.fleet.stop_taking(consumer)
        log.info(
            "stopping: no new runs; %d in progress get %g s", len(self._active), self.config.grace_s
        )
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), self.config.grace_s)
        for active in list(self._active.values()):
            active.interrupted = True
            active.handle.cancel()
        await self._idle.wait()
        await asyncio.to_thread(self.fleet.stop_serving, consumer)

    async def _heartbeats(self) -> None:
        interval = max(0.5, self.config.heartbeat_timeout_s / 4)
        while True:
            info = {
                "worker_id": self.config.worker_id,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "slots": self.config.slots,
                "busy": len(self._active),
                # What it runs, and when its silence means it is late (GET /fleet, the
                # dashboard's fleet section).
                "runs": sorted(self._active),
                "heartbeat_timeout_s": self.config.heartbeat_timeout_s,
                "agents": list(self.config.agents) or sorted(ADAPTERS),
                "queues": list(self.config.queues),
                "version": __version__,
                "heartbeat_at": time.time(),
            }
            sent = time.monotonic()
            with contextlib.suppress(FleetError, OSError):
                await self.fleet.heartbeat(
                    self.config.worker_id, info, self.config.heartbeat_timeout_s
                )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._changed.wait(), interval)
            # The changes of a short while go in one heartbeat: a worker of short runs
            # would otherwise write two per run (its start and its end).
            await asyncio.sleep(max(0.0, sent + _CHANGE_GAP_S - time.monotonic()))
            self._changed.clear()

    async def _control(self) -> None:
        """Listen on the control channel; after a broker error, listen again (meanwhile the
        lease keeper sees a cancel through its durable flag)."""
        while True:
            try:
                await self.fleet.control(self._on_command)
            except FleetError as exc:
                log.warning("control channel: %s; listening again in 1 s", exc)
            await asyncio.sleep(1)

    async def _on_command(self, run_id: str, command: str) -> None:
        active = self._active.get(run_id)
        if active is None:
            if command == CANCEL and run_id in self._starting:
                self._starting[run_id] = True  # obeyed once it has started (_run)
            return
        if command == CANCEL:
            active.handle.cancel()
        elif command == PAUSE and active.handle.pause():
            active.note(StatusEvent(t=time.monotonic(), status="paused"))
        elif command == RESUME and active.handle.resume():
            active.note(StatusEvent(t=time.monotonic(), status="resumed"))
        elif command == PERMISSION:
            for asked in active.asks:
                asked.set()

    def _deliver(self, message: dict[str, Any]) -> None:
        """Called in one of the broker's threads per message: runs it on the event loop
        and returns when it is over (the broker then acknowledges the message)."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(self._handle(message), self._loop)
        future.result()

    async def _handle(self, message: dict[str, Any]) -> None:
        try:
            await self._take(message)
        except Exception as exc:
            # One bad message or a broker error must not stop the worker: say so, go on,
            # and tell the submitter when the run can be named (it would wait forever).
            run_id = message.get("run_id")
            log.exception("run %s: not handled", run_id)
            if isinstance(run_id, str) and _RUN_ID.fullmatch(run_id):
                error = f"worker {self.config.worker_id} could not run {run_id}: {exc}"
                with contextlib.suppress(FleetError):
                    await self.fleet.finish(run_id, None, [{"kind": "refused", "error": error}])

    async def _take(self, message: dict[str, Any]) -> None:
        run_id = message.get("run_id")
        if not isinstance(run_id, str) or not _RUN_ID.fullmatch(run_id):
            log.warning("dropped a run message without a valid run id")
            return
        if self._draining.is_set():
            # Fetched before the stop: back on the queue for another worker.
            await asyncio.to_thread(self.fleet.submit, message)
            return
        # From before the lease to the start, a cancel on the control channel is kept here
        # (one asked before the lease is in it): no look at the cancel flag after the start.
        self._starting[run_id] = False
        try:
            await self._take_leased(run_id, message)
        finally:
            self._starting.pop(run_id, None)

    async def _take_leased(self, run_id: str, message: dict[str, Any]) -> None:
        ttl = self.config.heartbeat_timeout_s
        attempt = int(message.get("attempt", 1))
        local_id = _local_id(run_id, attempt)
        # The attempt's history id goes with the lease: the worker that recovers the run if
        # this one is lost marks that row in a shared history.
        kept = {**message, "holder": self.config.worker_id, "local_id": local_id}
        lease = await self._retrying(
            run_id, lambda: self.fleet.acquire(run_id, self.config.worker_id, ttl, kept)
        )
        if not isinstance(lease, Lease):
            log.info("run %s: delivery dropped (%s)", run_id, lease)
            return
        recover = message.get("recover")
        said: str | None = None  # how a recovered run goes on, its first status event
        try:
            if "argv" in message:
                argv, exec_options = self.check_exec(message)
                # An allowed `git status` must not run what the repository's configuration
                # names (F8.8), as for `serve`'s commands: any program may run git.
                base = {**os.environ, **exec_options["env"]}
                overrides = await asyncio.to_thread(git_overrides, exec_options["cwd"], env=base)
                exec_options["env"] = {**exec_options["env"], **git_env(overrides, base)}
                if isinstance(recover, dict):
                    # A command has no session to carry: it always starts again.
                    said = f"restarted: {recover.get('why') or 'its worker was lost'}"

                def start(on_event: Callable[[Any], None]) -> _Handle:
                    return _ExecHandle(local_id, argv, exec_options, on_event)

                limited: dict[str, Any] | None = None  # a command uses no API credential
            else:
                prompt, options = self.check(message)
                policy = self.check_policy(message, options)
                if options.get("repo") is not None and options.get("workspace") == "worktree":
                    # Every attempt pushes (checkpoints, the end) to the fleet run's branch.
                    options["repo_branch"] = BRANCH_PREFIX + run_id
                if isinstance(recover, dict):
                    prompt, options, said = await self._recovered(run_id, prompt, options, recover)
                limited = options
                # The submitter answers the policy's ask only when it said it has a decider;
                # otherwise they are denied at once, as for a local run without one.
                decider = self._decider(run_id) if message.get("decider") is True else None

                def start(on_event: Callable[[Any], None]) -> _Handle:
                    return start_run(
                        prompt,
                        on_event=on_event,
                        run_id=local_id,
                        on_permission=decider,
                        _decider_name="submitter",
                        _policy=policy,
                        **options,
                    )

        except RunRefused as exc:
            error = f"worker {self.config.worker_id} refused run {run_id}: {exc}"
            log.warning("%s", error)
            entry = {"kind": "refused", "error": error}
            await self._retrying(run_id, lambda: self.fleet.finish(run_id, lease, [entry]))
            return
        # The fleet's shared rate limits: wait before the start, watch the events, free after.
        admitted = await self.limits.admit(
            run_id, limited, note=self._noter(run_id), still_wanted=self._waiting(lease)
        )
        if admitted is None:
            await self._requeue_waiting(lease, message)
            return
        try:
            budget = self.budget if "argv" not in message else None
            if budget is not None:
                # The budget's one check before the start (it may lower max_budget_usd),
                # once the shared rate limits let the run go.
                admission = await budget.before(run_id, options, attempt)
                if not admission.started:
                    await self._not_started(run_id, lease, admission.error, admission.events)
                    return
            try:
                await self._run(run_id, lambda on: start(admitted.watch(on)), lease, message, said)
            finally:
                if budget is not None:
                    # Settled in _run before its result is sent; here only if _run failed
                    # (the reservation is then charged whole).
                    await budget.after(run_id, Status.CRASHED, None, attempt)
        finally:
            await admitted.release()

    def _noter(self, run_id: str) -> Callable[[Any], Awaitable[None]]:
        async def note(event: Any) -> None:
            await self.fleet.append(run_id, [{"kind": "event", "event": event.to_dict()}])

        return note

    def _waiting(self, lease: Lease) -> Callable[[], Awaitable[str]]:
        """While a run waits for a shared limit: ``"wait"``, ``"go"`` (cancelled: it is
        started and stopped at once, its submitter gets the result) or ``"drop"`` (lease
        lost, or this worker stops: back on the queue)."""

        async def still() -> str:
            ttl = self.config.heartbeat_timeout_s
            if self._draining.is_set() or not await self.fleet.renew(lease, ttl):
                return "drop"
            return "go" if await self.fleet.cancel_requested(lease.run_id) else "wait"

        return still

    async def _requeue_waiting(self, lease: Lease, message: dict[str, Any]) -> None:
        if self._draining.is_set():
            # Handed back as a new attempt (it never started): the lost-run reaper then has
            # nothing to recover, and this delivery, now stale, is dropped if it comes back.
            attempt = await self._retrying(lease.run_id, lambda: self.fleet.handoff(lease))
            if attempt:
                again = {**message, "attempt": attempt}
                await asyncio.to_thread(self.fleet.submit, again)

    async def _not_started(
        self, run_id: str, lease: Lease, error: str | None, events: Sequence[Any]
    ) -> None:
        """End a run the budget cannot cover: status ``budget_exceeded``, nothing ran."""
        log.info("run %s: %s", run_id, error)
        result = RunResult(run_id=run_id, status=Status.BUDGET_EXCEEDED, error=error)
        entries = [{"kind": "event", "event": e.to_dict()} for e in events]
        entries.append({"kind": "result", "result": result.to_dict()})
        await self._retrying(run_id, lambda: self.fleet.finish(run_id, lease, entries))

    async def _run(
        self,
        run_id: str,
        start: Callable[[Callable[[Any], None]], _Handle],
        lease: Lease,
        message: dict[str, Any],
        said: str | None = None,
    ) -> None:
        pending: list[dict[str, Any]] = []
        wake = asyncio.Event()
        session: list[Any] = [None, None, 0]
        checkpoint: list[str | None] = [None, None]
        # A re-queued run keeps its id and gains an attempt (docs/fleet.md): this one's
        # process counts its own from 1, after those of the earlier fleet attempts.
        earlier = int(message.get("attempt", 1)) - 1

        def on_event(event: Any) -> None:
            if earlier and isinstance(event, RunStartedEvent):
                event = replace(event, attempt=event.attempt + earlier)
            sid = getattr(event, "session_id", None) if event.type == "init" else None
            if sid and session[0] != sid:
                session[:] = [sid, None, 0]
            said = getattr(event, "status", "") if event.type == "status" else ""
            if said.startswith(CHECKPOINT_STATUS):
                checkpoint[0] = said[len(CHECKPOINT_STATUS) :].split(" ", 1)[0]
            pending.append({"kind": "event", "event": event.to_dict()})
            wake.set()

        if said is not None:
            on_event(StatusEvent(t=time.monotonic(), status=said))
        handle = start(on_event)
        active = self._active[run_id] = _Active(handle, lease, on_event, session)
        active.checkpoint = checkpoint
        self._idle.clear()
        self._changed.set()
        pump = asyncio.ensure_future(self._pump(run_id, pending, wake, active))
        keeper = asyncio.ensure_future(self._keep_lease(active))
        if lease.cancelled or self._starting.get(run_id):
            handle.cancel()  # asked before the lease, or between the lease and the start
        try:
            result = await handle.wait()
        finally:
            active.ended = True
            keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await keeper
            wake.set()
            await pump
            del self._active[run_id]
            self._changed.set()
            if not self._active:
                self._idle.set()
        last: list[dict[str, Any]] = []  # sent with the result
        if self.budget is not None and "argv" not in message:
            # The budget's one settlement of this attempt, before the result is sent: a
            # submitter that has the result sees the ledger with it. An attempt whose lease
            # was lost settles its real cost too, unless the reaper charged it first.
            attempt = int(message.get("attempt", 1))
            events = await self.budget.after(run_id, result.status, result.cost_usd, attempt)
            if events and not active.lost:
                last = [{"kind": "event", "event": e.to_dict()} for e in events]
        if active.interrupted and not active.lost:
            if last:
                await self._send(run_id, last, active)
            await self._requeue(run_id, result, active, message)
            return
        local_id = result.run_id
        result.attempts += earlier
        if not active.lost:
            result.run_id = run_id
            last.append({"kind": "result", "result": result.to_dict()})
            limit = self.config.stream_max_bytes
            # The result, the run's end and its lease given back: one round trip.
            ended = await self._retrying(
                run_id, lambda: self.fleet.finish(run_id, lease, last, max_bytes=limit)
            )
            if not ended:
                log.warning("run %s: lease lost before its result was sent", run_id)
                active.lost = True
        if active.lost:
            # Another worker holds the run now: its stream and its end are that worker's.
            error = (
                f"worker {self.config.worker_id} lost the run's lease (no renewal within "
                f"{self.config.heartbeat_timeout_s:g} s): another worker recovers it"
            )
            if options_record(message):
                await asyncio.to_thread(_mark_interrupted, local_id, error)
            return

    async def _recovered(
        self, run_id: str, prompt: bytes, options: dict[str, Any], recover: Mapping[str, Any]
    ) -> tuple[bytes, dict[str, Any], str]:
        """The prompt and options of a recovered run's new attempt, and the status event
        saying how it goes on: its session resumed here when it was shipped and can be
        restored, else from its prompt."""
        why = str(recover.get("why", ""))
        if recover.get("mode") == "resume":
            shipped = await self._retrying(run_id, lambda: self.fleet.session(run_id))
            where = _restore_session(shipped, options) if shipped else None
            if shipped and where:
                log.info("run %s: resuming session %s (%s)", run_id, shipped[0], where)
                # The session is named by --resume alone (Claude Code refuses --session-id
                # or --continue beside it).
                drop = ("session_id", "continue_session", "fork_session")
                resumed = {k: v for k, v in options.items() if k not in drop}
                resumed["resume"] = shipped[0]
                if resumed.get("repo_branch") is not None:
                    # On the work the lost attempt pushed, as its session left it.
                    resumed["repo_continue"] = True
                return CONTINUE_PROMPT, resumed, f"session_resumed: {shipped[0]}"
            why = "its session transcript could not be restored here"
        return prompt, options, f"restarted: {why}" if why else "restarted"

    async def _requeue(
        self, run_id: str, result: RunResult, active: _Active, message: dict[str, Any]
    ) -> None:
        """A run stopped by this worker's shutdown: recorded ``interrupted`` here, handed
        back to the fleet, queued again under its ``on_worker_lost``."""
        local_id = result.run_id
        error = (
            f"worker {self.config.worker_id} stopped (SIGTERM) past its grace of "
            f"{self.config.grace_s:g} s"
        )
        if options_record(message):
            # As the service's drain does: after the run's own record (cancelled).
            await asyncio.to_thread(_mark_interrupted, local_id, error)
        with contextlib.suppress(FleetError, OSError):
            await self._ship(run_id, active)
        attempt = await self._retrying(run_id, lambda: self.fleet.handoff(active.lease))
        if attempt:
            await self._recover(attempt, {**message, "holder": self.config.worker_id}, error)

    async def _recover(self, attempt: int, message: dict[str, Any], error: str) -> None:
        """Mark the attempt of a run whose worker stopped ``interrupted`` in its stream and
        queue attempt ``attempt`` under its ``on_worker_lost`` (``fail``: the run ends)."""
        run_id = str(message["run_id"])
        options = message.get("options") if isinstance(message.get("options"), dict) else {}
        shipped = await self._retrying(run_id, lambda: self.fleet.session(run_id))
        pushed = None
        if (options or {}).get("repo") is not None:
            pushed = await self._retrying(run_id, lambda: self.fleet.checkpoint(run_id))
        policy = (options or {}).get("on_worker_lost", "resume")
        how = lost_run_plan(options or {}, shipped[0] if shipped else None, pushed, run_id)
        interrupted = RunResult(
            run_id=run_id, status=RunStatus.INTERRUPTED, error=f"{error}: {how}"
        )
        entries = [{"kind": "interrupted", "result": interrupted.to_dict()}]
        lost_id = message.get("local_id")
        if isinstance(lost_id, str) and options_record(message) and shared_history():
            then = "the run ends" if policy == "fail" else f"attempt {attempt} continues it"
            note = f"{error}: {how}; {then} (fleet run {run_id})"
            await asyncio.to_thread(_mark_lost, lost_id, note)
        if policy == "fail":
            entries.append({"kind": "result", "result": interrupted.to_dict()})
            await self._retrying(run_id, lambda: self.fleet.finish(run_id, None, entries))
            return
        # Claimed: from here on the run is this worker's to queue again, whatever the
        # broker does meanwhile.
        await self._retrying(run_id, lambda: self.fleet.append(run_id, entries))
        mode = "resume" if how.startswith(RESUMES) else "restart"
        recover = {"mode": mode, "why": how, "lost": message.get("holder")}
        again = {k: v for k, v in message.items() if k not in ("holder", "local_id")}
        again.update(attempt=attempt, recover=recover)
        log.warning("run %s: %s; attempt %d queued", run_id, how, attempt)
        await self._retrying(run_id, lambda: asyncio.to_thread(self.fleet.submit, again))

    async def _reap(self) -> None:
        """Find the runs of lost workers (their lease expired: no renewal for the heartbeat
        timeout) and recover them; every worker looks, one claims each run."""
        ttl = self.config.heartbeat_timeout_s
        while True:
            await asyncio.sleep(max(0.2, ttl / 4))
            if self._draining.is_set():
                continue
            try:
                for attempt, message in await self.fleet.reclaim():
                    error = (
                        f"worker {message.get('holder')} lost (its lease was not renewed "
                        f"for {ttl:g} s)"
                    )
                    await self._recover(attempt, message, error)
            except FleetError as exc:
                log.warning("recovery of lost workers' runs: %s", exc)
            except Exception:
                log.exception("recovery of lost workers' runs")

    async def _retrying(self, run_id: str, call: Callable[[], Any]) -> Any:
        """``call()`` until the broker takes it, with back-off (the broker may be down);
        a worker told to stop gives up after its grace, so that it never hangs."""
        delay, began = 0.1, time.monotonic()
        while True:
            try:
                return await call()
            except FleetError as exc:
                if self._stop.is_set() and time.monotonic() - began > self.config.grace_s:
                    raise
                log.warning("run %s: %s; again in %.1f s", run_id, exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    async def _send(self, run_id: str, batch: list[dict[str, Any]], active: _Active) -> None:
        """Append ``batch`` to the run's stream while this worker holds its lease; held and
        sent again while the broker is down; dropped once the lease was lost."""
        if active.lost:
            return
        limit = self.config.stream_max_bytes
        ok = await self._retrying(
            run_id,
            lambda: self.fleet.append(run_id, batch, lease=active.lease, max_bytes=limit),
        )
        if not ok and not active.lost:
            log.warning("run %s: lease lost, stopping it", run_id)
            active.lost = True
            active.handle.cancel()

    async def _ship(self, run_id: str, active: _Active) -> None:
        """Send what the agent added to its session transcript since the last time."""
        async with active.shipping:
            await self._ship_now(run_id, active.session)

    async def _ship_checkpoint(self, run_id: str, active: _Active) -> None:
        """Tell the fleet of the checkpoint the run pushed last (once it is in its stream)."""
        pushed, known = active.checkpoint
        if pushed is not None and pushed != known and not active.lost:
            await self.fleet.ship_checkpoint(run_id, pushed)
            active.checkpoint[1] = pushed

    async def _ship_now(self, run_id: str, session: list[Any]) -> None:
        session_id, path, offset = session
        if session_id is None:
            return
        if path is None:
            path = session[1] = _find_transcript(str(session_id))
            if path is None:
                return
        offset, data = await asyncio.to_thread(_read_from, path, offset)
        # Whole lines only: the rest goes with the next shipment.
        data = data[: data.rfind(b"\n") + 1]
        if data:
            project = os.path.basename(os.path.dirname(path))
            await self.fleet.ship_session(run_id, str(session_id), project, data, offset)
            session[2] = offset + len(data)

    async def _pump(
        self, run_id: str, pending: list[dict[str, Any]], wake: asyncio.Event, active: _Active
    ) -> None:
        """Send the run's events to its stream, in order, in batches, and its session
        transcript after them."""
        while True:
            await wake.wait()
            wake.clear()
            if pending:
                batch = pending[:]
                del pending[:]
                await self._send(run_id, batch, active)
                with contextlib.suppress(FleetError, OSError):
                    await self._ship(run_id, active)
                    await self._ship_checkpoint(run_id, active)
            if active.handle.done and not pending:
                return

    async def _keep_lease(self, active: _Active) -> None:
        """Renew the lease; stop the run when it was lost (another holder may run it) or a
        cancel was asked while no control message could reach this worker. Ship the
        session transcript meanwhile (the agent writes it between events too)."""
        ttl = self.config.heartbeat_timeout_s
        # The run's end cancels this task, but a cancellation lost in a broker call (seen:
        # the run's result was never sent, its lease renewed for ever) must not keep it
        # alive: it also ends at its next look once the run is over.
        while True:
            await asyncio.sleep(max(0.2, ttl / 4))
            if active.handle.done or active.ended:
                return
            try:
                held = await self.fleet.renew(active.lease, ttl)
                cancelled = await self.fleet.cancel_requested(active.lease.run_id)
            except FleetError as exc:
                log.warning("run %s: cannot renew its lease: %s", active.lease.run_id, exc)
                continue
            if not held:
                log.warning("run %s: lease lost, stopping it", active.lease.run_id)
                active.lost = True
                active.handle.cancel()
                return
            if cancelled:
                active.handle.cancel()
            with contextlib.suppress(FleetError, OSError):
                await self._ship(active.lease.run_id, active)


#: How the status event of a repo run's checkpoint starts (the runner's, _run/_runner.py).
CHECKPOINT_STATUS = "checkpoint_pushed: "
#: How the plan of a lost run that another worker resumes starts (see lost_run_plan).
RESUMES = "another worker resumes"


def lost_run_plan(
    options: Mapping[str, Any], session_id: str | None, pushed: str | None, run_id: str
) -> str:
    """What happens to a run whose worker was lost, in words (the end of its
    ``interrupted`` entry's error): under ``on_worker_lost`` resume, its session goes on
    elsewhere when its transcript was shipped and, for a ``repo`` run, its work was
    pushed (``pushed``: the last checkpoint); otherwise it restarts and says why."""
    policy = options.get("on_worker_lost", "resume")
    agent = options.get("agent", "claude")
    repo = options.get("repo") is not None
    if policy == "fail":
        return "on_worker_lost is fail: the run ends"
    if policy == "restart":
        return "on_worker_lost is restart: another worker restarts it from its prompt"
    if agent not in SESSION_AGENTS:
        return f"the {agent} agent's session cannot be carried: it restarts from its prompt"
    if repo and options.get("workspace") != "worktree":
        return (
            "a repo run without a workspace pushes nothing to go on from: it restarts from "
            "its prompt in a fresh clone"
        )
    if repo and pushed is None:
        return "nothing of its work was pushed yet: it restarts from its prompt in a fresh clone"
    if session_id is None:
        fresh = " in a fresh clone" if repo else ""
        return f"no session transcript was shipped yet: it restarts from its prompt{fresh}"
    if repo:
        return (
            f"{RESUMES} its session {session_id} on its pushed branch "
            f"{BRANCH_PREFIX}{run_id} (checkpoint {str(pushed)[:12]})"
        )
    return f"{RESUMES} its session {session_id}"


def options_record(message: Mapping[str, Any]) -> bool:
    """Whether the run of ``message`` is recorded in the history (``record``, default on)."""
    options = message.get("options")
    return not isinstance(options, dict) or options.get("record", True) is not False


def _mark_interrupted(run_id: str, error: str) -> None:
    with contextlib.suppress(HistoryError):
        store = open_store()
        try:
            store.update_status(run_id, Status.INTERRUPTED.value, error=error)
        finally:
            store.close()


def shared_history() -> bool:
    """Whether this worker records into a history every worker shares (PostgreSQL): only
    there can it mark the row of a run another machine lost. A per-machine SQLite history
    gets its lost row marked by that machine's own recovery when it comes back."""
    return is_postgres(history_location())


def _keep_history() -> HistoryStore | None:
    """The shared history, opened for the worker's life (None: not shared, or it cannot be
    opened: each run says why in its warnings)."""
    if not shared_history():
        return None
    try:
        return open_store()
    except HistoryError as exc:
        log.warning("the history: %s", exc)
        return None


def _mark_lost(run_id: str, error: str) -> None:
    """Mark ``interrupted`` the row of a lost worker's attempt in the shared history, if it
    is still ``running`` (a worker that was only stalled may have marked it already)."""
    try:
        store = open_store()
        try:
            record = store.get(run_id)
            if record is not None and record.id == run_id and record.status == Status.RUNNING:
                store.update_status(run_id, Status.INTERRUPTED.value, error=error)
        finally:
            store.close()
    except HistoryError as exc:
        log.warning("run %s: could not mark the lost attempt in the history: %s", run_id, exc)


def _local_id(run_id: str, attempt: Any) -> str:
    """The id of an attempt's run here: the fleet's id for the first, a fresh one after
    (the folder of the first may be on this machine too)."""
    return run_id if attempt == 1 else new_run_id()


class _ExecHandle:
    """A plain command run here (``run_command``), with a run handle's controls; its
    output lines become :class:`CommandOutputEvent` and its end a :class:`RunResult`."""

    def __init__(
        self,
        run_id: str,
        argv: list[str],
        options: Mapping[str, Any],
        on_event: Callable[[Any], None],
    ) -> None:
        from cc_executor._engine import SupervisedProcess
        from cc_executor._run._prepare import limits_of

        self._proc = SupervisedProcess(
            argv,
            stdin=options.get("stdin"),
            cwd=options["cwd"],
            extra_env=dict(options["env"]),
            timeout=options.get("timeout"),
            idle_timeout=options.get("idle_timeout"),
            first_output_timeout=options.get("first_output_timeout"),
            grace=float(options.get("grace", 5.0)),
            run_id=run_id,
            limits=limits_of(dict(options)),
        )
        self._on_event = on_event
        self._stopping: set[asyncio.Future[Any]] = set()
        self._task = asyncio.ensure_future(self._go())

    async def _go(self) -> RunResult:
        from cc_executor._run._exec import run_command

        async def on_output(item: Any) -> None:
            self._on_event(CommandOutputEvent(t=item.t, stream=item.stream, text=item.text))

        done = await run_command(self._proc, on_output=on_output)
        return RunResult(
            run_id=done.run_id,
            status=done.status,
            partial=done.partial,
            timeout_after=done.timeout_after,
            duration_s=done.duration_s,
            exit_code=done.exit_code,
            error=done.error,
            run_dir=done.run_dir,
            event_log=done.stdout_path,
            stderr_tail=done.stderr_tail,
            warnings=list(done.warnings),
            incomplete_files=list(done.incomplete_files),
            peak_memory_bytes=done.peak_memory_bytes,
            cpu_time_s=done.cpu_time_s,
        )

    @property
    def done(self) -> bool:
        return self._task.done()

    def cancel(self) -> None:
        if self._proc.running:
            stopping = asyncio.ensure_future(self._proc.cancel())
            self._stopping.add(stopping)
            stopping.add_done_callback(self._stopping.discard)

    def pause(self) -> bool:
        return self._proc.pause()

    def resume(self) -> bool:
        return self._proc.resume()

    async def wait(self) -> RunResult:
        return await asyncio.shield(self._task)


#: What runs a run message here: an agent run's handle, or a command's.
_Handle = RunHandle | _ExecHandle
#: The agents whose session a fleet carries to another worker (their transcript is shipped).
SESSION_AGENTS = ("claude",)
#: The prompt of a resumed attempt: the session holds the task and what was done of it.
CONTINUE_PROMPT = (
    b"The process running this session was stopped before it finished (its machine was "
    b"lost). Continue the task from where it stopped."
)
_PROJECT = re.compile(r"[A-Za-z0-9._-]{1,255}")
_SESSION = re.compile(r"[A-Za-z0-9-]{1,128}")


def _claude_dir(env: Mapping[str, str] | None = None) -> str:
    """Claude Code's configuration folder, which holds ``projects/*/SESSION.jsonl``."""
    env = env or {}
    given = env.get("CLAUDE_CONFIG_DIR") or os.environ.get("CLAUDE_CONFIG_DIR")
    return given or os.path.join(os.path.expanduser("~"), ".claude")


def _find_transcript(session_id: str) -> str | None:
    if not _SESSION.fullmatch(session_id):
        return None
    found = glob.glob(
        os.path.join(glob.escape(_claude_dir()), "projects", "*", f"{session_id}.jsonl")
    )
    return found[0] if found else None


def _read_from(path: str, offset: int) -> tuple[int, bytes]:
    """The bytes of ``path`` from ``offset`` on (from 0 when it shrank: rewritten)."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        offset = 0 if size < offset else offset
        f.seek(offset)
        return offset, f.read(size - offset)


def _restore_session(shipped: tuple[str, str, bytes], options: Mapping[str, Any]) -> str | None:
    """Write a shipped transcript where Claude Code looks for it on this machine; the path,
    or None when it cannot be (names that are not plain, no ``cwd`` to resume in)."""
    session_id, project, data = shipped
    if not _SESSION.fullmatch(session_id) or not _PROJECT.fullmatch(project):
        return None
    if project in (".", "..") or not (options.get("cwd") or options.get("repo_branch")):
        return None
    env = options.get("env") if isinstance(options.get("env"), Mapping) else None
    folder = os.path.join(_claude_dir(env), "projects", project)
    try:
        os.makedirs(folder, mode=0o700, exist_ok=True)
        path = os.path.join(folder, f"{session_id}.jsonl")
        with open(path, "wb") as f:
            f.write(data[: data.rfind(b"\n") + 1])
    except OSError as exc:
        log.warning("cannot restore session %s: %s", session_id, exc)
        return None
    return path
