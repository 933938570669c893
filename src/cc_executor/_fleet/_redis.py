"""The fleet on Dramatiq with Redis: Dramatiq queues and delivers the runs (heartbeats find
a dead worker's messages), Redis alone holds what Dramatiq does not offer: the per-run
lease, the control channel, the event streams and the workers' heartbeats.

Dramatiq settings this relies on (docs/fleet.md): ``max_retries=0`` (a failed run is a
result, never re-run by the queue), no ``TimeLimit`` (a run is bounded by its own
timeouts), and a prefetch equal to the slots (a busy worker holds no queued run back).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import dramatiq
import orjson
import redis
import redis.asyncio as aioredis
from dramatiq.middleware import Retries

from cc_executor._errors import FleetError
from cc_executor._fleet._base import DEFAULT_QUEUE, PERMISSION, Handler, Lease, check_queue
from cc_executor._fleet._limits import RedisLimits
from cc_executor._fleet._url import FleetTarget
from cc_executor._fleet._wake import CHANNEL, Waker, WakingBroker

#: The prefix of every key cc-executor keeps in Redis, and Dramatiq's namespace.
NAMESPACE = "cc-executor"
#: The Dramatiq queue of the default queue, and the actor of agent runs.
QUEUE = "cc-executor-runs"
ACTOR = "cc_executor_run"
#: The set of every queue's name a submitter or worker used (for ``fleet status``).
QUEUES_KEY = f"{NAMESPACE}:queues"


def broker_queue(name: str) -> str:
    """The Dramatiq queue of the fleet's queue ``name`` (the default one keeps the name it
    had before queues could be named)."""
    return QUEUE if name == DEFAULT_QUEUE else f"{QUEUE}-{name}"


#: How long a finished run's event stream (and its state) stays in Redis.
RETENTION_S = 24 * 3600
#: The most bytes of events one run's stream keeps in Redis (its whole log, until it ends
#: plus the retention time); above it the stream says so once and drops further events
#: (the result still comes). The whole event log is always in the worker's run folder.
MAX_STREAM_BYTES = 64 * 1024 * 1024
#: Seconds a Redis command may take before the connection counts as broken: above the
#: longest blocking read of an event stream (redis-py's default of 5 s equals it, and a read
#: blocking for 5 s then failed as a timeout).
SOCKET_TIMEOUT_S = 30.0
#: Milliseconds an idle worker's consumer may wait between two fetches (it waits half of it
#: for a wake-up, see _wake.py; each fetch refreshes its Dramatiq heartbeat).
WORKER_TIMEOUT_MS = 1000


def async_client(target: FleetTarget) -> aioredis.Redis:
    """An asyncio client of the fleet's Redis at ``target``: its credentials, our timeout."""
    return aioredis.Redis.from_url(
        target.url,
        username=target.username,
        password=target.password,
        socket_timeout=SOCKET_TIMEOUT_S,
    )


