"""A budget shared by many runs: what a run reserves, the check before it starts and the
settlement after it ends, the soft thresholds and their webhook.

One concept with two ledgers: a task list keeps its reservations in process
(:class:`cc_executor.tasks._budget.Budget`), a fleet in Redis
(:class:`cc_executor._fleet._budget.RedisLedger`, atomic across machines). Either way a run
reserves its cap (its ``max_budget_usd``, else the default for its model, else all that is
left, alone), runs with the reservation as its own ``max_budget_usd`` (for agents that take
one), and gives back what it did not spend when it ends; a run whose reservation cannot be
covered is not started (status ``budget_exceeded``). "Never exceeds the budget" holds up to
what running runs spend past their own caps before their CLI stops them.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import logging
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from cc_executor._agents._prices import takes_budget
from cc_executor._agents._types import BudgetEvent
from cc_executor._status import Status

log = logging.getLogger("cc_executor.budget")

#: What the hard limit does to the runs in progress when a run is refused: nothing (None),
#: stop starting any run and let those in progress end (``drain``), or cancel them.
OnExhausted = Literal["cancel", "drain"] | None
#: The webhook's tries and the waits between them (seconds).
WEBHOOK_TRIES = 3
WEBHOOK_BACKOFF_S = (1.0, 4.0)
WEBHOOK_TIMEOUT_S = 10.0
#: The version of the webhook's JSON payload (docs/fleet.md, "Budgets").
PAYLOAD_VERSION = 1
#: The soft thresholds (fractions of the total) a budget announces when none is given.
DEFAULT_THRESHOLDS = (0.8,)


def run_cap(options: Mapping[str, Any], reserve: Mapping[str, float] | None) -> float | None:
    """What a run with options ``options`` reserves: its ``max_budget_usd``, else
    ``reserve[model]``, else ``reserve["*"]``; None: all that is left (it runs alone)."""
    own = options.get("max_budget_usd")
    if own is not None:
        return float(own)
    if not reserve:
        return None
    model = options.get("model")
    return reserve[model] if isinstance(model, str) and model in reserve else reserve.get("*")


def charge(status: Status, cost_usd: float | None, reserved: float) -> float:
    """What an ended run counts against the budget: the cost its CLI reported (or we
    estimated); a run that reported none is charged its whole reservation, unless nothing
    ran (it could not be started)."""
    if cost_usd is not None:
        return cost_usd
    if status in (Status.SPAWN_FAILED, Status.USAGE_ERROR):
        return 0.0
    return reserved


def check_thresholds(
    percents: float | Iterable[float] | None, label: str = "--budget-threshold"
) -> tuple[float, ...]:
    """The soft thresholds ``percents`` (percent of the total: one number or several) as
    fractions, sorted and each once; () for None (:data:`DEFAULT_THRESHOLDS` then).
    Each is kept to a tenth of a percent, as the fleet's ledger counts them (per-mille), so
    a task list and a fleet announce the same thresholds; ValueError naming ``label`` for
    one outside [0.1, 100] or not a number."""
    if percents is None:
        return ()
    given: list[Any]
    try:
        given = [percents] if isinstance(percents, (int, float, str)) else list(percents)
    except TypeError:
        given = [percents]
    if not given:
        raise ValueError(f"{label}: at least one percentage")
    fractions = set()
    for percent in given:
        if (
            isinstance(percent, bool)
            or not isinstance(percent, (int, float))
            or not 0.1 <= percent <= 100  # NaN is refused too
        ):
            number = isinstance(percent, (int, float)) and not isinstance(percent, bool)
            shown = f"{percent:g}" if number else repr(percent)
            raise ValueError(f"{label} must be a percentage in [0.1, 100], got {shown}")
        fractions.add(round(percent * 10) / 1000)
    return tuple(sorted(fractions))


# -- the webhook --------------------------------------------------------------------------
def check_webhook(url: str, allow_hosts: Sequence[str] = ()) -> str:
    """``url`` if a budget webhook may call it: http or https, to a loopback address or a
    host in ``allow_hosts``; else ``ValueError`` saying why (request forgery:
    docs/security.md)."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"--budget-webhook {url!r}: an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError("--budget-webhook: no credentials in the URL")
    host = parts.hostname
    if host in allow_hosts or host == "localhost":
        return url
    try:
        if ipaddress.ip_address(host).is_loopback:
            return url
    except ValueError:
        pass
    raise ValueError(
        f"--budget-webhook {url!r}: {host} is neither a loopback address nor allowed by "
        "--budget-webhook-allow-host (docs/security.md)"
    )


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirect is not followed: it could point the request anywhere."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _post(url: str, payload: Mapping[str, Any]) -> None:
    body = json.dumps(payload).encode()
    # The scheme was checked to be http or https (check_webhook).
    request = urllib.request.Request(  # noqa: S310
        url, data=body, method="POST", headers={"Content-Type": "application/json"}
    )
    opener = urllib.request.build_opener(_NoRedirect)
    with opener.open(request, timeout=WEBHOOK_TIMEOUT_S) as answer:
        if not 200 <= answer.status < 300:
            raise urllib.error.HTTPError(url, answer.status, "not 2xx", answer.headers, None)


