"""Running a task list: the entry points (start, run, resume, read back) and the handle of a
list run in progress. The scheduling itself is :mod:`cc_executor.tasks._scheduler`'s."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping, Sequence
from typing import Any, TypeAlias

from cc_executor._engine import run_sync as run_coroutine_sync
from cc_executor._ids import new_run_id
from cc_executor._paths import runs_dir
from cc_executor._run._prepare import anchor_paths
from cc_executor.tasks._load import load_task_list, parse_task_list
from cc_executor.tasks._result import (
    ListStatus,
    TaskListResult,
    TaskResult,
    TaskStatus,
    charged,
    total_cost,
)
from cc_executor.tasks._scheduler import (
    CONTINUABLE,
    ListRun,
    TaskCheck,
    TaskDecider,
    TaskEventCallback,
)
from cc_executor.tasks._spec import TaskListSpec
from cc_executor.tasks._state import LIST_ID, ListFolder, find_list
from cc_executor.tasks._task_options import (
    check_limits,
    check_reserve,
    check_run_defaults,
    saved_defaults,
    task_options,
)

#: A task list file (.md, .yaml, .yml, .json), a validated spec, or YAML-shaped data.
PathOrSpec: TypeAlias = "str | os.PathLike[str] | TaskListSpec | Mapping[str, Any]"

#: Tasks run at once when neither the caller nor the list says.
DEFAULT_MAX_PARALLEL = 4

#: A resume continues the session of a last attempt that ended so (``interrupted``: the
#: process running the list died).
_CONTINUABLE_NAMES = frozenset({*(s.value for s in CONTINUABLE), "interrupted"})


def _as_spec(
    path_or_spec: PathOrSpec,
) -> TaskListSpec:
    if isinstance(path_or_spec, TaskListSpec):
        return path_or_spec
    if isinstance(path_or_spec, Mapping):
        return parse_task_list(path_or_spec)
    return load_task_list(path_or_spec)


def _one_at_a_time_note(spec: TaskListSpec, max_parallel: int | None) -> list[str]:
    """A note when ``max_parallel`` above 1 was asked for a list whose tasks can only run
    one at a time (each waits for the previous one): it would change nothing."""
    if max_parallel is None or max_parallel <= 1 or len(spec.tasks) < 2 or not spec.one_at_a_time:
        return []
    return [
        f"max_parallel {max_parallel}: this list runs one task at a time (each task waits "
        "for the one before it); to run tasks at once, give them depends_on or "
        "parallel: true (or parallel: true on the list)"
    ]


def _reset_for_resume(state: TaskResult) -> str | None:
    """Make an unfinished task pending again; returns the session to continue, if its last
    attempt was stopped (timeout, cancel, the runner's death) after starting a session."""
    last = state.runs[-1] if state.runs else None
    if last is not None and last.status == "running":
        last.status = "interrupted"
        last.error = last.error or "the process running the list died during this attempt"
    interrupted = state.status in (
        TaskStatus.RUNNING,
        TaskStatus.CANCELLED,
        TaskStatus.INTERRUPTED,
    ) or (last is not None and last.status in _CONTINUABLE_NAMES)
    state.status = TaskStatus.PENDING
    state.error = None
    state.skipped_reason = None
    return last.session_id if interrupted and last is not None else None


class TaskListHandle:
    """A task list run in progress. Create with :func:`start_tasks` or :func:`start_resume`.

    ``cancel()`` stops launching tasks and cancels the running ones (their process trees are
    killed); ``await wait()`` then returns a ``cancelled`` result, and the list can be
    resumed. Cancelling the task that awaits ``wait()`` does the same, then re-raises.
    """

    def __init__(self, job: ListRun, task: asyncio.Task[TaskListResult]) -> None:
        self._job = job
        self._task = task

    @property
    def list_id(self) -> str:
        """The list run's id (its history record and folder name)."""
        return self._job.list_id

    @property
    def run_dir(self) -> str:
        """The list's folder: ``spec.json``, ``list.json``, ``tasks/``."""
        return str(self._job.folder.path)

    @property
    def spec(self) -> TaskListSpec:
        """The list being run."""
        return self._job.spec

    @property
    def tasks(self) -> Mapping[str, TaskResult]:
        """The tasks' current states (live objects, updated as the list runs)."""
        return self._job.states

    @property
    def done(self) -> bool:
        """True once the result is ready."""
        return self._task.done()

    def cancel(self) -> None:
        """Cancel the list (idempotent; safe from a signal handler on the loop)."""
        self._job.cancel()

    @property
    def warnings(self) -> list[str]:
        """What the caller should be told, so far (the result's ``warnings`` in the end);
        a note about the schedule is there from the start."""
        return self._job.warnings

    async def wait(self) -> TaskListResult:
        """The result, once every started task has ended."""
        return await asyncio.shield(self._task)


#: A list's budget policy as ListRun's arguments, saved in the list's state for a resume.
_POLICY = ("budget_thresholds", "budget_webhook", "on_budget_exhausted")


def budget_policy(
    webhook: str | None,
    on_exhausted: str | None,
    thresholds: float | Sequence[float] | None = None,
    allow_hosts: str | Sequence[str] | None = None,
) -> dict[str, Any]:
    """The given ``budget_webhook`` (its URL checked as a fleet's: loopback, or a host of
    ``allow_hosts``, which only the caller gives), ``on_budget_exhausted`` (``cancel`` or
    ``drain``) and ``budget_threshold`` (percent, one or several: fractions here); ValueError
    for bad ones."""
    from cc_executor._run._budget import check_thresholds, check_webhook

    hosts = [allow_hosts] if isinstance(allow_hosts, str) else list(allow_hosts or ())
    for host in hosts:
        if not isinstance(host, str) or not host:
            raise ValueError(f"budget_webhook_allow_host: host names, got {host!r}")
    policy: dict[str, Any] = {}
    if webhook is not None:
        policy["budget_webhook"] = check_webhook(webhook, hosts)
    if on_exhausted is not None:
        if on_exhausted not in ("cancel", "drain"):
            raise ValueError(f"on_budget_exhausted: cancel or drain, got {on_exhausted!r}")
        policy["on_budget_exhausted"] = on_exhausted
    fractions = check_thresholds(thresholds, "budget_threshold")
    if fractions:
        policy["budget_thresholds"] = list(fractions)
    return policy


def _need_budget(budget: float | None, *given: Any) -> None:
    """ValueError when the caller gave a budget's thresholds or webhook and the list has
    no budget (they would do nothing), as a worker refuses them without --budget-usd."""
    if budget is None and any(g is not None and g != [] for g in given):
        raise ValueError(
            "budget_threshold, budget_webhook and budget_webhook_allow_host need a budget "
            "(budget_usd, given or in the list)"
        )


def start_tasks(
    path_or_spec: PathOrSpec,
    *,
    max_parallel: int | None = None,
    budget_usd: float | None = None,
    reserve_usd: float | Mapping[str, float] | None = None,
    on_event: TaskEventCallback | None = None,
    list_id: str | None = None,
    check_task: TaskCheck | None = None,
    fleet: str | None = None,
    queue: str | None = None,
    on_permission: TaskDecider | None = None,
    budget_threshold: float | Sequence[float] | None = None,
    budget_webhook: str | None = None,
    budget_webhook_allow_host: str | Sequence[str] | None = None,
    on_budget_exhausted: str | None = None,
    _decider_name: str = "callback",
    **run_defaults: Any,
) -> TaskListHandle:
    """Start a task list in the background of the running loop and return its handle.

    Arguments as for :func:`run_tasks`. Everything is validated here, before anything runs:
    an invalid list raises :class:`TaskListError`; unknown or invalid run options
    ``TypeError``/``ValueError``. ``check_task(task_id, options)``, when given, is called
    right before each run of a task starts, with that run's options: it may adjust them
    in place, and an exception it raises refuses the run (the task fails with the
    exception's message, its attempt ``error``, and nothing runs).

    ``fleet`` (and ``queue``): each task's run is a fleet run on that fleet's queue
    (docs/fleet.md), scheduled from here in the list's order; the list's state stays here,
    so :func:`start_resume` continues it (with the same fleet unless given another).
    """
    spec = _as_spec(path_or_spec)
    on_fleet = _fleet(fleet, queue)
    check_run_defaults(run_defaults)
    # The caller's paths are relative to the process's cwd (the list's own to its folder),
    # and absolute from here: a resume from another directory runs the tasks where they
    # first ran.
    defaults = anchor_paths(dict(run_defaults), os.getcwd())
    if defaults.get("repo") is None:  # a run with a repo works in its clone
        defaults["cwd"] = defaults.get("cwd") or os.getcwd()
    options = task_options(spec, defaults)
    check_limits(max_parallel, budget_usd)
    # The caller's policy over the list's own; the webhook and where it may go are only
    # the caller's (a list file cannot name them).
    policy = budget_policy(
        budget_webhook,
        on_budget_exhausted or spec.on_budget_exhausted,
        budget_threshold if budget_threshold is not None else spec.budget_threshold,
        budget_webhook_allow_host,
    )
    reserve = {**(spec.reserve_usd or {}), **(check_reserve(reserve_usd) or {})}
    parallel = max_parallel if max_parallel is not None else spec.max_parallel
    budget = budget_usd if budget_usd is not None else spec.budget_usd
    _need_budget(budget, budget_threshold, budget_webhook, budget_webhook_allow_host)
    if list_id is not None and not LIST_ID.match(list_id):
        raise ValueError(f"list_id must be 1-64 letters, digits, _ or -, got {list_id!r}")
    list_id = list_id or new_run_id()
    folder = ListFolder(runs_dir() / list_id)
    if folder.exists:
        raise ValueError(f"a task list run {list_id} already exists (resume it instead)")
    folder.create()
    folder.lock()
    try:
        folder.write_spec(spec.to_dict())
        meta: dict[str, Any] = {
            "run_defaults": saved_defaults(defaults),
            "env_names": sorted(defaults.get("env", {})),
        }
        if on_fleet is not None:
            meta["fleet"], meta["queue"] = _shown(on_fleet[0]), on_fleet[1]
        meta.update(policy)
        job = ListRun(
            spec,
            list_id=list_id,
            folder=folder,
            run_defaults=defaults,
            options=options,
            max_parallel=parallel or DEFAULT_MAX_PARALLEL,
            budget_usd=budget,
            on_event=on_event,
            states={},
            continue_sessions={},
            meta=meta,
            warnings=_one_at_a_time_note(spec, parallel),
            reserve_usd=reserve,
            check_task=check_task,
            fleet=on_fleet,
            on_permission=on_permission,
            decider_name=_decider_name,
            **policy,
        )
        return TaskListHandle(job, asyncio.ensure_future(job.run()))
    except BaseException:
        folder.unlock()
        raise


def start_resume(
    list_id: str,
    *,
    max_parallel: int | None = None,
    budget_usd: float | None = None,
    reserve_usd: float | Mapping[str, float] | None = None,
    on_event: TaskEventCallback | None = None,
    check_task: TaskCheck | None = None,
    fleet: str | None = None,
    queue: str | None = None,
    on_permission: TaskDecider | None = None,
    budget_threshold: float | Sequence[float] | None = None,
    budget_webhook: str | None = None,
    budget_webhook_allow_host: str | Sequence[str] | None = None,
    on_budget_exhausted: str | None = None,
    _decider_name: str = "callback",
    **run_defaults: Any,
) -> TaskListHandle:
    """Continue a task list run that did not finish (crash, Ctrl-C, timeout, failure).

    Tasks that ended ``ok`` are not run again (their results still feed templates); every
    other task runs again: a task whose last attempt was stopped (timeout, cancel, the
    runner's death) continues that attempt's Claude session when it had one, else starts
    afresh. The saved run options apply, with ``run_defaults`` on top (``env`` is never
    saved: pass it again). ``max_parallel``, ``budget_usd`` and ``reserve_usd`` default to
    the first run's (``reserve_usd`` given here updates its models). What earlier attempts
    spent counts against the budget. ``check_task`` as for :func:`start_tasks`.
    Raises :class:`TaskListNotFound`, or :class:`TaskListBusy` while another live process
    runs the list.
    """
    check_limits(max_parallel, budget_usd)
    given_policy = budget_policy(
        budget_webhook, on_budget_exhausted, budget_threshold, budget_webhook_allow_host
    )
    reserve_given = check_reserve(reserve_usd) or {}
    folder = find_list(list_id)
    folder.lock()
    try:
        spec = TaskListSpec.from_dict(folder.read_spec())
        meta = folder.read_list()
        defaults = {**meta.get("run_defaults", {}), **run_defaults}
        check_run_defaults(defaults)
        options = task_options(spec, defaults)
        warnings = _one_at_a_time_note(spec, max_parallel)
        missing = sorted(set(meta.get("env_names", [])) - set(defaults.get("env", {})))
        if missing:
            warnings.append(
                f"env given to the first run is not saved (secrets): {', '.join(missing)} "
                "not set again"
            )
        states: dict[str, TaskResult] = {}
        sessions: dict[str, str] = {}
        stored = folder.read_tasks()
        for task in spec.tasks:
            data = stored.get(task.id)
            state = TaskResult.from_dict(data) if data else TaskResult(id=task.id, title=task.title)
            if state.status is not TaskStatus.OK:
                session = _reset_for_resume(state)
                if session is not None:
                    sessions[task.id] = session
            states[task.id] = state
        meta["sessions"] = int(meta.get("sessions", 1)) + 1
        # A list started on a fleet goes on there (its URL is saved without credentials).
        on_fleet = _fleet(fleet or meta.get("fleet"), queue or meta.get("queue"))
        if on_fleet is not None:
            meta["fleet"], meta["queue"] = _shown(on_fleet[0]), on_fleet[1]
        parallel = max_parallel or meta.get("max_parallel") or DEFAULT_MAX_PARALLEL
        budget = budget_usd if budget_usd is not None else meta.get("budget_usd")
        _need_budget(budget, budget_threshold, budget_webhook, budget_webhook_allow_host)
        reserve = {**(meta.get("reserve_usd") or spec.reserve_usd or {}), **reserve_given}
        # The first run's webhook and policy, unless given again.
        policy = {k: given_policy.get(k, meta.get(k)) for k in _POLICY}
        meta.update(policy)
        job = ListRun(
            spec,
            list_id=str(meta.get("list_id") or folder.path.name),
            folder=folder,
            run_defaults=defaults,
            options=options,
            max_parallel=int(parallel),
            budget_usd=budget,
            on_event=on_event,
            states=states,
            continue_sessions=sessions,
            meta=meta,
            warnings=warnings,
            reserve_usd=reserve,
            check_task=check_task,
            fleet=on_fleet,
            on_permission=on_permission,
            decider_name=_decider_name,
            **policy,
        )
        return TaskListHandle(job, asyncio.ensure_future(job.run()))
    except BaseException:
        folder.unlock()
        raise


async def run_tasks(
    path_or_spec: PathOrSpec,
    *,
    max_parallel: int | None = None,
    budget_usd: float | None = None,
    reserve_usd: float | Mapping[str, float] | None = None,
    on_event: TaskEventCallback | None = None,
    list_id: str | None = None,
    fleet: str | None = None,
    queue: str | None = None,
    on_permission: TaskDecider | None = None,
    budget_threshold: float | Sequence[float] | None = None,
    budget_webhook: str | None = None,
    budget_webhook_allow_host: str | Sequence[str] | None = None,
    on_budget_exhausted: str | None = None,
    **run_defaults: Any,
) -> TaskListResult:
    """Run a task list: each task a fresh Claude Code run, earlier results in later prompts.

    ``path_or_spec``: a ``.md``/``.yaml``/``.json`` file, a :class:`TaskListSpec`, or a
    mapping shaped like the YAML form. Each task waits for the previous one in the file
    unless it declares ``depends_on`` (``[]``: nothing) or ``parallel: true`` (or the list
    says ``parallel: true``); up to ``max_parallel`` (default: the list's, else 4) ready
    tasks run at once. ``max_parallel`` above 1 on a list that can only run one task at a
    time adds a note to ``warnings``.

    ``budget_usd`` (default: the list's) is a ceiling kept with reservations: a task
    reserves its cap (its ``max_budget_usd``, else ``reserve_usd`` for its model: a number,
    or ``{model: usd}`` with ``"*"`` for any other, over the list's own; else the whole
    remainder, so it runs alone) and gives back what it did not spend; it starts only
    when what is left covers that, else it ends ``budget_exceeded`` without starting (its
    dependents are skipped, the list ends ``budget_exceeded``), and its run gets the
    reservation as its ``max_budget_usd``. The result's ``budget_spent_usd`` says what was
    spent against it; the total can exceed the budget by at most what running tasks spend
    past their own caps. ``on_budget_exhausted`` (default: the list's, else ``drain``):
    ``cancel`` cancels the running tasks at the first refused reservation (they end
    ``budget_exceeded``). ``budget_threshold`` (default: the list's, else 80): the percent
    of the budget, or several, whose passing is announced (a ``budget`` event, each
    threshold once). ``budget_webhook``: a URL the budget's threshold and exhaustion notes
    are POSTed to (the fleet's payload, docs/tasks.md): loopback, or a host named in
    ``budget_webhook_allow_host`` (a name or several; never from the list).
    ``on_event(task_id, event)`` (sync or async) gets every event of
    every task's run plus :class:`TaskStateEvent`; an exception it raises cancels the list
    and propagates.
    ``run_defaults`` are :class:`~cc_executor.RunOptions` for every task, under the list's
    own settings (``run_id``, ``parent_id``, ``resume`` and the session options are set by
    the runner).

    ``on_permission(task_id, request)`` (sync or async) decides the ``ask`` rules of the
    tasks' ``permission_policy``, as a run's ``on_permission`` does, told which task asks;
    a sync one runs in a thread, and calls of parallel tasks may overlap. Without it an
    ``ask`` is denied, and the list's ``warnings`` say so once. With ``fleet`` too: the
    workers apply the rules and send each ``ask`` back here.

    Invalid lists raise :class:`TaskListError` before anything runs; a task that fails is a
    result, never an exception. Cancelling the awaiting task cancels every running task
    (their process trees are killed), saves the state and re-raises ``CancelledError``: the
    list can then be resumed with :func:`resume_tasks`.
    """
    handle = start_tasks(
        path_or_spec,
        max_parallel=max_parallel,
        budget_usd=budget_usd,
        reserve_usd=reserve_usd,
        on_event=on_event,
        list_id=list_id,
        fleet=fleet,
        queue=queue,
        on_permission=on_permission,
        budget_threshold=budget_threshold,
        budget_webhook=budget_webhook,
        budget_webhook_allow_host=budget_webhook_allow_host,
        on_budget_exhausted=on_budget_exhausted,
        **run_defaults,
    )
    return await _wait_cancelling(handle)


async def resume_tasks(
    list_id: str,
    *,
    max_parallel: int | None = None,
    budget_usd: float | None = None,
    reserve_usd: float | Mapping[str, float] | None = None,
    on_event: TaskEventCallback | None = None,
    fleet: str | None = None,
    queue: str | None = None,
    on_permission: TaskDecider | None = None,
    budget_threshold: float | Sequence[float] | None = None,
    budget_webhook: str | None = None,
    budget_webhook_allow_host: str | Sequence[str] | None = None,
    on_budget_exhausted: str | None = None,
    **run_defaults: Any,
) -> TaskListResult:
    """:func:`start_resume`, then wait for the result (see :func:`run_tasks`)."""
    handle = start_resume(
        list_id,
        max_parallel=max_parallel,
        budget_usd=budget_usd,
        reserve_usd=reserve_usd,
        on_event=on_event,
        fleet=fleet,
        queue=queue,
        on_permission=on_permission,
        budget_threshold=budget_threshold,
        budget_webhook=budget_webhook,
        budget_webhook_allow_host=budget_webhook_allow_host,
        on_budget_exhausted=on_budget_exhausted,
        **run_defaults,
    )
    return await _wait_cancelling(handle)


async def _wait_cancelling(handle: TaskListHandle) -> TaskListResult:
    try:
        return await handle.wait()
    except asyncio.CancelledError:
        handle.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await handle.wait()
        raise


def run_tasks_sync(path_or_spec: PathOrSpec, **kwargs: Any) -> TaskListResult:
    """:func:`run_tasks` for synchronous code (also works inside a running event loop)."""
    return run_coroutine_sync(run_tasks(path_or_spec, **kwargs))


def resume_tasks_sync(list_id: str, **kwargs: Any) -> TaskListResult:
    """:func:`resume_tasks` for synchronous code."""
    return run_coroutine_sync(resume_tasks(list_id, **kwargs))


def get_task_list(list_id: str) -> TaskListResult:
    """The state of a task list run, finished or not, read from its folder.

    A list (or task) recorded as running whose process is gone is reported
    ``interrupted``. Raises :class:`TaskListNotFound`.
    """
    folder = find_list(list_id)
    spec = TaskListSpec.from_dict(folder.read_spec())
    meta = folder.read_list()
    stored = folder.read_tasks()
    alive = folder.in_use()
    tasks: dict[str, TaskResult] = {}
    for task in spec.tasks:
        data = stored.get(task.id)
        state = TaskResult.from_dict(data) if data else TaskResult(id=task.id, title=task.title)
        if not alive and state.status is TaskStatus.RUNNING:
            state.status = TaskStatus.INTERRUPTED
            if state.runs and state.runs[-1].status == "running":
                state.runs[-1].status = "interrupted"
        tasks[task.id] = state
    status = ListStatus(meta.get("status", ListStatus.RUNNING.value))
    if status is ListStatus.RUNNING and not alive:
        status = ListStatus.INTERRUPTED
    return TaskListResult(
        list_id=str(meta.get("list_id") or folder.path.name),
        status=status,
        tasks=tasks,
        cost_usd=total_cost(tasks.values()),
        duration_s=float(meta.get("duration_s") or 0.0),
        run_dir=str(folder.path),
        source=spec.source,
        name=spec.name,
        stopped_reason=meta.get("stopped_reason"),
        started_at=meta.get("started_at"),
        ended_at=meta.get("ended_at"),
        budget_usd=meta.get("budget_usd"),
        budget_spent_usd=charged(tasks.values()) if meta.get("budget_usd") else None,
        workspace_branch=meta.get("workspace_branch"),
    )


def _fleet(url: Any, queue: Any) -> tuple[str, str | None] | None:
    """(URL, queue) of a list's fleet, checked before anything runs; None: runs here."""
    if not url:
        if queue:
            raise ValueError("queue names a fleet's queue: give fleet too")
        return None
    from cc_executor._fleet._base import check_queue
    from cc_executor._fleet._url import parse_fleet_url

    parse_fleet_url(str(url))
    return str(url), check_queue(str(queue)) if queue else None


def _shown(url: str) -> str:
    """``url`` without its password, as the list's state keeps it (credentials come from
    the environment again on resume)."""
    from cc_executor._fleet._url import parse_fleet_url

    return parse_fleet_url(url).url