# Take the lease unless the run is over, the delivery is of an attempt already replaced
# (a lost worker's message re-queued by Dramatiq after the run was recovered), or its lease
# is live; a new epoch each time, and whether a cancel was asked. The holder's run is
# listed in the running set with its message, so that any worker can recover it when the
# lease expires (_RECLAIM).
_ACQUIRE = """
if redis.call('EXISTS', KEYS[3]) == 1 then return -1 end
local current = tonumber(redis.call('GET', KEYS[4]) or '1')
if tonumber(ARGV[4]) < current then return -2 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
local epoch = redis.call('INCR', KEYS[2])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('SET', KEYS[1], ARGV[1] .. ' ' .. epoch, 'PX', ARGV[2])
redis.call('SET', KEYS[4], ARGV[4])
redis.call('SADD', KEYS[5], ARGV[5])
redis.call('SET', KEYS[6], ARGV[6])
return {epoch, redis.call('EXISTS', KEYS[7])}
"""
# Claim the recovery of a listed run whose lease expired (its holder stopped renewing):
# exactly one caller gets its message and the number of the next attempt.
_RECLAIM = """
if redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('SREM', KEYS[3], ARGV[1])
  return false
end
if redis.call('EXISTS', KEYS[1]) == 1 then return false end
redis.call('SREM', KEYS[3], ARGV[1])
local message = redis.call('GET', KEYS[5])
if not message then return false end
local attempt = redis.call('INCR', KEYS[4])
return {attempt, message}
"""
# Give a held run back for another attempt (a worker's shutdown): 0 if the lease was lost.
_HANDOFF = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('INCR', KEYS[3])
"""
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Add entries to a run's stream with the ids 0-1, 0-2, ...: the sequence part of an id is
# the entry's number in the run (SEQ of `attach --after`), kept across attempts. ARGV: the
# byte bound, the entry saying it was reached, the lease ("" for none) the writer must still
# hold (-1 otherwise: a worker that lost its run writes nothing more), then from `first` on
# pairs of (1 if the entry must be kept whatever the bound (a result), the entry).
_PUSH = """
local function push(first)
  local limit = tonumber(ARGV[1])
  local used = tonumber(redis.call('GET', KEYS[2]) or '0')
  local last = redis.call('XREVRANGE', KEYS[1], '+', '-', 'COUNT', 1)
  local seq = 0
  if #last > 0 then seq = tonumber(string.match(last[1][1], '%-(%d+)$')) end
  for i = first, #ARGV, 2 do
    local size = string.len(ARGV[i + 1])
    if ARGV[i] == '1' or used + size <= limit then
      seq = seq + 1
      redis.call('XADD', KEYS[1], '0-' .. seq, 'e', ARGV[i + 1])
      used = used + size
    elseif used <= limit then
      seq = seq + 1
      redis.call('XADD', KEYS[1], '0-' .. seq, 'e', ARGV[2])
      used = limit + 1
    end
  end
  redis.call('SET', KEYS[2], used)
  return seq
end
"""
_APPEND = (
    _PUSH
    + """
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[3] then return -1 end
return push(4)
"""
)
# A run's end in one round trip (a worker's result, its lease given back): add the last
# entries as _APPEND does, mark the run over, keep its keys (KEYS[7..]) for the retention
# time, drop its recovery message and its lease. Under a lease only while it is held; the
# state names the lease that ended the run, so that a second try of the same end (its
# answer lost with the connection) is told apart from a lost lease. ARGV after _APPEND's
# three: the run id, the retention time (s), then the pairs from 6 on.
_FINISH = (
    _PUSH
    + """
if ARGV[3] ~= '' and redis.call('GET', KEYS[3]) ~= ARGV[3] then
  if redis.call('GET', KEYS[4]) == 'done ' .. ARGV[3] then return 0 end
  return -1
end
push(6)
local state = 'done'
if ARGV[3] ~= '' then state = 'done ' .. ARGV[3] end
redis.call('SET', KEYS[4], state, 'EX', ARGV[5])
redis.call('SREM', KEYS[5], ARGV[4])
for i = 7, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[5]) end
redis.call('DEL', KEYS[6])
if ARGV[3] ~= '' then redis.call('DEL', KEYS[3]) end
return 1
"""
)
# Mark a run nobody holds as cancelled, so that no delivery of it ever starts.
_CANCEL_QUEUED = """
if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[2], 'cancelled', 'EX', ARGV[1])
return 1
"""


#: The keys of a run kept for the retention time once it ends.
_KEPT = (
    "events",
    "bytes",
    "cancel",
    "known",
    "attempt",
    "session",
    "transcript",
    "queue",
    "answers",
    "checkpoint",
)


@functools.lru_cache(maxsize=8)
def _notice(max_bytes: int) -> bytes:
    """The entry a stream gets in place of the events past its bound of ``max_bytes``."""
    return orjson.dumps(
        {
            "kind": "event",
            "event": {"type": "status", "status": "stream_limit"},
            "error": (
                f"the run's events passed the fleet's bound of {max_bytes:,} bytes: later "
                "events are not streamed (the run's folder on its worker has them all)"
            ),
        }
    )


def _entries(
    entries: Sequence[Mapping[str, Any]], lease: Lease | None, max_bytes: int | None
) -> list[Any]:
    """_APPEND's arguments: the bound, its notice, the lease ("" for none), the entries."""
    max_bytes = MAX_STREAM_BYTES if max_bytes is None else max_bytes
    held = f"{lease.owner} {lease.epoch}" if lease is not None else ""
    args: list[Any] = [max_bytes, _notice(max_bytes), held]
    for entry in entries:
        args += [int(entry.get("kind") != "event"), orjson.dumps(entry)]
    return args


