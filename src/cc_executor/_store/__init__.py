"""The durable history of runs: records, receipts, crash recovery, behind a narrow
interface (:class:`HistoryStore`) so another backend can be added without touching callers."""

from cc_executor._store._base import HistoryError, HistoryStore, Query
from cc_executor._store._history import (
    HOST,
    Recorder,
    Verification,
    default_store_path,
    file_receipt,
    finish_process_record,
    history_location,
    open_store,
    process_receipts,
    process_start_ticks,
    recover,
    stale,
    verify,
)
from cc_executor._store._receipt import KEY_ENV, receipt_key, record_receipt
from cc_executor._store._record import (
    INTERRUPTED,
    RUNNING,
    Artifact,
    RunRecord,
    preview,
    redact_argv,
    redact_text,
)
from cc_executor._store._sqlite import SCHEMA_VERSION, SQLiteStore

__all__ = [
    "HOST",
    "INTERRUPTED",
    "KEY_ENV",
    "RUNNING",
    "SCHEMA_VERSION",
    "Artifact",
    "HistoryError",
    "HistoryStore",
    "Query",
    "Recorder",
    "RunRecord",
    "SQLiteStore",
    "Verification",
    "default_store_path",
    "file_receipt",
    "finish_process_record",
    "history_location",
    "open_store",
    "preview",
    "process_receipts",
    "process_start_ticks",
    "receipt_key",
    "record_receipt",
    "recover",
    "redact_argv",
    "redact_text",
    "stale",
    "verify",
]
