"""Rate limits shared by a fleet, kept in Redis (docs/fleet.md, "Rate limits shared by the
fleet").

Per credential (an opaque id: the worker hashes the key, it is never sent here in clear):
a *pause* (one key whose time to live is what is left of it, so no clock of a worker
matters) set when a worker saw a 429 or an overload, its length the reset time given or an
exponential back-off grown by the *strikes* seen recently; and the runs *in flight*, a
sorted set of holders scored by when their hold expires, so that a dead worker's hold
lapses instead of leaking a slot. One script decides a start, one round trip.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import redis
import redis.asyncio as aioredis

from cc_executor._errors import FleetError
from cc_executor._fleet._base import FULL, PAUSED, Decision

#: The prefix of the limits' keys (NAMESPACE of _redis.py).
PREFIX = "cc-executor:limit"
#: The fleet-wide salt of credential hashes, made once by the first worker.
SALT_KEY = f"{PREFIX}:salt"
#: The fleet-wide cap on runs in flight per credential (``--max-concurrent-per-credential``).
CAP_KEY = f"{PREFIX}:cap"
#: The back-off after a 429 without a reset time: 1 s, doubled per strike, at most 60 s; a
#: strike is forgotten 10 minutes after the last one, or when a run of the credential ends
#: without a limit.
BACKOFF_INITIAL_S = 1.0
BACKOFF_MAX_S = 60.0
STRIKES_TTL_S = 600

# KEYS: pause, flight, cap. ARGV: holder, cap (0: the fleet's), hold ms.
# Returns {wait ms (0: go), 0 go | 1 paused | 2 full, the pause's reason or the cap}.
_ADMIT = """
local left = redis.call('PTTL', KEYS[1])
if left > 0 then return {left, 1, redis.call('GET', KEYS[1]) or ''} end
local cap = tonumber(ARGV[2])
if cap <= 0 then cap = tonumber(redis.call('GET', KEYS[3]) or '0') end
if cap <= 0 then return {0, 0, ''} end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
if redis.call('ZSCORE', KEYS[2], ARGV[1]) == false
   and redis.call('ZCARD', KEYS[2]) >= cap then
  return {-1, 2, tostring(cap)}
end
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[1])
-- The set outlives its longest hold (a short hold must not drop the others).
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[3]) * 2 then
  redis.call('PEXPIRE', KEYS[2], tonumber(ARGV[3]) * 2)
end
return {0, 0, ''}
"""
# KEYS: pause, strikes. ARGV: ms asked (0: back off), reason, initial ms, max ms, strikes s.
# A back-off grows once per burst: limits seen while paused (runs started before the pause)
# do not count again. A pause only ever grows: a later, shorter one does not cut it short.
_PAUSE = """
local left = redis.call('PTTL', KEYS[1])
local ms = tonumber(ARGV[1])
if ms <= 0 then
  if left > 0 then return left end
  local strikes = redis.call('INCR', KEYS[2])
  redis.call('EXPIRE', KEYS[2], ARGV[5])
  ms = math.min(tonumber(ARGV[3]) * 2 ^ (strikes - 1), tonumber(ARGV[4]))
end
ms = math.floor(ms)
if left < ms then redis.call('SET', KEYS[1], ARGV[2], 'PX', ms) end
return math.max(ms, left)
"""
# KEYS: flight. ARGV: holder, hold ms. Extends a hold still there.
_RENEW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local n = redis.call('ZADD', KEYS[1], 'XX', 'CH', now + tonumber(ARGV[2]), ARGV[1])
if n > 0 and redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) * 2 then
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[2]) * 2)
end
return n
"""


