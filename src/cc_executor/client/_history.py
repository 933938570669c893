"""The original's ``export_execution_history``, read from cc-executor's own history.

The original kept timings in Redis, one entry per kind of task; here the same shape comes
from the run history (``cc-executor history``): the newest runs, grouped by prompt.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import time
import warnings
from typing import Any

#: The columns of the CSV form, the original's.
CSV_COLUMNS = ("task_hash", "avg_time_seconds", "last_run", "success_rate")


def _iso(timestamp: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(timestamp))


def _records(limit: int) -> list[dict[str, Any]]:
    """The newest ``limit`` finished agent runs, one record per prompt, slowest first."""
    from cc_executor._store import Query, open_store

    store = open_store()
    try:
        runs = store.query(Query(kind="run", limit=limit))
    finally:
        store.close()
    groups: dict[str, list[Any]] = {}
    for record in runs:
        if record.status != "running" and record.prompt_sha256:
            groups.setdefault(record.prompt_sha256, []).append(record)
    history = []
    for task_hash, records in groups.items():
        times = [r.duration_s for r in records if r.duration_s is not None]
        history.append(
            {
                "task_hash": task_hash,
                "avg_time_seconds": round(sum(times) / len(times), 3) if times else 0.0,
                "last_run": _iso(max(r.started_at for r in records)),
                "success_rate": round(sum(r.status == "ok" for r in records) / len(records), 3),
                "runs": len(records),
                "prompt_preview": records[0].prompt_preview,
            }
        )
    history.sort(key=lambda r: r["avg_time_seconds"], reverse=True)
    return history


async def export_execution_history(
    redis_client: Any = None, format: str = "json", limit: int = 100
) -> str:
    """The execution history as text, in the original's shapes: ``format="json"`` gives
    ``{"execution_history": [...], "total_records": N, "export_time": ISO}``, ``"csv"`` the
    columns :data:`CSV_COLUMNS`. Each record is one prompt among the newest ``limit`` agent
    runs of the history: ``task_hash`` (the prompt's sha256), ``avg_time_seconds``,
    ``last_run``, ``success_rate`` (the share that ended ``ok``), and in JSON also ``runs``
    and ``prompt_preview``; slowest first. ``redis_client`` is accepted and ignored (with a
    warning): the history is cc-executor's own. When the history cannot be opened, it warns
    and returns ``{"error": <why>}`` as the original did. A bad ``format`` or ``limit``
    raises ``ValueError``."""
    if format not in ("json", "csv"):
        raise ValueError(
            f"export_execution_history: format must be 'json' or 'csv', got {format!r}"
        )
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"export_execution_history: limit must be an integer >= 1, got {limit!r}")
    if redis_client is not None:
        warnings.warn(
            "export_execution_history: redis_client is ignored; the history is "
            "cc-executor's own (see cc-executor history)",
            UserWarning,
            stacklevel=2,
        )
    from cc_executor._errors import HistoryError

    try:
        history = await asyncio.to_thread(_records, limit)
    except HistoryError as exc:
        warnings.warn(f"export_execution_history: {exc}", UserWarning, stacklevel=2)
        return json.dumps({"error": str(exc)}, indent=2)
    if format == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        writer.writerows([r[c] for c in CSV_COLUMNS] for r in history)
        return out.getvalue()
    return json.dumps(
        {
            "execution_history": history,
            "total_records": len(history),
            "export_time": _iso(time.time()),
        },
        indent=2,
        ensure_ascii=False,
    )


def export_history_sync(format: str = "json", limit: int = 100) -> str:
    """:func:`export_execution_history` for synchronous code."""
    from cc_executor._engine import run_sync

    return run_sync(export_execution_history(format=format, limit=limit))
