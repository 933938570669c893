"""Timeouts predicted from the history: how long similar past runs took.

Used by ``--timeout auto`` (``exec`` and ``run``) and by the compat client's
``agent_predict_timeout``; each caller words the sentence returned here for its users.
"""

from __future__ import annotations

import math
import os

from cc_executor._store import HistoryError, open_store

AUTO_FLOOR_S = 30.0
AUTO_CEILING_S = 3600.0
AUTO_DEFAULT_S = 600.0
AUTO_MIN_SAMPLES = 5


def auto_timeout(durations: list[float]) -> tuple[float, str]:
    """A timeout from the durations of similar past runs: 1.5x their 95th percentile,
    within [30 s, 1 h]; 600 s when there are fewer than 5 of them. Returns the seconds and
    a sentence saying which estimate was used."""
    if len(durations) < AUTO_MIN_SAMPLES:
        return AUTO_DEFAULT_S, (
            f"{len(durations)} similar past run(s), fewer than "
            f"{AUTO_MIN_SAMPLES}: using the default {AUTO_DEFAULT_S:g} s"
        )
    ordered = sorted(durations)
    rank = max(0, math.ceil(0.95 * len(ordered)) - 1)
    p95 = ordered[rank]
    value = min(AUTO_CEILING_S, max(AUTO_FLOOR_S, 1.5 * p95))
    return value, (
        f"{value:.1f} s = 1.5 x p95 ({p95:.2f} s) of {len(ordered)} similar "
        f"past runs, within [{AUTO_FLOOR_S:g} s, {AUTO_CEILING_S:g} s]"
    )


def predicted_timeout(
    *, kind: str, agent: str | None, key: str | None, path: str | os.PathLike[str] | None = None
) -> tuple[float, str]:
    """:func:`auto_timeout` over the durations of the history's similar past runs: same
    kind, agent and key (the command for exec, the model for Claude runs). The history
    keeps the model Claude Code reported (``claude-...``), so a Claude run without a model
    or with an alias, or with fewer than 5 runs of its model, uses the agent's runs of any
    model, and the sentence says so. A history that cannot be opened gives the default,
    and the sentence says why."""
    try:
        store = open_store(path)
    except HistoryError as exc:
        seconds, note = auto_timeout([])
        return seconds, f"{note} (history unavailable: {exc})"
    try:
        durations = store.durations(kind=kind, agent=agent, key=key) if key is not None else []
        if kind == "run" and len(durations) < AUTO_MIN_SAMPLES:
            durations = store.durations(kind=kind, agent=agent, key=None, any_key=True)
            seconds, note = auto_timeout(durations)
            used = len(durations) >= AUTO_MIN_SAMPLES
            note = f"{note} (runs of any model)" if used else note
        else:
            seconds, note = auto_timeout(durations)
    finally:
        store.close()
    skipped = sum("skipped" in w for w in store.warnings)
    if skipped:
        note += f" ({skipped} malformed history row(s) skipped; `cc-executor doctor` lists them)"
    return seconds, note
