"""The interface between cc-executor and a fleet's broker (see :mod:`cc_executor._fleet`)."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

#: What a worker does with one delivered run message (its keyword arguments).
Handler = Callable[[dict[str, Any]], None]

#: The queue of a run submitted without ``queue`` and of a worker without ``--queue``.
DEFAULT_QUEUE = "default"
#: What a queue may be named: it becomes part of the broker's keys.
QUEUE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_-]{0,63}")


def check_queue(name: str) -> str:
    """``name`` if it can name a queue; else :class:`ValueError` saying what can."""
    if not isinstance(name, str) or not QUEUE_NAME.fullmatch(name):
        raise ValueError(
            f"queue {name!r}: a queue name is 1 to 64 letters, digits, '_' or '-' "
            "(not starting with '-')"
        )
    return name


#: The control commands a run can receive.
CANCEL = "cancel"
PAUSE = "pause"
RESUME = "resume"
#: Told to the worker holding a run when its submitter answered a permission request (the
#: answer itself is kept in the broker: :meth:`Fleet.answered`).
PERMISSION = "permission"


@dataclass(frozen=True)
class Lease:
    """A worker's hold on a run: only the holder of the live lease runs it. ``epoch`` grows
    by one with every acquisition, so a holder whose lease expired and was taken again
    finds out at its next renewal."""

    run_id: str
    owner: str
    epoch: int
    #: A cancel had been asked when the lease was taken (the run stops once started).
    cancelled: bool = False


#: Why a start waits: the credential is paused, or its runs in flight are at the cap.
PAUSED = "paused"
FULL = "full"


@dataclass(frozen=True)
class Decision:
    """A start's answer: ``go``, or why not (:data:`PAUSED` with the pause's
    ``reason``, :data:`FULL` with the ``cap``) and for how long at most (``None``: until a
    slot frees)."""

    go: bool
    why: str = ""
    wait_s: float | None = None
    reason: str = ""
    cap: int = 0


class Limits(Protocol):
    """The rate limits a fleet's workers share, per credential (an opaque id, never a key):
    a pause after a 429 or overload, and the runs in flight under a cap (docs/fleet.md)."""

    async def salt(self) -> bytes:
        """The fleet's salt of credential hashes (made by the first who asks)."""

    async def set_cap(self, cap: int) -> None:
        """Set the fleet-wide cap on runs in flight per credential (0: none)."""

    async def admit(self, credential: str, holder: str, cap: int, hold_s: float) -> Decision:
        """Whether ``holder`` may start a run of ``credential`` now (``cap`` 0: the
        fleet's); when it may and a cap holds, it holds a slot for ``hold_s``."""

    async def renew(self, credential: str, holder: str, hold_s: float) -> None:
        """Extend the holder's slot."""

    async def release(self, credential: str, holder: str, *, clear: bool = False) -> None:
        """Free the holder's slot; ``clear``: reset the credential's back-off."""

    async def pause(
        self, credential: str, seconds: float | None, reason: str, initial_s: float = 1.0
    ) -> float:
        """Pause new starts of ``credential`` for ``seconds`` (None: the back-off from
        ``initial_s``); the pause in force, in seconds."""

    async def status(self) -> dict[str, Any]:
        """The limits in force (``fleet status``)."""


