"""Waiting for a condition instead of sleeping for a guess.

The timeouts are generous on purpose (a loaded 2-core machine can be many times slower than
an idle one): they only turn a hang into a clear failure, they are not a speed target.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
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
