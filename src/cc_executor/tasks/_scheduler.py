"""The scheduler of one list run: tasks in dependency order, each a fresh run, durable.

It keeps, for every task, how many of its dependencies have not yet ended ``ok``; a task
whose count reaches zero joins a ready queue ordered by a topological order (file order
where dependencies allow), and up to ``max_parallel`` tasks run at once. A failed task's
dependents are skipped; ``on_error: stop`` (the default) stops the launching of new tasks
(running ones finish). With ``budget_usd``, a task starts only when what is left covers its
reservation (:mod:`cc_executor.tasks._budget`); one whose reservation cannot be covered
even once the running tasks are done ends ``budget_exceeded`` without starting (its
``error`` says why), as does a task whose fleet run the fleet's own budget refused, and
their dependents are skipped as a failed task's are. Each state change is written to the
list's folder before anything depends on it, so a list can be resumed after a crash.
"""

from __future__ import annotations

import asyncio
import heapq
import inspect
import os
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from cc_executor._agents import adapter_for
from cc_executor._agents._prices import takes_budget
from cc_executor._agents._types import (
    AgentEvent,
    BudgetEvent,
    InitEvent,
    PermissionDecisionEvent,
    RunStatus,
)
from cc_executor._errors import RunRefused
from cc_executor._ids import new_run_id
from cc_executor._run._budget import (
    DEFAULT_THRESHOLDS,
    OnExhausted,
    WebhookSender,
    budget_note,
)
from cc_executor._run._options import RunOptions
from cc_executor._run._permissions import Decider, PermissionRequest
from cc_executor._run._result import RunResult
from cc_executor._run._runner import RunHandle, start_run
from cc_executor._store import Artifact, Recorder, RunRecord, file_receipt
from cc_executor.tasks import _template
from cc_executor.tasks._budget import Budget, task_cap
from cc_executor.tasks._result import (
    ListStatus,
    TaskAttempt,
    TaskListResult,
    TaskResult,
    TaskStateEvent,
    TaskStatus,
    charged,
    total_cost,
)
from cc_executor.tasks._spec import TaskListSpec, TaskSpec
from cc_executor.tasks._state import ListFolder

TaskEventCallback = Callable[[str, AgentEvent], "Awaitable[Any] | Any"]
#: ``on_permission(task_id, request)``: the decider of the tasks' permission policies'
#: ``ask`` rules, answering as a run's ``on_permission`` does (sync or async).
TaskDecider = Callable[[str, PermissionRequest], Any]
#: Called with a task's id and the run options of its attempt right before that run
#: starts; it may adjust them in place, and an exception refuses the run (the task fails
#: with the exception's message, and nothing runs).
TaskCheck = Callable[[str, dict[str, Any]], None]

#: A retry after these continues the attempt's session instead of starting afresh: the
#: work done so far is kept, and the model picks up where it was stopped.
CONTINUABLE = frozenset({RunStatus.TIMEOUT, RunStatus.IDLE_TIMEOUT, RunStatus.CANCELLED})


def _resumable(adapter: Any, session_id: str) -> bool:
    """Whether ``adapter``'s agent can continue session ``session_id`` (a command agent
    without ``resume_arg`` cannot: its next attempt starts afresh)."""
    try:
        adapter.resume_options(session_id)
    except ValueError:
        return False
    return True


#: The prompt's preamble when a task continues a stopped attempt's session.
CONTINUE_NOTE = (
    "[cc-executor] Your previous attempt at this task was interrupted before it finished "
    "(its process was stopped). Continue from where you left off and complete the task. "
    "The task, as given before:\n\n"
)


def _refused_by_budget(result: RunResult) -> bool:
    """Whether ``result`` is a run a budget refused before it started (a fleet worker's
    ``worker --budget-usd``): ``budget_exceeded`` with no exit, session or cost, where a run
    stopped at its own cap has all three."""
    return (
        result.status is RunStatus.BUDGET_EXCEEDED
        and result.exit_code is None
        and result.session_id is None
        and result.cost_usd is None
    )


def _enforces_cap(options: Mapping[str, Any]) -> bool:
    """Whether the task's run takes ``max_budget_usd`` (every task gets a reservation): its
    agent reports its cost, or the price table prices its model."""
    agent = options.get("agent", RunOptions.by_name["agent"].default)
    return takes_budget(agent, options.get("model"))


