"""The rate limits shared by a fleet (``_fleet/_limits.py``, ``_service/_ratelimit.py``)
against a real Redis: pauses with their back-off, the per-credential cap with holds that
lapse, and credentials kept only as salted hashes."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from typing import Any

import pytest

from cc_executor._agents._types import RateLimitEvent, ResultEvent
from cc_executor._fleet import open_fleet
from cc_executor._fleet._base import FULL, PAUSED, Limits
from cc_executor._service._ratelimit import SharedLimits, credential_of, limit_seen
from tests._wait import await_for
from tests.fleet.conftest import CLI, RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.slow]


async def _admitted(limits: Limits, credential: str, holder: str, cap: int) -> None:
    """Ask until ``holder`` may start (as tests/_wait.py waits: 30 s, then fail)."""
    deadline = time.monotonic() + 30
    while not (await limits.admit(credential, holder, cap, 60)).go:
        assert time.monotonic() < deadline, f"{holder} never admitted"
        await asyncio.sleep(0.02)


def _lapse(server: RedisServer, credential: str) -> None:
    """End a credential's pause now, as its time passing would (no clock in the test)."""
    server.client().delete(f"cc-executor:limit:pause:{credential}")


async def test_a_limit_pauses_starts_and_the_back_off_grows_once_per_burst(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    limits = fleet.limits()
    try:
        assert (await limits.admit("c1", "h", 0, 5)).go
        first = await limits.pause("c1", None, "rate limited (429)", initial_s=10)
        assert first == pytest.approx(10)
        decision = await limits.admit("c1", "h", 0, 5)
        assert (decision.go, decision.why, decision.reason) == (False, PAUSED, "rate limited (429)")
        assert decision.wait_s is not None
        assert 0 < decision.wait_s <= 10
        # Another run of the same burst hits the limit: no longer pause, no new strike.
        assert await limits.pause("c1", None, "rate limited (429)", initial_s=10) <= 10
        # Another credential is not paused.
        assert (await limits.admit("c2", "h", 0, 5)).go
        status = await limits.status()
        assert [c["credential"] for c in status["credentials"]] == ["c1"]
        _lapse(redis_server, "c1")
        assert (await limits.admit("c1", "h", 0, 5)).go
        # A limit after the pause: the back-off doubles...
        assert await limits.pause("c1", None, "overloaded (529)", initial_s=10) == pytest.approx(20)
        _lapse(redis_server, "c1")
        # ...until a run ends without one; a reset time given is kept as given.
        await limits.release("c1", "h", clear=True)
        assert await limits.pause("c1", None, "again", initial_s=10) == pytest.approx(10)
        assert await limits.pause("c1", 30, "reset in 30 s") == pytest.approx(30)
        # A shorter pause does not cut a longer one short.
        assert await limits.pause("c1", 1, "reset in 1 s") > 1
    finally:
        await fleet.aclose()


async def test_the_cap_on_runs_in_flight_holds_fleet_wide_and_dead_holds_lapse(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    limits = fleet.limits()
    try:
        await limits.set_cap(2)  # a worker started with --max-concurrent-per-credential 2
        assert (await limits.admit("c", "run1", 0, 60)).go
        assert (await limits.admit("c", "run2", 0, 60)).go
        assert (await limits.admit("c", "run2", 0, 60)).go  # a holder asking again
        full = await limits.admit("c", "run3", 0, 60)
        assert (full.go, full.why, full.cap) == (False, FULL, 2)
        assert (await limits.status())["credentials"][0]["in_flight"] == 2
        await limits.release("c", "run1")
        assert (await limits.admit("c", "run3", 0, 60)).go
        # A worker's own cap overrides the fleet's for its starts.
        assert not (await limits.admit("c", "run4", 2, 60)).go
        assert (await limits.admit("c", "run4", 3, 0.1)).go
        # run4's holder died (no renewal): its hold lapses and frees the slot.
        await limits.release("c", "run3")
        await _admitted(limits, "c", "run5", 2)
        # run2's and run5's holds are intact: the short hold did not take the others along.
        assert not (await limits.admit("c", "run6", 2, 60)).go
        await limits.set_cap(0)
        assert (await limits.admit("c", "run6", 0, 60)).go
    finally:
        await fleet.aclose()


async def test_credentials_are_salted_hashes_and_limits_are_read_from_events(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    shared = SharedLimits(fleet.limits(), cap=1, hold_s=60, backoff_s=30)
    secret = "sk-ant-very-secret-key"
    try:
        await shared.start()
        env = {"ANTHROPIC_API_KEY": secret}
        options = {"agent": "claude", "env": env}
        waits: list[Any] = []

        async def note(event: object) -> None:
            waits.append(event)

        async def still() -> str:
            return "wait"

        admitted = await shared.admit("run1", options, note=note, still_wanted=still)
        assert admitted is not None
        assert admitted.credential is not None
        assert admitted.credential == shared.credential(options)
        assert admitted.credential != shared.credential({"env": {"ANTHROPIC_API_KEY": "other"}})
        assert shared.credential({"agent": "command"}) is None
        # The event of a 429 pauses the credential fleet-wide (here for 30 s).
        seen: list[object] = []
        admitted.watch(seen.append)(ResultEvent(t=0, is_error=True, api_error_status=429))
        assert limit_seen(ResultEvent(t=0, api_error_status=429)) == ("rate limited (429)", None)
        assert len(seen) == 1  # the run's own listener still gets every event
        await admitted.release()  # the run ends: its slot is free, the pause stays
        second = asyncio.ensure_future(shared.admit("run2", options, note=note, still_wanted=still))
        await await_for(lambda: waits, what="run2 told why it waits")
        assert [(w.why, w.reason) for w in waits] == [("paused", "rate limited (429)")]
        assert not second.done()
        client = redis_server.client()
        client.delete(f"cc-executor:limit:pause:{admitted.credential}")  # the reset time
        assert await second is not None
        # Nothing in Redis holds the key in clear.
        for key in client.keys("*"):
            assert secret.encode() not in key
            kind = client.type(key)
            if kind == b"string":
                value = client.get(key)
                assert isinstance(value, bytes)
                assert secret.encode() not in value
        # The salt is the fleet's: another fleet hashes the same key differently.
        assert credential_of("claude", env, b"other salt") != admitted.credential
    finally:
        await fleet.aclose()


async def test_fleet_status_shows_the_limits_in_force(redis_server: RedisServer) -> None:
    fleet = open_fleet(redis_server.url)
    try:
        limits = fleet.limits()
        await limits.set_cap(3)
        await limits.pause("0123456789abcdef", 300, "rate limited (429)")
        assert (await limits.admit("fedcba9876543210", "run1", 0, 60)).go
    finally:
        await fleet.aclose()
    env = {**os.environ, "CC_EXECUTOR_FLEET": redis_server.url}
    said = subprocess.run(
        [CLI, "fleet", "status"], env=env, capture_output=True, text=True, check=False
    )
    assert said.returncode == 0, said.stderr
    assert "limits: at most 3 run(s) in flight per credential" in said.stdout
    assert "credential 0123456789ab: paused" in said.stdout
    assert "(rate limited (429)), 0 in flight" in said.stdout
    assert "credential fedcba987654: open, 1 in flight" in said.stdout
    shown = subprocess.run(
        [CLI, "fleet", "status", "--json"], env=env, capture_output=True, text=True, check=False
    )
    assert json.loads(shown.stdout)["limits"]["max_concurrent_per_credential"] == 3


async def test_a_subscriptions_rejection_pauses_until_the_reset_time_it_gives(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    shared = SharedLimits(fleet.limits(), cap=0, hold_s=60, backoff_s=1)
    try:
        await shared.start()
        options = {"agent": "claude", "env": {"CLAUDE_CODE_OAUTH_TOKEN": "a login"}}

        async def still() -> str:
            return "wait"

        async def note(event: object) -> None:
            pass

        admitted = await shared.admit("run1", options, note=note, still_wanted=still)
        assert admitted is not None
        assert admitted.credential is not None
        watched = admitted.watch(lambda event: None)
        watched(RateLimitEvent(t=0, status="allowed_warning", resets_at=time.time() + 600))
        watched(
            RateLimitEvent(
                t=0, status="rejected", resets_at=time.time() + 600, limit_type="five_hour"
            )
        )
        await admitted.release()
        decision = await fleet.limits().admit(admitted.credential, "run2", 0, 60)
        assert (decision.why, decision.reason) == ("paused", "rejected (five_hour)")
        # Until the reset time given (600 s), not the 1 s back-off.
        assert decision.wait_s is not None
        assert 500 < decision.wait_s <= 600
    finally:
        await fleet.aclose()


async def test_a_waiting_start_gives_up_or_goes_when_its_worker_says_so(
    redis_server: RedisServer,
) -> None:
    fleet = open_fleet(redis_server.url)
    shared = SharedLimits(fleet.limits(), cap=1, hold_s=60, backoff_s=30)
    try:
        await shared.start()
        options = {"agent": "claude", "env": {"ANTHROPIC_API_KEY": "k"}}
        credential = shared.credential(options)
        assert credential is not None
        await shared.pause(credential, "rate limited (429)")
        answers: list[str] = []

        def answering(answer: str) -> Any:
            async def still() -> str:
                answers.append(answer)
                return answer

            return still

        async def note(event: object) -> None:
            pass

        # The worker stops (or lost the lease) while the run waits: given up, no slot kept.
        dropped = await shared.admit("run1", options, note=note, still_wanted=answering("drop"))
        assert dropped is None
        # A cancel while waiting: the run goes at once (to be stopped), past the pause.
        went = await shared.admit("run2", options, note=note, still_wanted=answering("go"))
        assert went is not None
        assert answers == ["drop", "go"]
        await went.release()
        assert (await fleet.limits().status())["credentials"][0]["in_flight"] == 0
    finally:
        await fleet.aclose()
