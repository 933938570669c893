"""The wake-up channel is anyone's on the Redis server: what is published there is a queue
name to look up, never kept, never a reason to stop listening."""

from __future__ import annotations

import logging
import threading

import pytest

from cc_executor._fleet._wake import CHANNEL, Waker
from tests._wait import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def test_hostile_messages_neither_grow_the_worker_nor_stop_its_wake_ups(
    redis_server: object, caplog: pytest.LogCaptureFixture
) -> None:
    # Fourth pass P10: each name published made an event kept for ever, and a message not
    # in UTF-8 dropped the subscription for a second (wake-ups lost meanwhile).
    client = redis_server.client()  # type: ignore[attr-defined]
    caplog.set_level(logging.WARNING, logger="cc_executor.worker")
    waker = Waker()
    queue = waker.event("cc-executor")
    waker.listen(client)
    try:
        wait_for(lambda: client.pubsub_numsub(CHANNEL)[0][1] == 1)
        queue.clear()
        for n in range(2000):
            client.publish(CHANNEL, f"junk-{n}")
        client.publish(CHANNEL, b"\xff\xfe")
        woke = threading.Event()

        def wake() -> bool:
            client.publish(CHANNEL, "cc-executor")
            woke.set()
            return queue.wait(0.05)

        wait_for(wake)
        assert woke.is_set()
        assert list(waker._events) == ["cc-executor"]
        # The bad message did not drop the subscription (which logs why it listens again).
        assert [r.getMessage() for r in caplog.records if "wake-up" in r.getMessage()] == []
    finally:
        waker.close()
