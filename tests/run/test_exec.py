"""Plain commands run supervised and recorded: the run-layer function behind ``exec``."""

from __future__ import annotations

import asyncio
import sys

import pytest

from cc_executor._engine import OutputEvent, ProcessStatus, SupervisedProcess
from cc_executor._run._exec import run_command
from cc_executor._store import open_store, verify


async def test_a_command_is_recorded_with_its_output_and_receipts() -> None:
    seen: list[str] = []
    started: list[int | None] = []

    async def on_started(proc: SupervisedProcess) -> None:
        started.append(proc.pid)

    async def on_output(event: OutputEvent) -> None:
        seen.append(event.text)

    proc = SupervisedProcess([sys.executable, "-c", "print('one'); print('two')"])
    result = await run_command(proc, on_started=on_started, on_output=on_output)
    assert result.status is ProcessStatus.OK
    assert seen == ["one", "two"]
    assert started == [result.pid]
    store = open_store()
    record = store.get(proc.run_id)
    store.close()
    assert record is not None
    assert record.kind == "exec"
    assert record.status == result.status.value
    assert record.pid == result.pid
    assert {a.name for a in record.artifacts} == {"stdout", "stderr"}


async def test_a_command_that_cannot_start_is_recorded_too() -> None:
    proc = SupervisedProcess(["/nonexistent/cc-executor-test-command"])
    result = await run_command(proc)
    assert result.status is ProcessStatus.SPAWN_FAILED
    store = open_store()
    record = store.get(proc.run_id)
    store.close()
    assert record is not None
    assert record.status == "spawn_failed"


async def test_a_command_ended_by_an_exception_gets_receipts_for_its_files() -> None:
    """Issue 18 L9: a callback that raised (or a cancelled task) left the record
    ``running`` with no receipts, though the command's output files exist."""

    async def on_output(event: OutputEvent) -> None:
        raise LookupError("callback broke")

    proc = SupervisedProcess([sys.executable, "-c", "print('one', flush=True); input()"])
    with pytest.raises(LookupError):
        await run_command(proc, on_output=on_output)
    store = open_store()
    record = store.get(proc.run_id)
    store.close()
    assert record is not None
    assert record.status == "error"
    assert "LookupError: callback broke" in (record.error or "")
    assert {a.name for a in record.artifacts} == {"stdout", "stderr"}
    assert verify(record, record.id).unaltered


async def test_a_cancelled_command_is_closed_with_receipts() -> None:
    seen = asyncio.Event()

    async def on_output(event: OutputEvent) -> None:
        seen.set()

    proc = SupervisedProcess(
        [sys.executable, "-c", "import time; print('one', flush=True); time.sleep(600)"]
    )
    task = asyncio.ensure_future(run_command(proc, on_output=on_output))
    await seen.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    store = open_store()
    record = store.get(proc.run_id)
    store.close()
    assert record is not None
    assert record.status == "cancelled"
    assert record.ended_at is not None
    assert {a.name for a in record.artifacts} == {"stdout", "stderr"}
    assert verify(record, record.id).unaltered
