"""A dated price table, to estimate the cost of agents that report tokens but no cost
(Codex CLI, Gemini CLI, command agents whose output carries usage); see
docs/agents/prices.md.

Prices are USD per million tokens: uncached input, cached input, output, at the standard
(not batch, not priority) tier and, for models priced by prompt size, for prompts of at
most 200k tokens (a longer prompt costs more than the estimate says).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, NamedTuple

#: When the prices below were taken, and from where.
PRICES_DATE = "2026-06-01"
PRICES_SOURCE = (
    "OpenAI: https://developers.openai.com/api/docs/pricing (standard tier, as listed in "
    "May-June 2026); Google: https://ai.google.dev/gemini-api/docs/pricing (paid tier, "
    "prompts <= 200k tokens, as listed in March-June 2026; cached input at the 90% discount)"
)

#: Agents whose CLI reports its own cost (and stops itself at ``max_budget_usd``).
REPORTS_COST = frozenset({"claude"})


class Price(NamedTuple):
    """USD per million tokens."""

    input: float
    cached_input: float
    output: float


PRICES: dict[str, Price] = {
    # OpenAI
    "gpt-5.5": Price(5.00, 0.50, 30.00),
    "gpt-5.4": Price(2.50, 0.25, 15.00),
    "gpt-5.4-mini": Price(0.75, 0.075, 4.50),
    "gpt-5.4-nano": Price(0.20, 0.02, 1.25),
    "gpt-5.3-codex": Price(1.75, 0.175, 14.00),
    "gpt-5.2-codex": Price(1.75, 0.175, 14.00),
    "gpt-5.2": Price(1.75, 0.175, 14.00),
    "gpt-5.1-codex-max": Price(1.25, 0.125, 10.00),
    "gpt-5.1-codex": Price(1.25, 0.125, 10.00),
    "gpt-5.1": Price(1.25, 0.125, 10.00),
    "gpt-5-codex": Price(1.25, 0.125, 10.00),
    "gpt-5": Price(1.25, 0.125, 10.00),
    "gpt-5-mini": Price(0.25, 0.025, 2.00),
    # Google
    "gemini-3.5-flash": Price(1.50, 0.15, 9.00),
    "gemini-3.1-pro": Price(2.00, 0.20, 12.00),
    "gemini-3.1-flash-lite": Price(0.25, 0.025, 1.50),
    "gemini-3-flash": Price(0.50, 0.05, 3.00),
    "gemini-2.5-pro": Price(1.25, 0.125, 10.00),
    "gemini-2.5-flash": Price(0.30, 0.03, 2.50),
    "gemini-2.5-flash-lite": Price(0.10, 0.01, 0.40),
}

#: A dated snapshot's suffix (``-2025-08-07``, ``-001``, ``-preview``), priced as its model.
_SNAPSHOT = re.compile(r"-(?:\d{4}-\d{2}-\d{2}|\d{3}|preview(?:-\d{2}-\d{4})?)$")


def price_of(model: str | None) -> Price | None:
    """The price of ``model`` (``models/`` prefix and snapshot suffix ignored), or None."""
    if not model:
        return None
    name = model.strip().lower().removeprefix("models/")
    return PRICES.get(name) or PRICES.get(_SNAPSHOT.sub("", name))


def takes_budget(agent: str, model: str | None) -> bool:
    """Whether a run of ``agent`` on ``model`` can have ``max_budget_usd``: its CLI reports
    its cost, or the table prices its model."""
    return agent in REPORTS_COST or price_of(model) is not None


def check_budget(options: Any, title: str) -> None:
    """``ValueError`` when ``options`` set ``max_budget_usd`` for an agent that reports no
    cost and a model the table has no price for: the budget could not be kept."""
    if getattr(options, "max_budget_usd", None) is None:
        return
    model = getattr(options, "model", None)
    if price_of(model) is None:
        which = f"model {model!r}" if model else "its default model (no --model given)"
        raise ValueError(
            f"max_budget_usd: {title} reports no cost, and the price table of {PRICES_DATE} "
            f"has no price for {which}: give --model with a priced model "
            "(docs/agents/prices.md) or no budget"
        )


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _tokens(usage: Mapping[str, Any]) -> tuple[int, int, int]:
    """(uncached input, cached input, output) from the usage shapes the agents report."""
    output = _int(usage.get("output_tokens"))
    if "cached_input_tokens" in usage:  # Codex (OpenAI): input_tokens includes the cached
        cached = _int(usage.get("cached_input_tokens"))
        return max(_int(usage.get("input_tokens")) - cached, 0), cached, output
    if "cached" in usage:  # Gemini CLI's stats: input_tokens includes the cached
        cached = _int(usage.get("cached"))
        return max(_int(usage.get("input_tokens")) - cached, 0), cached, output
    # Claude Code's stream-json shape: input_tokens excludes the cache.
    uncached = _int(usage.get("input_tokens")) + _int(usage.get("cache_creation_input_tokens"))
    return uncached, _int(usage.get("cache_read_input_tokens")), output


def _cost(price: Price, usage: Mapping[str, Any]) -> float:
    uncached, cached, output = _tokens(usage)
    return (
        uncached * price.input + cached * price.cached_input + output * price.output
    ) / 1_000_000


def estimate_cost(usage: Mapping[str, Any], model: str | None) -> float | None:
    """The cost of ``usage`` at the table's prices, or None: no token counts, or a model
    without a price. Gemini CLI's per-model stats (``models``) are priced model by model."""
    per_model = usage.get("models")
    if isinstance(per_model, Mapping) and per_model:
        total = 0.0
        for name, counts in per_model.items():
            price = price_of(name) if isinstance(name, str) else None
            if price is None or not isinstance(counts, Mapping):
                return None
            total += _cost(price, counts)
        return total
    if not any(k in usage for k in ("input_tokens", "output_tokens")):
        return None
    price = price_of(model)
    return _cost(price, usage) if price is not None else None
