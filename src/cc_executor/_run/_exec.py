"""Running a plain command (``exec``) supervised and recorded in the history.

The one implementation behind ``cc-executor exec`` and the service's ``exec`` runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from cc_executor._engine import OutputEvent, ProcessResult, SupervisedProcess
from cc_executor._store import (
    Recorder,
    RunRecord,
    finish_process_record,
    redact_argv,
    redact_text,
)


async def run_command(
    process: SupervisedProcess,
    *,
    on_started: Callable[[SupervisedProcess], Awaitable[None]] | None = None,
    on_output: Callable[[OutputEvent], Awaitable[None]] | None = None,
    chunks: bool = False,
) -> ProcessResult:
    """Start ``process`` (not yet started), record it in the history as an ``exec`` run,
    pass its output to ``on_output`` and return its result once it has ended.

    ``on_started`` is awaited right after the spawn, whether or not it succeeded (the
    caller may cancel from there). ``on_output`` gets every output event, from the first
    byte: lines, or the raw reads with ``chunks=True``; it needs a process created with
    events on. The start is recorded once the child has a PID; the end is always recorded,
    a spawn failure included. Recording is best effort: a history that cannot be written
    adds a warning to the result, never a failure. If this is cancelled, or a callback
    raises, the process tree is stopped before the exception propagates."""
    recorder = Recorder()
    record = RunRecord(
        id=process.run_id, kind="exec", argv=redact_argv(process.argv), started_at=time.time()
    )
    if process.marker is None:
        # A SIGKILL between the spawn and the start's record still leaves a row.
        process.marker = {"kind": "exec"}
    try:
        await process.start()
        if on_started is not None:
            await on_started(process)
        record.cwd = process.cwd
        record.run_dir = process.run_dir
        if process.pid is not None:
            record.pid = process.pid
            record.pid_started = process.start_ticks
            record.tree_token = process.tree_token
            await asyncio.to_thread(recorder.start, record)
            # Not "still running": a fast child may be done already; its output is queued.
            if on_output is not None:
                async for event in process.events(lines=not chunks, chunks=chunks, lifecycle=False):
                    assert isinstance(event, OutputEvent)
                    await on_output(event)
        result = await process.wait()
    finally:
        await process.aclose()
    record.warnings = [redact_text(w) for w in dict.fromkeys(result.warnings)]
    await asyncio.to_thread(recorder.finish, finish_process_record(record, result))
    await asyncio.to_thread(recorder.close)
    result.warnings.extend(recorder.warnings)
    return result
