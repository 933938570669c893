"""Waking an idle worker at once when a run is queued, beside Dramatiq.

Dramatiq's Redis consumer polls: after an empty fetch it sleeps with a back-off growing to
the worker's timeout (a second here), so a run queued on an idle fleet waited up to that
long. Here a submitter publishes the queue's name on a channel right after it queues a run
(:data:`CHANNEL`); each worker listens in a thread and sets that queue's event, on which its
consumers wait between fetches instead of Dramatiq's growing sleep. A consumer also wakes
when a slot frees (its ack), so a busy worker takes the next run at once; one whose slots
are all taken waits only for that, not for the wake-ups of queued runs.

Nothing depends on the channel: a wake-up lost (the listener reconnecting, a publish
failing) only means the consumer fetches when its wait ends, as Dramatiq would have.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Any

import redis
from dramatiq.brokers.redis import RedisBroker, _RedisConsumer

log = logging.getLogger("cc_executor.worker")

#: The channel a submitter publishes a queue's (Dramatiq) name on after queueing a run.
CHANNEL = "cc-executor:wake"


class Waker:
    """One event per queue: set by a wake-up, waited on by that queue's consumer."""

    def __init__(self) -> None:
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pubsub: Any = None

    def event(self, queue: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(queue, threading.Event())

    def poke(self, queue: str | None = None) -> None:
        """Wake the consumers of ``queue`` (None: of every queue). A name no consumer here
        waits on is ignored: the channel is anyone's, and each name kept would be memory."""
        with self._lock:
            if queue is None:
                events = list(self._events.values())
            else:
                found = self._events.get(queue)
                events = [found] if found is not None else []
        for event in events:
            event.set()

    def listen(self, client: redis.Redis) -> None:
        """Listen for wake-ups in a daemon thread until :meth:`close`."""
        self._thread = threading.Thread(
            target=self._listen, args=(client,), name="cc-executor-wake", daemon=True
        )
        self._thread.start()

    def _listen(self, client: redis.Redis) -> None:
        while not self._stop.is_set():
            try:
                self._pubsub = client.pubsub(ignore_subscribe_messages=True)
                self._pubsub.subscribe(CHANNEL)
                # Whatever was published while not subscribed is fetched now.
                self.poke()
                while not self._stop.is_set():
                    message = self._pubsub.get_message(timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        # Not UTF-8 is no reason to drop the subscription (and a second).
                        name = data.decode(errors="replace") if isinstance(data, bytes) else data
                        self.poke(str(name))
            except (redis.RedisError, OSError, ValueError, AttributeError) as exc:
                if self._stop.is_set():
                    return
                log.warning("wake-up channel: %s; listening again in 1 s", exc)
                time.sleep(1)
            finally:
                with contextlib.suppress(Exception):
                    self._pubsub.close()

    def close(self) -> None:
        self._stop.set()
        self.poke()
        if self._thread is not None:
            self._thread.join(5)


class WakingBroker(RedisBroker):
    """Dramatiq's Redis broker whose consumers wait on a :class:`Waker` between fetches."""

    waker: Waker | None = None

    @property
    def consumer_class(self) -> Any:
        return _WakingConsumer


class _WakingConsumer(_RedisConsumer):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        #: Set when one of this consumer's runs ends (its slot is free).
        self._slot = threading.Event()

    def __next__(self) -> Any:
        waker: Waker | None = self.broker.waker
        if waker is None:
            return super().__next__()  # type: ignore[no-untyped-call]
        event = waker.event(self.queue_name)
        if not self.message_cache:
            # Cleared before the fetch: a wake-up from now on ends the wait below.
            event.clear()
            self._slot.clear()
            if self.outstanding_message_count >= self.prefetch:
                # Every slot is taken: nothing to fetch until one frees. Dramatiq would
                # sleep 5-10 ms and come back here, and each queued run's wake-up would
                # wake it again, so a freed slot waited for the end of that sleep.
                self._slot.wait(self.timeout / 2000)
                return None
        # Dramatiq's own pause after an empty fetch stays at its shortest (5-10 ms): the
        # wait below is the idle one, and it ends as soon as a run is queued.
        self.misses = 0
        message = super().__next__()  # type: ignore[no-untyped-call]
        if message is None:
            # Half the timeout: Dramatiq refreshes the worker's heartbeat with each fetch.
            event.wait(self.timeout / 2000)
        return message

    def ack(self, message: Any) -> None:
        try:
            super().ack(message)  # type: ignore[no-untyped-call]
        finally:
            self._freed()

    def nack(self, message: Any) -> None:
        try:
            super().nack(message)  # type: ignore[no-untyped-call]
        finally:
            self._freed()

    def _freed(self) -> None:
        """A slot is free: fetch the next run now rather than at the end of the wait."""
        self._slot.set()
        waker: Waker | None = self.broker.waker
        if waker is not None:
            waker.event(self.queue_name).set()