def _new_broker(target: FleetTarget, heartbeat_timeout_s: float | None = None) -> WakingBroker:
    pool = redis.ConnectionPool.from_url(
        target.url, username=target.username, password=target.password
    )
    kwargs: dict[str, Any] = {}
    if heartbeat_timeout_s is not None:
        kwargs["heartbeat_timeout"] = int(heartbeat_timeout_s * 1000)
    broker = WakingBroker(  # type: ignore[no-untyped-call]
        client=redis.Redis(connection_pool=pool),
        namespace=NAMESPACE,
        # Only Retries, set to 0: no TimeLimit, no AgeLimit, no re-run of a failure.
        middleware=[Retries(max_retries=0)],
        **kwargs,
    )
    broker.declare_queue(QUEUE)
    return broker


#: The brokers submitters queue runs with, one per Redis in a process: a submit reuses its
#: connection (a broker per run cost a connection set-up each, and left it open until the
#: garbage collector found the broker). A Redis client's pool is safe across threads.
_SHARED: dict[FleetTarget, WakingBroker] = {}
_SHARED_LOCK = threading.Lock()


@contextlib.contextmanager
def _said(url: str) -> Iterator[None]:
    """Redis's errors as one :class:`FleetError` naming the fleet."""
    try:
        yield
    except redis.RedisError as exc:
        raise FleetError(f"the fleet at {url}: {exc}") from None


