"""Test evidence from the run history: what a sender attaches to a fix (status and sha256
receipts of a recorded run), and how a receiver on the same machine checks such a claim
against its own history. Only the run id is used to look a run up: paths in a message are
never opened."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cc_executor.notify._errors import RunEvidenceError
from cc_executor.notify._message import utc_timestamp


def run_evidence(run_id: str, *, require_ok: bool) -> dict[str, Any]:
    """The ``test_result`` object for the run ``run_id`` (an id or unique prefix) of the
    history at ``$CC_EXECUTOR_HOME`` (or the user data dir): its full id, status, exit code,
    command (as recorded, secrets redacted), start time, duration, whether its output files
    still match their receipts, and the receipts (name, size, sha256; no paths).

    Raises :class:`RunEvidenceError` when the history cannot be opened or has no such run,
    and, with ``require_ok``, when the run did not end ``ok`` or its files no longer match
    their receipts (a fix cannot be announced on a failed or altered test run)."""
    from cc_executor._store import HistoryError, open_store, verify

    try:
        store = open_store()
    except HistoryError as exc:
        raise RunEvidenceError(f"cannot open the run history: {exc}") from None
    try:
        record = store.get(run_id)
    finally:
        store.close()
    if record is None:
        raise RunEvidenceError(f"no run {run_id!r} in the history (see `cc-executor history`)")
    check = verify(record, record.id)
    if require_ok and record.status != "ok":
        raise RunEvidenceError(
            f"run {record.id} ended {record.status!r}, not 'ok': it does not show the fix works"
        )
    if require_ok and not check.ok:
        raise RunEvidenceError(
            f"run {record.id} cannot serve as evidence: {'; '.join(check.problems)}"
        )
    return {
        "run_id": record.id,
        "status": record.status,
        "exit_code": record.exit_code,
        "argv": list(record.argv),
        "started_at": utc_timestamp(record.started_at),
        "duration_s": record.duration_s,
        "receipts_verified": check.ok,
        "artifacts": [
            {"name": a.name, "size": a.size, "sha256": a.sha256} for a in record.artifacts
        ],
    }


@dataclass(frozen=True, slots=True)
class EvidenceCheck:
    """What the receiver's own history says about a run named in a message.

    ``state`` is ``verified`` (the run is in the local history with the same status and
    receipts, and its files still match them), ``not_in_history`` (the run was recorded
    elsewhere: the claim cannot be checked here), ``mismatch`` (status or receipts differ
    from the history's), ``altered`` (the history's files no longer match its receipts) or
    ``unavailable`` (the history cannot be opened). ``detail`` says why, for a human.
    """

    run_id: str
    state: str
    detail: str


def check_evidence(evidence: dict[str, Any]) -> EvidenceCheck:
    """Check one ``test_result`` object (already schema-valid) against the local history.
    The run is looked up by its exact id (a prefix in a message matches nothing)."""
    from cc_executor._store import HistoryError, open_store, verify

    run_id = str(evidence["run_id"])
    try:
        store = open_store()
    except HistoryError as exc:
        return EvidenceCheck(run_id, "unavailable", f"cannot open the run history: {exc}")
    try:
        record = store.get(run_id)
    finally:
        store.close()
    if record is None or record.id != run_id:
        return EvidenceCheck(run_id, "not_in_history", "no run with this id in the local history")
    claimed = sorted((str(a["name"]), a["size"], str(a["sha256"])) for a in evidence["artifacts"])
    recorded = sorted((a.name, a.size, a.sha256) for a in record.artifacts)
    if claimed != recorded:
        return EvidenceCheck(run_id, "mismatch", "the message's receipts differ from the history's")
    if evidence["status"] != record.status:
        return EvidenceCheck(
            run_id,
            "mismatch",
            f"the message says status {evidence['status']!r}, the history {record.status!r}",
        )
    check = verify(record, run_id)
    if not check.ok:
        return EvidenceCheck(run_id, "altered", "; ".join(check.problems))
    return EvidenceCheck(
        run_id, "verified", f"status {record.status}, {len(recorded)} receipt(s) match"
    )
