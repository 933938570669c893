"""The run manager: what the HTTP, WebSocket and MCP interfaces share.

It keeps a registry of the runs it started (Claude Code runs and, when allowed, commands),
numbers every event of a run (``seq`` 1, 2, 3, ... per run) and keeps the most recent ones
in memory so a subscriber that reconnects can continue exactly where it stopped. Runs are
started through a queue with a concurrency limit; a full queue refuses new runs
(:class:`QueueFull`) instead of spawning without bound. Runs belong to the manager, not to
the connection that started them: a client that goes away leaves its runs running.

Bounds (all per manager, set in :class:`ManagerConfig`):

- at most ``max_concurrent`` runs execute at once; at most ``max_queued`` more wait;
- a run keeps its last ``max_events`` events for replay (a little more between trims), and
  all runs together keep at most ``max_event_bytes`` of events in memory (finished runs'
  oldest events go first). An event over 64 KiB is kept on disk, not in memory: a command's
  huge line as a reference into its output file, anything else in a private spool file.
  A subscriber that asks for dropped events gets one ``{"type": "gap"}`` event saying which
  sequence numbers are gone, then the rest; the full record is the run's event log on disk;
- at most ``max_finished`` finished runs stay in memory (oldest dropped first); older ones
  are still answered from the history store.

With a :class:`~cc_executor._service._queue.RunQueue` (``serve`` gives it one), a run is
durable from its 202 on: its request is saved in the queue folder and it has a ``queued``
row in the history until it starts. :meth:`RunManager.drain` stops a server gracefully: no
new run, the running ones get a grace period and are then stopped as ``interrupted``, the
queued ones stay queued on disk; :meth:`RunManager.requeue` queues them again in the next
server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import stat
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cc_executor._errors import CCExecutorError, FleetError
from cc_executor._errors import Conflict as Conflict
from cc_executor._errors import FleetUnavailable as FleetUnavailable
from cc_executor._errors import Forbidden as Forbidden
from cc_executor._errors import InvalidRequest as InvalidRequest
from cc_executor._errors import NotFound as NotFound
from cc_executor._errors import QueueFull as QueueFull
from cc_executor._errors import ServiceError as ServiceError
from cc_executor._errors import ShuttingDown as ShuttingDown
from cc_executor._errors import Unavailable as Unavailable
from cc_executor._ids import new_run_id
from cc_executor._run._options import RunOptions
from cc_executor._run._permissions import PermissionDecision, PermissionRequest
from cc_executor._service._policy import DEFAULT_AGENT, RunPolicy, check_option_names
from cc_executor._service._queue import RunQueue
from cc_executor._service._runs import (
    PAUSED,
    QUEUED,
    RUNNING,
    SPILL_BYTES,
    Event,
    EventBudget,
    EventSpool,
    ManagedRun,
    RunFeed,
    RunFilter,
    list_view,
)
from cc_executor._status import Status
from cc_executor._store import (
    HistoryError,
    HistoryStore,
    Query,
    RunRecord,
    preview,
    redact_argv,
    verify,
)

#: Default of ``max_event_bytes`` (``serve --max-event-bytes``).
DEFAULT_MAX_EVENT_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class ManagerConfig:
    """Limits and policy of a :class:`RunManager`.

    - ``max_concurrent``: runs executing at once (>= 1).
    - ``max_queued``: runs waiting for a slot; one more is refused with :class:`QueueFull`.
    - ``max_events``: events kept per run for replay (see the module docstring).
    - ``max_event_bytes``: bytes of events (their JSON size) all runs keep in memory.
    - ``max_finished``: finished runs kept in memory.
    - ``exec_allowlist``: executables a caller may run as commands (names looked up on the
      server's ``PATH``, or absolute paths), each optionally followed by the arguments a
      command must start with (``"pytest -q"``, split like a shell would); empty means
      commands are refused.
    - ``allow_env``: environment variables callers may also set for agent runs, beyond
      those that configure an agent; ``exec_env``: the only ones they may set for commands.
    - ``exec_policy``: a TOML file of further commands (argv prefixes or patterns, each
      with the variables a caller may set for it; see ``_service/_exec_policy.py``).
    - ``allow_dirs``: roots a run's ``cwd`` must be inside (after resolving symlinks);
      empty means the server's working directory only.
    - ``agents``: the agents callers may run; the first runs when a caller names none.
    - ``agent_defaults``: by agent, options applied to its runs before the caller's (the
      server's ``agent_path``, ``base_url`` and ``agent_spec``); callers cannot override
      server-only options.
    - ``fleet`` (and ``fleet_queue``): agent runs and task lists go to this fleet's queue
      (docs/fleet.md) under the same ids, events and controls; the workers apply their
      own policy and agent settings (of ``agent_defaults`` only the permission policy is
      sent, its rules applied by the worker, its ask answered here). Commands still
      run here. ``max_concurrent`` then bounds the fleet runs in flight from this server.
    """

    max_concurrent: int = 4
    max_queued: int = 64
    max_events: int = 10_000
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_finished: int = 1_000
    exec_allowlist: Sequence[str] = ()
    allow_dirs: Sequence[str | os.PathLike[str]] = ()
    allow_env: Sequence[str] = ()
    exec_env: Sequence[str] = ()
    exec_policy: str | os.PathLike[str] | None = None
    #: The git URL patterns a run's ``repo`` may match (``serve --allow-repo``; none: every
    #: repo is refused).
    allow_repos: Sequence[str] = ()
    agents: Sequence[str] = (DEFAULT_AGENT,)
    agent_defaults: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    fleet: str | None = None
    fleet_queue: str | None = None

    def __post_init__(self) -> None:
        for name in ("max_concurrent", "max_events", "max_finished", "max_event_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.max_queued < 0:
            raise ValueError(f"max_queued must be >= 0, got {self.max_queued}")


#: The most runs the overview reads (the newest of its period).
OVERVIEW_LIMIT = 50_000
#: How long, and how many, workers whose heartbeat stopped ``GET /fleet`` still lists
#: (as ``lost``), from when this server last saw them live.
LOST_WORKERS_KEPT_S = 3600.0
LOST_WORKERS_MAX = 100
#: A worker's heartbeat timeout when its heartbeat does not say (an older worker).
_HEARTBEAT_TIMEOUT_S = 10.0


def _heartbeat_at(worker: Event, default: float) -> float:
    beat = worker.get("heartbeat_at")
    return float(beat) if isinstance(beat, (int, float)) else default


def _worker_health(worker: Event, now: float) -> None:
    """Set ``heartbeat_age_s`` and ``health`` of a live worker: ``late`` once it has
    missed two heartbeats (it sends one every quarter of its timeout), else ``ok``."""
    beat = worker.get("heartbeat_at")
    age = round(max(0.0, now - beat), 3) if isinstance(beat, (int, float)) else None
    timeout = worker.get("heartbeat_timeout_s")
    if not isinstance(timeout, (int, float)) or timeout <= 0:
        timeout = _HEARTBEAT_TIMEOUT_S
    worker["heartbeat_age_s"] = age
    worker["health"] = "late" if age is not None and age > timeout / 2 else "ok"


#: The kinds of run the service lists: agent runs, commands and task lists.
RUN_KINDS = ("run", "exec", "tasks")


def _check_filters(status: str | None, kind: str | None) -> None:
    statuses = [s.value for s in Status]
    if status and status not in statuses:
        raise InvalidRequest(f"unknown status {status!r} (known: {', '.join(statuses)})")
    if kind and kind not in RUN_KINDS:
        raise InvalidRequest(f"unknown kind {kind!r} (known: {', '.join(RUN_KINDS)})")


class RunManager:
    """Registry, queue and event logs of the runs started through a server.

    Create it inside the running event loop and call :meth:`drain` (or :meth:`aclose`,
    which cancels what is still running: the history records those runs as ``cancelled``)
    when the server stops. ``store`` (optional) answers for runs that are no longer in
    memory and for listings. ``queue`` (optional, its lock held): where queued runs are
    saved until they start (see the module docstring).
    """

    def __init__(
        self,
        config: ManagerConfig | None = None,
        store: HistoryStore | None = None,
        queue: RunQueue | None = None,
    ):
        self.config = config or ManagerConfig()
        self.store = store
        self.queue = queue
        self._runs: OrderedDict[str, ManagedRun] = OrderedDict()
        #: The runs of running task lists' tasks: their list (whose pending queue holds
        #: their permission requests) and their task id, by the task run's id.
        self._task_runs: dict[str, tuple[ManagedRun, str]] = {}
        self._slots = asyncio.Semaphore(self.config.max_concurrent)
        self._waiting = 0
        self._draining = False
        self._drain_began: float | None = None
        self._running_at_drain: list[ManagedRun] = []
        #: History updates of queued runs, in threads: awaited before the server exits.
        self._pending_writes: set[asyncio.Future[None]] = set()
        self._budget = EventBudget(self.config.max_event_bytes)
        #: Every run's list line as it changes (``GET /runs/events``).
        self.feed = RunFeed()
        #: The fleet's workers as last seen live, and those since gone (``GET /fleet``),
        #: by worker id; the gone ones oldest first.
        self._workers_seen: dict[str, Event] = {}
        self._workers_lost: OrderedDict[str, Event] = OrderedDict()
        self._spool = EventSpool()
        self._policy = RunPolicy(
            self.config.allow_dirs,
            self.config.exec_allowlist,
            allow_env=self.config.allow_env,
            exec_env=self.config.exec_env,
            exec_policy=self.config.exec_policy,
            agents=self.config.agents,
            allow_repos=self.config.allow_repos,
        )

    # ---------------------------------------------------------------- queries

    @property
    def exec_allowed(self) -> bool:
        """True when commands may be run (an allowlist was given)."""
        return self._policy.exec_allowed

    def stats(self) -> Event:
        """Counts for ``/health``: runs in memory, running, waiting, limits."""
        running = sum(1 for r in self._runs.values() if r.status in (RUNNING, PAUSED))
        return {
            "runs_in_memory": len(self._runs),
            "running": running,
            "queued": self._waiting,
            "max_concurrent": self.config.max_concurrent,
            "max_queued": self.config.max_queued,
            "exec_allowed": self.exec_allowed,
        }

    def get(self, run_id: str) -> ManagedRun:
        """The live or recently finished run ``run_id``; :class:`NotFound` otherwise."""
        run = self._runs.get(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r} in this server's memory")
        return run

    async def describe(self, run_id: str) -> Event:
        """The run's summary, from memory or else from the history; :class:`NotFound`."""
        run = self._runs.get(run_id)
        if run is not None:
            return await run.asummary()
        record = await self._history_get(run_id)
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        return {"live": False, "from_history": True, **_record_view(record)}

    async def record(self, run_id: str) -> Event | None:
        """The history's view of run ``run_id`` (its receipts), if it ran inside an
        allowed root; else None."""
        record = await self._history_get(run_id)
        return None if record is None else _record_view(record)

    async def _history_get(self, run_id: str) -> RunRecord | None:
        """The history's run ``run_id`` if it ran inside an allowed root (else None)."""
        if self.store is None:
            return None
        store = self.store

        def get() -> RunRecord | None:
            record = store.get(run_id)
            inside = self._policy.inside
            return record if record is not None and _ran_inside(record, inside, store) else None

        return await asyncio.to_thread(get)

    async def _visible(self, run_id: str) -> bool:
        """Whether this server may show run ``run_id``: live here, or in the history
        inside an allowed root (what ``describe`` answers for)."""
        return run_id in self._runs or await self._history_get(run_id) is not None

    def _workspace_repo(self, repo: Any) -> str:
        """The folder ``repo`` of a workspace query (None: the first allowed root), checked
        like a run's cwd: absolute, a directory, inside an allowed root."""
        try:
            return self._policy.check_cwd(repo)
        except ServiceError as exc:
            # The policy words it for a run's cwd; here the field is called repo.
            raise type(exc)(str(exc).replace("cwd", "repo", 1)) from None

    async def workspaces(self, repo: Any = None) -> list[dict[str, Any]]:
        """``workspace list`` for the repository holding ``repo`` (inside an allowed root),
        keeping only the workspaces of runs this server may see (a branch of a run it
        does not know, or of one made outside the allowed roots, is left out)."""
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._workspace import workspace_list

        folder = self._workspace_repo(repo)
        try:
            found = await asyncio.to_thread(workspace_list, folder)
        except WorkspaceError as exc:
            raise InvalidRequest(f"repo {folder}: {exc}") from None
        return [w for w in found if await self._visible(str(w.get("run_id")))]

    async def prune_workspaces(
        self, older_than_s: float, repo: Any = None, *, dry_run: bool = False
    ) -> list[str]:
        """``workspace prune`` for the repository holding ``repo`` (inside an allowed root),
        limited to the runs this server may see; the ids of the runs whose workspaces went
        (or would go)."""
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._workspace import workspace_discard, workspace_prune

        folder = self._workspace_repo(repo)
        try:
            old = await asyncio.to_thread(workspace_prune, older_than_s, folder, dry_run=True)
        except WorkspaceError as exc:
            raise InvalidRequest(f"repo {folder}: {exc}") from None
        # A run still going keeps its workspace, however long ago it started.
        live = {run_id for run_id, r in self._runs.items() if not r.done}
        doomed = [r for r in old if r not in live and await self._visible(r)]
        if not dry_run:
            for run_id in doomed:
                with contextlib.suppress(WorkspaceError, OSError):
                    await asyncio.to_thread(workspace_discard, run_id)
        return doomed

    async def list_runs(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        parent_id: str | None = None,
        limit: int = 100,
    ) -> list[Event]:
        """Runs newest first: those in memory and the history's, filtered alike.
        ``limit`` is capped at 1000 (see :meth:`list_page` for more filters and pages)."""
        runs, _ = await self.list_page(
            status=status, kind=kind, since=since, parent_id=parent_id, limit=limit
        )
        return runs

    async def list_page(
        self,
        *,
        status: str | None = None,
        kind: str | None = None,
        since: float | None = None,
        until: float | None = None,
        parent_id: str | None = None,
        agent: str | None = None,
        model: str | None = None,
        text: str | None = None,
        before: tuple[float, str] | None = None,
        brief: bool = False,
        limit: int = 100,
    ) -> tuple[list[Event], tuple[float, str] | None]:
        """A page of runs newest first, and the key to pass as ``before`` for the next
        page (None on the last). ``text``: in the prompt's preview; ``since``/``until``:
        the start time; ``brief``: list lines, without answers.

        A run in memory is listed from memory (its live status), keyed by when the
        server accepted it; the history's other runs by their start. Every run appears on
        exactly one page, however deep: pages are cut by that key (keyset pagination),
        never by an offset.

        An unknown ``status`` or ``kind`` is an :class:`InvalidRequest`: a misspelt
        filter would otherwise match nothing, and the caller would take an empty page for
        an answer."""
        _check_filters(status, kind)
        limit = max(1, min(limit, 1000))
        # The same filter as the live feed's (GET /runs/events), so the two agree.
        wanted = RunFilter(status, kind, since, until, parent_id, agent, model, text)
        in_memory = list(self._runs.values())
        found: list[tuple[tuple[float, str], ManagedRun | RunRecord]] = []
        for run in in_memory:
            key = (run.created_at, run.id)
            if wanted.matches(run) and not (before and key >= before):
                found.append((key, run))
        if self.store is not None:
            known = {run.id for run in in_memory}
            query = Query(
                status=status,
                kind=kind,
                since=since,
                until=until,
                parent_id=parent_id,
                agent=agent,
                model=model,
                text=text,
                before=before,
                # One more than a page: whether there is a next page.
                limit=limit + 1 + len(known),
            )
            store, inside = self.store, self._policy.inside

            def visible() -> list[RunRecord]:
                # Runs of other folders are not a remote caller's to read (their prompts,
                # answers and session ids): only those that ran inside an allowed root.
                return [
                    r for r in store.query(query) if r.id not in known and _ran_inside(r, inside)
                ]

            records = await asyncio.to_thread(visible)
            found.extend(((r.started_at, r.id), r) for r in records)
        found.sort(key=lambda item: item[0], reverse=True)
        page = found[:limit]
        out: list[Event] = []
        for _, item in page:
            if isinstance(item, ManagedRun):
                out.append(list_view(item) if brief else await item.asummary())
            else:
                out.append({"live": False, "from_history": True, **_record_view(item)})
        return out, page[-1][0] if len(found) > limit else None

    async def overview(self, since: float, until: float | None = None) -> Event:
        """What the runs of the history started in ``[since, until)`` add up to: counts by
        status, cost per day (UTC) and per model, the slowest and most expensive runs, and
        the failures grouped by reason. Reads at most :data:`OVERVIEW_LIMIT` runs (the
        newest; ``truncated`` says so); only runs of the allowed folders count."""
        if self.store is None:
            return {"runs": 0, "truncated": False, "by_status": {}, "cost_by_day": {},
                    "cost_by_model": {}, "slowest": [], "costliest": [],
                    "failures": []}  # fmt: skip
        store, inside = self.store, self._policy.inside
        query = Query(since=since, until=until, limit=OVERVIEW_LIMIT + 1)

        def read() -> list[RunRecord]:
            return [r for r in store.query(query) if _ran_inside(r, inside)]

        records = await asyncio.to_thread(read)
        truncated = len(records) > OVERVIEW_LIMIT
        records = records[:OVERVIEW_LIMIT]
        by_status: dict[str, int] = {}
        by_day: dict[str, float] = {}
        by_model: dict[str, float] = {}
        failures: dict[str, int] = {}
        for r in records:
            by_status[r.status] = by_status.get(r.status, 0) + 1
            cost = r.cost_usd or 0.0
            day = time.strftime("%Y-%m-%d", time.gmtime(r.started_at))
            by_day[day] = by_day.get(day, 0.0) + cost
            model = r.model or "(unknown)"
            by_model[model] = by_model.get(model, 0.0) + cost
            if r.status not in (Status.OK.value, Status.RUNNING.value, Status.QUEUED.value):
                first = r.error.strip().splitlines()[0][:120] if r.error and r.error.strip() else ""
                reason = f"{r.status}: {first}" if first else r.status
                failures[reason] = failures.get(reason, 0) + 1

        def line(r: RunRecord) -> Event:
            return {
                "run_id": r.id,
                "status": r.status,
                "prompt_preview": r.prompt_preview,
                "duration_s": r.duration_s,
                "cost_usd": r.cost_usd,
            }

        slowest = sorted(records, key=lambda r: r.duration_s or 0.0, reverse=True)[:5]
        costliest = sorted(records, key=lambda r: r.cost_usd or 0.0, reverse=True)[:5]
        return {
            "runs": len(records),
            "truncated": truncated,
            "by_status": dict(sorted(by_status.items(), key=lambda kv: -kv[1])),
            "cost_by_day": dict(sorted(by_day.items())),
            "cost_by_model": dict(sorted(by_model.items(), key=lambda kv: -kv[1])),
            "slowest": [line(r) for r in slowest if r.duration_s],
            "costliest": [line(r) for r in costliest if r.cost_usd],
            "failures": [
                {"reason": k, "runs": v}
                for k, v in sorted(failures.items(), key=lambda kv: -kv[1])[:20]
            ],
        }

    async def answer(self, run_id: str) -> str | None:
        """The run's whole final answer (None: it has none, or not yet). A run no longer
        in memory has only a preview in the history: its answer is read back from its
        event log (the agent's result line), in a thread. :class:`NotFound`."""
        run = self._runs.get(run_id)
        if run is not None:
            result = run.result
            text = result.get("result") if isinstance(result, dict) else None
            return text if isinstance(text, str) else None
        record = await self._history_get(run_id)
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        logged = await asyncio.to_thread(_logged_answer, record)
        return logged if logged is not None else record.result_preview

    async def logged_run(self, run_id: str) -> RunRecord:
        """The history's run ``run_id`` whose event log can be replayed (an agent run no
        longer in memory: a CLI run, or one of an earlier server); :class:`NotFound`."""
        record = await self._history_get(run_id)
        if record is None:
            raise NotFound(f"no run {run_id!r}")
        log = _event_log(record)
        if log is None or not await asyncio.to_thread(os.path.isfile, log):
            raise NotFound(f"run {run_id!r} is not in this server's memory and has no event log")
        return record

    async def task_list(self, list_id: str) -> Event | None:
        """A task list's tasks, dependency graph and each task's last saved state, from
        its folder (a list no longer in memory: its history row has none of them); None
        when the list is not in the history inside the allowed roots, or unreadable."""
        if await self._history_get(list_id) is None:
            return None
        return await asyncio.to_thread(_saved_task_list, list_id)

    async def verify(self, run_id: str) -> Event:
        """Recompute the receipts of a finished run (see :func:`cc_executor._store.verify`)."""
        record = await self._history_get(run_id)
        # In a worker thread: it reads every stored file, which must not stall the loop.
        report = await asyncio.to_thread(verify, record, run_id)
        return report.to_dict()

    # ---------------------------------------------------------------- starting runs

    def submit(self, spec: Mapping[str, Any]) -> ManagedRun:
        """Validate ``spec`` and queue the run; returns at once (with a queue, once the
        request is saved).

        ``spec`` is one of ``{"prompt": str, "options": {...}}`` (a Claude Code run,
        options of :class:`~cc_executor._run._options.RunOptions`), ``{"argv": [str, ...],
        "options": {...}}`` (a command; needs the executable on the allowlist; options
        ``cwd env timeout idle_timeout first_output_timeout grace stdin`` and the resource
        limits ``memory_max cpus pids_max max_output_bytes``) or
        ``{"tasks": ...}`` (a task list). Raises :class:`InvalidRequest`, :class:`Forbidden`,
        :class:`QueueFull`, :class:`Unavailable` or :class:`ShuttingDown` (the server is
        draining, or the request cannot be saved); nothing is started then.
        """
        return self._submit(spec)

    async def check_fleet(self, spec: Any) -> None:
        """:class:`FleetUnavailable` when ``spec`` (as for :meth:`submit`) would go to the
        fleet of ``serve --fleet`` and its broker does not answer: refused at once, rather
        than answered 202 and then ended ``error`` (nothing retries a submission)."""
        if self.config.fleet is None or not isinstance(spec, Mapping):
            return
        if "prompt" not in spec and "tasks" not in spec:
            return  # commands run here, on the server
        problem = await self.fleet_problem()
        if problem is not None:
            raise FleetUnavailable(
                f"{problem}; the run was not queued: submit it again once the fleet answers"
            )

    async def fleet_problem(self) -> str | None:
        """Why the fleet of ``serve --fleet`` cannot be used now (its broker does not
        answer), or None (None too without a fleet)."""
        if self.config.fleet is None:
            return None
        from cc_executor._fleet import open_fleet

        fleet = open_fleet(self.config.fleet)
        try:
            await fleet.check()
        except FleetError as exc:
            return str(exc)
        finally:
            await fleet.aclose()
        return None

    def _submit(
        self, spec: Mapping[str, Any], *, run_id: str | None = None, created_at: float | None = None
    ) -> ManagedRun:
        """:meth:`submit`; with ``run_id``, a saved request queued again (no queue limit:
        it was accepted already; nothing saved again)."""
        if self._draining:
            raise ShuttingDown("the server is shutting down and takes no new run; retry later")
        if not isinstance(spec, Mapping):
            raise InvalidRequest("the request must be a JSON object")
        # None is "no options"; [] or "" is a wrong type, not an empty object.
        options = {} if spec.get("options") is None else spec["options"]
        if not isinstance(options, Mapping):
            raise InvalidRequest("options must be a JSON object")
        kinds = [k for k in ("prompt", "argv", "tasks") if k in spec]
        if len(kinds) != 1:
            raise InvalidRequest("give exactly one of prompt (an agent run), argv or tasks")
        unknown = sorted(set(spec) - {"prompt", "argv", "tasks", "options"})
        if unknown:
            raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
        live = sum(1 for r in self._runs.values() if not r.done)
        if run_id is None and live >= self.config.max_concurrent + self.config.max_queued:
            raise QueueFull(
                f"{live} runs are running or waiting (limits: {self.config.max_concurrent} "
                f"running, {self.config.max_queued} waiting); retry later"
            )
        new_id = run_id or new_run_id()
        if kinds[0] == "prompt":
            run, starter = self._prepare_agent_run(spec["prompt"], dict(options), new_id)
        elif kinds[0] == "tasks":
            run, starter = self._prepare_tasks(spec["tasks"], dict(options), new_id)
        else:
            run, starter = self._prepare_exec(spec["argv"], dict(options), new_id)
        if created_at is not None:
            run.created_at = created_at
        if self.queue is not None:
            if run_id is None:
                self._save_queued(run, kinds[0], spec[kinds[0]], options)
            run.persisted = True
        self._register(run)
        self._waiting += 1
        run.append({"type": "queued"})
        run._task = asyncio.ensure_future(self._drive(run, starter))
        return run

    def _save_queued(
        self, run: ManagedRun, kind: str, body: Any, options: Mapping[str, Any]
    ) -> None:
        """Save the request of ``run`` and give it a ``queued`` history row, before it is
        answered 202. The cwd is saved as resolved now: a server started elsewhere runs it
        where it was asked to run. :class:`ShuttingDown` if the request cannot be saved."""
        assert self.queue is not None
        saved = {kind: body, "options": {**options, "cwd": run.details["cwd"]}}
        try:
            self.queue.save(run.id, saved, run.created_at)
        except (OSError, TypeError, ValueError) as exc:
            raise ShuttingDown(f"cannot save the queued run's request: {exc}") from None
        if self.store is None:
            return
        record = RunRecord(
            id=run.id,
            kind=run.kind,
            cwd=str(run.details["cwd"]),
            started_at=run.created_at,
            status=Status.QUEUED.value,
            parent_id=run.details.get("parent_id"),
        )
        if kind == "prompt":
            record.prompt_preview = preview(str(body))
        elif kind == "argv":
            record.argv = redact_argv([str(a) for a in body])
        try:
            self.store.start(record)
        except HistoryError as exc:  # the saved request is what matters; the row is a view
            run.append({"type": "warning", "message": f"queued run not in the history: {exc}"})

    def _prepare_agent_run(
        self, prompt: Any, options: dict[str, Any], run_id: str
    ) -> tuple[ManagedRun, Callable[[ManagedRun], Awaitable[None]]]:

        if not isinstance(prompt, str) or not prompt:
            raise InvalidRequest("prompt must be a non-empty string")
        check_option_names(options)
        self._policy.check_agent_options(options, "")
        options["cwd"] = self._policy.check_cwd(options.get("cwd"))
        options["env"] = self._policy.check_env(options.get("env"))
        if options.get("add_dirs"):
            # Resolved now, as the cwd is: the CLI gets the folders that were checked.
            options["add_dirs"] = [self._policy.check_cwd(d) for d in options["add_dirs"]]
        agent = self._policy.agent_of(options)
        merged = {**self._agent_defaults(agent), **options, "agent": agent, "run_id": run_id}
        try:
            RunOptions.from_kwargs(merged)
        except (TypeError, ValueError) as exc:
            raise InvalidRequest(str(exc)) from None
        if options.get("resume"):
            self._check_resume(str(options["resume"]))
        details: Event = {
            "cwd": options["cwd"],
            "prompt_preview": prompt[:200],
            "agent": agent,
            "model": merged.get("model"),
        }
        if options.get("parent_id"):
            details["parent_id"] = options["parent_id"]
        run = self._new_run(run_id, "run", details)

        async def start(run: ManagedRun) -> None:
            self._recheck(merged)
            await self._run_claude(run, prompt, merged)

        return run, start

    def _check_resume(self, session_id: str) -> None:
        """Refuse a session no run inside the allowed roots has: resuming it would hand the
        caller the conversation of another folder (:class:`Forbidden`)."""
        folders: list[str | None] = []
        if self.store is not None:
            try:
                records = self.store.query(Query(session_id=session_id, limit=100))
            except HistoryError as exc:
                raise Unavailable(f"cannot check the session to resume: {exc}") from None
            folders = [record.cwd for record in records]
        self._policy.check_resume(session_id, folders)

    def _prepare_tasks(
        self, data: Any, options: dict[str, Any], run_id: str
    ) -> tuple[ManagedRun, Callable[[ManagedRun], Awaitable[None]]]:
        """A task list given as a JSON object shaped like the YAML form, or as text with
        ``options.format`` (``markdown``, ``yaml`` or ``json``). ``options`` may also hold
        ``max_parallel``, ``budget_usd``, ``budget_threshold`` and run defaults (never a
        budget webhook: where a list's notes go is not a remote caller's choice). The same
        policy as single runs applies to the defaults and to every task's own options (cwd
        and add_dirs inside the allowed roots, no server-only options, no code-loading
        environment).
        :class:`Unavailable` when the server lacks the tasks extra."""
        from cc_executor._extras import MissingExtra

        try:
            from cc_executor.tasks import TaskListError, parse_task_list, start_tasks
            from cc_executor.tasks._task_options import task_options
        except MissingExtra as exc:
            raise Unavailable(f"task lists on this server: {exc}") from None

        if not isinstance(data, (Mapping, str)) or not data:
            raise InvalidRequest("tasks must be a task list: a JSON object or text")
        fmt = options.pop("format", None)
        max_parallel = options.pop("max_parallel", None)
        budget_usd = options.pop("budget_usd", None)
        threshold = _threshold(options.pop("budget_threshold", None))
        if isinstance(data, str) and fmt not in ("markdown", "yaml", "json"):
            raise InvalidRequest(
                "a task list given as text needs options.format: markdown|yaml|json"
            )
        self._policy.check_agent_options(options, "")
        options["cwd"] = self._policy.check_cwd(options.get("cwd"))
        options["env"] = self._policy.check_env(options.get("env"))
        try:
            spec = parse_task_list(data, format=fmt, source="<request>", base_dir=options["cwd"])
        except TaskListError as exc:
            raise InvalidRequest(str(exc)) from None
        for task in spec.tasks:
            self._policy.check_agent_options(task.options, f'task "{task.id}": ')
        options["agent"] = self._policy.agent_of(options)
        defaults = options
        # Each task gets the server's options of its own agent (a list may mix agents).
        configured = replace(
            spec,
            tasks=tuple(
                replace(
                    task,
                    options={
                        **self._agent_defaults(task.options.get("agent", options["agent"])),
                        **task.options,
                    },
                )
                for task in spec.tasks
            ),
        )
        try:
            task_options(configured, defaults)
        except (TaskListError, TypeError, ValueError) as exc:
            raise InvalidRequest(str(exc)) from None
        details: Event = {"cwd": options["cwd"], "tasks": [t.id for t in spec.tasks]}
        # The dependency graph, for a view of the list (the dashboard draws it).
        details["graph"] = {
            "waves": spec.waves(),
            "depends_on": {t.id: list(t.depends_on) for t in spec.tasks},
        }
        run = self._new_run(run_id, "tasks", details)
        run.resume_env = options["env"]

        async def start(run: ManagedRun) -> None:
            # The list's and every task's folders, checked again as the list starts.
            self._recheck(options)
            for task in spec.tasks:
                self._policy.check_agent_options(task.options, f'task "{task.id}": ')

            def on_event(task_id: str, event: Any) -> None:
                run.append({"task_id": task_id, **event.to_dict()})

            def check_task(task_id: str, task_options: dict[str, Any]) -> None:
                # Each task's folders again as its run starts: one swapped for a symlink
                # while earlier tasks ran would otherwise take it outside (L4).
                self._recheck(task_options)
                self._task_runs[task_options["run_id"]] = (run, task_id)

            async def on_permission(task_id: str, request: PermissionRequest) -> Any:
                # The list's queue holds its tasks' requests: decided by the list's id or
                # by the task run's.
                return await _pending(run, request)

            # A fleet's task runs ask here too (their workers send each ask back).
            deciders: dict[str, Any] = {"on_permission": on_permission, "_decider_name": "service"}
            handle = start_tasks(
                configured,
                max_parallel=max_parallel,
                budget_usd=budget_usd,
                budget_threshold=threshold,
                on_event=on_event,
                list_id=run_id,
                check_task=check_task,
                fleet=self.config.fleet,
                queue=self.config.fleet_queue,
                **deciders,
                **defaults,
            )
            run._control = _TaskListControl(handle)
            if run.cancel_requested:
                handle.cancel()
            try:
                result = await handle.wait()
            finally:
                for task_run in [k for k, (r, _) in self._task_runs.items() if r is run]:
                    del self._task_runs[task_run]
            self._finish(run, str(result.status.value), result=result.to_dict())

        return run, start

    def resume_tasks(self, list_id: Any, spec: Mapping[str, Any] | None = None) -> ManagedRun:
        """Resume the finished or interrupted task list ``list_id`` as ``tasks resume``
        does: the tasks that ended ``ok`` are kept (they feed templates and are not run
        again), every other task runs again; the list goes on under its own id, as a new
        live run of this server (its events numbered afresh).

        ``spec`` may hold ``options``: run options put over the list's saved ones,
        ``max_parallel``, ``budget_usd`` and ``budget_threshold``. ``env`` is never saved:
        without one, the env this server was given for the list (kept in memory only) is
        used again. The saved
        list is checked as a new one would be (its folder and every task's inside the
        allowed roots, no server-only option but the server's own, allowed agents), and
        again as each task starts. Raises :class:`NotFound`, :class:`Conflict` (the list
        is live here or in another process), :class:`Forbidden`, :class:`InvalidRequest`,
        :class:`QueueFull`, :class:`Unavailable` or :class:`ShuttingDown`."""
        from cc_executor._extras import MissingExtra

        try:
            from cc_executor.tasks import TaskListError, TaskListNotFound, start_resume
            from cc_executor.tasks._spec import TaskListSpec
            from cc_executor.tasks._state import LIST_ID, find_list
            from cc_executor.tasks._task_options import (
                check_limits,
                check_run_defaults,
                task_options,
            )
        except MissingExtra as exc:
            raise Unavailable(f"task lists on this server: {exc}") from None

        if self._draining:
            raise ShuttingDown("the server is shutting down and takes no new run; retry later")
        if not isinstance(list_id, str) or not LIST_ID.match(list_id):
            raise NotFound(f"no task list {str(list_id)[:100]!r}")
        spec = spec if spec is not None else {}
        if not isinstance(spec, Mapping):
            raise InvalidRequest("the request must be a JSON object")
        unknown = sorted(set(spec) - {"options"})
        if unknown:
            raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
        given = {} if spec.get("options") is None else spec["options"]
        if not isinstance(given, Mapping):
            raise InvalidRequest("options must be a JSON object")
        given = dict(given)
        max_parallel = given.pop("max_parallel", None)
        budget_usd = given.pop("budget_usd", None)
        threshold = _threshold(given.pop("budget_threshold", None))
        earlier = self._runs.get(list_id)
        if earlier is not None and not earlier.done:
            raise Conflict(f"task list {list_id} is {earlier.status}: cancel it or let it end")
        if earlier is not None and earlier.kind != "tasks":
            raise InvalidRequest(f"run {list_id} is not a task list")
        try:
            folder = find_list(list_id)
            if folder.in_use():
                raise Conflict(f"task list {list_id} is being run by another process")
            saved = TaskListSpec.from_dict(folder.read_spec())
            meta = folder.read_list()
        except TaskListNotFound:
            raise NotFound(f"no task list {list_id!r}") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise Unavailable(f"cannot read task list {list_id}: {exc}") from None
        if meta.get("fleet") and self.config.fleet is None:
            raise Forbidden(f"task list {list_id} ran on a fleet; this server runs none")
        defaults = dict(meta.get("run_defaults") or {})
        # Checked as a new list's would be: a list started elsewhere (by the CLI, or under
        # another policy) must not run here what this server would refuse.
        self._policy.check_agent_options(defaults, "the list's saved options: ")
        self._policy.check_agent_options(given, "")
        for task in saved.tasks:
            own = self._agent_defaults(task.options.get("agent", defaults.get("agent", "")))
            # The server's own options were added to each task when it started the list.
            added = {k for k, v in own.items() if task.options.get(k) == v}
            options = {k: v for k, v in task.options.items() if k not in added}
            self._policy.check_agent_options(options, f'task "{task.id}": ')
            self._policy.agent_of(task.options, f'task "{task.id}": ')
        merged = {**defaults, **given}
        merged["cwd"] = self._policy.check_cwd(merged.get("cwd"))
        env = given.get("env")
        if env is None and earlier is not None:
            env = earlier.resume_env  # what this server was given for the list
        merged["env"] = self._policy.check_env(env)
        merged["agent"] = self._policy.agent_of(merged)
        try:
            check_limits(max_parallel, budget_usd)
            check_run_defaults(merged)
            task_options(saved, merged)
        except (TaskListError, TypeError, ValueError) as exc:
            raise InvalidRequest(str(exc)) from None
        live = sum(1 for r in self._runs.values() if not r.done)
        if live >= self.config.max_concurrent + self.config.max_queued:
            raise QueueFull(
                f"{live} runs are running or waiting (limits: {self.config.max_concurrent} "
                f"running, {self.config.max_queued} waiting); retry later"
            )
        details: Event = {"cwd": merged["cwd"], "tasks": [t.id for t in saved.tasks]}
        details["graph"] = {
            "waves": saved.waves(),
            "depends_on": {t.id: list(t.depends_on) for t in saved.tasks},
        }
        details["resumed"] = int(meta.get("sessions", 1))
        run = self._new_run(list_id, "tasks", details)
        run.resume_env = merged["env"]
        overrides = {k: v for k, v in merged.items() if k in given or k in ("cwd", "env")}

        async def start(run: ManagedRun) -> None:
            self._recheck(overrides)

            def on_event(task_id: str, event: Any) -> None:
                run.append({"task_id": task_id, **event.to_dict()})

            def check_task(task_id: str, task_options: dict[str, Any]) -> None:
                self._recheck(task_options)

            try:
                handle = start_resume(
                    list_id,
                    max_parallel=max_parallel,
                    budget_usd=budget_usd,
                    budget_threshold=threshold,
                    on_event=on_event,
                    check_task=check_task,
                    fleet=self.config.fleet,
                    queue=self.config.fleet_queue,
                    **overrides,
                )
            except (CCExecutorError, TypeError, ValueError) as exc:
                self._finish(run, "error", error=f"cannot resume: {exc}")
                return
            # The tasks kept from before change no more: their state, for a page drawing
            # the list from this run's events.
            for state in handle.tasks.values():
                if state.ok:
                    run.append(
                        {
                            "type": "task_state",
                            "task_id": state.id,
                            "state": "ok",
                            "attempt": state.attempts,
                            "run_id": state.run_id,
                            "reason": "kept: it ended ok before the resume",
                            "cost_usd": state.cost_usd,
                        }
                    )
            run._control = _TaskListControl(handle)
            if run.cancel_requested:
                handle.cancel()
            result = await handle.wait()
            self._finish(run, str(result.status.value), result=result.to_dict())

        if earlier is not None:
            # The list's earlier run leaves memory: its id is the resumed run's now. Its
            # spool file stays (the new run appends to it): a follower still replaying
            # the earlier run reads what it points to.
            self._runs.pop(list_id, None)
            self._budget.release(earlier)
        self._register(run)
        self._waiting += 1
        run.append({"type": "queued"})
        run._task = asyncio.ensure_future(self._drive(run, start))
        return run

    def _prepare_exec(
        self, argv: Any, options: dict[str, Any], run_id: str
    ) -> tuple[ManagedRun, Callable[[ManagedRun], Awaitable[None]]]:
        executable = self._policy.executable(argv)
        self._policy.check_exec_options(options)
        options["cwd"] = self._policy.check_cwd(options.get("cwd"))
        options["env"] = self._policy.check_env(options.get("env"), command=argv)
        details: Event = {"cwd": options["cwd"], "argv": list(argv)}
        run = self._new_run(run_id, "exec", details)
        command = [executable, *argv[1:]]

        async def start(run: ManagedRun) -> None:
            self._recheck(options)
            await self._run_exec(run, command, options)

        return run, start

    def _new_run(self, run_id: str, kind: str, details: Event) -> ManagedRun:
        run = ManagedRun(
            run_id,
            kind,
            max_events=self.config.max_events,
            summary=details,
            budget=self._budget,
            spool=self._spool,
        )
        run.on_change = self.feed.publish
        return run

    def _register(self, run: ManagedRun) -> None:
        self._runs[run.id] = run
        excess = len(self._runs) - self.config.max_finished - self.config.max_concurrent
        excess -= self.config.max_queued
        if excess > 0:
            for old_id in [r.id for r in self._runs.values() if r.done][:excess]:
                self._runs.pop(old_id).discard()

    async def _drive(
        self, run: ManagedRun, starter: Callable[[ManagedRun], Awaitable[None]]
    ) -> None:
        acquired = False
        try:
            await self._slots.acquire()
            acquired = True
            self._waiting -= 1
            if self._draining:
                self._leave_queued(run)
                return
            if run.cancel_requested:
                self._finish(run, "cancelled", error="cancelled while queued")
                return
            if run.persisted and self.queue is not None:
                # Before the start: a saved request always means a run that never started.
                self.queue.remove(run.id)
            run.status = RUNNING
            run.started_at = time.time()
            run.append({"type": "started", "kind": run.kind})
            await starter(run)
        except asyncio.CancelledError:
            if not acquired:
                self._waiting -= 1
            if run.left_queued:  # drained: it stays queued for the next server
                self._leave_queued(run)
                return
            self._finish(run, "cancelled", error="cancelled while queued" if not acquired else None)
            if not run.cancel_requested:
                raise
        except ServiceError as exc:  # refused as it was about to start (see _recheck)
            self._finish(run, "error", error=f"refused at the start: {exc}")
        except FleetError as exc:  # the fleet failed after check_fleet: said as such
            self._finish(run, "error", error=f"{exc} (the run was not retried)")
        except Exception as exc:  # a bug must end the run, not leave it live forever
            self._finish(run, "error", error=f"{type(exc).__name__}: {exc}")
        finally:
            if acquired:
                self._slots.release()
            if not run.done:
                self._finish(run, "error", error="the run ended without a result")
            if run.persisted and not run.left_queued:
                self._settle_queued_row(run)

    def _agent_defaults(self, agent: str) -> Mapping[str, Any]:
        """The server's options for the runs of ``agent`` (its executable, endpoint, spec,
        permission policy); for fleet runs only the permission policy, whose rules go with
        each run (a worker runs its own executable, endpoint and spec)."""
        given = self.config.agent_defaults.get(agent, {})
        if self.config.fleet is not None:
            return {k: v for k, v in given.items() if k == "permission_policy"}
        return given

    def _recheck(self, options: dict[str, Any]) -> None:
        """The folders of a queued run, checked again as it starts: one swapped for a symlink
        while the run waited would otherwise take it outside the allowed roots. A refusal
        ends the run with the reason (``_drive``)."""
        options["cwd"] = self._policy.check_cwd(options.get("cwd"))
        if options.get("add_dirs"):
            options["add_dirs"] = [self._policy.check_cwd(d) for d in options["add_dirs"]]

    def _leave_queued(self, run: ManagedRun) -> None:
        """A queued run the draining server does not start: its saved request and its
        ``queued`` row stay for the next server; its event stream ends here."""
        run.left_queued = True
        if run.done:
            return
        saved = run.persisted and self.queue is not None
        run.append(
            {
                "type": "left_queued",
                "reason": "the server is shutting down; "
                + ("the next server on this data folder starts it" if saved else "not saved"),
            }
        )
        run.close()

    def _settle_queued_row(self, run: ManagedRun) -> None:
        """A saved run that ended: forget its request, and end its history row if nothing
        else did (cancelled or refused before it started, or it failed before its own
        record was written). In a thread, awaited before the server exits."""
        if self.queue is not None:
            self.queue.remove(run.id)
        store = self.store
        if store is None:
            return
        status, error = run.status, run.error

        def settle() -> None:
            try:
                record = store.get(run.id)
                if record is not None and record.status == Status.QUEUED.value:
                    store.update_status(run.id, status, error=error)
            except HistoryError:
                pass  # best effort, as every history write

        self._track(asyncio.ensure_future(asyncio.to_thread(settle)))

    def _track(self, write: asyncio.Future[None]) -> None:
        self._pending_writes.add(write)
        write.add_done_callback(self._pending_writes.discard)

    def _finish(
        self, run: ManagedRun, status: str, *, result: Event | None = None, error: str | None = None
    ) -> None:
        if run.done:
            return
        if run.interrupted_because is not None and status == Status.CANCELLED.value:
            # Stopped by the drain, not by a caller: the same word as a crashed server's.
            status, error = Status.INTERRUPTED.value, run.interrupted_because
            if result is not None:
                result = {**result, "status": status, "error": error}
        run.status = status
        run.ended_at = time.time()
        run.result = result
        run.error = error or (result.get("error") if result else None)
        run.append({"type": "completed", "status": status, "result": result, "error": run.error})
        run.close()

    async def _run_claude(self, run: ManagedRun, prompt: str, options: Mapping[str, Any]) -> None:
        from cc_executor._run._runner import start_run

        def on_event(event: Any) -> None:
            run.append(event.to_dict())

        async def on_permission(request: PermissionRequest) -> PermissionDecision:
            return await _pending(run, request)

        if self.config.fleet is None:
            handle = start_run(
                prompt,
                on_event=on_event,
                on_permission=on_permission,
                _decider_name="service",
                **options,
            )
        else:
            from cc_executor._run._fleet import start_fleet_run

            # The same id on the fleet: `attach`, `cancel --fleet` and the workers know it.
            given = {k: v for k, v in options.items() if k != "run_id"}
            # Its policy's ask comes back here from the worker: the same pending queue.
            handle = start_fleet_run(
                prompt,
                self.config.fleet,
                on_event,
                given,
                self.config.fleet_queue,
                run_id=run.id,
                on_permission=on_permission,
                decider_name="service",
            )
        run._control = handle
        if run.cancel_requested:
            handle.cancel()
        result = await handle.wait()
        self._finish(run, result.status.value, result=result.to_dict())

    async def _run_exec(self, run: ManagedRun, argv: list[str], options: Mapping[str, Any]) -> None:
        from cc_executor._engine import OutputEvent, SupervisedProcess
        from cc_executor._run._exec import run_command
        from cc_executor._run._git import git_env, git_overrides
        from cc_executor._run._prepare import limits_of

        # An allowed `git status` must not run what the repository's configuration names
        # (F8.8); any program may run git, so every command gets the overrides.
        base = {**os.environ, **options["env"]}
        overrides = await asyncio.to_thread(git_overrides, options["cwd"], env=base)
        proc = SupervisedProcess(
            argv,
            stdin=options.get("stdin"),
            cwd=options["cwd"],
            extra_env={**options["env"], **git_env(overrides, base)},
            timeout=options.get("timeout"),
            idle_timeout=options.get("idle_timeout"),
            first_output_timeout=options.get("first_output_timeout"),
            grace=float(options.get("grace", 5.0)),
            run_id=run.id,
            # A longer line comes file-backed: the service keeps it on disk (see on_output).
            max_line_memory=SPILL_BYTES,
            limits=limits_of(dict(options)),
        )

        async def on_started(proc: SupervisedProcess) -> None:
            run._control = proc
            if run.cancel_requested:
                await proc.cancel()
            if proc.pid is not None:
                run.append({"type": "spawned", "pid": proc.pid})

        async def on_output(item: OutputEvent) -> None:
            def event() -> Event:
                text = item.text
                return {"type": "output", "stream": item.stream, "text": text, **where}

            where = {"offset": item.offset, "t": item.t}
            if item.in_memory and item.length <= SPILL_BYTES:
                run.append(event())
            else:
                # A huge line stays in the run's output file, read back for each follower.
                run.append_on_disk({"type": "output", "stream": item.stream, **where}, event)

        run._control = proc  # pause and cancel work while the child is being started too
        result = await run_command(proc, on_started=on_started, on_output=on_output)
        self._finish(run, result.status.value, result=result.to_dict())

    # ---------------------------------------------------------------- control

    def cancel(self, run_id: str) -> ManagedRun:
        """Stop the run: a queued run ends ``cancelled`` at once; a running one is stopped
        (its whole process tree) and ends ``cancelled`` with its partial result. Cancelling
        a finished run raises :class:`Conflict`; cancelling twice is harmless."""
        run = self.get(run_id)
        if run.done:
            raise Conflict(f"run {run_id} already ended ({run.status})")
        if run.cancel_requested:
            return run
        run.cancel_requested = True
        run.append({"type": "cancelled"})
        control = run._control
        if run.status == QUEUED and control is None:
            if run._task is not None:
                run._task.cancel()
        elif control is not None:
            if hasattr(control, "paused") and control.paused:
                control.resume()
            stopping = control.cancel()
            if asyncio.iscoroutine(stopping):
                task = asyncio.ensure_future(stopping)
                task.add_done_callback(_ignore_result)
        return run

    async def fleet_status(self) -> Event:
        """The fleet's live workers (sorted by host, each with ``heartbeat_age_s``) and its
        queues' counts, as ``fleet status`` shows them; :class:`NotFound` without a fleet,
        :class:`FleetError` when its broker does not answer."""
        if self.config.fleet is None:
            raise NotFound("this server has no fleet (serve --fleet URL)")
        from cc_executor._fleet import open_fleet
        from cc_executor._fleet._url import parse_fleet_url

        fleet = open_fleet(self.config.fleet)
        try:
            workers = await fleet.workers()
            queues = await fleet.counts()
        finally:
            await fleet.aclose()
        now = time.time()
        for worker in workers:
            _worker_health(worker, now)
        workers.sort(key=lambda w: (str(w.get("host")), str(w.get("worker_id"))))
        lost = self._note_workers(workers, now)
        # Shown without credentials, as ``fleet status`` does.
        url = parse_fleet_url(self.config.fleet).url
        return {"fleet": url, "workers": workers, "lost": lost, "queues": queues}

    def _note_workers(self, live: list[Event], now: float) -> list[Event]:
        """Remember the ``live`` workers; those seen live before and absent now (their
        heartbeat expired: stopped, killed or cut off) are lost. Returns the lost ones,
        newest loss first, each as last seen with ``health`` ``lost``."""
        here = {str(w.get("worker_id")): w for w in live}
        for worker_id in [w for w in self._workers_seen if w not in here]:
            self._workers_lost[worker_id] = self._workers_seen.pop(worker_id)
        for worker_id, worker in here.items():
            self._workers_seen[worker_id] = dict(worker)
            self._workers_lost.pop(worker_id, None)
        while self._workers_lost and (
            len(self._workers_lost) > LOST_WORKERS_MAX
            or now - _heartbeat_at(next(iter(self._workers_lost.values())), now)
            > LOST_WORKERS_KEPT_S
        ):
            self._workers_lost.popitem(last=False)
        lost = []
        for worker in reversed(self._workers_lost.values()):
            shown = dict(worker)
            _worker_health(shown, now)
            shown["health"] = "lost"
            lost.append(shown)
        return lost

    def _asking(self, run_id: str) -> tuple[ManagedRun, str | None]:
        """The run whose queue holds ``run_id``'s permission requests: itself, or for a task
        list's task run its list (returned with the task run's id)."""
        owner = self._task_runs.get(run_id)
        if owner is not None:
            return owner[0], run_id
        return self.get(run_id), None

    def permissions(self, run_id: str) -> list[Event]:
        """The run's tool calls waiting for a decision, oldest first. A task list's are its
        tasks' (each with its ``task_id``); a task run's id gives that task's alone."""
        run, task_run = self._asking(run_id)
        listed = []
        for request, _ in run.pending_permissions.values():
            if task_run is not None and request.run_id != task_run:
                continue
            entry = request.to_dict()
            if run.kind == "tasks":
                entry["task_id"] = self._task_runs.get(request.run_id, (run, None))[1]
            listed.append(entry)
        return listed

    def decide_permission(
        self, run_id: str, request_id: str, decision: Any, message: Any = None, *, by: str
    ) -> Event:
        """Answer a pending tool call of the run with ``allow`` or ``deny`` (``message``: why,
        for the model). :class:`NotFound` for an unknown or already decided request."""
        if decision not in ("allow", "deny"):
            raise InvalidRequest(f"decision must be allow or deny, got {decision!r}")
        if message is not None and not isinstance(message, str):
            raise InvalidRequest("message must be a string")
        run, task_run = self._asking(run_id)
        pending = run.pending_permissions.get(request_id)
        if task_run is not None and pending is not None and pending[0].run_id != task_run:
            pending = None  # another task's request
        if pending is None or pending[1].done():
            raise NotFound(
                f"no pending permission request {request_id!r} in run {run_id} (decided, "
                "timed out, or never asked)"
            )
        pending[1].set_result(PermissionDecision(decision, message or None, by))
        return {"run_id": run_id, "request_id": request_id, "decision": decision}

    def pause(self, run_id: str) -> ManagedRun:
        """SIGSTOP the run's process tree; :class:`Conflict` if it is not running."""
        run = self.get(run_id)
        control = run._control
        if run.status != RUNNING or control is None or not control.pause():
            raise Conflict(f"run {run_id} cannot be paused (status {run.status})")
        run.status = PAUSED
        run.append({"type": "paused"})
        return run

    def resume(self, run_id: str) -> ManagedRun:
        """SIGCONT the run's process tree; :class:`Conflict` if it is not paused."""
        run = self.get(run_id)
        control = run._control
        if run.status != PAUSED or control is None or not control.resume():
            raise Conflict(f"run {run_id} is not paused (status {run.status})")
        run.status = RUNNING
        run.append({"type": "resumed"})
        return run

    async def wait(self, run_id: str, timeout: float | None = None) -> bool:
        """Wait until the run ends or ``timeout`` seconds pass; True if it ended."""
        run = self.get(run_id)
        if run._task is None:
            return run.done
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(asyncio.shield(run._task), timeout)
        return run.done

    @property
    def draining(self) -> bool:
        """True once :meth:`begin_drain` was called: no new run is taken."""
        return self._draining

    def begin_drain(self) -> None:
        """Take no new run from now on (:class:`ShuttingDown`) and start no queued one;
        what runs goes on. Safe to call from a signal handler on the loop."""
        if not self._draining:
            self._draining = True
            self._drain_began = time.monotonic()
            self._running_at_drain = [r for r in self._runs.values() if r.started_at and not r.done]

    async def drain(self, grace: float, *, hurry: asyncio.Event | None = None) -> Event:
        """Stop gracefully: no new run; queued runs are left queued (saved for the next
        server when there is a queue); running and paused runs get ``grace`` seconds to
        finish (``hurry`` set ends the grace at once), then are stopped, their whole
        process trees, and end ``interrupted``. Returns counts of each."""
        self.begin_drain()
        live = [r for r in self._runs.values() if not r.done]
        queued = [r for r in live if r.status == QUEUED and r._control is None]
        for run in queued:
            run.left_queued = True
            if run._task is not None:
                run._task.cancel()
        running = [r for r in live if r not in queued and r._task is not None]
        waits = {r._task for r in running if r._task is not None}
        hurrying = asyncio.ensure_future(hurry.wait()) if hurry is not None else None
        loop = asyncio.get_running_loop()
        # The grace counts from the signal, not from the end of the HTTP server's shutdown.
        assert self._drain_began is not None
        deadline = loop.time() - (time.monotonic() - self._drain_began) + grace
        try:
            while True:
                pending: set[asyncio.Future[Any]] = {t for t in waits if not t.done()}
                left = deadline - loop.time()
                if not pending or left <= 0 or (hurrying is not None and hurrying.done()):
                    break
                if hurrying is not None:
                    pending.add(hurrying)
                await asyncio.wait(pending, timeout=left, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if hurrying is not None:
                hurrying.cancel()
        late = [r for r in running if not r.done]
        reason = (
            f"the server stopped (drain grace of {grace:g} s over) before the run ended; "
            "its process tree was stopped"
        )
        for run in late:
            run.interrupted_because = reason
            with contextlib.suppress(ServiceError):
                self.cancel(run.id)
        tasks = [r._task for r in live if r._task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self.store is not None and late:
            store = self.store

            def mark() -> None:
                for run in late:  # after the run's own record (cancelled) was written
                    with contextlib.suppress(HistoryError):
                        store.update_status(run.id, Status.INTERRUPTED.value, error=reason)

            self._track(asyncio.ensure_future(asyncio.to_thread(mark)))
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        ran = {r.id: r for r in [*self._running_at_drain, *running]}
        return {
            "finished": sum(1 for r in ran.values() if r.interrupted_because is None),
            "interrupted": len(late),
            "left_queued": sum(1 for r in self._runs.values() if r.left_queued),
        }

    async def requeue(self) -> tuple[list[str], list[str]]:
        """Queue again the saved requests of runs a previous server accepted and never
        started (the queue's lock must be held), oldest first, each under its own id and
        checked again against this server's policy. History rows still ``queued`` with no
        saved request left are ended ``interrupted``. Returns the ids queued again and a
        line for each problem (a damaged request file, a refused request)."""
        if self.queue is None:
            return [], []
        queue = self.queue
        requests, problems = await asyncio.to_thread(queue.pending)
        started: list[str] = []
        for request in requests:
            if request.run_id in self._runs:
                continue
            earlier = await self._history_status(request.run_id)
            if earlier not in (None, Status.QUEUED.value):
                # Never run twice, nor over another run's record (a damaged or stale file).
                problems.append(
                    f"queued run {request.run_id} not queued again: the history says it "
                    f"already started ({earlier})"
                )
                await asyncio.to_thread(queue.remove, request.run_id)
                continue
            try:
                self._submit(request.spec, run_id=request.run_id, created_at=request.created_at)
            except ServiceError as exc:
                problems.append(f"queued run {request.run_id} refused by this server: {exc}")
                await asyncio.to_thread(queue.remove, request.run_id)
                self._end_row(request.run_id, Status.ERROR, f"refused when queued again: {exc}")
                continue
            started.append(request.run_id)
        if self.store is not None:
            store = self.store
            rows = await asyncio.to_thread(store.query, Query(status=Status.QUEUED.value))
            for row in rows:
                if row.id not in self._runs:
                    self._end_row(
                        row.id,
                        Status.INTERRUPTED,
                        "was queued when its server stopped, and its saved request is gone",
                    )
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)
        return started, problems

    async def _history_status(self, run_id: str) -> str | None:
        """The status the history has for exactly ``run_id`` (None: no row, or no history)."""
        store = self.store
        if store is None:
            return None

        def read() -> str | None:
            try:
                record = store.get(run_id)
            except HistoryError:
                return None
            return record.status if record is not None and record.id == run_id else None

        return await asyncio.to_thread(read)

    def _end_row(self, run_id: str, status: Status, error: str) -> None:
        store = self.store
        if store is None:
            return

        def end() -> None:
            with contextlib.suppress(HistoryError):
                store.update_status(run_id, status.value, error=error)

        self._track(asyncio.ensure_future(asyncio.to_thread(end)))

    async def aclose(self) -> None:
        """Cancel every live run and wait for them to end (each stops its process tree)."""
        live = [r for r in self._runs.values() if not r.done]
        for run in live:
            with contextlib.suppress(ServiceError):
                self.cancel(run.id)
        tasks = [r._task for r in live if r._task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        self._spool.close()


class _TaskListControl:
    """The control surface of a running task list: cancel stops every running task's tree;
    a list cannot be paused as a whole (pause its task runs instead)."""

    def __init__(self, handle: Any) -> None:
        self._handle = handle

    def cancel(self) -> None:
        self._handle.cancel()

    def pause(self) -> bool:
        return False

    def resume(self) -> bool:
        return False


async def _pending(run: ManagedRun, request: PermissionRequest) -> PermissionDecision:
    """Wait in ``run``'s queue until a caller decides (decide_permission) or the policy's
    timeout denies it; either way it leaves the queue."""
    answer: asyncio.Future[PermissionDecision] = asyncio.get_running_loop().create_future()
    run.pending_permissions[request.id] = (request, answer)
    try:
        return await answer
    finally:
        run.pending_permissions.pop(request.id, None)


def _threshold(value: Any) -> Any:
    """A request's ``budget_threshold`` (percent, one or several), checked as the CLI's
    is; None: the list's own."""
    from cc_executor._run._budget import check_thresholds

    if value is not None:
        try:
            check_thresholds(value, "budget_threshold")
        except ValueError as exc:
            raise InvalidRequest(str(exc)) from None
    return value


def _ignore_result(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def _saved_task_list(list_id: str) -> Event | None:
    """:meth:`RunManager.task_list`, read in a thread."""
    from cc_executor._extras import MissingExtra

    try:
        from cc_executor.tasks import TaskListNotFound
        from cc_executor.tasks._spec import TaskListSpec
        from cc_executor.tasks._state import find_list
    except MissingExtra:
        return None
    try:
        folder = find_list(list_id)
        spec = TaskListSpec.from_dict(folder.read_spec())
        saved = folder.read_tasks()
    except (TaskListNotFound, OSError, ValueError, KeyError, TypeError):
        return None
    states: Event = {}
    for task in spec.tasks:
        data = saved.get(task.id) or {}
        runs = data.get("runs")
        states[task.id] = {
            "state": str(data.get("status") or "pending"),
            "attempt": len(runs) if isinstance(runs, list) else 0,
            "cost_usd": data.get("cost_usd"),
            "started_at": data.get("started_at"),
            "ended_at": data.get("ended_at"),
        }
    return {
        "tasks": [t.id for t in spec.tasks],
        "graph": {
            "waves": spec.waves(),
            "depends_on": {t.id: list(t.depends_on) for t in spec.tasks},
        },
        "states": states,
    }


def _event_log(record: RunRecord) -> str | None:
    """The path of the agent's event log of ``record`` (None: a command, a list)."""
    if record.kind != "run":
        return None
    return next((a.path for a in record.artifacts if a.name == "events"), None)


def replay_log(record: RunRecord, after: int = 0) -> Iterator[Event]:
    """The events of ``record``'s event log as a live run sends them (``seq``, ``run_id``),
    those after ``after``, then its ``completed`` event when the run has ended. Blocking:
    a server iterates it in a thread. An unreadable log ends the replay early."""
    from cc_executor._agents import get_adapter

    log = _event_log(record)
    seq = 0
    if log is not None:
        try:
            parser = get_adapter(record.agent or DEFAULT_AGENT).parser()
            with open(log, "rb") as file:
                for event in parser.parse_log(file):
                    seq += 1
                    if seq > after:
                        yield {**event.to_dict(), "seq": seq, "run_id": record.id}
        except (OSError, LookupError, ValueError):
            return
    try:
        ended = Status(record.status).final
    except ValueError:
        ended = True
    # A run still going elsewhere (a CLI run) has no completed event yet: a client that
    # reconnects with Last-Event-ID gets what its log holds by then.
    if ended and seq + 1 > after:
        yield {
            "type": "completed",
            "status": record.status,
            "result": None,
            "error": record.error,
            "from_history": True,
            "seq": seq + 1,
            "run_id": record.id,
        }


def _logged_answer(record: RunRecord) -> str | None:
    """The answer in the result line of ``record``'s event log, parsed as its agent writes
    it; None when the run has no log (a command, a list) or it cannot be read."""
    from cc_executor._agents import get_adapter
    from cc_executor._agents._types import ResultEvent

    log = _event_log(record)
    if log is None:
        return None
    final: str | None = None
    try:
        parser = get_adapter(record.agent or DEFAULT_AGENT).parser()
        with open(log, "rb") as file:
            for event in parser.parse_log(file):
                if isinstance(event, ResultEvent) and event.result is not None:
                    final = event.result
    except (OSError, LookupError, ValueError):
        return None
    return final


#: The history artifact naming a run's workspace receipt (``workspace.json``), and the most
#: of it read: a receipt is a few kilobytes even with thousands of changed files listed.
_WORKSPACE_ARTIFACT = "workspace"
_RECEIPT_MAX_BYTES = 16 << 20


def _ran_inside(
    record: RunRecord, inside: Callable[[str | None], bool], store: HistoryStore | None = None
) -> bool:
    """Whether the history's run ran in an allowed folder: its cwd, or, for a run in a
    workspace (whose cwd is in its own run folder), the user's folder the workspace was
    made from. Nothing else widens the scope. ``store``: read the receipt's copy there when
    the run folder is not on this machine (one run looked up, not a list: a query each)."""
    return inside(record.cwd) or inside(_workspace_origin(record, store))


def _workspace_origin(record: RunRecord, store: HistoryStore | None = None) -> str | None:
    """The user's folder of a workspace run (the receipt's ``repo``), or None. The history
    keeps no such field, so the receipt is read (from the run folder, else the copy
    ``store`` holds: a fleet worker's run on a PostgreSQL history), and trusted only when it
    is the one the history receipted (same sha256: the agent may have written the run
    folder) and its workspace holds the record's cwd (a receipt names its own run's
    folders)."""
    artifact = next((a for a in record.artifacts if a.name == _WORKSPACE_ARTIFACT), None)
    if artifact is None or not record.cwd:
        return None
    try:
        try:
            # Non-blocking, regular files only: a fifo in its place must not hang the server.
            flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0)
            fd = os.open(artifact.path, flags)
        except FileNotFoundError:
            copy = store.file_content(record.id, artifact.name) if store is not None else None
            if copy is None:
                return None
            data = copy[: _RECEIPT_MAX_BYTES + 1]
        else:
            with open(fd, "rb") as file:
                if not stat.S_ISREG(os.fstat(file.fileno()).st_mode):
                    return None
                data = file.read(_RECEIPT_MAX_BYTES + 1)
        if len(data) > _RECEIPT_MAX_BYTES or hashlib.sha256(data).hexdigest() != artifact.sha256:
            return None
        receipt = json.loads(data)
    except (OSError, ValueError, HistoryError):
        return None
    if not isinstance(receipt, dict) or receipt.get("run_id") != record.id:
        return None
    path, repo = receipt.get("path"), receipt.get("repo")
    if not isinstance(path, str) or not isinstance(repo, str) or not repo:
        return None
    workspace, cwd = os.path.realpath(path), os.path.realpath(record.cwd)
    if cwd != workspace and not cwd.startswith(workspace.rstrip(os.sep) + os.sep):
        return None
    return repo


def _record_view(record: RunRecord) -> Event:
    data = record.to_dict()
    data["run_id"] = data.pop("id")
    return data
