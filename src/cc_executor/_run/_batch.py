"""Batches: many prompts, a bounded number of runs at once, one budget, one id in the history.

:func:`run_many` runs each prompt as its own :func:`~cc_executor.run` (a fresh agent CLI
each), at most ``concurrency`` at a time, and returns their results in input order. Every
run is recorded in the history with the batch's id and its document's *key*; running the
same batch id again reuses the runs that already ended ``ok`` instead of paying for them
twice, so a driver that crashed half way resumes where it stopped. A run is reused only if
it verifies (its record and its files match their receipts, as ``cc-executor verify``
checks): one that does not is run again, with a warning saying why.

A budget (``budget_usd``) is a ceiling on what the batch's runs cost: each run is capped at
what remains of it when it starts (``max_budget_usd``, for agents that support it), no run
starts once it is spent, and the runs still going when it is spent are cancelled (the
result and the events say which). The agent CLI learns a run's cost only once it is
billed, so the total can pass the budget by what the runs in flight spend meanwhile.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents import get_adapter
from cc_executor._agents._prices import takes_budget
from cc_executor._agents._types import AgentEvent, ResultEvent, RunStatus
from cc_executor._engine import run_sync as run_coroutine_sync
from cc_executor._ids import new_run_id
from cc_executor._payload import SCHEMA_VERSION
from cc_executor._run._options import RunOptions
from cc_executor._run._result import RunResult
from cc_executor._run._runner import _Run
from cc_executor._store import HistoryError, Query, RunRecord, open_store, verify

#: What :class:`BatchEvent.kind` can be.
STARTED = "started"
"""A run of the batch was started (``run_id`` is its id)."""
EVENT = "event"
"""An event of a running run (``event`` holds it)."""
FINISHED = "finished"
"""A run ended (``result`` holds its result, whatever its status)."""
REUSED = "reused"
"""Not run: an earlier run of this batch with the same key ended ok (``run_id`` is that
run's id, ``result`` its answer)."""
SKIPPED = "skipped"
"""Not started: the budget was spent or the batch was cancelled first (``run_id`` is the
id it would have had; it is not in the history)."""
CANCELLING = "cancelling"
"""A running run is being cancelled because the budget was spent (its ``finished`` event
follows once it has stopped)."""
KINDS = (STARTED, EVENT, FINISHED, REUSED, SKIPPED, CANCELLING)

#: Options that change how long or how often a run may try, what it may use (memory, CPU),
#: where its files go or what credentials it holds, not what it is asked: they do not
#: change a document's key, so a batch re-run with a longer timeout or a rotated API key
#: still reuses what succeeded.
_NOT_IN_KEY = frozenset(
    {
        "env",
        "timeout",
        "idle_timeout",
        "first_output_timeout",
        "grace",
        "retries",
        "retry_initial_delay",
        "retry_max_delay",
        "heartbeat_s",
        "max_budget_usd",
        "memory_max",
        "cpus",
        "pids_max",
        "max_output_bytes",
        "agent_path",
        "run_id",
        "run_dir",
        "record",
        "parent_id",
    }
)
#: Options a batch gives each of its runs itself.
_PER_RUN = ("run_id", "run_dir")
_ITEM_FIELDS = ("prompt", "key", "options")


@dataclass(frozen=True, slots=True, kw_only=True)
class BatchEvent:
    """What ``on_progress`` receives: one thing that happened in a batch, always naming the
    run it is about (``run_id``) and the document (``index`` in the input, ``key``).

    ``kind`` is one of :data:`KINDS`: ``started``, ``event`` (``event``: the run's typed
    event, as :func:`~cc_executor.run`'s ``on_event`` gets it), ``finished`` (``result``),
    ``reused`` (``result``: the earlier run's answer), ``skipped`` (never started;
    ``message`` says why) and ``cancelling`` (the budget was spent while it ran;
    ``message`` says so). ``done``/``total``: documents finished (any status, reused and
    skipped included) out of all; ``spent_usd``: what the batch's runs cost so far.
    """

    kind: str
    run_id: str
    index: int
    key: str
    done: int
    total: int
    spent_usd: float
    event: AgentEvent | None = None
    result: RunResult | None = None
    message: str | None = None


@dataclass(slots=True, kw_only=True)
class BatchResult:
    """The outcome of a batch: ``results``, one :class:`RunResult` per prompt in input
    order (iterating, indexing and ``len()`` go to it), and what the batch did about them.

    ``keys``: each document's key (the history's ``batch_key``). ``reused``: indexes whose
    answer came from an earlier ``ok`` run of this batch (not run again; their ``run_id``
    is that run's). ``not_started``: indexes never started (status ``skipped``: the budget
    was spent or the batch was cancelled; their ``run_id`` is not in the history).
    ``cancelled_by_budget``: ids of the runs cancelled while running because the budget
    was spent. ``spent_usd``: what this call's runs cost (reused ones excluded).
    ``stopped_reason``: why runs were cancelled or not started, else None.
    """

    batch_id: str
    results: list[RunResult]
    keys: list[str]
    reused: list[int] = field(default_factory=list)
    not_started: list[int] = field(default_factory=list)
    cancelled_by_budget: list[str] = field(default_factory=list)
    spent_usd: float = 0.0
    budget_usd: float | None = None
    stopped_reason: str | None = None
    duration_s: float = 0.0
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every document's result is ``ok``."""
        return all(r.ok for r in self.results)

    def counts(self) -> dict[str, int]:
        """How many results have each status."""
        counted: dict[str, int] = {}
        for r in self.results:
            counted[r.status.value] = counted.get(r.status.value, 0) + 1
        return counted

    def __len__(self) -> int:
        return len(self.results)

    def __iter__(self) -> Iterator[RunResult]:
        return iter(self.results)

    def __getitem__(self, index: int) -> RunResult:
        return self.results[index]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict with ``schema_version``; each result as
        :meth:`RunResult.to_dict` gives it, plus its ``index``, ``key`` and ``reused``."""
        results = []
        reused = set(self.reused)
        for index, (result, key) in enumerate(zip(self.results, self.keys, strict=True)):
            data = result.to_dict()
            del data["schema_version"]
            results.append({"index": index, "key": key, "reused": index in reused, **data})
        return {
            "schema_version": SCHEMA_VERSION,
            "batch_id": self.batch_id,
            "ok": self.ok,
            "counts": self.counts(),
            "spent_usd": self.spent_usd,
            "budget_usd": self.budget_usd,
            "stopped_reason": self.stopped_reason,
            "reused": list(self.reused),
            "not_started": list(self.not_started),
            "cancelled_by_budget": list(self.cancelled_by_budget),
            "duration_s": round(self.duration_s, 6),
            "warnings": list(self.warnings),
            "results": results,
        }


ProgressCallback = Callable[[BatchEvent], "Awaitable[Any] | Any"]


def _plain(value: Any) -> Any:
    """``value`` as JSON a key can be computed from, the same for equal options."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (set, frozenset)):
        return sorted(str(v) for v in value)
    if isinstance(value, Iterable):
        return [_plain(v) for v in value]
    return str(value)


def batch_key(prompt: str | bytes, options: RunOptions) -> str:
    """The key of a document whose caller gave none: ``sha256:`` and the digest of the
    prompt and of the options that change what is asked (the model, the tools, the cwd,
    ...; not the time limits, retries, budget cap or environment). Stable across
    processes."""
    data = prompt.encode("utf-8") if isinstance(prompt, str) else bytes(prompt)
    asked = {k: v for k, v in options.as_dict().items() if k not in _NOT_IN_KEY}
    asked["cwd"] = os.path.abspath(os.fspath(options.cwd)) if options.cwd else os.getcwd()
    digest = hashlib.sha256(data)
    digest.update(b"\0")
    digest.update(json.dumps(_plain(asked), sort_keys=True).encode())
    return "sha256:" + digest.hexdigest()


@dataclass(slots=True)
class _Item:
    prompt: str | bytes
    options: RunOptions
    key: str


def _items(
    prompts: Iterable[str | bytes | Mapping[str, Any]], options: Mapping[str, Any]
) -> list[_Item]:
    """Every prompt checked, with its options and key, before anything runs."""
    if isinstance(prompts, (str, bytes, Mapping)):
        raise TypeError(
            "run_many: prompts must be a list of prompts (each a str, bytes or "
            "{'prompt': ..., 'key': ..., 'options': {...}}), not one " + type(prompts).__name__
        )
    items: list[_Item] = []
    explicit: dict[str, int] = {}
    for index, entry in enumerate(prompts):
        where = f"run_many: prompts[{index}]"
        key: Any = None
        own: Any = {}
        if isinstance(entry, Mapping):
            unknown = sorted(set(map(str, entry)) - set(_ITEM_FIELDS))
            if unknown:
                raise ValueError(
                    f"{where}: unknown field(s) {', '.join(unknown)} "
                    f"(known: {', '.join(_ITEM_FIELDS)})"
                )
            if "prompt" not in entry:
                raise ValueError(f"{where}: no 'prompt'")
            prompt, key, own = entry["prompt"], entry.get("key"), entry.get("options") or {}
        else:
            prompt = entry
        if not isinstance(prompt, (str, bytes)):
            raise TypeError(
                f"{where}: the prompt must be a str or bytes, got {type(prompt).__name__}"
            )
        if not prompt.strip():
            raise ValueError(f"{where}: the prompt is empty")
        if not isinstance(own, Mapping):
            raise TypeError(f"{where}: options must be a mapping, got {type(own).__name__}")
        given = [name for name in _PER_RUN if name in own]
        if given:
            raise ValueError(f"{where}: {given[0]} is chosen by the batch for each run")
        if key is not None and (not isinstance(key, str) or not key.strip()):
            raise ValueError(f"{where}: the key must be a non-empty string, got {key!r}")
        if key is not None and key in explicit:
            raise ValueError(f"{where}: key {key!r} is also the key of prompts[{explicit[key]}]")
        merged = {**options, **own}
        if merged.get("timeout") is None:
            raise TypeError(
                f"{where}: its timeout is None; a batch needs a time limit for every run "
                "(see run_many's timeout)"
            )
        try:
            checked = RunOptions.from_kwargs(merged)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"{where}: {exc}") from None
        if key is not None:
            explicit[key] = index
        items.append(_Item(prompt, checked, key if key is not None else batch_key(prompt, checked)))
    return items


