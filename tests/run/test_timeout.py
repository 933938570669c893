"""Timeouts predicted from the durations of similar past runs."""

from __future__ import annotations

from cc_executor._run._timeout import auto_timeout


def test_auto_timeout() -> None:
    assert auto_timeout([1.0])[0] == 600.0
    seconds, note = auto_timeout([10.0] * 19 + [100.0])
    assert seconds == 30.0  # 1.5 x p95 (10 s) = 15 s, raised to the floor
    assert "p95" in note
    assert auto_timeout([100.0] * 20)[0] == 150.0
    assert auto_timeout([5000.0] * 20)[0] == 3600.0