async def send_webhook(url: str, payload: Mapping[str, Any]) -> bool:
    """POST ``payload`` as JSON to ``url``: up to :data:`WEBHOOK_TRIES` tries, waiting
    :data:`WEBHOOK_BACKOFF_S` between them; whether one was answered 2xx."""
    for attempt in range(WEBHOOK_TRIES):
        try:
            await asyncio.to_thread(_post, url, payload)
            return True
        except (OSError, urllib.error.URLError, ValueError) as exc:
            log.warning("budget webhook %s: try %d failed: %s", url, attempt + 1, exc)
        if attempt + 1 < WEBHOOK_TRIES:
            await asyncio.sleep(WEBHOOK_BACKOFF_S[min(attempt, len(WEBHOOK_BACKOFF_S) - 1)])
    return False


class WebhookSender:
    """POSTs notes to ``url`` in the background (:func:`send_webhook`), one after another
    in the order given: a 50% note is never overtaken by the 80% one sent just after."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._last: asyncio.Future[bool] | None = None
        self._pending: set[asyncio.Future[bool]] = set()

    def send(self, note: Mapping[str, Any]) -> None:
        previous = self._last

        async def after_previous() -> bool:
            if previous is not None:
                await asyncio.wait([previous])  # whatever became of it
            return await send_webhook(self.url, note)

        task = asyncio.ensure_future(after_previous())
        self._last = task
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def aclose(self) -> None:
        """Wait for the calls under way (each gives up after its tries)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)


