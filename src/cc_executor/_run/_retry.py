"""Retries of a run's attempts with exponential back-off (tenacity).

Loaded only once a first attempt failed in a way worth retrying (rate limit, overload, 5xx,
no tool run yet): most runs never need it, and its imports cost every run about 5 ms of CPU
while the CLI boots."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_result,
    stop_after_attempt,
    stop_any,
)
from tenacity.stop import stop_base
from tenacity.wait import wait_base, wait_exponential

T = TypeVar("T")


class _OutOfTime(stop_base):
    """Stop retrying when the run's total timeout leaves no room for the back-off and a
    second of work."""

    def __init__(
        self, remaining: Callable[[], float | None], wait: wait_base, note: Callable[[str], None]
    ) -> None:
        self._remaining = remaining
        self._wait = wait
        self._note = note

    def __call__(self, retry_state: RetryCallState) -> bool:
        remaining = self._remaining()
        if remaining is not None and remaining <= self._wait(retry_state) + 1:
            self._note("not retried: the timeout leaves no time for another attempt")
            return True
        return False


async def retried(
    first: T,
    again: Callable[[], Awaitable[T]],
    *,
    should_retry: Callable[[T], bool],
    attempts: int,
    initial_delay: float,
    max_delay: float,
    remaining: Callable[[], float | None],
    before_sleep: Callable[[T, float], Awaitable[None]],
    note: Callable[[str], None],
    sleep: Callable[[float], Awaitable[None]],
    stopped: Callable[[], bool],
) -> T:
    """The outcome of ``first`` (an attempt already made, whose failure is retryable) and of
    up to ``attempts - 1`` more made with ``again``, while ``should_retry`` says so, with
    exponential back-off from ``initial_delay`` to ``max_delay`` seconds, never past the
    time ``remaining()`` leaves. ``before_sleep(failed, delay)`` announces each retry;
    ``note`` receives why retrying stopped early. ``sleep(delay)`` waits out a back-off
    and must return early once ``stopped()``: then no further attempt is made, and the
    last one made is the answer (``should_retry`` must then say no). The last attempt is
    the answer."""
    wait = wait_exponential(multiplier=initial_delay, min=initial_delay, max=max_delay)
    replay = [first]
    last = first

    async def attempt() -> T:
        nonlocal last
        if replay:
            return replay.pop()
        if stopped():  # stopped during the back-off: no new attempt
            return last
        last = await again()
        return last

    async def announce(state: RetryCallState) -> None:
        assert state.outcome is not None
        assert state.next_action is not None
        await before_sleep(state.outcome.result(), state.next_action.sleep)

    retrying = AsyncRetrying(
        stop=stop_any(stop_after_attempt(attempts), _OutOfTime(remaining, wait, note)),
        wait=wait,
        retry=retry_if_result(should_retry),
        before_sleep=announce,
        sleep=sleep,
        # When attempts run out, the last attempt is the answer, not an exception.
        retry_error_callback=lambda state: state.outcome.result() if state.outcome else None,
    )
    result: T = await retrying(attempt)
    return result
