"""Complexity checks instead of wall-clock bounds.

A bound like "under 1 s" fails on a loaded machine and says nothing on a fast one. Comparing
the same work at two sizes, measured in the same run, catches what these guards are for
(quadratic behaviour) whatever the machine's speed: twice the input must not take more than
about three times as long (linear gives 2x, quadratic 4x).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def _timed(work: Callable[[], object]) -> float:
    # As timeit does: a collection of earlier garbage is not this work's cost.
    gc.collect()
    gc.disable()
    try:
        # CPU time, not wall time: other processes on a loaded machine do not count.
        started = time.process_time()
        work()
        return time.process_time() - started
    finally:
        gc.enable()


def assert_linear(
    make: Callable[[int], T],
    work: Callable[[T], object],
    size: int,
    *,
    repeat: int = 5,
    factor: float = 3.0,
    rounds: int = 3,
) -> None:
    """Fail unless ``work(make(2 * size))`` takes at most ``factor`` times as long as
    ``work(make(size))``: the best of ``repeat`` runs each, the two sizes taking turns so
    a burst of other load hits both, inputs built outside the timing. A round over the
    factor is measured again, up to ``rounds`` times: other load can spoil one round, but
    quadratic work is over it every time."""
    small, large = make(size), make(2 * size)
    work(small)  # warm-up: imports, caches and allocator pools are not the work
    ratios = []
    for _ in range(rounds):
        once = twice = float("inf")
        for _ in range(repeat):
            once = min(once, _timed(lambda: work(small)))
            twice = min(twice, _timed(lambda: work(large)))
        ratios.append(twice / once)
        if ratios[-1] <= factor:
            return
    raise AssertionError(
        f"twice the input took {', '.join(f'{r:.1f}x' for r in ratios)} as long in "
        f"{rounds} rounds (last {once:.3f} s -> {twice:.3f} s): worse than linear "
        f"(allowed {factor}x)"
    )
