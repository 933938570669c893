"""The fleet's transport on a real Redis: URLs and credentials, the per-run lease, the
cancel of a queued run, the event stream and the workers' heartbeats."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from cc_executor._errors import FleetError
from cc_executor._fleet import open_fleet
from cc_executor._fleet._base import Lease
from cc_executor._fleet._redis import RETENTION_S
from cc_executor._fleet._url import parse_fleet_url
from tests.fleet.conftest import RedisServer

RUN = "01abcdefghjkmnpqrstvwxyz01"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://host:6379", "scheme must be redis://"),
        ("", "fleet URL is empty"),
        ("unix://relative.sock", "absolute socket path"),
        ("redis://", "no host"),
    ],
)
def test_a_bad_fleet_url_is_refused_in_one_line(url: str, message: str) -> None:
    with pytest.raises(FleetError, match=message):
        parse_fleet_url(url)


def test_a_password_on_the_command_line_is_refused_and_taken_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(FleetError, match="CC_EXECUTOR_FLEET_PASSWORD"):
        parse_fleet_url("redis://user:secret@host:6379/0", from_argv=True)
    # From the environment (a library caller's URL may hold it).
    assert parse_fleet_url("redis://user:secret@host:6379/0").password == "secret"
    secret = tmp_path / "pw"
    secret.write_text("from-file\n")
    monkeypatch.setenv("CC_EXECUTOR_FLEET_PASSWORD_FILE", str(secret))
    monkeypatch.setenv("CC_EXECUTOR_FLEET_USERNAME", "worker")
    target = parse_fleet_url("rediss://host:6380/0", from_argv=True)
    assert (target.url, target.username, target.password) == (
        "rediss://host:6380/0",
        "worker",
        "from-file",
    )
    assert "from-file" not in repr(target)


@pytest.mark.redis
async def test_only_one_holder_of_a_lease_and_a_new_epoch_each_time(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        first = await fleet.acquire(RUN, "w1", 30)
        assert isinstance(first, Lease)
        assert first.epoch == 1
        assert await fleet.acquire(RUN, "w2", 30) == "held"  # a duplicate delivery
        assert await fleet.renew(first, 30)
        await fleet.release(first)
        second = await fleet.acquire(RUN, "w2", 30)
        assert isinstance(second, Lease)
        assert second.epoch == 2
        assert not await fleet.renew(first, 30)  # the first holder lost it
        await fleet.finish(RUN, second)
        assert await fleet.acquire(RUN, "w3", 30) == "over"
        assert await fleet.cancel_queued(RUN) == "over"
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_a_lease_not_renewed_expires(redis_server: RedisServer) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        first = await fleet.acquire(RUN, "w1", 0.05)
        assert isinstance(first, Lease)
        while (taken := await fleet.acquire(RUN, "w2", 30)) == "held":
            await asyncio.sleep(0.02)
        assert isinstance(taken, Lease)
        assert taken.epoch == 2
        assert not await fleet.renew(first, 30)
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_a_queued_run_cancelled_never_starts(redis_server: RedisServer) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        assert await fleet.cancel_queued(RUN) == "cancelled"
        assert await fleet.acquire(RUN, "w1", 30) == "over"
        other = RUN[:-1] + "2"
        assert isinstance(await fleet.acquire(other, "w1", 30), Lease)
        assert await fleet.cancel_queued(other) == "running"
        assert not await fleet.cancel_requested(other)
        await fleet.request_cancel(other)
        assert await fleet.cancel_requested(other)
        # A cancel asked before a lease is taken comes with the lease (no second look).
        later = RUN[:-1] + "3"
        await fleet.request_cancel(later)
        lease = await fleet.acquire(later, "w1", 30)
        assert isinstance(lease, Lease)
        assert lease.cancelled
        unasked = await fleet.acquire(RUN[:-1] + "4", "w1", 30)
        assert isinstance(unasked, Lease)
        assert not unasked.cancelled
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_the_event_stream_keeps_order_and_expires_after_the_end(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        await fleet.append(RUN, [{"n": i} for i in range(500)])
        seen: list[int] = []
        after = "0"
        while len(seen) < 500:
            for entry_id, entry in await fleet.read(RUN, after, 1):
                after = entry_id
                seen.append(entry["n"])
        assert seen == list(range(500))
        client = redis_server.client()
        assert client.ttl(f"cc-executor:events:{RUN}") == -1  # kept while the run goes on
        await fleet.finish(RUN, None)
        assert 0 < client.ttl(f"cc-executor:events:{RUN}") <= RETENTION_S
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_a_run_ends_in_one_step_only_under_its_lease(redis_server: RedisServer) -> None:
    fleet = open_fleet(redis_server.url)
    client = redis_server.client()
    try:
        first = await fleet.acquire(RUN, "w1", 30, {"run_id": RUN})
        assert isinstance(first, Lease)
        await fleet.release(first)
        second = await fleet.acquire(RUN, "w2", 30, {"run_id": RUN})
        assert isinstance(second, Lease)
        # A holder that lost the lease ends nothing: no result, the run goes on.
        assert not await fleet.finish(RUN, first, [{"kind": "result", "n": 1}])
        assert client.xlen(f"cc-executor:events:{RUN}") == 0
        assert await fleet.where(RUN) == "running"
        await fleet.append(RUN, [{"kind": "event", "n": 0}], lease=second)
        last = [{"kind": "event", "n": 1}, {"kind": "result", "n": 2}]
        assert await fleet.finish(RUN, second, last)
        # The same end tried again (its answer lost with the connection) adds nothing.
        assert await fleet.finish(RUN, second, last)
        assert [e["n"] for _, e in await fleet.read(RUN, "0", 1)] == [0, 1, 2]
        assert await fleet.where(RUN) == "over"
        assert not client.exists(f"cc-executor:lease:{RUN}", f"cc-executor:message:{RUN}")
        assert not client.sismember("cc-executor:running", RUN)
        assert 0 < client.ttl(f"cc-executor:events:{RUN}") <= RETENTION_S
        assert await fleet.acquire(RUN, "w3", 30) == "over"
    finally:
        await fleet.aclose()


@pytest.mark.redis
def test_a_submitter_queues_its_runs_on_one_connection(redis_server: RedisServer) -> None:
    # A Dramatiq broker per run set up a connection per run (and left it open until the
    # garbage collector found the broker).
    client = redis_server.client()
    before = int(client.info("stats")["total_connections_received"])
    for n in range(5):
        open_fleet(redis_server.url).submit({"run_id": f"{RUN[:-1]}{n}", "version": 1})
    assert client.llen("cc-executor:cc-executor-runs") == 5
    assert int(client.info("stats")["total_connections_received"]) - before == 1


@pytest.mark.redis
async def test_a_heartbeat_lists_the_worker_until_it_expires(redis_server: RedisServer) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        await fleet.heartbeat("w1", {"worker_id": "w1", "slots": 2}, 30)
        await fleet.heartbeat("w2", {"worker_id": "w2", "slots": 1}, 0.05)
        assert {w["worker_id"] for w in await fleet.workers()} >= {"w1"}
        while len(await fleet.workers()) > 1:
            await asyncio.sleep(0.02)
        assert await fleet.workers() == [{"worker_id": "w1", "slots": 2}]
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_a_read_blocks_as_long_as_asked_without_failing(redis_server: RedisServer) -> None:
    """Longer than redis-py's default socket timeout (5 s): nothing arrives, no error."""
    fleet = open_fleet(redis_server.url)
    try:
        assert await fleet.read(RUN, "0", 6) == []
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_a_lost_holders_run_is_reclaimed_once_and_its_old_delivery_is_stale(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        message = {"run_id": RUN, "attempt": 1, "holder": "w1"}
        first = await fleet.acquire(RUN, "w1", 0.05, message)
        assert isinstance(first, Lease)
        assert await fleet.reclaim() == []  # not before the lease expires
        while not (claimed := await fleet.reclaim()):
            await asyncio.sleep(0.02)
        assert claimed == [(2, message)]
        assert await fleet.reclaim() == []  # one claim only
        # The lost worker's own delivery, re-queued late by the broker, never starts...
        assert await fleet.acquire(RUN, "w2", 30, message) == "stale"
        # ...the new attempt does; and a worker that lost its lease writes nothing more.
        second = await fleet.acquire(RUN, "w2", 30, {**message, "attempt": 2})
        assert isinstance(second, Lease)
        assert not await fleet.append(RUN, [{"kind": "event"}], lease=first)
        assert await fleet.append(RUN, [{"kind": "event"}], lease=second)
        assert await fleet.handoff(first) == 0
        assert await fleet.handoff(second) == 3
        assert await fleet.reclaim() == []  # handed off: queued again by its holder
    finally:
        await fleet.aclose()


@pytest.mark.redis
async def test_a_stream_is_bounded_in_bytes_and_says_so_and_still_gets_its_result(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        event = {"kind": "event", "event": {"type": "text", "text": "x" * 100}}
        for _ in range(30):  # 30 events of about 150 bytes over a bound of 2,000
            await fleet.append(RUN, [event], max_bytes=2000)
        await fleet.append(RUN, [{"kind": "result", "result": {}}], max_bytes=2000)
        kept = [entry for _, entry in await fleet.read(RUN, "0", 1)]
        kinds = [e.get("event", {}).get("status") or e["kind"] for e in kept]
        assert kinds == ["event"] * 13 + ["stream_limit", "result"]
        assert "2,000 bytes" in kept[-2]["error"]
    finally:
        await fleet.aclose()


@pytest.mark.redis
@pytest.mark.parametrize(
    ("options", "said", "mode"),
    [
        ({}, "no session transcript was shipped yet", "restart"),
        ({"agent": "codex"}, "the codex agent's session cannot be carried", "restart"),
        ({"on_worker_lost": "restart"}, "on_worker_lost is restart", "restart"),
        ({"on_worker_lost": "fail"}, "on_worker_lost is fail: the run ends", None),
    ],
)
async def test_a_lost_run_is_marked_and_goes_on_as_its_on_worker_lost_says(
    redis_server: RedisServer, tmp_path: Path, options: dict[str, str], said: str, mode: str | None
) -> None:
    from cc_executor._service._worker import FleetWorker, WorkerConfig

    worker = FleetWorker(WorkerConfig(fleet=redis_server.url, allow_dirs=[str(tmp_path)]))
    message = {"version": 1, "run_id": RUN, "attempt": 1, "options": options, "holder": "w1"}
    message["local_id"] = RUN  # the lost attempt's history id, as its lease kept it
    try:
        await worker._recover(2, message, "worker w1 lost")
        entries = [entry for _, entry in await worker.fleet.read(RUN, "0", 1)]
    finally:
        await worker.fleet.aclose()
    assert entries[0]["kind"] == "interrupted"
    assert entries[0]["result"]["status"] == "interrupted"
    assert entries[0]["result"]["error"].startswith(f"worker w1 lost: {said}")
    client = redis_server.client()
    queued = [json.loads(m)["kwargs"] for m in client.hvals("cc-executor:cc-executor-runs.msgs")]
    if mode is None:  # fail: the run ends, nothing is queued
        assert [e["kind"] for e in entries] == ["interrupted", "result"]
        assert queued == []
    else:
        assert [(q["attempt"], q["recover"]["mode"]) for q in queued] == [(2, mode)]
        assert "holder" not in queued[0]
        assert "local_id" not in queued[0]  # the next attempt names its own