class ListRun:
    """One run of a list, from its first task to its result: :meth:`run` schedules the
    tasks and records the list; :meth:`cancel` stops it the orderly way."""

    def __init__(
        self,
        spec: TaskListSpec,
        *,
        list_id: str,
        folder: ListFolder,
        run_defaults: Mapping[str, Any],
        options: Mapping[str, dict[str, Any]],
        max_parallel: int,
        budget_usd: float | None,
        on_event: TaskEventCallback | None,
        states: Mapping[str, TaskResult],
        continue_sessions: Mapping[str, str],
        meta: Mapping[str, Any],
        warnings: list[str] | None = None,
        reserve_usd: Mapping[str, float] | None = None,
        check_task: TaskCheck | None = None,
        fleet: tuple[str, str | None] | None = None,
        on_permission: TaskDecider | None = None,
        decider_name: str = "callback",
        budget_thresholds: Sequence[float] | None = None,
        budget_webhook: str | None = None,
        on_budget_exhausted: OnExhausted = None,
    ) -> None:
        self.spec = spec
        #: Where the budget's announcements are POSTed (checked by the caller), and what
        #: its exhaustion does to the running tasks (None and ``drain``: they finish).
        self.budget_webhook = budget_webhook
        self.on_budget_exhausted = on_budget_exhausted
        #: The running tasks were cancelled because the budget was exhausted.
        self.budget_cancelled = False
        self._said_exhausted = False
        #: Where the budget's notes are POSTed, in order (None: no webhook).
        self._sender = WebhookSender(budget_webhook) if budget_webhook is not None else None
        self.on_permission = on_permission
        self.decider_name = decider_name
        #: Whether the list said that its asks are denied for want of a decider (once).
        self._said_no_decider = False
        #: (URL, queue): each task's run goes to this fleet (None: runs here).
        self.fleet = fleet
        self.check_task = check_task
        self.list_id = list_id
        self.folder = folder
        self.run_defaults = run_defaults
        self.options = options
        self.max_parallel = max_parallel
        self.reserve = dict(reserve_usd) if reserve_usd else None
        self.on_event = on_event
        self.tasks = spec.by_id
        self.order = spec.order()
        self.position = {tid: i for i, tid in enumerate(self.order)}
        self.dependents: dict[str, list[str]] = {t.id: [] for t in spec.tasks}
        for task in spec.tasks:
            for dep in task.depends_on:
                self.dependents[dep].append(task.id)
        self.states = {
            t.id: states.get(t.id) or TaskResult(id=t.id, title=t.title) for t in spec.tasks
        }
        # A session lives in the home of the worker that ran it: on a fleet, a stopped
        # attempt's next one starts afresh rather than fail on another machine.
        self.continue_sessions = dict(continue_sessions) if fleet is None else {}
        self.meta = dict(meta)
        self.handles: dict[str, RunHandle] = {}
        self.active: dict[asyncio.Future[None], str] = {}
        self.cancelled = False
        self.stop_reason: str | None = None
        #: The branch holding every ok task's workspace commit, once made at the end.
        self.workspace_branch: str | None = None
        self.budget_hit = False
        #: Tasks ready to start when the budget ran out: they end ``budget_exceeded``.
        self.uncovered: set[str] = set()
        self.started = time.monotonic()
        self.started_at = float(meta.get("started_at") or time.time())
        self.views: dict[str, dict[str, Any]] = {}
        self.warnings: list[str] = list(warnings or [])
        self.budget: Budget | None = None
        if budget_usd is not None:
            caps = {t.id: task_cap(options[t.id], self.reserve) for t in spec.tasks}
            self.budget = Budget(
                budget_usd,
                charged(self.states.values()),
                caps,
                tuple(budget_thresholds or DEFAULT_THRESHOLDS),
            )
            alone = [tid for tid, cap in caps.items() if cap is None]
            if alone and max_parallel > 1 and not spec.one_at_a_time:
                shown = ", ".join(alone[:5]) + (
                    f" and {len(alone) - 5} more" if len(alone) > 5 else ""
                )
                self.warnings.append(
                    f"budget_usd ${budget_usd:g}: task(s) {shown} have no max_budget_usd "
                    "and no reserve_usd for their model: each reserves the whole remaining "
                    "budget, so runs alone (set max_budget_usd or reserve_usd to run tasks "
                    "at once)"
                )
        self.recorder = Recorder()
        label = spec.name or spec.source
        default_agent = RunOptions.by_name["agent"].default
        # The list's agent as the history shows it: the one its tasks use, or all of them.
        agents = sorted({o.get("agent", default_agent) for o in options.values()})
        self.record = RunRecord(
            id=list_id,
            kind="tasks",
            agent=",".join(agents) or default_agent,
            # The list's folder, not the process's: a service running the list shows it
            # (from the history) only to callers allowed in that folder.
            cwd=str(run_defaults.get("cwd") or os.getcwd()),
            # What `cc-executor history` shows for a list (it shows argv for non-run kinds).
            argv=[label, f"({len(spec.tasks)} tasks)"],
            prompt_preview=f"{label} ({len(spec.tasks)} tasks)",
            started_at=self.started_at,
            run_dir=str(folder.path),
        )

    # ---------------------------------------------------------------- control

    def cancel(self) -> None:
        """Stop launching tasks and cancel the running ones (their trees are killed)."""
        if self.cancelled:
            return
        self.cancelled = True
        self.stop_reason = self.stop_reason or "cancelled"
        for handle in list(self.handles.values()):
            handle.cancel()

    def cancelled_by_budget(self) -> bool:
        # A method, as is_cancelled: it changes across awaits.
        return self.budget_cancelled

    def is_cancelled(self) -> bool:
        # A method, not the attribute: it changes across awaits (a signal handler).
        return self.cancelled

    @property
    def stopping(self) -> bool:
        return self.cancelled or self.stop_reason is not None

    # ---------------------------------------------------------------- bookkeeping

    def _save(self, state: TaskResult, *, durable: bool) -> None:
        try:
            self.folder.write_task(state.id, state.to_dict(), durable=durable)
        except OSError as exc:
            warning = f"task state not saved in {self.folder.path}: {exc.strerror or exc}"
            if warning not in self.warnings:
                # A full disk must not fail the tasks; the list is then less resumable.
                self.warnings.append(warning)

    def _write_list(self, status: ListStatus, *, durable: bool) -> None:
        self.meta.update(
            list_id=self.list_id,
            status=status.value,
            source=self.spec.source,
            name=self.spec.name,
            started_at=self.started_at,
            ended_at=None if status is ListStatus.RUNNING else time.time(),
            duration_s=time.monotonic() - self.started,
            pid=os.getpid(),
            max_parallel=self.max_parallel,
            budget_usd=self.budget.total if self.budget is not None else None,
            reserve_usd=self.reserve,
            budget_spent_usd=charged(self.states.values()) if self.budget is not None else None,
            stopped_reason=self.stop_reason,
            cost_usd=total_cost(self.states.values()),
            workspace_branch=self.workspace_branch,
        )
        try:
            self.folder.write_list(self.meta, durable=durable)
        except OSError as exc:
            self.warnings.append(f"list state not saved in {self.folder.path}: {exc}")

    def _decider(self, task_id: str, options: dict[str, Any]) -> Decider | None:
        """The run's ``on_permission`` of task ``task_id``: the list's, told the task; none
        for a task without a ``permission_policy`` (nothing would ask it)."""
        decider = self.on_permission
        if decider is None or not options.get("permission_policy"):
            return None
        if inspect.iscoroutinefunction(decider):
            coroutine = decider

            async def ask(request: PermissionRequest) -> Any:
                return await coroutine(task_id, request)

            return ask
        # Sync stays sync: the run calls it in a thread, where it may block (a prompt).
        return lambda request: decider(task_id, request)

    async def _emit(self, task_id: str, event: AgentEvent) -> None:
        if self.on_event is None:
            return
        outcome = self.on_event(task_id, event)
        if inspect.isawaitable(outcome):
            await outcome

    async def _state_event(
        self, state: TaskResult, name: str, reason: str | None = None, attempt: int = 0
    ) -> None:
        await self._emit(
            state.id,
            TaskStateEvent(
                t=time.monotonic(),
                task_id=state.id,
                state=name,
                attempt=attempt or state.attempts,
                run_id=state.run_id,
                reason=reason,
                cost_usd=state.cost_usd,
            ),
        )

    # ---------------------------------------------------------------- the list

    async def run(self) -> TaskListResult:
        try:
            failure: BaseException | None = None
            try:
                await asyncio.to_thread(self.recorder.start, self.record)
                self._write_list(ListStatus.RUNNING, durable=True)
                await self._schedule()
                if self._sender is not None:
                    # The webhook's calls under way (each gives up after its 3 tries).
                    await self._sender.aclose()
            except BaseException as exc:
                # Cancellation of the caller, or an exception from on_event: stop every
                # task the orderly way (trees killed), then record the state and re-raise.
                failure = exc
                self.cancel()
                await self._drain()
            result = self._result()
            await self._final_branch(result)
            self._write_list(result.status, durable=True)
            await asyncio.to_thread(self._record_end, result)
            if failure is not None:
                raise failure
            return result
        finally:
            self.folder.unlock()

    async def _final_branch(self, result: TaskListResult) -> None:
        """Merge the ok tasks' workspace commits, in file order, into the list's branch."""
        done = [t.workspace for t in result.tasks.values() if t.ok and t.workspace]
        if not done:
            return
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._workspace import (
            BRANCH_PREFIX,
            RECEIPT_NAME,
            list_base,
            merge_commits,
            set_branch,
            write_receipt,
        )

        repo = str(done[0]["repo"])
        branch = BRANCH_PREFIX + self.list_id

        def make() -> dict[str, str]:
            commit = merge_commits(
                repo, [str(w["commit"]) for w in done], f"cc-executor: task list {self.list_id}"
            )
            base = list_base(repo, [str(w["base"]) for w in done])
            set_branch(repo, branch, commit)
            return {"mode": "worktree", "branch": branch, "commit": commit, "base": base,
                    "repo": repo}  # fmt: skip

        try:
            receipt = await asyncio.to_thread(make)
        except WorkspaceError as exc:
            result.warnings.append(f"no branch holds the whole list's changes: {exc}")
            return
        result.workspace_branch = self.workspace_branch = branch
        # The list's own receipt: workspace diff|merge|discard take the list's id.
        path = str(self.folder.path / RECEIPT_NAME)
        try:
            write_receipt(path, self.list_id, receipt)
        except OSError as exc:
            result.warnings.append(
                f"{path} not written ({exc.strerror or exc}): workspace merge "
                f"{self.list_id} will not find the list's branch; git merge {branch} takes it"
            )

    def _workspace_base(self, task: TaskSpec) -> str | None:
        """The commit a task in a workspace starts from: its dependencies' commits merged
        in the order it lists them (None: no dependency had a workspace, HEAD then)."""
        from cc_executor._run._workspace import merge_commits

        receipts = [self.states[d].workspace for d in task.depends_on]
        found = [r for r in receipts if r]
        if not found:
            return None
        return merge_commits(
            str(found[0]["repo"]),
            [str(r["commit"]) for r in found],
            f"cc-executor: the dependencies of task {task.id}",
        )

    async def _drain(self) -> None:
        if self.active:
            await asyncio.gather(*self.active, return_exceptions=True)
            self.active.clear()

    async def _schedule(self) -> None:
        ok = TaskStatus.OK
        waiting = {
            tid: sum(1 for dep in self.tasks[tid].depends_on if self.states[dep].status is not ok)
            for tid in self.order
        }
        ready = [
            (self.position[tid], tid)
            for tid in self.order
            if waiting[tid] == 0 and self.states[tid].status is not ok
        ]
        heapq.heapify(ready)
        while True:
            while ready and not self.stopping and len(self.active) < self.max_parallel:
                budget = self.budget
                if budget is not None and budget.reserve(ready[0][1]) is None:
                    if budget.held and self.on_budget_exhausted == "cancel":
                        # As a fleet's: the first refusal exhausts the budget and cancels
                        # the runs in progress.
                        await self._cancel_for_budget(ready[0][1], budget)
                        self.uncovered.update(t for _, t in ready)
                        break
                    if budget.held:
                        break  # the running tasks may give back enough: wait for them
                    _, tid = heapq.heappop(ready)
                    self.budget_hit = True
                    if budget.exhausted:
                        self.stop_reason = (
                            f"budget_usd ${budget.total:g} reached (${budget.spent:.4f} "
                            "spent): no further task started"
                        )
                        # Every task ready now is one the budget cannot cover.
                        self.uncovered.add(tid)
                        self.uncovered.update(t for _, t in ready)
                        heapq.heappush(ready, (self.position[tid], tid))
                        await self._exhausted(tid)
                        break
                    await self._exhausted(tid)
                    await self._over_budget(self.states[tid], f"not started: {budget.refusal(tid)}")
                    continue
                _, tid = heapq.heappop(ready)
                self.active[asyncio.ensure_future(self._run_task(self.tasks[tid]))] = tid
            if not self.active:
                break
            done, _ = await asyncio.wait(self.active, return_when=asyncio.FIRST_COMPLETED)
            for future in done:
                tid = self.active.pop(future)
                if self.budget is not None:
                    self.budget.drop(tid)  # a reservation no run used (it ended before one)
                future.result()  # a bug or an exception from on_event ends the list
                status = self.states[tid].status
                if status is ok:
                    for child in self.dependents[tid]:
                        waiting[child] -= 1
                        if waiting[child] == 0 and self.states[child].status is TaskStatus.PENDING:
                            heapq.heappush(ready, (self.position[child], child))
                elif status is TaskStatus.FAILED:
                    await self._skip_dependents(tid)
        if not self.cancelled:
            for tid in self.order:
                if self.states[tid].status is not TaskStatus.PENDING:
                    continue  # ended, or skipped as a dependent of one just ended
                if tid in self.uncovered:
                    await self._over_budget(self.states[tid], f"not started: {self.stop_reason}")
                else:
                    await self._skip(self.states[tid], f"not started: {self.stop_reason}")

    async def _exhausted(self, tid: str) -> None:
        """Announce, once per list run, that the budget cannot cover ``tid`` even with
        nothing running (the first refusal, as a fleet's budget announces it)."""
        if not self._said_exhausted:
            self._said_exhausted = True
            await self._announce("exhausted", tid, on_exhausted=self.on_budget_exhausted or "drain")

    async def _cancel_for_budget(self, tid: str, budget: Budget) -> None:
        """``--on-budget-exhausted cancel``: ``tid`` cannot be covered; start no further
        task and cancel the running ones (they end ``budget_exceeded``)."""
        self.budget_hit = True
        self.budget_cancelled = True
        self.stop_reason = (
            f"budget_usd ${budget.total:g} exhausted (${budget.spent:.4f} spent, "
            f"${sum(budget.held.values()):.4f} held): the running tasks were cancelled "
            "(on_budget_exhausted: cancel), no further task started"
        )
        self._said_exhausted = True
        await self._announce("exhausted", tid, on_exhausted="cancel")
        for handle in list(self.handles.values()):
            handle.cancel()

    async def _announce(
        self, what: str, task_id: str, threshold: float | None = None, **extra: Any
    ) -> None:
        """A ``budget`` event for ``task_id`` and, with a webhook, the fleet's payload
        (:func:`cc_executor._run._budget.budget_note`) POSTed in the background."""
        budget = self.budget
        assert budget is not None
        state = SimpleNamespace(
            total=budget.total, spent=budget.spent, held=sum(budget.held.values())
        )
        name = self.spec.name or "task list"
        if self._sender is not None:
            note = budget_note(what, name, state, self.list_id, threshold, task_id=task_id, **extra)
            self._sender.send(note)
        await self._emit(
            task_id,
            BudgetEvent(
                t=time.monotonic(),
                what=what,
                budget=name,
                threshold=threshold,
                total_usd=budget.total,
                spent_usd=round(budget.spent, 6),
                held_usd=round(state.held, 6),
            ),
        )

    async def _over_budget(self, state: TaskResult, error: str) -> None:
        """End a task a budget cannot cover: ``budget_exceeded``, no run of it started
        (``error`` says why); its dependents are skipped, as for any task that did not
        end ok. No retry: the same budget would refuse it again."""
        self.budget_hit = True
        state.status = TaskStatus.BUDGET_EXCEEDED
        state.error = error
        state.ended_at = time.time()
        self._save(state, durable=True)
        await self._state_event(state, "budget_exceeded", state.error)
        await self._skip_dependents(state.id, "ended budget_exceeded")

    async def _skip(self, state: TaskResult, reason: str) -> None:
        state.status = TaskStatus.SKIPPED
        state.skipped_reason = reason
        self._save(state, durable=True)
        await self._state_event(state, "skipped", reason)

    async def _skip_dependents(self, failed: str, how: str = "failed") -> None:
        queue = [(child, f'dependency "{failed}" {how}') for child in self.dependents[failed]]
        while queue:
            tid, reason = queue.pop(0)
            state = self.states[tid]
            if state.status is not TaskStatus.PENDING:
                continue
            await self._skip(state, reason)
            queue.extend((c, f'dependency "{tid}" was skipped') for c in self.dependents[tid])

    def _result(self) -> TaskListResult:
        states = self.states
        if all(s.status is TaskStatus.OK for s in states.values()):
            status = ListStatus.OK
        elif self.cancelled:
            status = ListStatus.CANCELLED
        elif self.budget_hit:
            status = ListStatus.BUDGET_EXCEEDED
        else:
            status = ListStatus.FAILED
        return TaskListResult(
            list_id=self.list_id,
            status=status,
            tasks={t.id: states[t.id] for t in self.spec.tasks},
            cost_usd=total_cost(states.values()),
            duration_s=time.monotonic() - self.started,
            run_dir=str(self.folder.path),
            source=self.spec.source,
            name=self.spec.name,
            stopped_reason=None if status is ListStatus.OK else self.stop_reason,
            started_at=self.started_at,
            ended_at=time.time(),
            warnings=self.warnings,
            budget_usd=self.budget.total if self.budget is not None else None,
            budget_spent_usd=charged(states.values()) if self.budget is not None else None,
        )

    def _record_end(self, result: TaskListResult) -> None:
        record = self.record
        counts = result.counts()
        record.ended_at = result.ended_at
        record.status = result.status.value
        record.cost_usd = result.cost_usd
        record.duration_s = result.duration_s
        record.result_preview = ", ".join(f"{n} {name}" for name, n in counts.items())
        record.error = result.stopped_reason
        record.artifacts = self._receipts()
        self.recorder.finish(record)
        self.recorder.close()
        # The list's recorder meets the same broken history as its tasks' runs did: once.
        result.warnings.extend(w for w in self.recorder.warnings if w not in result.warnings)

    def _receipts(self) -> list[Artifact]:
        """Receipts of the list's files as they are at its end: the spec, the list's state
        and each task's, so that ``verify`` sees a state edited afterwards (a task made
        ``ok``)."""
        folder = self.folder
        found = [
            file_receipt("spec", folder.spec_path),
            file_receipt("list state", folder.list_path),
        ]
        found += [
            file_receipt(f"task {tid} state", folder.tasks_dir / f"{tid}.json")
            for tid in self.order
        ]
        return [a for a in found if a is not None]

    # ---------------------------------------------------------------- one task

    def _view(self, tid: str) -> dict[str, Any]:
        view = self.views.get(tid)
        if view is None:
            view = _template.view({"id": tid, **self.states[tid].to_dict()})
            self.views[tid] = view
        return view

    async def _run_task(self, task: TaskSpec) -> None:
        state = self.states[task.id]
        continue_session = self.continue_sessions.pop(task.id, None)
        # ``retries: N`` is N more runs: every run counts, a failed continuation included.
        attempts = task.retries + 1
        number = 0
        why: str | None = None  # why the next attempt runs (None: the first)
        while True:
            if self.cancelled:
                await self._cancelled(state)
                return
            if self.budget_cancelled:
                await self._over_budget(state, f"not started: {self.stop_reason}")
                return
            try:
                prompt = (
                    # In a child process with memory and CPU limits, killed on cancel.
                    await _template.render_async(
                        task.prompt,
                        {r.task: self._view(r.task) for r in task.references},
                    )
                    if task.template
                    else task.prompt
                )
            except _template.TemplateProblem as exc:
                await self._fail(task, state, str(exc))
                return
            options = dict(self.options[task.id])
            if options.get("workspace") == "worktree" and task.depends_on:
                from cc_executor._errors import WorkspaceError

                try:
                    base = await asyncio.to_thread(self._workspace_base, task)
                except WorkspaceError as exc:
                    # Said before the task starts: its dependencies cannot be combined.
                    await self._fail(task, state, f"workspace: {exc}")
                    return
                if base is not None:
                    options["workspace_base"] = base
            reserved = self.budget.held.get(task.id) if self.budget is not None else None
            if reserved is not None and _enforces_cap(options):
                # The run stops itself once past its reservation.
                options["max_budget_usd"] = reserved
            run_id = new_run_id()
            options.update(run_id=run_id, parent_id=self.list_id)
            agent = options.get("agent", RunOptions.by_name["agent"].default)
            # Bound to the task's options: a command agent resumes as its spec says.
            adapter = adapter_for(SimpleNamespace(**{**options, "agent": agent}))
            if continue_session is not None and not _resumable(adapter, continue_session):
                continue_session = None  # an agent that cannot resume: the attempt starts afresh
            continuing = continue_session is not None
            resumed: str | None = None
            try:
                if continue_session is not None:
                    resumed = continue_session
                    options.update(adapter.resume_options(resumed))
                    prompt = CONTINUE_NOTE + prompt
                elif task.resume_from is not None:
                    resumed = self.states[task.resume_from].session_id
                    if resumed is None:
                        raise ValueError(
                            f'resume_from: task "{task.resume_from}" has no session id'
                        )
                    # A fork: the earlier task's session stays as it was, for a retry of
                    # this task and for any other task resuming from it.
                    options.update(adapter.resume_options(resumed, fork=True))
            except ValueError as exc:  # no session, or an agent that cannot resume so
                await self._fail(task, state, str(exc))
                return
            number += 1
            ordinal = f"attempt {number} of {attempts}" + (f" after {why}" if why else "")
            attempt = TaskAttempt(
                run_id=run_id,
                resumed_session=resumed,
                started_at=time.time(),
                reason=ordinal,
                reserved_usd=reserved,
            )
            state.runs.append(attempt)
            state.status = TaskStatus.RUNNING
            state.run_id = run_id
            state.started_at = state.started_at or attempt.started_at
            self._save(state, durable=False)
            await self._state_event(state, "running", ordinal)
            if self.is_cancelled():
                attempt.status = RunStatus.CANCELLED.value
                attempt.ended_at = time.time()
                await self._cancelled(state)
                return

            async def forward(event: AgentEvent, attempt: TaskAttempt = attempt) -> None:
                if (
                    isinstance(event, InitEvent)
                    and event.session_id
                    and attempt.session_id != event.session_id
                ):
                    # Known before the run ends, so an interrupted task can continue it.
                    attempt.session_id = event.session_id
                    self._save(state, durable=False)
                if (
                    isinstance(event, PermissionDecisionEvent)
                    and event.decided_by == "no decider"
                    and not self._said_no_decider
                ):
                    # Said once per list, before the event: a live view shows it at once.
                    self._said_no_decider = True
                    self.warnings.append(
                        f'task "{task.id}": its permission policy asked about a '
                        f"{event.tool_name} call and nobody can answer (no on_permission, "
                        "no terminal, no service): every ask of this list is denied"
                    )
                if self.on_event is not None:
                    await self._emit(task.id, event)

            if self.check_task is not None:
                try:
                    # As late as possible: a folder swapped for a symlink while the list
                    # ran would otherwise take this run outside what its caller may use.
                    self.check_task(task.id, options)
                except Exception as exc:
                    await self._refused(task, state, attempt, f"refused at the start: {exc}")
                    return
            if self.fleet is None:
                handle = start_run(
                    prompt,
                    on_event=forward,
                    on_permission=self._decider(task.id, options),
                    _decider_name=self.decider_name,
                    **options,
                )
            else:
                # The fleet names its runs; the list's link (parent_id) and a run's id are
                # the worker's to keep, so neither is sent.
                for name in ("run_id", "parent_id"):
                    options.pop(name, None)
                url, queue = self.fleet
                handle = start_run(
                    prompt,
                    on_event=forward,
                    on_permission=self._decider(task.id, options),
                    _decider_name=self.decider_name,
                    fleet=url,
                    queue=queue,
                    **options,
                )
                attempt.run_id = state.run_id = handle.run_id
                self._save(state, durable=False)
            self.handles[task.id] = handle
            if self.cancelled_by_budget():
                handle.cancel()  # started as the budget was exhausted
            try:
                result = await handle.wait()
            except RunRefused as exc:
                attempt.status = RunStatus.ERROR.value
                attempt.ended_at = time.time()
                attempt.error = str(exc)
                await self._fail(task, state, str(exc))
                return
            finally:
                self.handles.pop(task.id, None)
            for threshold in self._account(state, attempt, result):
                await self._budget_event(task.id, threshold)
            if self.cancelled_by_budget() and not result.ok:
                await self._over_budget(state, f"{result.status.value}: {self.stop_reason}")
                return
            if _refused_by_budget(result):
                # A fleet's budget refused the run before its agent started.
                await self._over_budget(state, result.error or "not started: over budget")
                return
            if result.ok:
                state.status = TaskStatus.OK
                state.result = result.result
                state.json = result.json
                state.files = list(result.files)
                state.session_id = result.session_id
                state.num_turns = result.num_turns
                state.error = None
                state.ended_at = attempt.ended_at
                self._save(state, durable=True)
                await self._state_event(state, "ok")
                return
            error = result.error or f"run ended {result.status.value}"
            if self.is_cancelled() and result.status is RunStatus.CANCELLED:
                await self._cancelled(state)
                return
            continue_session = None
            why = result.status.value
            if continuing and result.status in (RunStatus.ERROR, RunStatus.CRASHED):
                # The interrupted session could not be continued: a next attempt starts afresh.
                why = f"{why} continuing the interrupted session"
                error = f"could not continue the interrupted session: {error}"
            elif (
                result.status in CONTINUABLE
                and result.session_id
                and _resumable(adapter, result.session_id)
            ):
                continue_session = result.session_id
            budget = self.budget
            if (
                number < attempts
                and not self.is_cancelled()
                and budget is not None
                and await budget.reserve_when_possible(task.id) is None
            ):
                self.budget_hit = True
                error += f"; attempt {number + 1} not started: {budget.refusal(task.id)}"
                await self._fail(task, state, error)
                return
            if number < attempts and not self.is_cancelled():
                how = "continues its session" if continue_session else "starts afresh"
                await self._state_event(
                    state,
                    "retrying",
                    f"attempt {number} of {attempts} ended {why}: {error}; "
                    f"attempt {number + 1} {how}",
                )
                continue
            await self._fail(task, state, error)
            return

    async def _budget_event(self, task_id: str, threshold: float) -> None:
        """Announce a soft threshold of the list's budget passed as ``task_id`` ended."""
        await self._announce("threshold", task_id, threshold)

    def _account(self, state: TaskResult, attempt: TaskAttempt, result: RunResult) -> list[float]:
        """Record the attempt's end; the soft thresholds of the budget it passed."""
        if result.workspace is not None:
            state.workspace = dict(result.workspace)
        attempt.status = result.status.value
        attempt.session_id = result.session_id or attempt.session_id
        attempt.cost_usd = result.cost_usd
        attempt.num_turns = result.num_turns
        attempt.ended_at = time.time()
        attempt.error = result.error
        if result.cost_usd is not None:
            state.cost_usd = (state.cost_usd or 0.0) + result.cost_usd
        passed: list[float] = []
        if self.budget is not None:
            passed = self.budget.release(state.id, attempt.charged_usd)
            if result.status is RunStatus.BUDGET_EXCEEDED and attempt.reserved_usd is not None:
                self.budget_hit = True  # stopped at the cap the list's budget gave it
        state.run_status = result.status.value
        state.duration_s = (state.duration_s or 0.0) + result.duration_s
        for warning in result.warnings:
            # The list reports a broken history once, not once per task.
            if warning.startswith("history not recorded") and warning not in self.warnings:
                self.warnings.append(warning)
        return passed

    async def _refused(
        self, task: TaskSpec, state: TaskResult, attempt: TaskAttempt, error: str
    ) -> None:
        """The attempt ``check_task`` refused: it ends ``error`` without a run, and so does
        the task (no retry: the same check would refuse it again)."""
        attempt.status = RunStatus.ERROR.value
        attempt.error = error
        attempt.ended_at = time.time()
        state.run_status = attempt.status
        await self._fail(task, state, error)

    async def _cancelled(self, state: TaskResult) -> None:
        if not state.runs:
            return  # never started: it stays pending
        state.status = TaskStatus.CANCELLED
        state.error = "cancelled"
        state.ended_at = time.time()
        self._save(state, durable=True)
        await self._state_event(state, "cancelled", "the list was cancelled")

    async def _fail(self, task: TaskSpec, state: TaskResult, error: str) -> None:
        state.status = TaskStatus.FAILED
        state.error = error
        state.ended_at = time.time()
        self._save(state, durable=True)
        await self._state_event(state, "failed", error)
        if task.on_error == "retry" and self.stop_reason is None:
            # "failed and its on_error is retry" read as if no retry had been made.
            self.stop_reason = (
                f'task "{task.id}" failed on each of its {state.attempts} attempt(s) '
                "(on_error: retry)"
            )
        elif task.on_error != "continue" and self.stop_reason is None:
            self.stop_reason = f'task "{task.id}" failed and its on_error is {task.on_error}'
