"""Waiting for a condition instead of sleeping for a guess.

The timeouts are generous on purpose (a loaded 2-core machine can be many times slower than
an idle one): they only turn a hang into a clear failure, they are not a speed target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(
    predicate: Callable[[], T], *, timeout: float = 30, interval: float = 0.02, what: str = ""
) -> T:
    """Call ``predicate`` every ``interval`` s until it returns something true, and return
    that; fail the test with ``what`` (else the predicate's name) after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or predicate!r}")
        time.sleep(interval)


async def await_for(
    predicate: Callable[[], T], *, timeout: float = 30, interval: float = 0.02, what: str = ""
) -> T:
    """:func:`wait_for` for a coroutine: the event loop keeps running while it waits."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"not reached within {timeout} s: {what or predicate!r}")
        await asyncio.sleep(interval)


def with_room(
    attempt: Callable[[float], T], timeout: float, reached: Callable[[T], object], *, tries: int = 3
) -> tuple[T, float]:
    """``attempt(timeout)``, again with twice the timeout while ``reached(result)`` is false
    (``tries`` times at most); the last result and the timeout it ran with.

    For a run that must time out *after* something it does first (an agent CLI's first
    words): no short timeout is sure to leave room for that on a loaded machine, where the
    CLI's start alone took over 5 s, and a long one would cost every run all of it. The
    test's assertions then apply in full to the run that got that far."""
    for _ in range(tries - 1):
        result = attempt(timeout)
        if reached(result):
            return result, timeout
        timeout *= 2
    return attempt(timeout), timeout


async def await_with_room(
    attempt: Callable[[float], Awaitable[T]],
    timeout: float,
    reached: Callable[[T], object],
    *,
    tries: int = 3,
) -> tuple[T, float]:
    """:func:`with_room` for a coroutine."""
    for _ in range(tries - 1):
        result = await attempt(timeout)
        if reached(result):
            return result, timeout
        timeout *= 2
    return await attempt(timeout), timeout
