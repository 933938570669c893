"""The receipt of a history record: a digest of every field of the run as stored, so that
``verify`` sees a status, exit code or cost edited after the fact.

Unkeyed (``v3:sha256:...``) by default: it shows accidental damage and naive edits, but
whoever can write the data folder can recompute it. With a key in the file named by
``CC_EXECUTOR_RECEIPT_KEY_FILE`` (kept outside the data folder) it is an HMAC-SHA256
(``v3:hmac-sha256:...``) that cannot be forged without the key. A v1 receipt (written
before v2 added ``batch_id`` and ``batch_key``) is still checked against the v1 fields, a v2
one (before v3 added the tree's peak memory and CPU time) against the v2 fields.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from typing import Any

from cc_executor._errors import HistoryError
from cc_executor._paths import data_home_path
from cc_executor._store._record import RunRecord

#: The environment variable naming the file that holds the receipt key.
KEY_ENV = "CC_EXECUTOR_RECEIPT_KEY_FILE"
#: Fewer bytes than this is no key (a typo, an empty file): refused.
MIN_KEY_BYTES = 16
#: More than this is not a key file (the wrong file named).
MAX_KEY_BYTES = 4096

#: The fields a v1 receipt covers, fixed: a field added later must not change the receipts
#: of the records written before it.
FIELDS_V1 = (
    "id", "kind", "agent", "argv", "cwd", "prompt_sha256", "prompt_preview", "started_at",
    "ended_at", "status", "exit_code", "signal", "session_id", "cost_usd", "input_tokens",
    "output_tokens", "turns", "duration_s", "result_preview", "error", "parent_id", "host",
    "run_dir", "pid", "pid_started", "supervisor_pid", "supervisor_started", "tree_token",
    "model", "artifacts", "warnings",
)  # fmt: skip
#: v2 adds the batch a run belongs to, which decides whether a batch re-run reuses it, and
#: whether ``cost_usd`` is an estimate from the price table.
FIELDS_V2 = (*FIELDS_V1, "batch_id", "batch_key", "cost_estimated")
#: v3 adds what the run's process tree used (peak memory, CPU time).
FIELDS_V3 = (*FIELDS_V2, "peak_memory_bytes", "cpu_time_s")
#: The fields each receipt version covers; new receipts are written with the last.
FIELDS = {"v1": FIELDS_V1, "v2": FIELDS_V2, "v3": FIELDS_V3}
VERSION = "v3"


def receipt_key() -> bytes | None:
    """The key in the file ``$CC_EXECUTOR_RECEIPT_KEY_FILE`` names, or None when it is unset.

    Raises :class:`HistoryError` when the file cannot be read, is open to group or others
    (any mode bit beyond 0600), holds fewer than 16 or more than 4096 bytes, or lies inside
    the data folder (whoever can rewrite the receipts there
    could read it). The file's bytes are the key, exactly."""
    named = os.environ.get(KEY_ENV)
    if not named:
        return None
    path = os.path.realpath(os.path.expanduser(named))
    home = os.path.realpath(data_home_path())
    if os.path.commonpath([path, home]) == home:
        raise HistoryError(
            f"{KEY_ENV}: {named} is inside the data folder {home}: keep the receipt key "
            "outside it (whoever can rewrite the receipts there could read it)"
        )
    try:
        with open(path, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode & 0o777
            # A key others can read (or replace) lets them forge receipts.
            if mode & 0o077:
                raise HistoryError(
                    f"{KEY_ENV}: {named} is open to group or others (mode {mode:03o}): "
                    f"fix with chmod 600 {named}"
                )
            key = f.read(MAX_KEY_BYTES + 1)
    except OSError as exc:
        raise HistoryError(f"{KEY_ENV}: cannot read {named}: {exc.strerror or exc}") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise HistoryError(
            f"{KEY_ENV}: {named} holds {'more than ' if len(key) > MAX_KEY_BYTES else ''}"
            f"{min(len(key), MAX_KEY_BYTES)} bytes; a receipt key is {MIN_KEY_BYTES} to "
            f"{MAX_KEY_BYTES} bytes ((umask 077; head -c 32 /dev/urandom > FILE))"
        )
    return key


def _canonical(record: RunRecord, version: str = VERSION) -> bytes:
    data = record.to_dict()
    fields: dict[str, Any] = {name: data.get(name) for name in FIELDS[version]}
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def record_receipt(record: RunRecord, key: bytes | None, version: str = VERSION) -> str:
    """The receipt of ``record``'s fields: an HMAC-SHA256 with ``key``, else a sha256;
    ``version`` chooses the fields covered (older ones only to check older receipts)."""
    body = _canonical(record, version)
    if key is None:
        return f"{version}:sha256:" + hashlib.sha256(body).hexdigest()
    return f"{version}:hmac-sha256:" + hmac.new(key, body, hashlib.sha256).hexdigest()


def check_record(record: RunRecord, key: bytes | None) -> str | None:
    """None when ``record`` matches its receipt (of any version cc-executor has written),
    else why not (one line)."""
    stored = record.record_receipt
    if not stored:
        return (
            "the record has no receipt (written before cc-executor kept record receipts, or "
            "removed): its fields cannot be checked"
        )
    version, _, rest = stored.partition(":")
    if version not in FIELDS:
        return "the record's receipt is not one cc-executor writes"
    if rest.startswith("hmac-sha256:"):
        if key is None:
            return (
                f"the record's receipt is keyed and no key is configured ({KEY_ENV}): its "
                "fields cannot be checked"
            )
    elif rest.startswith("sha256:"):
        if key is not None:
            return (
                "the record's receipt is not keyed though a key is configured: it was "
                f"written without {KEY_ENV}, or rewritten by someone without the key"
            )
    else:
        return "the record's receipt is not one cc-executor writes"
    if not hmac.compare_digest(stored, record_receipt(record, key, version)):
        return (
            "the record was altered: its fields (status, exit code, cost, receipts, ...) do "
            "not match its receipt"
        )
    return None
