"""Runs on a fleet, seen from the submitter: ``start_run(prompt, fleet=URL)`` queues the run
for any worker and returns a :class:`FleetRunHandle`, which follows the run's event stream
(every event, in order, live) to its result and controls the run wherever it is."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import functools
import inspect
import os
import sys
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from cc_executor._agents._types import AgentEvent, RunStatus, StatusEvent
from cc_executor._errors import FleetError, RunRefused
from cc_executor._fleet import open_fleet
from cc_executor._fleet._base import DEFAULT_QUEUE, PAUSE, RESUME, check_queue
from cc_executor._ids import new_run_id
from cc_executor._run._options import RunOptions
from cc_executor._run._permissions import (
    Decider,
    PermissionDecision,
    PermissionRequest,
    as_decision,
    call_decider,
)
from cc_executor._run._prepare import COMMAND_OPTIONS, LIMIT_OPTIONS, check_option
from cc_executor._run._result import RunResult
from cc_executor._run._runner import EventCallback, RunHandle

if TYPE_CHECKING:
    from cc_executor._fleet._base import Fleet

#: The version of the run message a worker receives (it refuses another).
MESSAGE_VERSION = 1
#: Seconds one read of the event stream blocks before it looks again.
_READ_BLOCK_S = 5.0
#: The longest ``message`` and ``decided_by`` of a decision a worker takes from its submitter.
_MAX_DECISION_TEXT = 2000
#: Seconds a follower keeps trying to reach a broker that went away (it retries with
#: back-off, then raises FleetError): a restarted Redis is back well within it.
BROKER_PATIENCE_S = 300.0


async def read_stream(
    fleet: Fleet, run_id: str, after: str, block_s: float = _READ_BLOCK_S
) -> list[tuple[str, dict[str, Any]]]:
    """One read of the run's stream after ``after``; while the broker is unreachable, tried
    again with back-off for up to :data:`BROKER_PATIENCE_S` (then its FleetError)."""
    delay, deadline = 0.1, time.monotonic() + BROKER_PATIENCE_S
    while True:
        try:
            return await fleet.read(run_id, after, block_s)
        except FleetError:
            if time.monotonic() + delay > deadline:
                raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


@functools.cache
def _event_types() -> dict[str, tuple[type[AgentEvent], frozenset[str]]]:
    """Each event type's class and the fields its JSON form gives (once: a run may send
    thousands of events a second)."""
    found: dict[str, tuple[type[AgentEvent], frozenset[str]]] = {}
    pending: list[type[AgentEvent]] = [AgentEvent]
    while pending:
        cls = pending.pop()
        names = frozenset(f.name for f in dataclasses.fields(cls)) - {"t", "raw"}
        found.setdefault(cls.type, (cls, names))
        pending.extend(cls.__subclasses__())
    return found


def event_from_dict(data: Mapping[str, Any]) -> AgentEvent:
    """The typed event of a JSON form (``AgentEvent.to_dict``); ``t`` is the time it was
    read here (the worker's clock means nothing on this machine)."""
    types = _event_types()
    cls, names = types.get(str(data.get("type"))) or types["event"]
    return cls(t=time.monotonic(), **{k: v for k, v in data.items() if k in names})


def result_from_dict(data: Mapping[str, Any]) -> RunResult:
    """The :class:`RunResult` of its JSON form (``RunResult.to_dict``), without ``process``
    (the process ran on the worker: its receipts are in the worker's history)."""
    names = {f.name for f in dataclasses.fields(RunResult)} - {"process", "status"}
    return RunResult(
        status=RunStatus(data["status"]), **{k: v for k, v in data.items() if k in names}
    )


def run_message(
    prompt: str | bytes,
    run_id: str,
    options: Mapping[str, Any],
    queue: str = DEFAULT_QUEUE,
) -> dict[str, Any]:
    """What a worker receives for a run: JSON only (paths as strings)."""
    data = prompt.encode("utf-8") if isinstance(prompt, str) else bytes(prompt)
    plain: dict[str, Any] = {}
    for key, value in options.items():
        if isinstance(value, os.PathLike):
            plain[key] = os.fspath(value)
        elif isinstance(value, (list, tuple)):
            plain[key] = [os.fspath(v) if isinstance(v, os.PathLike) else v for v in value]
        else:
            plain[key] = value
    return {
        "version": MESSAGE_VERSION,
        "run_id": run_id,
        "prompt_b64": base64.b64encode(data).decode("ascii"),
        "options": plain,
        "attempt": 1,
        "queue": queue,
    }


def decision_message(decision: PermissionDecision) -> dict[str, Any]:
    """What a submitter sends its run's worker for one permission request (JSON)."""
    return {
        "behavior": decision.behavior,
        "message": decision.message,
        "decided_by": decision.decided_by,
    }


def decision_from_message(data: Mapping[str, Any], default_by: str) -> PermissionDecision:
    """The decision a worker reads from its submitter's answer (untrusted data: anything
    but a plain ``allow`` is a deny, texts are bounded; ``updated_input`` is not taken, the
    tool runs with the input it asked about)."""
    behavior = "allow" if data.get("behavior") == "allow" else "deny"
    message = data.get("message")
    decided_by = data.get("decided_by")
    text = str(message)[:_MAX_DECISION_TEXT] if isinstance(message, str) and message else None
    if behavior == "deny" and data.get("behavior") != "deny":
        text = f"the submitter answered {str(data.get('behavior'))[:100]!r}, not allow or deny"
    who = (
        decided_by[:_MAX_DECISION_TEXT]
        if isinstance(decided_by, str) and decided_by.strip()
        else default_by
    )
    return PermissionDecision(behavior, text, who)


class FleetRunHandle(RunHandle):
    """A run queued on a fleet (see :func:`start_fleet_run`). ``wait()`` returns its
    :class:`RunResult` (``process`` is None: the process ran on the worker, whose history
    holds its receipts) or raises :class:`RunRefused` when the worker refused it;
    ``cancel()`` removes a queued run before it starts, and stops a running one (its whole
    process tree on its worker; the partial result comes back). ``pause()``/``resume()``
    ask the worker to SIGSTOP/SIGCONT the run's tree and return True once the run has
    started and until it ends (False before: a queued run cannot be paused); the worker
    then sends a ``status`` event ``paused``/``resumed`` (none if it was already so).

    ``on_permission``: asked about each ``permission_request`` event of the run (its
    policy's ``ask``), its answer sent to the worker; a request the worker decided
    meanwhile (its timeout) is no longer asked."""

    def __init__(
        self,
        fleet: Fleet,
        run_id: str,
        message: dict[str, Any],
        on_event: EventCallback | None,
        *,
        on_permission: Decider | None = None,
        decider_name: str = "callback",
    ) -> None:
        self._fleet = fleet
        self._id = run_id
        self._message = message
        self._on_event = on_event
        self._on_permission = on_permission
        self._decider_name = decider_name
        #: The permission requests being asked of ``on_permission``, by request id.
        self._asking: dict[str, asyncio.Task[None]] = {}
        self._controls: set[asyncio.Task[str]] = set()
        #: Set once the run's first event came: a worker runs it, pause() can reach it.
        self._started = False
        #: Set once the run is in the fleet's queue (a failed submission never sets it).
        self.submitted = asyncio.Event()
        self._task = asyncio.ensure_future(self._follow())

    @property
    def run_id(self) -> str:
        return self._id

    @property
    def done(self) -> bool:
        return self._task.done()

    def cancel(self) -> None:
        self.cancelled_by_caller = True
        self._schedule(self._cancel(), "cancel")

    def _schedule(self, work: Any, what: str) -> None:
        task = asyncio.ensure_future(work)
        self._controls.add(task)

        def done(task: asyncio.Task[str]) -> None:
            self._controls.discard(task)
            if not task.cancelled() and task.exception() is not None:
                # The call returned at once: a broker error is said here, never lost.
                print(
                    f"cc-executor: {what} of fleet run {self._id}: {task.exception()}",
                    file=sys.stderr,
                )

        task.add_done_callback(done)

    def pause(self) -> bool:
        if not self._started or self.done:
            return False
        self._schedule(self._fleet.command(self._id, PAUSE), "pause")
        return True

    def resume(self) -> bool:
        if not self._started or self.done:
            return False
        self._schedule(self._fleet.command(self._id, RESUME), "resume")
        return True

    async def _cancel(self) -> str:
        try:
            return await cancel_fleet_run(self._fleet, self._id)
        finally:
            if self._task.done():
                # The follower closed its connections already: close what this one opened.
                await self._fleet.aclose()

    async def wait(self) -> RunResult:
        return await asyncio.shield(self._task)

    def _permission(self, data: Mapping[str, Any]) -> None:
        """Ask ``on_permission`` about a request event (in a task: the stream goes on
        meanwhile); stop asking once the worker sends the request's decision."""
        request_id = str(data.get("request_id") or "")
        if not request_id:
            return
        if data.get("type") == "permission_decision":
            asking = self._asking.pop(request_id, None)
            if asking is not None:
                asking.cancel()
        elif data.get("type") == "permission_request" and request_id not in self._asking:
            task = asyncio.ensure_future(self._decide(request_id, data))
            self._asking[request_id] = task
            task.add_done_callback(lambda _: self._asking.pop(request_id, None))

    async def _decide(self, request_id: str, data: Mapping[str, Any]) -> None:
        assert self._on_permission is not None
        tool_input = data.get("tool_input")
        tool_use_id = data.get("tool_use_id")
        timeout = data.get("timeout_s")
        request = PermissionRequest(
            request_id,
            self._id,
            str(data.get("tool_name") or ""),
            dict(tool_input) if isinstance(tool_input, Mapping) else {},
            tool_use_id if isinstance(tool_use_id, str) else None,
            rule=data.get("rule") if isinstance(data.get("rule"), str) else None,
            requested_at=time.time(),
            timeout_s=float(timeout) if isinstance(timeout, (int, float)) else 0.0,
        )
        try:
            decision = as_decision(
                await call_decider(self._on_permission, request), self._decider_name
            )
        except Exception as exc:  # the caller's decider failed: its call is denied
            decision = PermissionDecision(
                "deny", f"the decider failed: {type(exc).__name__}: {exc}", self._decider_name
            )
        try:
            await self._fleet.answer(self._id, request_id, decision_message(decision))
        except FleetError as exc:
            # The worker denies the call at its timeout: say why here, never lose it.
            print(
                f"cc-executor: the answer to {request_id} of fleet run {self._id}: {exc}",
                file=sys.stderr,
            )

    async def _deliver(self, event: AgentEvent) -> None:
        """Pass ``event`` to ``on_event``; if it raises, the run is stopped (as a local
        run is) and the exception goes to the caller of ``wait()``."""
        assert self._on_event is not None
        try:
            outcome = self._on_event(event)
            if inspect.isawaitable(outcome):
                await outcome
        except Exception:
            await cancel_fleet_run(self._fleet, self._id)
            raise

    async def _follow(self) -> RunResult:
        try:
            await asyncio.to_thread(self._fleet.submit, self._message)
            self.submitted.set()
            after = "0"
            while True:
                for entry_id, entry in await read_stream(self._fleet, self._id, after):
                    after = entry_id
                    kind = entry.get("kind")
                    self._started = self._started or kind == "event"
                    if kind == "event" and self._on_permission is not None:
                        self._permission(entry["event"])
                    if kind == "event" and self._on_event is not None:
                        await self._deliver(event_from_dict(entry["event"]))
                    elif kind == "interrupted" and self._on_event is not None:
                        await self._deliver(interrupted_event(entry))
                    elif kind == "result":
                        return result_from_dict(entry["result"])
                    elif kind == "refused":
                        raise RunRefused(str(entry.get("error")))
        finally:
            for asking in self._asking.values():
                asking.cancel()
            if self._asking:
                await asyncio.wait(set(self._asking.values()))
            # A cancel of a queued run writes the result this loop returns on, then goes on
            # with the same connections: let it end before they close.
            if self._controls:
                await asyncio.wait(set(self._controls))
            await self._fleet.aclose()


def entry_seq(entry_id: str) -> int:
    """The SEQ of a stream entry: its number in the run (ids are ``"0-SEQ"``)."""
    return int(entry_id.rpartition("-")[2])


async def attach_fleet_run(
    fleet: Fleet,
    run_id: str,
    *,
    after: int = 0,
    on_event: Callable[[int, AgentEvent], Any] | None = None,
) -> RunResult:
    """Follow run ``run_id`` of ``fleet`` from any machine: ``on_event(seq, event)`` for each
    event whose SEQ is above ``after`` (0: from the start), in order, live, then its
    :class:`RunResult` (an ended run replays its stream and returns at once). Raises
    :class:`FleetError` for a run the fleet does not know (never submitted to it, or
    ended more than the retention time ago) and :class:`RunRefused` for a refused one."""
    if after < 0:
        raise ValueError(f"--after must be a sequence number >= 0, got {after}")
    if not await fleet.known(run_id):
        raise FleetError(unknown_run(fleet, run_id))
    cursor = f"0-{after}"
    while True:
        for entry_id, entry in await read_stream(fleet, run_id, cursor):
            cursor = entry_id
            kind = entry.get("kind")
            if kind in ("event", "interrupted") and on_event is not None:
                event = (
                    event_from_dict(entry["event"]) if kind == "event" else interrupted_event(entry)
                )
                outcome = on_event(entry_seq(entry_id), event)
                if inspect.isawaitable(outcome):
                    await outcome
            elif kind == "result":
                return result_from_dict(entry["result"])
            elif kind == "refused":
                raise RunRefused(str(entry.get("error")))


def interrupted_event(entry: Mapping[str, Any]) -> AgentEvent:
    """The ``interrupted`` mark a worker leaves in a run's stream when it recovers the run
    of a lost worker, as the ``status`` event its followers get: ``interrupted: ERROR``,
    the error saying which worker was lost and what happens next (without it, a follower
    saw only the next attempt's events)."""
    result = entry.get("result")
    error = result.get("error") if isinstance(result, Mapping) else None
    return StatusEvent(t=time.monotonic(), status=f"interrupted: {error or 'its worker was lost'}")


def unknown_run(fleet: Fleet, run_id: str) -> str:
    """What to say of a run ``fleet`` does not know."""
    return f"no run {run_id} on the fleet at {fleet.url}: {_unknown_why(run_id)}"


def _unknown_why(run_id: str) -> str:
    """Why the fleet may not know ``run_id``: its id dates it (a ULID), so a run older than
    the retention time has expired, a younger one never was submitted to this fleet."""
    from cc_executor._fleet._redis import RETENTION_S

    alphabet = "0123456789abcdefghjkmnpqrstvwxyz"
    if len(run_id) != 26 or any(c not in alphabet for c in run_id):
        return "not a fleet run id (26 characters of 0-9 a-z)"
    ms = 0
    for char in run_id[:10]:
        ms = ms * 32 + alphabet.index(char)
    age_s = time.time() - ms / 1000
    if age_s > RETENTION_S:
        return (
            f"it was created {age_s / 3600:.0f} h ago and runs are kept "
            f"{RETENTION_S // 3600} h after they end: it expired"
        )
    return "it was never submitted to this fleet (or its Redis lost it)"


async def control_fleet_run(fleet: Fleet, run_id: str, command: str) -> str:
    """Send ``command`` (``pause``/``resume``) to the worker running ``run_id``. Returns
    ``"requested"`` when a worker holds the run, else where it is: ``"queued"``,
    ``"over"`` or ``"unknown"`` (nothing was sent)."""
    where = await fleet.where(run_id)
    if where != "running":
        return where
    await fleet.command(run_id, command)
    return "requested"


async def cancel_fleet_run(fleet: Fleet, run_id: str) -> str:
    """Cancel run ``run_id`` of ``fleet``: a queued run never starts (its submitter gets a
    ``cancelled`` result at once); a running one is stopped by its worker. Returns what
    was done: ``"cancelled"`` (it was queued), ``"requested"`` (its worker was told),
    ``"over"`` (it had already ended) or ``"unknown"`` (never submitted to this fleet, or
    expired: nothing is written for it)."""
    if not await fleet.known(run_id):
        # cancel_queued takes any id for a queued one, and the result below would then
        # make a misspelt id look like a run that was cancelled.
        return "unknown"
    state = await fleet.cancel_queued(run_id)
    if state == "cancelled":
        result = RunResult(
            run_id=run_id,
            status=RunStatus.CANCELLED,
            error="cancelled while queued: it never started",
        )
        await fleet.finish(run_id, None, [{"kind": "result", "result": result.to_dict()}])
        return state
    if state == "running":
        await fleet.request_cancel(run_id)
        return "requested"
    return state


def _given(options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` without those at their declared default: the worker applies its own
    defaults, and its policy refuses a server-only option even when it is None."""
    given = {}
    for key, value in options.items():
        declared = RunOptions.by_name.get(RunOptions.alias_of.get(key, key))
        if declared is not None:
            default = declared.factory() if declared.factory else declared.default
            empty: tuple[Any, ...] = (None, (), [], {})
            if value == default or (value in empty and default in empty):
                continue
        given[key] = value
    return given


def start_fleet_run(
    prompt: str | bytes,
    fleet: str,
    on_event: EventCallback | None,
    options: dict[str, Any],
    queue: str | None = None,
    *,
    run_id: str | None = None,
    on_permission: Decider | None = None,
    decider_name: str = "callback",
) -> FleetRunHandle:
    """Check the options here (as for a local run), then queue the run on ``fleet``'s
    queue ``queue`` (None: the default queue) under ``run_id`` (None: a fresh one; a
    service gives its own, so that its id is the fleet's).

    A ``permission_policy`` file is read here and its rules go in the message (the worker
    cannot read this machine's files); ``on_permission`` answers its ``ask`` requests
    (without it, the worker denies them at once, as a local run without a decider)."""
    queue = check_queue(queue) if queue is not None else DEFAULT_QUEUE
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "start_run needs a running event loop (call it from async code, or use run_sync)"
        ) from None
    if not isinstance(prompt, (str, bytes)) or not prompt.strip():
        raise ValueError("the prompt is empty: the agent needs something to do")
    options = _given(options)
    if "run_id" in options or "run_dir" in options:
        raise ValueError("a fleet run's id and folder are chosen by its worker: give neither")
    RunOptions.from_kwargs(options)
    policy = _policy_data(options.pop("permission_policy", None), options.get("cwd"))
    run_id = run_id or new_run_id()
    message = run_message(prompt, run_id, options, queue)
    if policy is not None:
        message["policy"] = policy
        message["decider"] = on_permission is not None
    try:
        import orjson

        orjson.dumps(message)
    except TypeError as exc:
        raise ValueError(f"a fleet run's options must be JSON values: {exc}") from None
    return FleetRunHandle(
        open_fleet(fleet),
        run_id,
        message,
        on_event,
        on_permission=on_permission,
        decider_name=decider_name,
    )


def _policy_data(path: Any, cwd: Any) -> dict[str, Any] | None:
    """The rules of the policy file at ``path`` (relative to ``cwd``, as for a local run),
    as the data a worker parses again (None: no policy)."""
    if path is None:
        return None
    from cc_executor._run._policy import load_policy

    name = os.fspath(path)
    if not os.path.isabs(name) and cwd:
        name = os.path.join(os.fspath(cwd), name)
    return load_policy(name).to_dict()


#: The options an ``exec`` run on a fleet may have (those of the service's commands).
EXEC_OPTIONS = (*COMMAND_OPTIONS, "stdin")


def start_fleet_exec(
    argv: list[str],
    fleet: str,
    *,
    on_event: EventCallback | None = None,
    queue: str | None = None,
    run_id: str | None = None,
    **options: Any,
) -> FleetRunHandle:
    """Queue the plain command ``argv`` (no shell) on ``fleet``: a worker started with
    ``--allow-exec`` for its program runs it supervised (whole tree, timeouts, run folder,
    history), sends each output line as a
    :class:`~cc_executor._agents._types.CommandOutputEvent` and a :class:`RunResult`
    (``exit_code``, ``status``; the output itself stays in the worker's run folder).
    ``options``: ``cwd``, ``env``, ``timeout``, ``idle_timeout``, ``first_output_timeout``,
    ``grace``, ``stdin`` (text), and the resource limits ``memory_max``, ``cpus``,
    ``pids_max``, ``max_output_bytes`` (enforced on the worker, as for a local ``exec``)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError("start_fleet_exec needs a running event loop") from None
    if not isinstance(argv, list) or not argv or not all(isinstance(a, str) for a in argv):
        raise ValueError("argv must be a non-empty list of strings")
    unknown = sorted(set(options) - set(EXEC_OPTIONS))
    if unknown:
        raise ValueError(f"unknown command option(s) {', '.join(unknown)} ({EXEC_OPTIONS})")
    for name in LIMIT_OPTIONS:
        if options.get(name) is not None:
            check_option(name, options[name])  # said here, not as the worker's refusal
    queue = check_queue(queue) if queue is not None else DEFAULT_QUEUE
    run_id = run_id or new_run_id()
    plain = {k: os.fspath(v) if isinstance(v, os.PathLike) else v for k, v in options.items()}
    message = {
        "version": MESSAGE_VERSION,
        "run_id": run_id,
        "argv": list(argv),
        "options": plain,
        "attempt": 1,
        "queue": queue,
    }
    return FleetRunHandle(open_fleet(fleet), run_id, message, on_event)
