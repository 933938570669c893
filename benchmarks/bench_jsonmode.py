"""JSON-mode extraction on hostile answers: its time, and how long it can hold the event loop.

For each answer shape and size: the time of ``extract_from_answer`` (best of ``--reps``, in
this thread), and, while ``extract_from_answer_async`` works in its worker thread, the gaps
between the ticks of a task on the event loop: the longest gap is the longest another run's
cancel or timeout could wait (target: under 100 ms). Baseline in the same run: json_repair
alone on the issue's case (cut off inside a string), whose time grows with the square of the
length, at sizes it finishes quickly.

    .venv/bin/python benchmarks/bench_jsonmode.py [--reps 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import platform
import sys
import time
from collections.abc import Callable

import json_repair

from cc_executor._run._jsonmode import extract_from_answer, extract_from_answer_async

MB = 1_000_000


def cut_in_string(size: int) -> str:
    return 'Here: {"summary": "ok", "log": "' + "lorem ipsum dolor " * (size // 18)


def cut_in_rows(size: int) -> str:
    return '{"rows": [' + "[1, 2, 3], " * (size // 11)


def single_quoted(size: int) -> str:
    """Cut off inside a single-quoted string: not closable as JSON, so json_repair's
    worst case, at the most it is given."""
    return "{'a': '" + "x" * (size - 7)


def valid(size: int) -> str:
    return json.dumps({"items": [{"id": i, "name": "n" * 20} for i in range(size // 36)]})


SHAPES: dict[str, Callable[[int], str]] = {
    "cut off in a string": cut_in_string,
    "cut off in dense arrays": cut_in_rows,
    "cut off, single quotes": single_quoted,
    "valid JSON": valid,
}


def best(reps: int, work: Callable[[], object]) -> float:
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


async def loop_gaps(text: str) -> tuple[float, float, int]:
    """(longest gap, p99 gap, ticks) of an event-loop task during the async extraction."""
    gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    task = asyncio.create_task(ticker())
    await asyncio.sleep(0)
    await extract_from_answer_async(text)
    done = True
    await task
    ordered = sorted(gaps)
    return ordered[-1], ordered[int(0.99 * (len(ordered) - 1))], len(gaps)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="small sizes only")
    args = parser.parse_args()
    print(
        f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"json_repair {json_repair.__version__ if hasattr(json_repair, '__version__') else '?'}"
    )
    print("\nbaseline: json_repair.loads alone, cut off inside a string")
    for size in (100_000, 200_000) if args.quick else (100_000, 200_000, 400_000):
        text = cut_in_string(size)
        body = text[text.index("{") :]
        seconds = best(1, functools.partial(json_repair.loads, body, skip_json_loads=True))
        print(f"  {size / MB:5.1f} MB  {seconds * 1000:9.1f} ms")

    sizes = (MB, 2 * MB) if args.quick else (2 * MB, 20 * MB)
    print("\nextract_from_answer (best time) | async: longest / p99 event-loop gap, ticks")
    failed = False
    for name, shape in SHAPES.items():
        for size in sizes if shape is not single_quoted else (100_000,):
            text = shape(size)
            seconds = best(args.reps, functools.partial(extract_from_answer, text))
            longest, p99, ticks = asyncio.run(loop_gaps(text))
            found = extract_from_answer(text)[0]
            failed |= longest >= 0.1
            print(
                f"  {name:<32} {len(text) / MB:5.1f} MB  {seconds * 1000:8.1f} ms | "
                f"{longest * 1000:7.1f} / {p99 * 1000:5.2f} ms, {ticks:>7} ticks"
                f"{'' if found.found else '  (not found: ' + str(found.error)[:60] + ')'}"
            )
    print("\nevery longest gap under 100 ms" if not failed else "\nsome gap reached 100 ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