class RedisLimits:
    """The fleet's shared limits on its Redis (:class:`~cc_executor._fleet._base.Limits`;
    see the module's docstring)."""

    def __init__(self, url: str, client: Callable[[], aioredis.Redis]) -> None:
        self._url = url
        self._client = client

    def _key(self, kind: str, credential: str) -> str:
        return f"{PREFIX}:{kind}:{credential}"

    async def _call(self, source: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self._client().eval(source, len(keys), *keys, *args)
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self._url}: {exc}") from None

    async def salt(self) -> bytes:
        """The fleet's salt of credential hashes (made by the first who asks)."""
        try:
            client = self._client()
            await client.set(SALT_KEY, secrets.token_hex(16), nx=True)
            value = await client.get(SALT_KEY)
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self._url}: {exc}") from None
        return value.encode() if isinstance(value, str) else bytes(value or b"")

    async def set_cap(self, cap: int) -> None:
        """Set the fleet-wide cap on runs in flight per credential (0: none)."""
        try:
            if cap > 0:
                await self._client().set(CAP_KEY, str(cap))
            else:
                await self._client().delete(CAP_KEY)
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self._url}: {exc}") from None

    async def admit(self, credential: str, holder: str, cap: int, hold_s: float) -> Decision:
        """Whether ``holder`` may start a run of ``credential`` now; when it may and a cap
        holds, it holds a slot for ``hold_s`` (renew it with :meth:`renew`)."""
        keys = [self._key("pause", credential), self._key("flight", credential), CAP_KEY]
        wait_ms, code, said = await self._call(_ADMIT, keys, [holder, cap, int(hold_s * 1000)])
        text = said.decode() if isinstance(said, bytes) else str(said)
        if code == 0:
            return Decision(True)
        if code == 1:
            return Decision(False, PAUSED, int(wait_ms) / 1000, reason=text)
        return Decision(False, FULL, None, cap=int(text))

    async def renew(self, credential: str, holder: str, hold_s: float) -> None:
        await self._call(_RENEW, [self._key("flight", credential)], [holder, int(hold_s * 1000)])

    async def release(self, credential: str, holder: str, *, clear: bool = False) -> None:
        """Free the holder's slot (nothing if it held none); ``clear``: the run ended without
        a limit, so the next back-off starts small again."""
        try:
            async with self._client().pipeline(transaction=False) as pipe:
                pipe.zrem(self._key("flight", credential), holder)
                if clear:
                    pipe.delete(self._key("strikes", credential))
                await pipe.execute()
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self._url}: {exc}") from None

    async def pause(
        self,
        credential: str,
        seconds: float | None,
        reason: str,
        initial_s: float = BACKOFF_INITIAL_S,
    ) -> float:
        """Pause new starts of ``credential`` for ``seconds`` (``None``: the exponential
        back-off from ``initial_s``); returns the pause in force, in seconds."""
        keys = [self._key("pause", credential), self._key("strikes", credential)]
        asked = 0 if seconds is None else max(1, int(seconds * 1000))
        args = [
            asked,
            reason,
            int(initial_s * 1000),
            int(BACKOFF_MAX_S * 1000),
            STRIKES_TTL_S,
        ]
        return int(await self._call(_PAUSE, keys, args)) / 1000

    async def status(self) -> dict[str, Any]:
        """The limits in force: the cap, and per credential its pause and runs in flight."""
        try:
            client = self._client()
            cap = await client.get(CAP_KEY)
            found: dict[str, dict[str, Any]] = {}
            for kind in ("pause", "flight"):
                prefix = f"{PREFIX}:{kind}:"
                async for key in client.scan_iter(match=f"{prefix}*"):
                    name = key.decode() if isinstance(key, bytes) else str(key)
                    entry = found.setdefault(
                        name[len(prefix) :], {"paused_s": 0.0, "reason": "", "in_flight": 0}
                    )
                    if kind == "pause":
                        left = await client.pttl(key)
                        reason = await client.get(key)
                        if left > 0:
                            entry["paused_s"] = left / 1000
                            entry["reason"] = (
                                reason.decode(errors="replace")
                                if isinstance(reason, bytes)
                                else str(reason or "")
                            )
                    else:
                        # Holds past their expiry belong to dead workers: not counted.
                        now = await client.time()
                        now_ms = now[0] * 1000 + now[1] // 1000
                        entry["in_flight"] = int(await client.zcount(key, now_ms, "+inf"))
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self._url}: {exc}") from None
        credentials = [
            {"credential": c, **v}
            for c, v in sorted(found.items())
            if v["paused_s"] or v["in_flight"]
        ]
        return {"max_concurrent_per_credential": int(cap or 0), "credentials": credentials}
