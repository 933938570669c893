"""A fleet worker's side of the rate limits shared by the fleet (docs/fleet.md, "Rate limits
shared by the fleet"): which credential a run uses (a salted hash, never the key), whether
its start must wait (a pause set after a 429 or overload anywhere in the fleet, or the
credential's runs in flight at ``--max-concurrent-per-credential``), and what a run's events
say about the API's limits. The counters themselves are the fleet's (``_fleet/_limits.py``).

What was built for the reset time: our own exponential back-off. Claude Code with an API key
ignores ``retry-after`` and reports no rate-limit event, so only a 429's status is seen (the
result's ``api_error_status``); the pause is then 1 s (``--limit-backoff``), doubled for each
further limit seen outside a pause, at most 60 s. A subscription login's ``rate_limit``
event that says ``rejected`` gives its reset time (``resets_at``): the pause lasts until
then.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._types import (
    AgentEvent,
    ApiRetryEvent,
    LimitWaitEvent,
    RateLimitEvent,
    ResultEvent,
)
from cc_executor._errors import FleetError
from cc_executor._fleet._base import PAUSED, Limits

log = logging.getLogger("cc_executor.worker")

#: The environment variables holding each agent's API key (the first set is the credential).
KEY_NAMES: Mapping[str, tuple[str, ...]] = {
    "claude": ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN"),
    "codex": ("CODEX_API_KEY", "OPENAI_API_KEY"),
    "gemini": ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
}
#: HTTP statuses that pause a credential: rate limited, overloaded.
LIMIT_STATUSES = {429: "rate limited (429)", 529: "overloaded (529)"}
#: The longest pause a reset time the CLI reported may set (a subscription's window).
MAX_RESET_S = 6 * 3600.0
#: The most one wait between two looks at the limits lasts: the lease is renewed and a
#: cancel noticed in between.
_LOOK_S = 1.0


def credential_of(agent: str, env: Mapping[str, str], salt: bytes) -> str | None:
    """The id of the credential a run of ``agent`` with the environment ``env`` (the run's
    own over the worker's) uses: the sha256 of the fleet's ``salt`` and its API key, or for
    a login, of the agent, the host and the config folder (a login is known per machine).
    None for a plain command."""
    if agent == "command":
        return None
    for name in KEY_NAMES.get(agent, ()):
        if env.get(name):
            secret = f"key\0{env[name]}"
            break
    else:
        folder = env.get("CLAUDE_CONFIG_DIR") or os.path.expanduser("~")
        secret = f"login\0{agent}\0{socket.gethostname()}\0{folder}"
    return hashlib.sha256(salt + b"\0" + secret.encode()).hexdigest()[:32]


def limit_seen(event: AgentEvent) -> tuple[str, float | None] | None:
    """What an event says of an API limit: why, and for how long when it says (a
    subscription's ``rate_limit`` event ``rejected`` with its ``resets_at``; None: back
    off); None when it reports no 429, overload or rejection."""
    status = None
    if isinstance(event, RateLimitEvent):
        if event.status != "rejected":
            return None
        left = None if event.resets_at is None else event.resets_at - time.time()
        # A reset time in the past or absurdly far (a clock off) falls back to the back-off.
        seconds = left if left is not None and 0 < left <= MAX_RESET_S else None
        return f"rejected ({event.limit_type or 'rate limit'})", seconds
    if isinstance(event, ResultEvent):
        status = event.api_error_status
    elif isinstance(event, ApiRetryEvent):
        status = event.error_status
    reason = LIMIT_STATUSES.get(status) if status is not None else None
    return None if reason is None else (reason, None)


@dataclass
class Admission:
    """A run let start: its credential's slot (renewed until :meth:`release`), and the
    watch of its events for the API's limits."""

    limits: SharedLimits
    credential: str | None
    holder: str
    limited: bool = False
    _keeper: asyncio.Task[None] | None = None
    #: Set by release: the keeper stops even if its cancellation was lost (a cancel that
    #: lands inside a Redis call can be swallowed there).
    _released: bool = False
    _pausing: set[asyncio.Future[Any]] = field(default_factory=set)

    def watch(self, on_event: Callable[[Any], None]) -> Callable[[Any], None]:
        """``on_event``, also pausing the credential fleet-wide when an event reports a
        429 or overload (the run itself follows its own retry policy)."""
        credential = self.credential
        if credential is None:
            return on_event

        def watched(event: Any) -> None:
            seen = limit_seen(event)
            if seen is not None:
                self.limited = True
                pausing = asyncio.ensure_future(self.limits.pause(credential, *seen))
                self._pausing.add(pausing)
                pausing.add_done_callback(self._pausing.discard)
            on_event(event)

        return watched

    async def release(self) -> None:
        self._released = True
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        if self._pausing:
            await asyncio.gather(*self._pausing, return_exceptions=True)
        if self.credential is not None:
            await self.limits.done(self.credential, self.holder, self.limited)


class SharedLimits:
    """The worker's use of the fleet's limits; ``cap``: its ``--max-concurrent-per-credential``
    (0: the fleet's setting, if any), ``hold_s``: how long a slot outlives a silent worker."""

    def __init__(self, limits: Limits, *, cap: int, hold_s: float, backoff_s: float) -> None:
        self._limits = limits
        self.cap = cap
        self.hold_s = hold_s
        self.backoff_s = backoff_s
        self._salt: bytes | None = None

    async def start(self) -> None:
        """Read (or make) the fleet's salt; publish this worker's cap as the fleet's."""
        self._salt = await self._limits.salt()
        if self.cap > 0:
            await self._limits.set_cap(self.cap)

    def credential(self, options: Mapping[str, Any]) -> str | None:
        assert self._salt is not None, "start() first"
        env = {**os.environ, **dict(options.get("env") or {})}
        return credential_of(str(options.get("agent") or "claude"), env, self._salt)

    async def admit(
        self,
        holder: str,
        options: Mapping[str, Any] | None,
        *,
        note: Callable[[LimitWaitEvent], Awaitable[None]],
        still_wanted: Callable[[], Awaitable[str]],
    ) -> Admission | None:
        """Wait until a run (``options``; None: a plain command, never limited) may start.
        ``note`` is told each new reason to wait; ``still_wanted`` is asked between looks
        (renew the lease there): ``"wait"``, ``"go"`` (start now, without a slot: a
        cancelled run, stopped at once) or ``"drop"`` (give up: None is returned)."""
        credential = None if options is None else self.credential(options)
        admission = Admission(self, credential, holder)
        if credential is None:
            return admission
        said: tuple[str, str] | None = None
        while True:
            decision = await self._limits.admit(credential, holder, self.cap, self.hold_s)
            if decision.go:
                break
            if (decision.why, decision.reason) != said:
                said = (decision.why, decision.reason)
                await note(
                    LimitWaitEvent(
                        t=time.monotonic(),
                        why=decision.why,
                        credential=credential[:12],
                        wait_s=decision.wait_s,
                        reason=decision.reason,
                        cap=decision.cap,
                    )
                )
            wait = _LOOK_S if decision.why != PAUSED else min(_LOOK_S, decision.wait_s or 0)
            await asyncio.sleep(max(0.01, wait))
            wanted = await still_wanted()
            if wanted == "drop":
                await self._limits.release(credential, holder)
                return None
            if wanted == "go":
                return admission
        admission._keeper = asyncio.ensure_future(self._keep(credential, holder, admission))
        return admission

    async def _keep(self, credential: str, holder: str, admission: Admission) -> None:
        while True:
            await asyncio.sleep(max(0.2, self.hold_s / 4))
            if admission._released:
                return
            with contextlib.suppress(FleetError):
                await self._limits.renew(credential, holder, self.hold_s)

    async def pause(self, credential: str, reason: str, seconds: float | None = None) -> None:
        """Pause ``credential`` fleet-wide for ``seconds`` (None: the back-off)."""
        try:
            paused = await self._limits.pause(credential, seconds, reason, self.backoff_s)
        except FleetError as exc:
            log.warning("cannot pause credential %s: %s", credential[:12], exc)
            return
        log.info("credential %s: %s, new starts paused %.1f s", credential[:12], reason, paused)

    async def done(self, credential: str, holder: str, limited: bool) -> None:
        try:
            await self._limits.release(credential, holder, clear=not limited)
        except FleetError as exc:
            log.warning("cannot release credential %s: %s", credential[:12], exc)
