"""What ``GET /fleet`` says of each worker: its health from its heartbeat's age, and the
workers seen live whose heartbeat has since expired (``lost``), kept for a while only."""

from __future__ import annotations

from typing import Any

from cc_executor._service import _manager
from cc_executor._service._manager import RunManager


def _worker(worker_id: str, beat: float, timeout: float | None = 8.0) -> dict[str, Any]:
    worker: dict[str, Any] = {"worker_id": worker_id, "heartbeat_at": beat, "runs": []}
    if timeout is not None:
        worker["heartbeat_timeout_s"] = timeout
    return worker


def test_health_is_late_after_two_missed_heartbeats() -> None:
    now = 1000.0
    fresh, late = _worker("a", now - 3.9), _worker("b", now - 4.1)
    # A worker that does not say its timeout (an older one) is judged against 10 s.
    older = _worker("c", now - 5.1, timeout=None)
    for worker in (fresh, late, older):
        _manager._worker_health(worker, now)
    assert [w["health"] for w in (fresh, late, older)] == ["ok", "late", "late"]
    assert late["heartbeat_age_s"] == 4.1


def test_a_worker_seen_live_then_gone_is_lost_for_an_hour_at_most() -> None:
    manager = RunManager()
    now = 1000.0
    assert manager._note_workers([_worker("a", now), _worker("b", now)], now) == []
    lost = manager._note_workers([_worker("b", now + 5)], now + 5)
    assert [(w["worker_id"], w["health"]) for w in lost] == [("a", "lost")]
    assert lost[0]["heartbeat_age_s"] == 5
    # Back: live again, no longer lost.
    assert manager._note_workers([_worker("a", now + 6), _worker("b", now + 6)], now + 6) == []
    # Gone, newest loss first; forgotten an hour after its last heartbeat.
    manager._note_workers([_worker("b", now + 7)], now + 7)
    lost = manager._note_workers([], now + 8)
    assert [w["worker_id"] for w in lost] == ["b", "a"]
    kept = manager._note_workers([], now + 7 + _manager.LOST_WORKERS_KEPT_S)
    assert [w["worker_id"] for w in kept] == ["b"]
    assert manager._note_workers([], now + 8 + _manager.LOST_WORKERS_KEPT_S) == []


def test_lost_workers_are_bounded_in_number() -> None:
    manager = RunManager()
    many = [_worker(f"w{i}", 0.0) for i in range(_manager.LOST_WORKERS_MAX + 5)]
    manager._note_workers(many, 0.0)
    lost = manager._note_workers([], 1.0)
    assert len(lost) == _manager.LOST_WORKERS_MAX
    # The oldest losses go first.
    assert lost[-1]["worker_id"] == "w5"
