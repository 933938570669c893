"""The piecewise parser of huge stream-json lines: same result as a whole-line parse, in
little more memory than the strings it decodes, and a clean refusal of what it does not take."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import orjson
import pytest

from cc_executor._agents import _bigjson
from cc_executor._agents._bigjson import NotHandled, loads_large
from tests._scaling import assert_linear

#: Characters that make cutting hard: escapes, quotes, backslashes, multi-byte UTF-8,
#: astral characters (surrogate pairs when escaped), control characters, a "u" and hex
#: digits that may follow a backslash.
HARD = ["a", " ", "\n", '"', "\\", "\t", "é", "€", "\U0001f600", "\x01", "/", "u", "d", "8"]


def _loads(data: bytes) -> Any:
    return loads_large(lambda at, size: data[at : at + size], 0, len(data))


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.slow  # over 0.3 s: parses megabytes
def test_same_result_as_a_whole_line_parse(seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(seed)

    def text(n: int) -> str:
        return "".join(rng.choice(HARD) for _ in range(n))

    for _ in range(300):
        # Tiny limits, so every string is "large" and cut into many pieces.
        monkeypatch.setattr(_bigjson, "SMALL_STRING", rng.choice([4, 16, 64]))
        monkeypatch.setattr(_bigjson, "PIECE", rng.choice([16, 33, 100, 1000]))
        obj = {
            "type": "result",
            "result": text(rng.randint(0, 600)),
            "list": [text(rng.randint(0, 80)) for _ in range(3)],
            text(rng.randint(1, 40)): {"k": text(rng.randint(0, 300)), "n": 1.5, "t": None},
        }
        data = b" " + json.dumps(obj, ensure_ascii=rng.random() < 0.5).encode() + b" "
        assert _loads(data) == obj == orjson.loads(data)


def test_pathological_strings() -> None:
    for value in [
        "\\" * 300_000,  # 600,000 bytes of "\\\\"
        "\n" * 300_000,
        "\U0001f600" * 100_000,  # 1.2 MB of surrogate-pair escapes when ASCII-escaped
        '"' * 200_000,
        "x" * 1_000_000 + "\\",
    ]:
        for ascii_only in (True, False):
            data = json.dumps({"text": value, "after": "ok"}, ensure_ascii=ascii_only).encode()
            assert _loads(data) == {"text": value, "after": "ok"}


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": "' + b"x" * 100_000 + b"}",  # unterminated
        b'{"a": "' + b"x" * 100_000 + b'\\q"}',  # bad escape
        b'{"a": "' + b"x" * 100_000 + b'\\ud83d"}',  # lone surrogate (orjson refuses it)
        b'{"a": "' + b"x" * 100_000 + b'\x01"}',  # raw control character
        b'{"a": "' + b"x" * 100_000 + b'" "b"}',  # not JSON around the string
        b'{"a": "' + b"x" * 100_000 + b'"',  # truncated object
    ],
)
def test_what_it_does_not_take_is_refused(data: bytes) -> None:
    with pytest.raises(NotHandled):
        _loads(data)


@pytest.mark.slow  # over 0.3 s: parses megabytes
def test_a_20_mb_string_costs_little_more_than_itself() -> None:
    """Peak memory of a fresh process parsing a 20 MB line from a file: the decoded string
    plus a few pieces; a whole-line ``orjson.loads`` holds about three times the line."""
    code = textwrap.dedent(
        r"""
        import json, os, sys, tempfile
        import orjson
        from cc_executor._agents._bigjson import loads_large

        def hwm():
            with open("/proc/self/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) * 1024

        # Written a row at a time: nothing big exists in this process before the parse.
        row = b'the quick brown fox \\"jumps\\" over the lazy dog \\u00e9\\n'
        rows = 400_000
        fd, path = tempfile.mkstemp()
        with os.fdopen(fd, "wb") as f:
            f.write(b'{"type": "result", "result": "')
            for _ in range(rows):
                f.write(row)
            f.write(b'", "session_id": "s"}')
        def read(at, size):
            with open(path, "rb") as f:
                f.seek(at)
                return f.read(size)
        base = hwm()
        obj = loads_large(read, 0, os.path.getsize(path))
        peak = hwm() - base
        os.unlink(path)
        expected = json.loads(b'"' + row + b'"') * rows
        assert obj == {"type": "result", "result": expected, "session_id": "s"}
        print(json.dumps({"chars": len(obj["result"]), "peak": peak}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    figures = json.loads(done.stdout)
    assert figures["chars"] == 19_200_000  # 48 characters a row, Latin-1: 1 byte each
    # The string is 19.2 MB; a whole-line parse peaks near three times the line.
    assert figures["peak"] < 26_000_000, figures


def test_an_event_log_is_read_a_line_at_a_time(tmp_path: Path) -> None:
    """``parse_log`` gives the events a line-by-line parse gives, whatever the line sizes
    (one over the 1 MiB limit, a huge non-JSON line, no final newline)."""
    from cc_executor._agents._claude import ClaudeStreamParser

    big = "".join(f'{i} "é" \\ \U0001f600\n' for i in range(150_000))
    lines = [
        json.dumps({"type": "system", "subtype": "init", "session_id": "s"}).encode(),
        json.dumps({"type": "assistant", "message": {"id": "m", "content": [
            {"type": "text", "text": big}]}}).encode(),
        b"x" * (2 << 20),  # not JSON: a noise event
        json.dumps({"type": "result", "subtype": "success", "result": big}).encode(),
    ]  # fmt: skip
    assert len(lines[1]) > 2 << 20
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"\n".join(lines))  # no newline at the end
    with path.open("rb") as log:
        got = list(ClaudeStreamParser().parse_log(log))
    expected = [e for line in lines for e in ClaudeStreamParser().parse(line, 0.0)]
    assert [type(e).__name__ for e in got] == [
        "InitEvent", "TextEvent", "NoiseEvent", "ResultEvent"
    ]  # fmt: skip
    assert got == expected
    assert got[1].text == big  # type: ignore[attr-defined]
    assert got[3].result == big  # type: ignore[attr-defined]


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_many_small_strings_are_read_once() -> None:
    """A long line of small strings (structured output made of records) is read a window
    at a time, not re-read per string: reads are counted, and it stays fast."""
    obj = {"type": "result", "structured_output": {"rows": [{"k": "ab"}] * 300_000}}
    data = orjson.dumps(obj)
    assert len(data) > 3_000_000
    reads: list[int] = []

    def read(at: int, size: int) -> bytes:
        reads.append(size)
        return data[at : at + size]

    assert loads_large(read, 0, len(data)) == obj
    # A refill comes when a request (up to a piece) reaches past the window.
    assert len(reads) <= len(data) // (_bigjson.READ_AHEAD - _bigjson.PIECE) + 2
    assert sum(reads) == len(data)  # every byte read exactly once


def test_json_line_writer_never_fails_on_lone_surrogates() -> None:
    import io

    from cc_executor._cli._write import SLICE, write_json_line

    data = {"short": "a\ud83d", "long": "b\ud83d" * (SLICE // 2 + 7), "n": 1}  # > 1 slice
    out = io.BytesIO()
    write_json_line(out, data)
    assert json.loads(out.getvalue()) == data


@pytest.mark.slow
def test_linear_under_a_profiler() -> None:
    """Under a profiler (or coverage) CPython 3.11 does not grow a string in place, so the
    decoder joins its pieces instead: twice the string takes about twice as long (growing
    it by ``+=`` copied it over and over: 0.9 s for 20 MB there, about 10 s for 64 MB)."""

    def answer(lines: int) -> bytes:
        text = 'line with "quotes", a tab\t and caf\u00e9\n' * lines
        return orjson.dumps({"type": "result", "result": text, "session_id": "s"})

    calls = 0

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal calls
        calls += 1

    def profiled(line: bytes) -> Any:
        sys.setprofile(profile)
        try:
            return loads_large(lambda at, size: line[at : at + size], 0, len(line))
        finally:
            sys.setprofile(None)

    line = answer(1_800_000)
    assert profiled(line) == orjson.loads(line)
    assert calls > 0  # the profiler was really on
    assert_linear(answer, profiled, 300_000)