def _earlier_answer(record: RunRecord, options: RunOptions) -> ResultEvent | None:
    """The result line of an earlier run's event log, or None when it cannot be read."""
    log = next((a.path for a in record.artifacts if a.name == "events"), None)
    if log is None:
        return None
    final = None
    try:
        with open(log, "rb") as f:
            for event in get_adapter(record.agent or options.agent).parser().parse_log(f):
                if isinstance(event, ResultEvent):
                    final = event
    except (OSError, LookupError, ValueError):
        return None
    return final if final is not None and final.result is not None else None


class _Batch:
    def __init__(
        self,
        items: list[_Item],
        *,
        batch_id: str,
        concurrency: int,
        budget_usd: float | None,
        on_progress: ProgressCallback | None,
        skip_ok: bool,
    ) -> None:
        self.items = items
        self.batch_id = batch_id
        self.concurrency = concurrency
        self.budget_usd = budget_usd
        self.on_progress = on_progress
        self.skip_ok = skip_ok
        self.results: list[RunResult | None] = [None] * len(items)
        self.out = BatchResult(
            batch_id=batch_id, results=[], keys=[i.key for i in items], budget_usd=budget_usd
        )
        self.running: dict[int, _Run] = {}
        self.done = 0
        self.started = time.monotonic()
        self._lock = asyncio.Lock()

    # -- events ---------------------------------------------------------------------------

    async def emit(self, kind: str, index: int, run_id: str, **extra: Any) -> None:
        if self.on_progress is None:
            return
        event = BatchEvent(
            kind=kind,
            run_id=run_id,
            index=index,
            key=self.items[index].key,
            done=self.done,
            total=len(self.items),
            spent_usd=self.out.spent_usd,
            **extra,
        )
        async with self._lock:
            outcome = self.on_progress(event)
            if inspect.isawaitable(outcome):
                await outcome

    def _forward(self, index: int, run_id: str) -> Callable[[AgentEvent], Awaitable[None]] | None:
        if self.on_progress is None:
            return None

        async def on_event(event: AgentEvent) -> None:
            await self.emit(EVENT, index, run_id, event=event)

        return on_event

    # -- the batch ------------------------------------------------------------------------

    async def run(self) -> BatchResult:
        await self._reuse()
        todo = [i for i, r in enumerate(self.results) if r is None]
        waiting = iter(todo)

        async def worker() -> None:
            for index in waiting:
                await self._one(index)

        workers = [asyncio.ensure_future(worker()) for _ in range(min(self.concurrency, len(todo)))]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            # A callback raised, or the caller cancelled: every run stops (its tree is
            # killed and it is recorded cancelled) before this is raised on.
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        self.out.results = [r for r in self.results if r is not None]
        self.out.duration_s = time.monotonic() - self.started
        return self.out

    def cancel(self, reason: str = "the batch was cancelled") -> None:
        """Start no further run and stop the running ones (they end ``cancelled``)."""
        if self.out.stopped_reason is None:
            self.out.stopped_reason = reason
        for job in list(self.running.values()):
            job.request_stop()

    async def _reuse(self) -> None:
        """Fill the results of documents an earlier run of this batch already did."""
        if not self.skip_ok:
            return
        try:
            records = await asyncio.to_thread(self._ok_records)
        except HistoryError as exc:
            self.out.warnings.append(f"earlier runs of the batch not looked up: {exc}")
            return
        for index, item in enumerate(self.items):
            record = records.get(item.key)
            if record is None:
                continue
            # A record or event log edited (or lost) since must not stand for a result.
            check = await asyncio.to_thread(verify, record, record.id)
            if not check.ok:
                why = check.problems[0] if check.problems else "it does not verify"
                self.out.warnings.append(
                    f"prompts[{index}]: run {record.id} ended ok but fails verification "
                    f"({why}): run again"
                )
                continue
            answer = await asyncio.to_thread(_earlier_answer, record, item.options)
            if answer is None:
                self.out.warnings.append(
                    f"prompts[{index}]: run {record.id} ended ok but its answer can no "
                    "longer be read from its event log: run again"
                )
                continue
            result = await self._reused_result(record, answer, item.options)
            self.results[index] = result
            self.out.reused.append(index)
            self.done += 1
            await self.emit(REUSED, index, record.id, result=result)

    def _ok_records(self) -> dict[str, RunRecord]:
        store = open_store()
        try:
            records = store.query(Query(batch_id=self.batch_id, status=RunStatus.OK.value))
        finally:
            store.close()
        newest: dict[str, RunRecord] = {}
        for record in records:  # newest first
            if record.batch_key is not None:
                newest.setdefault(record.batch_key, record)
        return newest

    async def _reused_result(
        self, record: RunRecord, answer: ResultEvent, options: RunOptions
    ) -> RunResult:
        result = RunResult(
            run_id=record.id,
            status=RunStatus.OK,
            result=answer.result or "",
            session_id=record.session_id,
            cost_usd=record.cost_usd,
            usage=dict(answer.usage),
            num_turns=record.turns,
            duration_s=record.duration_s or 0.0,
            exit_code=record.exit_code,
            model=record.model,
            event_log=next((a.path for a in record.artifacts if a.name == "events"), None),
            run_dir=record.run_dir,
            warnings=[
                f"not run again: run {record.id} of batch {self.batch_id} already ended ok "
                "with this key (its answer is read back from its event log)"
            ],
        )
        if options.json_mode or options.json_schema is not None:
            if answer.structured_output is not None:
                result.json = answer.structured_output
            else:
                from cc_executor._run._jsonmode import extract_from_answer_async

                extraction, _ = await extract_from_answer_async(
                    result.result, schema=options.json_schema
                )
                result.json = extraction.value if extraction.found else None
                result.json_error = extraction.error
        return result

    def _remaining(self) -> float | None:
        return None if self.budget_usd is None else self.budget_usd - self.out.spent_usd

    async def _one(self, index: int) -> None:
        item = self.items[index]
        run_id = new_run_id()
        if self.out.stopped_reason is not None:
            await self._skip(index, run_id)
            return
        options = item.options.replace(run_id=run_id)
        remaining = self._remaining()
        if remaining is not None and takes_budget(options.agent, options.model):
            own = options.max_budget_usd
            options = options.replace(
                max_budget_usd=remaining if own is None else min(own, remaining)
            )
        job = _Run(item.prompt, options, self._forward(index, run_id))
        job.record.batch_id = self.batch_id
        job.record.batch_key = item.key
        self.running[index] = job
        try:
            await self.emit(STARTED, index, run_id)
            result = await job.run()
        finally:
            del self.running[index]
        self.results[index] = result
        self.out.spent_usd += result.cost_usd or 0.0
        self.done += 1
        await self.emit(FINISHED, index, run_id, result=result)
        remaining = self._remaining()
        if remaining is not None and remaining <= 0 and self.out.stopped_reason is None:
            await self._budget_spent()

    async def _skip(self, index: int, run_id: str) -> None:
        message = f"not started: {self.out.stopped_reason}"
        self.results[index] = RunResult(run_id=run_id, status=RunStatus.SKIPPED, error=message)
        self.out.not_started.append(index)
        self.done += 1
        await self.emit(SKIPPED, index, run_id, message=message)

    async def _budget_spent(self) -> None:
        reason = (
            f"the batch's budget_usd ${self.budget_usd:g} was reached "
            f"(${self.out.spent_usd:.4f} spent)"
        )
        self.out.stopped_reason = reason
        for index, job in sorted(self.running.items()):
            job.request_stop(f"cancelled: {reason}")
            self.out.cancelled_by_budget.append(job.run_id)
            await self.emit(CANCELLING, index, job.run_id, message=f"cancelling: {reason}")


