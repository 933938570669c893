"""A list's budget as reservations: a task holds its cap while it runs and gives back what
it did not spend, so the runs in flight can never together be allowed more than is left.

The in-process ledger of the one budget concept (:mod:`cc_executor._run._budget`; a
fleet keeps its ledger in Redis). A task's cap is its ``max_budget_usd``, else the list's
``reserve_usd`` for its model, else the whole remainder (it then runs alone). Each run
gets its reservation as its own ``max_budget_usd``; the total can exceed the budget only by
what runs spend past their own caps before the CLI learns the cost and stops them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from typing import Any

from cc_executor._run._budget import DEFAULT_THRESHOLDS, run_cap

#: Sums of float costs: a reservation equal to what is left is covered.
_EPSILON = 1e-9


def task_cap(options: Mapping[str, Any], reserve: Mapping[str, float] | None) -> float | None:
    """What a task with run options ``options`` reserves: its ``max_budget_usd``, else
    ``reserve[model]``, else ``reserve["*"]``; None: the whole remainder (the rule of every
    budget, :func:`cc_executor._run._budget.run_cap`)."""
    return run_cap(options, reserve)


def _crossed(spent: float, total: float, threshold: float) -> bool:
    return spent + _EPSILON >= total * threshold


def _micro(usd: float) -> float:
    """``usd`` in whole micro-dollars, rounded down (sums of floats are not exact)."""
    return math.floor(usd * 1e6 + 1e-6) / 1e6


class Budget:
    """The budget of one list run: ``total``, ``spent`` (what finished attempts count
    against it) and ``held`` (the reservations of the runs in flight, by task id)."""

    def __init__(
        self,
        total: float,
        spent: float,
        caps: Mapping[str, float | None],
        thresholds: Sequence[float] = DEFAULT_THRESHOLDS,
    ) -> None:
        self.total = total
        self.spent = spent
        self.caps = dict(caps)
        self.held: dict[str, float] = {}
        # Each once, lowest first: announced in that order when one end passes several.
        self.thresholds = tuple(sorted(set(thresholds)))
        #: The soft thresholds already passed (those passed before a resume count too).
        self.passed = {t for t in self.thresholds if _crossed(spent, total, t)}
        #: Set whenever a reservation is given back (a retry waiting for room wakes up).
        self.changed = asyncio.Event()

    @property
    def left(self) -> float:
        """What is neither spent nor held."""
        return self.total - self.spent - sum(self.held.values())

    @property
    def exhausted(self) -> bool:
        """True when nothing is left and nothing held will come back."""
        return not self.held and _micro(self.left) <= 0

    def reserve(self, task_id: str) -> float | None:
        """Hold the task's reservation and return it, if what is left covers it now (a task
        without a cap needs every other reservation given back first); else None."""
        cap = self.caps.get(task_id)
        left = self.left
        if cap is None:
            amount = _micro(left)
            if self.held or amount <= 0:
                return None
        elif cap > left + _EPSILON:
            return None
        else:
            amount = cap
        self.held[task_id] = amount
        return amount

    def refusal(self, task_id: str) -> str:
        """Why the task's reservation cannot be covered, once nothing is held."""
        cap = self.caps.get(task_id)
        left = max(self.left, 0.0)
        if cap is None:
            return f"nothing is left of budget_usd ${self.total:g} (${self.spent:.4f} spent)"
        return (
            f"its reservation ${cap:.4f} is more than the ${left:.4f} left of budget_usd "
            f"${self.total:g}"
        )

    def release(self, task_id: str, charged: float) -> list[float]:
        """Give back the task's reservation, counting ``charged`` as spent; the soft
        thresholds (fractions of the total) this passed, each once."""
        self.held.pop(task_id, None)
        self.spent += charged
        self.changed.set()
        now = [t for t in self.thresholds if t not in self.passed]
        now = [t for t in now if _crossed(self.spent, self.total, t)]
        self.passed.update(now)
        return now

    def drop(self, task_id: str) -> None:
        """Give back a reservation that was not used (no run started)."""
        if self.held.pop(task_id, None) is not None:
            self.changed.set()

    async def reserve_when_possible(self, task_id: str) -> float | None:
        """:meth:`reserve`, waiting for other runs to give theirs back; None when it cannot
        be covered even with nothing held."""
        while True:
            amount = self.reserve(task_id)
            if amount is not None or not self.held:
                return amount
            self.changed.clear()
            await self.changed.wait()
