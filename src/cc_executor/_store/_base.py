"""The narrow interface every history backend implements (SQLite on one machine, PostgreSQL
for a fleet), so callers never depend on one backend."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from cc_executor._errors import HistoryError as HistoryError
from cc_executor._errors import HistoryUnreachable as HistoryUnreachable
from cc_executor._store._record import RunRecord


@dataclass(frozen=True, slots=True, kw_only=True)
class Query:
    """Filters for :meth:`HistoryStore.query`; None means any."""

    status: str | None = None
    since: float | None = None
    until: float | None = None
    agent: str | None = None
    kind: str | None = None
    parent_id: str | None = None
    #: Runs of this batch (``run_many``, ``cc-executor batch``).
    batch_id: str | None = None
    #: Runs of this agent session (the session a run started or resumed).
    session_id: str | None = None
    model: str | None = None
    #: Runs whose prompt preview contains this text (case-insensitive for ASCII).
    text: str | None = None
    #: Keyset pagination: only runs older than this ``(started_at, id)``, in list order.
    before: tuple[float, str] | None = None
    limit: int | None = None


class HistoryStore(Protocol):
    """What the rest of cc-executor needs from a history backend."""

    #: What opening had to put right and the malformed rows reads skipped, to report.
    warnings: list[str]

    @property
    def receipt_key(self) -> bytes | None:
        """The key record receipts are made with (None: unkeyed)."""

    def start(self, record: RunRecord) -> None:
        """Record a run that has just started."""

    def finish(self, record: RunRecord) -> None:
        """Record the end of a run (all fields)."""

    def update_status(self, run_id: str, status: str, *, error: str | None = None) -> None:
        """Set a run's status."""

    def get(self, run_id: str) -> RunRecord | None:
        """One run by id (or unique prefix)."""

    def query(self, query: Query) -> list[RunRecord]:
        """Runs matching the filters, newest first."""

    def running(self) -> list[RunRecord]:
        """Runs still marked running."""

    def durations(
        self,
        *,
        kind: str,
        agent: str | None,
        key: str | None,
        limit: int = 200,
        any_key: bool = False,
    ) -> list[float]:
        """Durations of similar finished runs (``any_key``: whatever their key)."""

    def file_content(self, run_id: str, name: str) -> bytes | None:
        """The history's own copy of a run's file (None: it holds none)."""

    def count(self) -> int:
        """Number of runs."""

    def bad_rows(self) -> list[tuple[str, str]]:
        """Malformed rows (every read skips them): each one's id and what is wrong."""

    def delete_before(self, timestamp: float) -> list[RunRecord]:
        """Remove finished runs older than ``timestamp``."""

    def add_permission_decision(self, run_id: str, decision: Mapping[str, Any]) -> None:
        """Record one permission decision of a run's tool call."""

    def permission_decisions(self, run_id: str) -> list[dict[str, Any]]:
        """A run's permission decisions, oldest first."""

    def close(self) -> None:
        """Release the backend."""
