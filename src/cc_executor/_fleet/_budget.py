"""A fleet's budget ledger in Redis: reservations made and settled atomically by Lua
scripts, so that workers on many machines never together hold more than the budget.

Amounts are whole micro-dollars (Redis counts integers exactly; sums of float dollars are
not exact). One ledger is three keys: ``cc-executor:budget:NAME`` (a hash: ``total``,
``spent``, ``held``, ``exhausted``), ``...:held`` (holder -> its reservation) and
``...:fired`` (the soft thresholds already announced, in per-mille). It moves numbers and
knows nothing of runs or policies (``_run/_budget.py`` decides what a run reserves).

A fleet run's holder is one attempt of it, ``RUN_ID.ATTEMPT`` (``holder_key`` in
``_run/_budget.py``): a run recovered after its worker was lost reserves and settles anew,
and the lost attempt's reservation is settled once, by whoever comes first (its worker, if
it comes back, or the reaper).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.asyncio as aioredis

from cc_executor._errors import FleetError
from cc_executor._fleet._redis import NAMESPACE, async_client
from cc_executor._fleet._url import parse_fleet_url

#: A budget's name: part of its keys.
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")

#: Reserve ARGV[2] micro-dollars for run ARGV[1] when what is left covers it; -1: all that
#: is left, only while nothing else is held (the run then runs alone). ARGV[3] = "1": once
#: exhausted, refuse every run (``drain``). A run that holds already keeps its reservation
#: (a second delivery). Returns {granted (1/0, -2: no budget), total, spent, held, amount,
#: newly exhausted (1/0)}.
_RESERVE = """
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '-1')
if total < 0 then return {-2, 0, 0, 0, 0, 0} end
local spent = tonumber(redis.call('HGET', KEYS[1], 'spent') or '0')
local held = tonumber(redis.call('HGET', KEYS[1], 'held') or '0')
local prior = redis.call('HGET', KEYS[2], ARGV[1])
if prior then return {1, total, spent, held, tonumber(prior), 0} end
local amount = tonumber(ARGV[2])
local left = total - spent - held
if amount < 0 then
  if held > 0 then amount = left + 1 else amount = left end
end
local closed = ARGV[3] == '1' and redis.call('HGET', KEYS[1], 'exhausted') == '1'
if closed or amount > left or amount <= 0 and tonumber(ARGV[2]) < 0 then
  local first = redis.call('HSETNX', KEYS[1], 'exhausted', '1')
  return {0, total, spent, held, amount, first}
end
redis.call('HSET', KEYS[2], ARGV[1], amount)
redis.call('HINCRBY', KEYS[1], 'held', amount)
return {1, total, spent, held + amount, amount, 0}
"""

#: Give back run ARGV[1]'s reservation and count ARGV[2] micro-dollars as spent; ARGV[3..]
#: are the soft thresholds (per-mille of the total). Returns {total, spent, held, settled
#: (1/0: 0 when the run held nothing), the thresholds crossed now...}: each threshold is
#: crossed once for the whole fleet.
_SETTLE = """
local total = tonumber(redis.call('HGET', KEYS[1], 'total') or '-1')
local amount = redis.call('HGET', KEYS[2], ARGV[1])
if total < 0 or not amount then
  return {total, tonumber(redis.call('HGET', KEYS[1], 'spent') or '0'),
          tonumber(redis.call('HGET', KEYS[1], 'held') or '0'), 0}
end
redis.call('HDEL', KEYS[2], ARGV[1])
local held = redis.call('HINCRBY', KEYS[1], 'held', -tonumber(amount))
local spent = redis.call('HINCRBY', KEYS[1], 'spent', tonumber(ARGV[2]))
local out = {total, spent, held, 1}
for i = 3, #ARGV do
  local t = tonumber(ARGV[i])
  if spent * 1000 >= total * t and redis.call('SADD', KEYS[3], ARGV[i]) == 1 then
    table.insert(out, t)
  end
end
return out
"""

#: Settle the reservations of attempts whose lease is gone (ARGV[1] .. run id: the lease
#: key) or that were replaced by a later attempt (ARGV[2] .. run id: the run's current
#: attempt): a worker holds a run's lease while its attempt holds the reservation, so such an
#: attempt's worker was lost. Its real cost is unknown: it is charged its whole reservation.
#: Returns how many were settled.
_REAP = """
local held = redis.call('HGETALL', KEYS[2])
local reaped = 0
for i = 1, #held, 2 do
  local run, attempt = string.match(held[i], '^(.*)%.(%d+)$')
  if not run then run = held[i] end
  local lost = redis.call('EXISTS', ARGV[1] .. run) == 0
  if not lost and attempt then
    lost = tonumber(redis.call('GET', ARGV[2] .. run) or '1') ~= tonumber(attempt)
  end
  if lost then
    local amount = tonumber(held[i + 1])
    redis.call('HDEL', KEYS[2], held[i])
    redis.call('HINCRBY', KEYS[1], 'held', -amount)
    redis.call('HINCRBY', KEYS[1], 'spent', amount)
    reaped = reaped + 1
  end