def _checked(
    prompts: Iterable[str | bytes | Mapping[str, Any]],
    *,
    concurrency: int,
    budget_usd: float | None,
    batch_id: str | None,
    timeout: float | None,
    options: Mapping[str, Any],
) -> tuple[list[_Item], str]:
    if timeout is None:
        raise TypeError(
            "run_many needs timeout= (seconds, for each run): run() has no default timeout, "
            "and in a batch one stuck run would hold its slot for good"
        )
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"run_many: concurrency must be an integer >= 1, got {concurrency!r}")
    if budget_usd is not None and (
        isinstance(budget_usd, bool)
        or not isinstance(budget_usd, (int, float))
        or not budget_usd > 0  # "not >": NaN is refused too
    ):
        raise ValueError(f"run_many: budget_usd must be a number > 0, got {budget_usd!r}")
    if batch_id is not None and (not isinstance(batch_id, str) or not batch_id.strip()):
        raise ValueError(f"run_many: batch_id must be a non-empty string, got {batch_id!r}")
    given = [name for name in _PER_RUN if name in options]
    if given:
        raise ValueError(f"run_many: {given[0]} is chosen by the batch for each run")
    items = _items(prompts, {**options, "timeout": timeout})
    return items, batch_id if batch_id is not None else new_run_id()


