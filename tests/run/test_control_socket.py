"""The local control socket against hostile callers of the same account (fast: the socket
alone, in this process; tests/run/test_control.py drives whole runs)."""

from __future__ import annotations

import asyncio
import logging
import socket
from pathlib import Path

import pytest

from cc_executor._run._control import open_control


def _ask(path: str, payload: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.connect(path)
        s.sendall(payload)
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
        return answer


async def test_an_oversized_or_malformed_line_is_dropped_quietly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # Fourth pass P6: a line past the reader's limit escaped the handler as a ValueError,
    # and asyncio printed its traceback on the run's stderr.
    cancelled: list[bool] = []

    def cancel() -> bool:
        cancelled.append(True)
        return True

    channel = await open_control(str(tmp_path), {"cancel": cancel})
    assert channel is not None
    try:
        with caplog.at_level(logging.ERROR, logger="asyncio"):
            for payload in (b"x" * 70_000 + b"\n", b'"cancel"\n', b"\xff\xfe\n", b"[]\n"):
                assert await asyncio.to_thread(_ask, channel.path, payload) == b""
            ok = await asyncio.to_thread(_ask, channel.path, b'{"command": "cancel"}\n')
        assert ok == b'{"ok":true}\n'
        assert cancelled == [True]
        assert [r.getMessage() for r in caplog.records] == []
    finally:
        await channel.aclose()