end
return reaped
"""

#: Set the total (micro-dollars); a changed total may cover runs again.
_CONFIGURE = """
local before = redis.call('HGET', KEYS[1], 'total')
redis.call('HSET', KEYS[1], 'total', ARGV[1])
if before ~= ARGV[1] then redis.call('HDEL', KEYS[1], 'exhausted') end
return 1
"""


def micro(usd: float) -> int:
    """``usd`` in whole micro-dollars (rounded to the nearest)."""
    return round(usd * 1_000_000)


@dataclass
class LedgerState:
    """A ledger's numbers, in USD."""

    total: float
    spent: float
    held: float
    #: Thresholds (fractions of the total) crossed by this settlement, first for the fleet.
    crossed: list[float] = field(default_factory=list)

    @property
    def left(self) -> float:
        return self.total - self.spent - self.held


@dataclass
class Grant:
    """A reservation's answer: ``granted`` and the amount (USD), the ledger after it, and
    ``first_refusal``: this refusal made the budget exhausted (announce it once)."""

    granted: bool
    amount: float
    state: LedgerState
    first_refusal: bool = False


def check_budget_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ValueError(f"budget name {name!r}: letters, digits, '.', '_' or '-', at most 64")
    return name


class RedisLedger:
    """The ledger of the budget ``name`` on the fleet at ``url`` (see the module)."""

    def __init__(self, url: str, name: str = "default") -> None:
        self.url = url
        self.name = check_budget_name(name)
        self._target = parse_fleet_url(url)
        base = f"{NAMESPACE}:budget:{name}"
        self._keys = [base, f"{base}:held", f"{base}:fired"]
        self._client: aioredis.Redis | None = None

    @property
    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = async_client(self._target)
        return self._client

    async def _eval(self, source: str, keys: list[str], args: Sequence[Any]) -> list[int]:
        try:
            value = await self._redis.eval(source, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise FleetError(f"the fleet's budget at {self.url}: {exc}") from None
        return [int(v) for v in value] if isinstance(value, list) else [int(value)]

    async def configure(self, total_usd: float) -> None:
        """Set the budget's total (the last worker started with one sets it)."""
        await self._eval(_CONFIGURE, self._keys[:1], [micro(total_usd)])

    async def reserve(self, run_id: str, usd: float | None, *, drain: bool = False) -> Grant:
        """Hold ``usd`` for ``run_id`` (None: all that is left, once nothing else is held)
        if what is left covers it."""
        amount = -1 if usd is None else micro(usd)
        got = await self._eval(_RESERVE, self._keys[:2], [run_id, amount, "1" if drain else "0"])
        if got[0] == -2:
            raise FleetError(f"the fleet has no budget named {self.name!r}")
        state = LedgerState(got[1] / 1e6, got[2] / 1e6, got[3] / 1e6)
        return Grant(got[0] == 1, max(got[4], 0) / 1e6, state, got[5] == 1)

    async def settle(
        self, run_id: str, spent_usd: float, thresholds: Sequence[float] = ()
    ) -> LedgerState:
        """Give back ``run_id``'s reservation, counting ``spent_usd`` as spent; says which
        of ``thresholds`` (fractions of the total) this made the spending cross first."""
        args = [run_id, micro(max(spent_usd, 0.0)), *(round(t * 1000) for t in thresholds)]
        got = await self._eval(_SETTLE, self._keys, args)
        return LedgerState(
            max(got[0], 0) / 1e6, got[1] / 1e6, got[2] / 1e6, [t / 1000 for t in got[4:]]
        )

    async def reap(self) -> int:
        """Settle the reservations of attempts whose worker was lost (their lease expired,
        or a later attempt replaced them), charging each its whole reservation; how many."""
        prefixes = [f"{NAMESPACE}:lease:", f"{NAMESPACE}:attempt:"]
        got = await self._eval(_REAP, self._keys[:2], prefixes)
        return got[0]

    async def holders(self) -> list[str]:
        """The runs holding a reservation now (each once, whatever its attempts)."""
        try:
            keys = await self._redis.hkeys(self._keys[1])
        except redis.RedisError as exc:
            raise FleetError(f"the fleet's budget at {self.url}: {exc}") from None
        runs = []
        for key in keys:
            name = key.decode() if isinstance(key, bytes) else str(key)
            run, dot, attempt = name.rpartition(".")
            runs.append(run if dot and attempt.isdigit() else name)
        return list(dict.fromkeys(runs))

    async def state(self) -> LedgerState | None:
        """The ledger's numbers; None when the fleet has no such budget."""
        try:
            return await self.state_with(self._redis)
        except redis.RedisError as exc:
            raise FleetError(f"the fleet's budget at {self.url}: {exc}") from None

    async def state_with(self, client: aioredis.Redis) -> LedgerState | None:
        """:meth:`state`, read with ``client``."""
        got = await client.hgetall(self._keys[0])
        if not got:
            return None
        values = {(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in got.items()}
        return LedgerState(
            values.get("total", 0) / 1e6, values.get("spent", 0) / 1e6, values.get("held", 0) / 1e6
        )

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


async def fleet_budgets(url: str) -> dict[str, LedgerState]:
    """Every budget the fleet at ``url`` keeps, by name (for ``fleet status``)."""
    client = async_client(parse_fleet_url(url))
    prefix = f"{NAMESPACE}:budget:"
    found: dict[str, LedgerState] = {}
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            name = (key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :]
            if not _NAME.fullmatch(name) or name.endswith((":held", ":fired")):
                continue
            state = await RedisLedger(url, name).state_with(client)
            if state is not None:
                found[name] = state
    except redis.RedisError as exc:
        raise FleetError(f"the fleet's budgets at {url}: {exc}") from None
    finally:
        await client.aclose()
    return dict(sorted(found.items()))