class BatchHandle:
    """A batch in progress (see :func:`start_many`): ``cancel()`` starts no further run
    and stops the running ones; ``await wait()`` then returns the :class:`BatchResult`
    (the stopped runs ``cancelled``, the others not started ``skipped``)."""

    def __init__(self, batch: _Batch, task: asyncio.Task[BatchResult]) -> None:
        self._batch = batch
        self._task = task

    @property
    def batch_id(self) -> str:
        """The batch's id (given, or a fresh one)."""
        return self._batch.batch_id

    @property
    def done(self) -> bool:
        """True once the result is ready."""
        return self._task.done()

    def cancel(self) -> None:
        """Start no further run; stop the running ones."""
        self._batch.cancel()

    async def wait(self) -> BatchResult:
        """The result, once every run is over."""
        return await asyncio.shield(self._task)


def _new_batch(
    prompts: Iterable[str | bytes | Mapping[str, Any]],
    *,
    concurrency: int,
    budget_usd: float | None,
    on_progress: ProgressCallback | None,
    batch_id: str | None,
    skip_ok: bool,
    timeout: float | None,
    options: dict[str, Any],
) -> _Batch:
    """The batch :func:`run_many` and :func:`start_many` run, its arguments checked."""
    items, chosen = _checked(
        prompts,
        concurrency=concurrency,
        budget_usd=budget_usd,
        batch_id=batch_id,
        timeout=timeout,
        options=options,
    )
    return _Batch(
        items,
        batch_id=chosen,
        concurrency=concurrency,
        budget_usd=budget_usd,
        on_progress=on_progress,
        # A fresh id has no earlier runs: the history is not opened for nothing.
        skip_ok=skip_ok and batch_id is not None,
    )


