"""The line framer against a model: every way of cutting a stream into reads gives the lines
of ``data.split(b"\\n")``, in memory up to the budget and file-backed beyond it."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from cc_executor._engine._capture import StreamCapture
from cc_executor._engine._events import LineFramer


def _frame(
    tmp_path: Path, name: str, chunks: list[bytes], budget: int
) -> list[tuple[int, int, float, bool, bool, bytes]]:
    capture = StreamCapture(str(tmp_path / name), memory_budget=0, tail_bytes=0)
    framer = LineFramer("stdout", capture, budget)
    out = []
    offset = 0
    for i, chunk in enumerate(chunks):
        capture.feed(chunk)
        events = list(framer.feed(chunk, offset, float(i)))
        out += [(e.offset, e.length, e.t, e.complete, e.in_memory, e.data) for e in events]
        offset += len(chunk)
    last = framer.finish(99.0)
    capture.close()
    if last is not None:
        out.append((last.offset, last.length, last.t, last.complete, last.in_memory, last.data))
    return out


def _model(chunks: list[bytes]) -> list[tuple[int, int, bool, bytes]]:
    data = b"".join(chunks)
    lines = []
    offset = 0
    for piece in data.split(b"\n"):
        lines.append((offset, len(piece), True, piece))
        offset += len(piece) + 1
    last = lines.pop()  # what follows the last newline
    if last[1]:
        lines.append((last[0], last[1], False, last[3]))
    return lines


@pytest.mark.slow  # over 0.3 s: many random splits
def test_random_cuts_give_the_lines_of_a_split(tmp_path: Path) -> None:
    rng = random.Random(20261124)
    spilled = in_memory = 0
    for trial in range(3000):
        data = bytes(rng.choice(b"ab\n") for _ in range(rng.randrange(0, 80)))
        cuts = sorted(rng.sample(range(len(data) + 1), min(len(data) + 1, rng.randrange(0, 9))))
        chunks = [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        budget = rng.randrange(0, 16)
        got = _frame(tmp_path, f"{trial}.log", chunks, budget)
        assert [(o, n, c, d) for o, n, _t, c, _m, d in got] == _model(chunks)
        # The time of a line is when its first byte was read; only lines longer than the
        # budget are ever file-backed.
        starts = [sum(map(len, chunks[: i + 1])) for i in range(len(chunks))]
        for offset, length, t, _complete, memory, _data in got:
            if t != 99.0:
                assert starts[int(t)] > offset >= starts[int(t)] - len(chunks[int(t)])
            if not memory:
                assert length > budget
                spilled += 1
            else:
                in_memory += 1
    # Both paths exercised.
    assert spilled > 100
    assert in_memory > 100


def test_a_huge_line_is_not_held_in_memory(tmp_path: Path) -> None:
    line = b"x" * (8 << 20)
    data = b"head\n" + line + b"\ntail"
    chunks = [data[i : i + (1 << 20)] for i in range(0, len(data), 1 << 20)]
    got = _frame(tmp_path, "big.log", chunks, 1 << 20)
    assert [(o, n, c, m) for o, n, _t, c, m, _d in got] == [
        (0, 4, True, True),
        (5, len(line), True, False),
        (6 + len(line), 4, False, True),
    ]
    assert got[1][5] == line  # read back from the file, whole
