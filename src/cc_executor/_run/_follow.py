"""Follow a local run started by another process: ``cc-executor attach RUN_ID`` without
``--fleet``. The run is found in this machine's history, its events are read from the
event log in its run folder as the run writes it, and its end is the history's row
leaving ``running``/``paused`` (or its supervisor being gone). Nothing is sent to the run:
following it never changes it."""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from cc_executor._agents._types import AgentEvent, CommandOutputEvent, ResultEvent, RunStatus
from cc_executor._run._result import RunResult
from cc_executor._status import Status

if TYPE_CHECKING:
    from cc_executor._agents._base import StreamParser
    from cc_executor._store import HistoryStore, RunRecord

#: The shortest and longest pause between two looks at a live run's log and row: there
#: is no file-change notification in the standard library (inotify is Linux-only and not
#: in it), so the log's size is polled, quickly while it grows, backing off while idle.
_POLL_MIN_S = 0.05
_POLL_MAX_S = 0.5
#: A live run's statuses: anything else in its row means it has ended.
_LIVE = (Status.RUNNING.value, Status.PAUSED.value)


class _Log:
    """One attempt's event log, read line by line as it grows (a partial last line waits
    for its end)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.offset = 0
        self.rest = b""

    def lines(self) -> list[bytes]:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return []
        self.offset += len(data)
        data = self.rest + data
        *whole, self.rest = data.split(b"\n")
        return [line + b"\n" for line in whole]

    def last(self) -> list[bytes]:
        """The lines still to read once the run has ended, with a last unterminated one."""
        lines = self.lines()
        if self.rest:
            lines.append(self.rest)
            self.rest = b""
        return lines


def _logs(run_dir: str) -> list[str]:
    """The event logs of a run's attempts, in order: its folder's, then ``attempt-N``'s."""
    found = [os.path.join(run_dir, "stdout.log")]
    number = 2
    while os.path.isfile(os.path.join(run_dir, f"attempt-{number}", "stdout.log")):
        found.append(os.path.join(run_dir, f"attempt-{number}", "stdout.log"))
        number += 1
    return found


def _parser(record: RunRecord) -> Callable[[bytes], list[AgentEvent]]:
    """How one line of ``record``'s event log becomes events: its agent's parser for an
    agent run (Claude Code's when the agent is unknown, as ``show`` reads it), each line
    as a stdout :class:`CommandOutputEvent` for a plain command (as a fleet sends it)."""
    if record.kind == "exec":

        def output(line: bytes) -> list[AgentEvent]:
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            return [CommandOutputEvent(t=0.0, stream="stdout", text=text)]

        return output
    from cc_executor._agents import get_adapter

    parser: StreamParser
    try:
        parser = get_adapter(record.agent or "claude").parser()
    except (LookupError, ValueError, TypeError):
        from cc_executor._agents._claude import ClaudeStreamParser

        parser = ClaudeStreamParser()
    return lambda line: parser.parse(line, 0.0)


def _result(record: RunRecord, final: ResultEvent | None, text: str) -> RunResult:
    """The result of an ended run, from its row and what its log said."""
    try:
        status = RunStatus(record.status)
    except ValueError:
        status = RunStatus.INTERRUPTED
    answer = final.result if final is not None and final.result is not None else text
    return RunResult(
        run_id=record.id,
        status=status,
        result=answer or "",
        partial=status is not RunStatus.OK and final is None and bool(text),
        session_id=record.session_id,
        cost_usd=record.cost_usd,
        num_turns=record.turns,
        duration_s=record.duration_s or 0.0,
        exit_code=record.exit_code,
        error=record.error,
        model=record.model,
        event_log=next((a.path for a in record.artifacts if a.name in ("events", "stdout")), None),
        run_dir=record.run_dir,
        warnings=list(record.warnings),
        peak_memory_bytes=record.peak_memory_bytes,
        cpu_time_s=record.cpu_time_s,
    )


def _gone(record: RunRecord) -> bool:
    """True for a live run (running or paused) of this host whose supervisor is gone: it
    will never end by itself (the history's next opening for writing marks it
    ``interrupted``)."""
    import dataclasses

    from cc_executor._store import stale

    if record.status not in _LIVE:
        return False
    return stale(dataclasses.replace(record, status=Status.RUNNING.value))


def find_local_run(run_id: str) -> RunRecord | None:
    """Run ``run_id``'s row in this machine's history (read-only), or None."""
    from cc_executor._store import open_store

    store = open_store(readonly=True)
    try:
        return store.get(run_id)
    finally:
        store.close()


async def follow_local_run(
    record: RunRecord,
    *,
    after: int = 0,
    on_event: Callable[[int, AgentEvent], Any] | None = None,
) -> RunResult:
    """Follow the local run of ``record``: ``on_event(seq, event)`` for each event of its
    event log whose SEQ (1, 2, 3, ... in the log's order, across attempts) is above
    ``after``, live, then its :class:`RunResult` once its history row says it ended (a
    run whose supervisor died ends ``interrupted``). An ended run replays and returns."""
    from cc_executor._store import open_store

    if after < 0:
        raise ValueError(f"--after must be a sequence number >= 0, got {after}")
    from cc_executor._store import HOST

    if record.host not in (None, HOST):
        raise ValueError(
            f"run {record.id} runs on host {record.host}: its event log is there (attach "
            "from that machine)"
        )
    if not record.run_dir:
        raise ValueError(f"run {record.id} has no run folder: it has no event log to follow")
    parse = _parser(record)
    seq = 0
    final: ResultEvent | None = None
    texts: list[str] = []
    logs = [_Log(p) for p in _logs(record.run_dir)]

    async def emit(lines: list[bytes]) -> None:
        nonlocal seq, final
        for line in lines:
            for event in parse(line):
                seq += 1
                if isinstance(event, ResultEvent):
                    final = event
                elif event.type == "text":
                    texts.append(str(getattr(event, "text", "")))
                if seq > after and on_event is not None:
                    outcome = on_event(seq, event)
                    if inspect.isawaitable(outcome):
                        await outcome

    def grow() -> None:
        for path in _logs(record.run_dir or "")[len(logs) :]:
            logs.append(_Log(path))

    store: HistoryStore = open_store(readonly=True)
    try:
        pause = _POLL_MIN_S
        current = record
        while True:
            gone = _gone(current)
            ended = current.status not in _LIVE or gone
            grow()
            got = False
            for log in logs:
                lines = log.last() if ended else log.lines()
                got = got or bool(lines)
                await emit(lines)
            if ended:
                if gone:
                    current.status = Status.INTERRUPTED.value
                    current.error = current.error or "its supervisor is gone"
                return _result(current, final, "".join(texts))
            pause = _POLL_MIN_S if got else min(pause * 2, _POLL_MAX_S)
            await asyncio.sleep(pause)
            # One indexed read of a local history: quick enough for the loop.
            current = store.get(record.id) or current
    finally:
        store.close()