def start_many(
    prompts: Iterable[str | bytes | Mapping[str, Any]],
    *,
    concurrency: int = 4,
    budget_usd: float | None = None,
    on_progress: ProgressCallback | None = None,
    batch_id: str | None = None,
    skip_ok: bool = True,
    timeout: float | None = None,
    **options: Any,
) -> BatchHandle:
    """Start :func:`run_many` in the background of the running event loop and return its
    handle; the arguments are checked here, before anything starts."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        raise RuntimeError(
            "start_many needs a running event loop (call it from async code, or use run_many_sync)"
        ) from None
    batch = _new_batch(
        prompts,
        concurrency=concurrency,
        budget_usd=budget_usd,
        on_progress=on_progress,
        batch_id=batch_id,
        skip_ok=skip_ok,
        timeout=timeout,
        options=options,
    )
    return BatchHandle(batch, asyncio.ensure_future(batch.run()))


async def run_many(
    prompts: Iterable[str | bytes | Mapping[str, Any]],
    *,
    concurrency: int = 4,
    budget_usd: float | None = None,
    on_progress: ProgressCallback | None = None,
    batch_id: str | None = None,
    skip_ok: bool = True,
    timeout: float | None = None,
    **options: Any,
) -> BatchResult:
    """Run every prompt as its own :func:`~cc_executor.run`, at most ``concurrency`` at
    once, and return a :class:`BatchResult` whose ``results`` are in input order.

    ``prompts``: each a ``str``/``bytes``, or a mapping ``{"prompt": ..., "key": ...,
    "options": {...}}`` (its options override the batch's ``**options`` for that run).
    ``timeout`` is required (seconds, for each run, counted from its own start): unlike
    :func:`~cc_executor.run`, which has no default timeout, a batch refuses to run without
    one (``TypeError``).

    ``batch_id`` (default: a fresh id, ``result.batch_id``) is recorded with every run:
    ``cc-executor history --batch ID`` and :func:`batch_history` list them. With
    ``skip_ok`` (the default), a document whose key already has an ``ok`` run in this
    batch is not run again: its result is that run's, read back from its event log
    (``result.reused``). A key is the mapping's ``key``, else the sha256 of the prompt and
    of the options that change what is asked (not the time limits, retries, budget or env).

    ``budget_usd``: no run starts once the runs have cost that much, and the runs still
    going then are cancelled (``result.cancelled_by_budget``); each run is capped at what
    remains when it starts. ``on_progress`` (sync or async) receives a
    :class:`BatchEvent`, carrying its ``run_id``, for every start, event of a run, end,
    reuse, skip and budget cancel; an exception it raises stops the batch and is raised.

    Bad arguments raise ``TypeError``/``ValueError`` naming the prompt before anything
    runs; a run that fails is a result with its status. Cancelling the awaiting task stops
    every run (their trees are killed and they are recorded ``cancelled``), then re-raises
    ``CancelledError``.
    """
    batch = _new_batch(
        prompts,
        concurrency=concurrency,
        budget_usd=budget_usd,
        on_progress=on_progress,
        batch_id=batch_id,
        skip_ok=skip_ok,
        timeout=timeout,
        options=options,
    )
    return await batch.run()


def run_many_sync(prompts: Iterable[str | bytes | Mapping[str, Any]], **kwargs: Any) -> BatchResult:
    """:func:`run_many` for synchronous code (same arguments). Ctrl-C stops every run
    (their trees are killed and they are recorded ``cancelled``), then raises
    ``KeyboardInterrupt``."""
    return run_coroutine_sync(run_many(prompts, **kwargs))


def batch_history(batch_id: str, *, status: str | None = None) -> list[RunRecord]:
    """The history's records of the runs of batch ``batch_id`` (newest first), with their
    ``batch_key``; ``status`` keeps only those with that status. Raises
    :class:`~cc_executor.CCExecutorError` (``HistoryError``) when the history cannot be
    read."""
    store = open_store()
    try:
        return store.query(Query(batch_id=batch_id, status=status))
    finally:
        store.close()