def budget_note(
    what: str,
    name: str,
    state: Any,
    run_id: str,
    threshold: float | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """The webhook's JSON payload (docs/fleet.md, "Budgets"), for a fleet's budget and a
    task list's alike: ``what`` is ``threshold`` or ``exhausted``; ``state`` has
    ``total``, ``spent`` and ``held`` (USD)."""
    return {
        "version": PAYLOAD_VERSION,
        "event": f"budget_{what}",
        "budget": name,
        "total_usd": round(state.total, 6),
        "spent_usd": round(state.spent, 6),
        "held_usd": round(state.held, 6),
        "run_id": run_id,
        "at": time.time(),
        **({} if threshold is None else {"threshold": threshold}),
        **extra,
    }


# -- the guard ----------------------------------------------------------------------------
class Ledger(Protocol):
    """Where reservations are kept (in process, or in Redis for a fleet)."""

    async def reserve(self, run_id: str, usd: float | None, *, drain: bool = False) -> Any: ...

    async def settle(
        self, run_id: str, spent_usd: float, thresholds: Sequence[float] = ()
    ) -> Any: ...

    async def holders(self) -> list[str]: ...

    async def reap(self) -> int: ...


@dataclass
class Admission:
    """The check before a run starts: ``started`` (its reservation is held, and
    ``reserved`` is its cap, None for a run that reserves nothing) or ``error`` (why not)."""

    started: bool
    reserved: float | None = None
    error: str | None = None
    #: The announcements this check made (the budget exhausted), as the run's events.
    events: list[BudgetEvent] = field(default_factory=list)


@dataclass
class BudgetGuard:
    """The budget ``name`` of ``total_usd`` kept in ``ledger``: :meth:`before` a run starts,
    :meth:`after` it ends. ``reserve``: the default reservation per model (``"*"``: any
    other); ``thresholds``: fractions of the total whose crossing is announced (a log line,
    ``on_note`` and the ``webhook``); ``on_exhausted``: see :data:`OnExhausted`, with
    ``cancel`` called for each run to cancel."""

    ledger: Ledger
    total_usd: float
    name: str = "default"
    reserve: Mapping[str, float] = field(default_factory=dict)
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS
    webhook: str | None = None
    on_exhausted: OnExhausted = None
    cancel: Callable[[str], Awaitable[None]] | None = None
    #: Called with each announcement (a threshold crossed, the budget exhausted).
    on_note: Callable[[dict[str, Any]], None] | None = None
    #: Before refusing a run, settle the reservations of runs whose lease expired (a
    #: fleet's: its worker was lost), charging each its whole reservation.
    reap_lost: bool = False
    _held: dict[str, float] = field(default_factory=dict)
    _sender: WebhookSender | None = None

    async def before(
        self, run_id: str, options: dict[str, Any], attempt: int | None = None
    ) -> Admission:
        """Reserve the run's cap; on success, its ``max_budget_usd`` becomes the reservation
        (for an agent whose CLI takes one). A run that is not an agent run (a command)
        reserves nothing. ``attempt``: a fleet run's attempt, which holds its own
        reservation (a recovered run's new attempt does not share the lost one's)."""
        agent = options.get("agent", "claude")
        cap = run_cap(options, self.reserve)
        drain = self.on_exhausted is not None
        key = holder_key(run_id, attempt)
        grant = await self.ledger.reserve(key, cap, drain=drain)
        if not grant.granted and self.reap_lost and await self.ledger.reap():
            # Reservations of runs whose worker was lost came back: look again.
            grant = await self.ledger.reserve(key, cap, drain=drain)
        if not grant.granted:
            state = grant.state
            left = max(state.left, 0.0)
            want = "all that is left" if cap is None else f"its reservation ${cap:.4f}"
            error = (
                f"not started: {want} is more than the ${left:.4f} left of the budget "
                f"{self.name!r} (${self.total_usd:g}; ${state.spent:.4f} spent, "
                f"${state.held:.4f} held by runs in progress)"
            )
            events = [await self._exhausted(run_id, state)] if grant.first_refusal else []
            return Admission(False, error=error, events=events)
        self._held[key] = grant.amount
        if takes_budget(agent, options.get("model")):
            options["max_budget_usd"] = grant.amount
        return Admission(True, reserved=grant.amount)

    async def after(
        self, run_id: str, status: Status, cost_usd: float | None, attempt: int | None = None
    ) -> list[BudgetEvent]:
        """Settle the run's (attempt's) reservation with what it cost; announce the
        thresholds crossed (returned as the run's events; none when the run held nothing,
        or the reaper settled it first)."""
        key = holder_key(run_id, attempt)
        reserved = self._held.pop(key, None)
        if reserved is None:
            return []
        spent = charge(status, cost_usd, reserved)
        state = await self.ledger.settle(key, spent, self.thresholds)
        events = []
        for threshold in state.crossed:
            log.warning(
                "budget %r: %g%% passed ($%.4f of $%g spent)",
                self.name,
                round(threshold * 100, 1),  # which threshold, as it was given
                state.spent,
                state.total,
            )
            events.append(self._announce("threshold", run_id, state, threshold=threshold))
        return events

    async def _exhausted(self, run_id: str, state: Any) -> BudgetEvent:
        log.warning(
            "budget %r exhausted: $%.4f spent, $%.4f held; %s",
            self.name,
            state.spent,
            state.held,
            {"cancel": "cancelling the runs in progress", "drain": "starting no further run"}.get(
                self.on_exhausted or "", "runs whose reservation fits still start"
            ),
        )
        event = self._announce("exhausted", run_id, state, on_exhausted=self.on_exhausted)
        if self.on_exhausted == "cancel" and self.cancel is not None:
            for holder in await self.ledger.holders():
                await self.cancel(holder)
        return event

    def _announce(
        self,
        what: str,
        run_id: str,
        state: Any,
        threshold: float | None = None,
        **extra: Any,
    ) -> BudgetEvent:
        note = budget_note(what, self.name, state, run_id, threshold, **extra)
        if self.on_note is not None:
            with contextlib.suppress(Exception):
                self.on_note(note)
        if self.webhook is not None:
            if self._sender is None:
                self._sender = WebhookSender(self.webhook)
            self._sender.send(note)
        return BudgetEvent(
            t=time.monotonic(),
            what=what,
            budget=self.name,
            threshold=threshold,
            total_usd=note["total_usd"],
            spent_usd=note["spent_usd"],
            held_usd=note["held_usd"],
        )

    async def aclose(self) -> None:
        """Wait for the webhook calls under way."""
        if self._sender is not None:
            await self._sender.aclose()


def holder_key(run_id: str, attempt: int | None) -> str:
    """The ledger's key of a run's reservation: one per attempt of a fleet run (the format
    the Redis ledger's reaper parses, ``_fleet/_budget.py``)."""
    return run_id if attempt is None else f"{run_id}.{attempt}"


@dataclass
class BudgetSettings:
    """A fleet worker's budget options (``worker --budget-usd`` and its companions)."""

    total_usd: float
    name: str = "default"
    reserve: Mapping[str, float] = field(default_factory=dict)
    thresholds: Sequence[float] = DEFAULT_THRESHOLDS
    webhook: str | None = None
    on_exhausted: OnExhausted = None


async def open_fleet_guard(
    fleet_url: str,
    settings: BudgetSettings,
    *,
    cancel: Callable[[str], Awaitable[None]] | None = None,
    on_note: Callable[[dict[str, Any]], None] | None = None,
) -> BudgetGuard:
    """The guard of the fleet's budget ``settings.name`` in Redis, its total set to
    ``settings.total_usd`` (the last worker started sets it; spending so far is kept)."""
    from cc_executor._fleet._budget import RedisLedger

    ledger = RedisLedger(fleet_url, settings.name)
    await ledger.configure(settings.total_usd)
    return BudgetGuard(
        ledger,
        settings.total_usd,
        name=settings.name,
        reserve=dict(settings.reserve),
        thresholds=tuple(settings.thresholds),
        webhook=settings.webhook,
        on_exhausted=settings.on_exhausted,
        cancel=cancel,
        on_note=on_note,
        reap_lost=True,
    )
