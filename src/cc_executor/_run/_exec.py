"""Running a plain command (``exec``) supervised and recorded in the history.

The one implementation behind ``cc-executor exec`` and the service's ``exec`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable

from cc_executor._engine import OutputEvent, ProcessResult, SupervisedProcess
from cc_executor._run._control import ControlChannel, open_control
from cc_executor._status import Status
from cc_executor._store import (
    Recorder,
    RunRecord,
    file_receipt,
    finish_process_record,
    process_receipts,
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
    raises, the process tree is stopped before the exception propagates, and the run is
    recorded ``cancelled`` or ``error`` with receipts of the output files it left."""
    state = _Recording(
        RunRecord(
            id=process.run_id, kind="exec", argv=redact_argv(process.argv), started_at=time.time()
        )
    )
    if process.marker is None:
        # A SIGKILL between the spawn and the start's record still leaves a row.
        process.marker = {"kind": "exec"}
    try:
        return await state.run(process, on_started, on_output, chunks)
    except (Exception, asyncio.CancelledError) as exc:
        # Shielded: a second cancellation must not leave the record "running".
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(asyncio.ensure_future(state.abort(process, exc)))
        raise


def _actions(process: SupervisedProcess) -> dict[str, Callable[[], bool]]:
    """What another process may ask of a running command (see ``_control``)."""
    stopping: set[asyncio.Task[ProcessResult]] = set()

    def cancel() -> bool:
        if not process.running or stopping:
            return False
        task = asyncio.ensure_future(process.cancel())
        stopping.add(task)
        return True

    return {"cancel": cancel, "pause": process.pause, "resume": process.resume}


class _Recording:
    """One command's history record, from its start to its end however it ends."""

    def __init__(self, record: RunRecord) -> None:
        self.record = record
        self.recorder = Recorder()
        self.started: asyncio.Future[None] | None = None
        self.finished = False
        self.ending: asyncio.Future[None] | None = None

    async def run(
        self,
        process: SupervisedProcess,
        on_started: Callable[[SupervisedProcess], Awaitable[None]] | None,
        on_output: Callable[[OutputEvent], Awaitable[None]] | None,
        chunks: bool,
    ) -> ProcessResult:
        record, recorder = self.record, self.recorder
        control: ControlChannel | None = None
        try:
            await process.start()
            if on_started is not None:
                await on_started(process)
            record.cwd = process.cwd
            record.run_dir = process.run_dir
            if process.run_dir and process.pid is not None:
                # Found through the history by `cc-executor cancel|pause|unpause RUN_ID`.
                control = await open_control(process.run_dir, _actions(process))
            if process.pid is not None:
                record.pid = process.pid
                record.pid_started = process.start_ticks
                record.tree_token = process.tree_token
                self.started = asyncio.ensure_future(asyncio.to_thread(recorder.start, record))
                await asyncio.shield(self.started)
                # Not "still running": a fast child may be done already; its output is queued.
                if on_output is not None:
                    async for event in process.events(
                        lines=not chunks, chunks=chunks, lifecycle=False
                    ):
                        assert isinstance(event, OutputEvent)
                        await on_output(event)
            result = await process.wait()
        finally:
            if control is not None:
                await control.aclose()
            await process.aclose()
        record.warnings = [redact_text(w) for w in dict.fromkeys(result.warnings)]
        self.finished = True
        self.ending = asyncio.ensure_future(self._finish(finish_process_record(record, result)))
        await asyncio.shield(self.ending)
        result.warnings.extend(recorder.warnings)
        return result

    async def abort(self, process: SupervisedProcess, exc: BaseException) -> None:
        """Close the record of a run ended by an exception (a callback raised, the task was
        cancelled), with receipts of its files as they are on disk: its tree is stopped by
        now, and without this the record would say ``running`` while this process lives."""
        if self.ending is not None:
            # Cancelled while the end was being recorded: let it land before raising.
            with contextlib.suppress(Exception):
                await self.ending
            return
        if self.started is None or self.finished:
            return
        self.finished = True
        with contextlib.suppress(Exception):
            await self.started  # the start record first, or the end would update nothing
        record = self.record
        cancelled = isinstance(exc, asyncio.CancelledError)
        record.ended_at = time.time()
        record.duration_s = record.ended_at - record.started_at
        record.status = (Status.CANCELLED if cancelled else Status.ERROR).value
        record.error = redact_text(
            "cancelled: the task running it was cancelled"
            if cancelled
            else f"the run ended by an exception: {type(exc).__name__}: {exc}"
        )[:2000]
        result = process.result
        if result is not None:
            record.exit_code = result.exit_code
            record.signal = result.signal
            record.artifacts = process_receipts(result)
        elif record.run_dir:
            found = (
                file_receipt(name, os.path.join(record.run_dir, f"{name}.log"))
                for name in ("stdout", "stderr")
            )
            record.artifacts = [a for a in found if a is not None]
        await self._finish(record)

    async def _finish(self, record: RunRecord) -> None:
        await asyncio.to_thread(self.recorder.finish, record)
        await asyncio.to_thread(self.recorder.close)