class Fleet(Protocol):
    """A fleet's broker. Submitting and the worker loop are blocking (the broker's library
    works in threads); the rest is async, for the event loop of a run."""

    url: str

    def submit(self, message: Mapping[str, Any]) -> None:
        """Queue a run (``message["run_id"]``) on its queue (``message["queue"]``, default
        :data:`DEFAULT_QUEUE`) for any worker taking that queue."""

    def serve(
        self,
        handler: Handler,
        *,
        slots: int,
        heartbeat_timeout_s: float,
        queues: Sequence[str] = (DEFAULT_QUEUE,),
    ) -> Any:
        """Start consuming ``queues``: ``handler`` is called in one of ``slots`` threads per
        message; returns the running consumer, stopped by :meth:`stop_serving`."""

    def stop_taking(self, consumer: Any) -> None:
        """Stop fetching messages (those fetched but not started go back to the queue)."""

    def stop_serving(self, consumer: Any) -> None:
        """Wait for the handlers in progress, then release the consumer."""

    async def acquire(
        self, run_id: str, owner: str, ttl_s: float, message: Mapping[str, Any] | None = None
    ) -> Lease | str:
        """Take the run's lease for the delivery of ``message`` (its attempt), or say why
        not: ``"held"`` (live elsewhere: a duplicate delivery), ``"over"`` (finished or
        cancelled before it started), ``"stale"`` (an attempt already replaced). The
        message is kept so that another worker can recover the run (:meth:`reclaim`)."""

    async def reclaim(self) -> list[tuple[int, dict[str, Any]]]:
        """Claim the runs whose holder stopped renewing its lease (a lost worker): for each,
        the number of its next attempt and its message. Each is claimed by one caller."""

    async def handoff(self, lease: Lease) -> int:
        """Give a held run back for another attempt: that attempt's number, 0 if the lease
        was lost meanwhile (another worker recovered the run)."""

    async def renew(self, lease: Lease, ttl_s: float) -> bool:
        """Extend a lease; False when it was lost (expired and taken, or released)."""

    async def release(self, lease: Lease) -> None:
        """Give a lease back without finishing the run (it is re-queued)."""

    async def cancel_queued(self, run_id: str) -> str:
        """Cancel a run that no worker holds: ``"cancelled"`` (it will never start),
        ``"running"`` (a worker holds it: use the control channel), ``"over"``."""

    async def request_cancel(self, run_id: str) -> None:
        """Ask the worker holding the run to cancel it (durable, and published at once)."""

    async def command(self, run_id: str, command: str) -> None:
        """Publish ``command`` for the worker holding the run (not durable: a worker that
        does not hold it ignores it)."""

    async def answer(self, run_id: str, request_id: str, decision: Mapping[str, Any]) -> bool:
        """Keep the submitter's ``decision`` on the run's permission request ``request_id``
        (the first answer stands: False when one was kept already) and tell the worker
        holding the run on the control channel (:data:`PERMISSION`)."""

    async def answered(self, run_id: str, request_id: str) -> dict[str, Any] | None:
        """The decision kept for the run's permission request, None while there is none."""

    async def where(self, run_id: str) -> str:
        """Where the run is: ``"running"`` (a worker holds its lease), ``"over"``,
        ``"queued"`` or ``"unknown"``."""

    async def cancel_requested(self, run_id: str) -> bool:
        """Whether a cancel was asked for the run."""

    async def control(self, on_command: Callable[[str, str], Awaitable[None]]) -> None:
        """Call ``on_command(run_id, command)`` for each control message until cancelled."""

    async def append(
        self,
        run_id: str,
        entries: Sequence[Mapping[str, Any]],
        *,
        lease: Lease | None = None,
        max_bytes: int | None = None,
    ) -> bool:
        """Add entries to the run's stream, in order, up to ``max_bytes`` of events (None: the
        fleet's bound; then
        one ``stream_limit`` entry; results are always added). With ``lease``, only while
        it is held: False (nothing added) once it was lost."""

    async def ship_session(
        self, run_id: str, session_id: str, project: str, data: bytes, offset: int
    ) -> None:
        """Keep the bytes ``offset`` on of the run's session transcript (``offset`` 0:
        the transcript starts again), for a resume on another worker."""

    async def session(self, run_id: str) -> tuple[str, str, bytes] | None:
        """The run's shipped session: its id, project folder name and transcript."""

    async def ship_checkpoint(self, run_id: str, commit: str) -> None:
        """Keep the commit of the run's work last pushed to its branch (a ``repo`` run's
        checkpoint), for an attempt on another worker to go on from."""

    async def checkpoint(self, run_id: str) -> str | None:
        """The commit :meth:`ship_checkpoint` kept last, or None."""

    async def known(self, run_id: str) -> bool:
        """Whether the fleet knows the run: queued, running, or ended within the retention
        time."""

    async def read(
        self, run_id: str, after: str, block_s: float
    ) -> list[tuple[str, dict[str, Any]]]:
        """The entries of the run's stream after id ``after`` (``"0"``: from the start),
        waiting up to ``block_s`` for the first one."""

    async def finish(
        self,
        run_id: str,
        lease: Lease | None,
        last: Sequence[Mapping[str, Any]] = (),
        *,
        max_bytes: int | None = None,
    ) -> bool:
        """Add the ``last`` entries to the run's stream (as :meth:`append`), mark the run
        over (its stream is kept for the retention time, then dropped) and give ``lease``
        back, in one step. With ``lease``, only while it is held: False (nothing done) once
        it was lost; the same end tried again after its answer was lost is True."""

    async def heartbeat(self, worker_id: str, info: Mapping[str, Any], ttl_s: float) -> None:
        """Say the worker is alive (and what it offers) for ``ttl_s`` seconds."""

    async def workers(self) -> list[dict[str, Any]]:
        """The workers whose heartbeat is live."""

    async def counts(self) -> dict[str, dict[str, int]]:
        """Per queue, its runs waiting (``queued``) and those a worker holds the lease of
        (``running``)."""

    def limits(self) -> Limits:
        """The rate limits shared by the fleet's workers (``_fleet/_limits.py``)."""

    async def check(self) -> None:
        """Raise :class:`FleetError` unless the broker answers."""

    async def aclose(self) -> None:
        """Close the connections."""