class RedisFleet:
    """A fleet on one Redis server (see the module's docstring)."""

    def __init__(self, target: FleetTarget) -> None:
        self.url = target.url
        self._target = target
        self._broker: WakingBroker | None = None
        self._client: aioredis.Redis | None = None
        self._scripts: dict[str, Any] = {}

    # -- keys ------------------------------------------------------------------------
    @staticmethod
    def _key(kind: str, run_id: str) -> str:
        return f"{NAMESPACE}:{kind}:{run_id}"

    # -- Dramatiq --------------------------------------------------------------------
    def _dramatiq(self) -> WakingBroker:
        """The broker to queue runs with: a serving worker's own, else the one this
        process shares for the fleet's Redis."""
        if self._broker is not None:
            return self._broker
        with _SHARED_LOCK:
            broker = _SHARED.get(self._target)
            if broker is None:
                broker = _SHARED[self._target] = _new_broker(self._target)
        return broker

    def submit(self, message: Mapping[str, Any]) -> None:
        broker = self._dramatiq()
        queue = check_queue(str(message.get("queue") or DEFAULT_QUEUE))
        run_id = str(message["run_id"])
        try:
            # Known from its submission on (attach tells a queued run from an unknown id);
            # no expiry while queued, the retention time once it ends (finish).
            with broker.client.pipeline(transaction=False) as pipe:
                pipe.set(self._key("known", run_id), b"1")
                pipe.set(self._key("queue", run_id), queue.encode())
                pipe.sadd(QUEUES_KEY, queue)
                pipe.execute()
            broker.enqueue(
                dramatiq.Message(
                    queue_name=broker_queue(queue),
                    actor_name=ACTOR,
                    args=(),
                    kwargs=dict(message),
                    options={},
                )
            )
            # An idle worker of the queue fetches it now, not at its next poll (_wake.py).
            broker.client.publish(CHANNEL, broker_queue(queue))
        except redis.RedisError as exc:
            raise FleetError(f"cannot queue the run on the fleet at {self.url}: {exc}") from None

    def serve(
        self,
        handler: Handler,
        *,
        slots: int,
        heartbeat_timeout_s: float,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> Any:
        broker = self._broker = _new_broker(self._target, heartbeat_timeout_s)
        names = {broker_queue(check_queue(q)) for q in queues}
        for name in names:
            broker.declare_queue(name)
        try:
            broker.client.sadd(QUEUES_KEY, *queues)
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self.url}: {exc}") from None

        def deliver(**message: Any) -> None:
            handler(message)

        dramatiq.Actor(
            deliver,
            broker=broker,
            actor_name=ACTOR,
            queue_name=QUEUE,
            priority=0,
            options={"max_retries": 0},
        )
        broker.waker = Waker()
        broker.waker.listen(broker.client)
        worker = dramatiq.Worker(
            broker, queues=names, worker_threads=slots, worker_timeout=WORKER_TIMEOUT_MS
        )
        # A worker fetches only what it can start: queued runs wait for a free slot anywhere
        # (per queue: a worker on k queues may hold k x slots fetched runs).
        worker.queue_prefetch = slots
        worker.start()
        return worker

    def stop_taking(self, consumer: Any) -> None:
        for thread in list(consumer.consumers.values()):
            thread.stop()

    def stop_serving(self, consumer: Any) -> None:
        consumer.stop()
        if self._broker is not None and self._broker.waker is not None:
            self._broker.waker.close()

    # -- Redis -----------------------------------------------------------------------
    @property
    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = async_client(self._target)
        return self._client

    async def _call(self, source: str, keys: list[str], args: list[Any]) -> Any:
        # EVALSHA of a script loaded once (redis-py loads it again after NOSCRIPT): a run
        # calls several, and EVAL would send and hash each one's source every time.
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._redis.register_script(source)
        with _said(self.url):
            return await script(keys, args)

    async def _script(self, source: str, keys: list[str], args: list[Any]) -> int:
        return int(await self._call(source, keys, args))

    async def acquire(
        self, run_id: str, owner: str, ttl_s: float, message: Mapping[str, Any] | None = None
    ) -> Lease | str:
        keys = [self._key(k, run_id) for k in ("lease", "epoch", "state", "attempt")]
        keys += [f"{NAMESPACE}:running", self._key("message", run_id), self._key("cancel", run_id)]
        attempt = int((message or {}).get("attempt", 1))
        args = [owner, int(ttl_s * 1000), RETENTION_S * 1000, attempt, run_id]
        found = await self._call(_ACQUIRE, keys, [*args, orjson.dumps(dict(message or {}))])
        if isinstance(found, list):
            return Lease(run_id, owner, int(found[0]), cancelled=bool(found[1]))
        return {-1: "over", -2: "stale"}.get(int(found), "held")

    async def reclaim(self) -> list[tuple[int, dict[str, Any]]]:
        with _said(self.url):
            members = await self._redis.smembers(f"{NAMESPACE}:running")
            run_ids = [m.decode() if isinstance(m, bytes) else str(m) for m in members]
            # Every worker looks often: one round trip for the leases, a script only for
            # the runs whose lease is gone.
            async with self._redis.pipeline(transaction=False) as pipe:
                for run_id in run_ids:
                    pipe.exists(self._key("lease", run_id))
                live = await pipe.execute()
        claimed = []
        for run_id, held in zip(run_ids, live, strict=True):
            if held:
                continue
            keys = [self._key(k, run_id) for k in ("lease", "state")]
            keys += [f"{NAMESPACE}:running", self._key("attempt", run_id)]
            keys.append(self._key("message", run_id))
            found = await self._call(_RECLAIM, keys, [run_id])
            if found:
                claimed.append((int(found[0]), orjson.loads(found[1])))
        return claimed

    async def handoff(self, lease: Lease) -> int:
        keys = [self._key("lease", lease.run_id), f"{NAMESPACE}:running"]
        keys.append(self._key("attempt", lease.run_id))
        return await self._script(_HANDOFF, keys, [lease.run_id, f"{lease.owner} {lease.epoch}"])

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        value = f"{lease.owner} {lease.epoch}"
        return bool(
            await self._script(
                _RENEW, [self._key("lease", lease.run_id)], [value, int(ttl_s * 1000)]
            )
        )

    async def release(self, lease: Lease) -> None:
        value = f"{lease.owner} {lease.epoch}"
        await self._script(_RELEASE, [self._key("lease", lease.run_id)], [value])

    async def cancel_queued(self, run_id: str) -> str:
        keys = [self._key("lease", run_id), self._key("state", run_id)]
        done = await self._script(_CANCEL_QUEUED, keys, [RETENTION_S])
        return {1: "cancelled", 0: "running"}.get(done, "over")

    async def request_cancel(self, run_id: str) -> None:
        try:
            await self._redis.set(self._key("cancel", run_id), b"1", ex=RETENTION_S)
            await self._redis.publish(
                f"{NAMESPACE}:control", orjson.dumps({"run_id": run_id, "command": "cancel"})
            )
        except redis.RedisError as exc:
            raise FleetError(f"the fleet at {self.url}: {exc}") from None

    async def command(self, run_id: str, command: str) -> None:
        with _said(self.url):
            await self._redis.publish(
                f"{NAMESPACE}:control", orjson.dumps({"run_id": run_id, "command": command})
            )

    async def answer(self, run_id: str, request_id: str, decision: Mapping[str, Any]) -> bool:
        key = self._key("answers", run_id)
        with _said(self.url):
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.hsetnx(key, request_id, orjson.dumps(dict(decision)))
                pipe.expire(key, RETENTION_S)
                first, _ = await pipe.execute()
            # Published after it is kept: the worker reads the answer when told.
            await self._redis.publish(
                f"{NAMESPACE}:control",
                orjson.dumps({"run_id": run_id, "command": PERMISSION}),
            )
        return bool(first)

    async def answered(self, run_id: str, request_id: str) -> dict[str, Any] | None:
        with _said(self.url):
            found = await self._redis.hget(self._key("answers", run_id), request_id)
        if not isinstance(found, bytes):
            return None
        try:
            data = orjson.loads(found)
        except orjson.JSONDecodeError:
            return None
        return data if isinstance(data, dict) else None

    async def where(self, run_id: str) -> str:
        with _said(self.url):
            for kind, said in (("lease", "running"), ("state", "over"), ("known", "queued")):
                if await self._redis.exists(self._key(kind, run_id)):
                    return said
            return "unknown"

    async def cancel_requested(self, run_id: str) -> bool:
        with _said(self.url):
            return bool(await self._redis.exists(self._key("cancel", run_id)))

    async def control(self, on_command: Callable[[str, str], Awaitable[None]]) -> None:
        pubsub = self._redis.pubsub()
        try:
            with _said(self.url):
                await pubsub.subscribe(f"{NAMESPACE}:control")
                async for message in pubsub.listen():
                    await self._command(message, on_command)
        finally:
            with contextlib.suppress(Exception):
                await pubsub.aclose()

    @staticmethod
    async def _command(
        message: Mapping[str, Any], on_command: Callable[[str, str], Awaitable[None]]
    ) -> None:
        if message.get("type") != "message":
            return
        try:
            data = orjson.loads(message["data"])
            run_id, command = str(data["run_id"]), str(data["command"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return  # not ours to act on: the channel is data, like any message
        await on_command(run_id, command)

    async def append(
        self,
        run_id: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        lease: Lease | None = None,
        max_bytes: int | None = None,
    ) -> bool:
        if not entries:
            return True
        keys = [self._key(k, run_id) for k in ("events", "bytes", "lease")]
        args = _entries(entries, lease, max_bytes)
        return await self._script(_APPEND, keys, args) >= 0

    async def ship_session(
        self, run_id: str, session_id: str, project: str, data: bytes, offset: int
    ) -> None:
        with _said(self.url):
            key = self._key("transcript", run_id)
            async with self._redis.pipeline(transaction=True) as pipe:
                if offset == 0:
                    pipe.hset(
                        self._key("session", run_id),
                        mapping={"id": session_id, "project": project},
                    )
                    pipe.set(key, data)
                else:
                    pipe.append(key, data)
                await pipe.execute()

    async def session(self, run_id: str) -> tuple[str, str, bytes] | None:
        with _said(self.url):
            found = await self._redis.hgetall(self._key("session", run_id))
            data = await self._redis.get(self._key("transcript", run_id))
        if not found or not data or not isinstance(data, bytes):
            return None
        session_id, project = found.get(b"id"), found.get(b"project")
        if not isinstance(session_id, bytes) or not isinstance(project, bytes):
            return None
        return session_id.decode(), project.decode(), data

    async def ship_checkpoint(self, run_id: str, commit: str) -> None:
        with _said(self.url):
            await self._redis.set(self._key("checkpoint", run_id), commit.encode())

    async def checkpoint(self, run_id: str) -> str | None:
        with _said(self.url):
            found = await self._redis.get(self._key("checkpoint", run_id))
        return found.decode() if isinstance(found, bytes) else None

    async def known(self, run_id: str) -> bool:
        with _said(self.url):
            kinds = ("known", "events", "state")
            return bool(await self._redis.exists(*(self._key(k, run_id) for k in kinds)))

    async def read(
        self, run_id: str, after: str, block_s: float
    ) -> list[tuple[str, dict[str, Any]]]:
        block_s = min(block_s, SOCKET_TIMEOUT_S / 2)
        with _said(self.url):
            key = self._key("events", run_id)
            found: Any = await self._redis.xread(
                {key: after}, count=1000, block=max(1, int(block_s * 1000))
            )
            out: list[tuple[str, dict[str, Any]]] = []
            for _stream, entries in found or ():
                for entry_id, fields in entries:
                    ident = entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)
                    out.append((ident, orjson.loads(fields[b"e"])))
            return out

    async def finish(
        self,
        run_id: str,
        lease: Lease | None,
        last: Sequence[Mapping[str, Any]] = (),
        *,
        max_bytes: int | None = None,
    ) -> bool:
        keys = [self._key(k, run_id) for k in ("events", "bytes", "lease", "state")]
        keys += [f"{NAMESPACE}:running", self._key("message", run_id)]
        keys += [self._key(kind, run_id) for kind in _KEPT]
        entries = _entries(last, lease, max_bytes)
        args = [*entries[:3], run_id, RETENTION_S, *entries[3:]]
        return await self._script(_FINISH, keys, args) >= 0

    async def heartbeat(self, worker_id: str, info: Mapping[str, Any], ttl_s: float) -> None:
        with _said(self.url):
            await self._redis.set(
                f"{NAMESPACE}:worker:{worker_id}", orjson.dumps(dict(info)), px=int(ttl_s * 1000)
            )

    async def workers(self) -> list[dict[str, Any]]:
        with _said(self.url):
            found = []
            async for key in self._redis.scan_iter(match=f"{NAMESPACE}:worker:*"):
                value = await self._redis.get(key)
                if value is not None:
                    found.append(orjson.loads(value))
            return found

    async def counts(self) -> dict[str, dict[str, int]]:
        with _said(self.url):
            names = {DEFAULT_QUEUE} | {
                n.decode() if isinstance(n, bytes) else str(n)
                for n in await self._redis.smembers(QUEUES_KEY)
            }
            found = {name: {"queued": 0, "running": 0} for name in sorted(names)}
            for name, count in found.items():
                # Dramatiq keeps a queue's waiting message ids in the list namespace:queue.
                count["queued"] = int(await self._redis.llen(f"{NAMESPACE}:{broker_queue(name)}"))
            prefix = f"{NAMESPACE}:lease:"
            async for key in self._redis.scan_iter(match=f"{prefix}*"):
                run_id = (key.decode() if isinstance(key, bytes) else str(key))[len(prefix) :]
                queue = await self._redis.get(self._key("queue", run_id))
                name = queue.decode() if isinstance(queue, bytes) else DEFAULT_QUEUE
                found.setdefault(name, {"queued": 0, "running": 0})["running"] += 1
            return found

    def limits(self) -> RedisLimits:
        # The shared rate limits live in their own module (_limits.py), on this connection.
        return RedisLimits(self.url, lambda: self._redis)

    async def check(self) -> None:
        with _said(self.url):
            await self._redis.ping()

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None
            self._scripts.clear()
        await asyncio.sleep(0)
