"""The compat client's lists run a bounded number of CLIs at once, and a partial answer is
returned with a warning at the caller's line."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from cc_executor.client.cc_execute import (
    CCExecutorConfig,
    cc_execute,
    cc_execute_list,
    cc_execute_sync,
)
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text
from tests._means import claude_path
from tests.run.conftest import Bed

SCRIPT = Script(
    [
        # About 100 s: always stopped by the timeout first.
        Rule(match="^slow", answers=[Reply([Text("s" * 4000)], chunk_size=2, delay=0.05)]),
        Rule(answers=[Reply([Text("done")])]),
    ]
)


def line_of(call: str) -> int:
    """The line of this file where ``call`` is made (the one a warning must name)."""
    lines = Path(__file__).read_text().splitlines()
    (number,) = [n for n, text in enumerate(lines, 1) if call in text and "line_of" not in text]
    return number


def counter() -> tuple[list[int], Any]:
    """A progress callback counting the runs between their start and their result line,
    and the list holding the most seen at once."""
    most = [0]
    running = [0]

    def progress(message: str) -> None:
        if message.startswith("Starting Claude execution"):
            running[0] += 1
            most[0] = max(most[0], running[0])
        elif message == "Claude execution completed":
            running[0] -= 1

    return most, progress


@pytest.mark.parametrize(("max_parallel", "expected"), [(None, 4), (2, 2), (8, 6)])
async def test_a_parallel_list_runs_at_most_max_parallel_at_once(
    bed: Any, max_parallel: int | None, expected: int
) -> None:
    """Six tasks: four at once by default (all of them started at once before), or what
    max_parallel says; the answers in order either way."""
    most, progress = counter()
    # Omitted for the default, as code written for the original calls it.
    extra: dict[str, Any] = {} if max_parallel is None else {"max_parallel": max_parallel}
    async with bed(SCRIPT) as b:
        answers = await cc_execute_list(
            [f"task {n}" for n in range(6)],
            CCExecutorConfig(options=b.options()),
            sequential=False,
            progress_callback=progress,
            **extra,
        )
    assert answers == ["done"] * 6
    assert most[0] == expected


async def test_bad_max_parallel_is_refused_before_anything_runs() -> None:
    for kwargs, message in (
        ({"sequential": False, "max_parallel": 0}, "max_parallel must be an integer >= 1, got 0"),
        ({"sequential": False, "max_parallel": True}, "max_parallel must be an integer >= 1"),
        ({"max_parallel": 3}, "max_parallel=3 needs sequential=False"),
    ):
        with pytest.raises(ValueError, match=message):
            await cc_execute_list(["x"], **kwargs)


async def test_a_partial_answer_warns_at_the_callers_line(bed: Any) -> None:
    async with bed(SCRIPT) as b:
        config = CCExecutorConfig(timeout=3, options=b.options())
        with pytest.warns(UserWarning, match="returning a partial answer") as direct:
            text = await cc_execute("slow one", config)
        # 10 s for the list: "fast" must end in time beside "slow two" on a loaded machine
        # (3 s was not enough with the suite on two workers at a load of 15).
        listing = CCExecutorConfig(timeout=10, options=b.options())
        with pytest.warns(UserWarning, match="returning a partial answer") as listed:
            answers = await cc_execute_list(["slow two", "fast"], listing, sequential=False)
    assert isinstance(text, str)
    assert answers[1] == "done"
    assert [(w.filename, w.lineno) for w in direct] == [(__file__, line_of('("slow one"'))]
    assert [(w.filename, w.lineno) for w in listed] == [(__file__, line_of('(["slow two"'))]
    assert "timed out after 3 s" in str(direct[0].message)


@pytest.mark.cli
def test_a_partial_answer_from_the_sync_client_warns_at_the_callers_line(
    tmp_path: Path,
) -> None:
    claude = claude_path()
    assert claude is not None  # the cli marker's probe skipped the test otherwise
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    with ModelServer(SCRIPT) as server:
        b = Bed(server, tmp_path / "work", tmp_path / "home", claude)
        config = CCExecutorConfig(timeout=3, options=b.options())
        with pytest.warns(UserWarning, match="returning a partial answer") as caught:
            cc_execute_sync("slow three", config)

        async def inside_a_loop() -> None:  # the run then goes on in a thread of its own
            cc_execute_sync("slow four", config)

        with pytest.warns(UserWarning, match="returning a partial answer") as threaded:
            asyncio.run(inside_a_loop())
    assert [(w.filename, w.lineno) for w in caught] == [(__file__, line_of('("slow three"'))]
    assert [w.filename for w in threaded] == [__file__]
