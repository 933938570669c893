"""``serve`` on SIGTERM (issue 18): runs it answered 202 for never vanish. Running runs get
the drain grace, queued ones stay queued on disk and the next server on the same data
folder starts them; one server at a time takes them (a lock)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest

from cc_executor._errors import ShuttingDown
from cc_executor._service._manager import ManagerConfig, RunManager
from cc_executor._service._queue import RunQueue
from cc_executor._store import open_store
from cc_executor.testing import Reply, Rule, Script, Text
from tests._wait import await_for
from tests.service.conftest import Service

WAIT_FOR_FILE = (
    "import os, sys, time\n"
    "while not os.path.exists(sys.argv[1]):\n"
    "    time.sleep(0.01)\n"
    "print('went', sys.argv[1])\n"
)


def waiting_for(path: Path) -> list[str]:
    """A command that runs until ``path`` exists."""
    return [sys.executable, "-c", WAIT_FOR_FILE, str(path)]


async def submit(client: httpx.AsyncClient, argv: list[str]) -> str:
    response = await client.post("/runs", json={"argv": argv})
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


async def status(client: httpx.AsyncClient, run_id: str) -> str:
    return str((await client.get(f"/runs/{run_id}")).json()["status"])


async def wait_status(client: httpx.AsyncClient, run_id: str, wanted: str) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while (now := await status(client, run_id)) != wanted:
        assert asyncio.get_running_loop().time() < deadline, f"{run_id}: {now}, not {wanted}"
        await asyncio.sleep(0.02)


def exited(service: Service) -> int:
    """The server's exit code once it has ended, and its stderr kept in ``service.stderr``."""
    code = service.proc.wait(120)
    assert service.proc.stderr is not None
    service.stderr.append(service.proc.stderr.read())
    return code


def history(run_id: str) -> Any:
    store = open_store()
    try:
        return store.get(run_id)
    finally:
        store.close()


def refuses_connections(service: Service) -> bool:
    try:
        httpx.get(service.url + "/health", headers=service.headers(), timeout=5)
    except httpx.TransportError:
        return True
    return False


async def test_sigterm_finishes_running_runs_and_the_next_server_starts_queued_ones(
    start: Callable[..., Service], root: Path, cc_home: Path
) -> None:
    flags = ("--allow-exec", sys.executable, "--max-concurrent", "1", "--drain-grace", "120")
    first = start(*flags)
    async with first.client() as client:
        running = await submit(client, waiting_for(root / "go-running"))
        queued = [await submit(client, waiting_for(root / "go-queued")) for _ in range(2)]
        await wait_status(client, running, "running")
        await await_for(lambda: history(running).status == "running", what="start recorded")
        for run_id in queued:
            assert await status(client, run_id) == "queued"
            assert history(run_id).status == "queued"  # recorded in the history at once
            saved = cc_home / "queue" / f"{run_id}.json"
            assert stat.S_IMODE(saved.stat().st_mode) == 0o600
            assert json.loads(saved.read_text())["spec"]["argv"][-1] == str(root / "go-queued")
    first.proc.send_signal(signal.SIGTERM)
    # It takes no new run (its port is closed) while the running one goes on.
    await await_for(lambda: refuses_connections(first), what="the server stops accepting")
    assert first.proc.poll() is None
    assert history(running).status == "running"
    (root / "go-running").touch()
    assert exited(first) == 0
    assert "1 run(s) finished, 0 interrupted, 2 left queued" in first.stderr[0]
    assert history(running).status == "ok"
    for run_id in queued:
        assert history(run_id).status == "queued"
        assert (cc_home / "queue" / f"{run_id}.json").exists()

    second = start(*flags)  # the same data folder
    (root / "go-queued").touch()
    async with second.client() as client:
        for run_id in queued:
            await wait_status(client, run_id, "ok")
            result = (await client.get(f"/runs/{run_id}")).json()["result"]
            assert result["exit_code"] == 0
    for run_id in queued:
        assert history(run_id).status == "ok"
        assert not (cc_home / "queue" / f"{run_id}.json").exists()


async def test_a_queued_claude_run_completes_after_a_restart(
    start: Callable[..., Service], root: Path, bed: Any
) -> None:
    """The saved request of an agent run (prompt, options, its environment) starts the
    real CLI on the next server and gets its answer."""
    flags = ("--allow-exec", sys.executable, "--max-concurrent", "1", "--drain-grace", "0.5")
    script = Script([Rule(answers=[Reply([Text("Answered after the restart.")])])])
    async with bed(script) as b:
        first = start(*flags)
        async with first.client() as client:
            blocker = await submit(client, waiting_for(root / "never"))
            await wait_status(client, blocker, "running")
            response = await client.post("/runs", json={"prompt": "hi", "options": b.options()})
            assert response.status_code == 202, response.text
            run_id = response.json()["run_id"]
            assert await status(client, run_id) == "queued"
        first.proc.send_signal(signal.SIGTERM)
        assert exited(first) == 0
        assert history(blocker).status == "interrupted"
        assert history(run_id).status == "queued"
        assert not b.server.message_requests

        second = start(*flags)
        async with second.client() as client:
            await wait_status(client, run_id, "ok")
            result = (await client.get(f"/runs/{run_id}")).json()["result"]
    assert result["result"] == "Answered after the restart."
    assert history(run_id).status == "ok"


async def test_runs_still_running_after_the_grace_end_interrupted(
    start: Callable[..., Service], root: Path
) -> None:
    service = start("--allow-exec", sys.executable, "--drain-grace", "0.5")
    async with service.client() as client:
        run_id = await submit(client, waiting_for(root / "never"))
        await wait_status(client, run_id, "running")
    pid = await await_for(lambda: history(run_id).pid, what="the run's start recorded")
    service.proc.send_signal(signal.SIGTERM)
    assert exited(service) == 0
    assert "0 run(s) finished, 1 interrupted, 0 left queued" in service.stderr[0]
    record = history(run_id)
    assert record.status == "interrupted"
    assert "drain grace of 0.5 s over" in record.error
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


async def test_a_second_signal_ends_the_grace_at_once(
    start: Callable[..., Service], root: Path
) -> None:
    service = start("--allow-exec", sys.executable, "--drain-grace", "3600")
    async with service.client() as client:
        run_id = await submit(client, waiting_for(root / "never"))
        await wait_status(client, run_id, "running")
    service.proc.send_signal(signal.SIGTERM)
    await await_for(lambda: refuses_connections(service), what="the server stops accepting")
    service.proc.send_signal(signal.SIGTERM)
    assert exited(service) == 0
    assert history(run_id).status == "interrupted"


async def test_one_server_at_a_time_takes_the_saved_queue(
    start: Callable[..., Service], root: Path, cc_home: Path
) -> None:
    flags = ("--allow-exec", sys.executable, "--max-concurrent", "1")
    first = start(*flags)
    async with first.client() as client:
        await submit(client, waiting_for(root / "go"))
        queued = await submit(client, waiting_for(root / "go"))
    assert (cc_home / "queue" / f"{queued}.json").exists()
    second = start(*flags)  # the same data folder, while the first one holds the queue
    async with second.client() as client:
        own = await submit(client, [sys.executable, "-c", "pass"])
        await wait_status(client, own, "ok")
        assert (await client.get(f"/runs/{queued}")).json()["from_history"] is True
    second.proc.send_signal(signal.SIGTERM)
    assert exited(second) == 0
    assert "another server holds the queue" in second.stderr[0]
    assert "queued again" not in second.stderr[0]
    assert history(queued).status == "queued"
    assert not (cc_home / "queue" / f"{own}.json").exists()
    (root / "go").touch()
    async with first.client() as client:
        await wait_status(client, queued, "ok")


async def test_a_damaged_saved_request_is_set_aside_with_its_reason(
    start: Callable[..., Service], cc_home: Path
) -> None:
    folder = cc_home / "queue"
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    (folder / "01broken.json").write_text('{"run_id": "01broken", "spec": NaN}')
    service = start("--allow-exec", sys.executable)
    service.proc.send_signal(signal.SIGTERM)
    assert exited(service) == 0
    assert "01broken.json: NaN is not JSON; set aside" in service.stderr[0]
    assert (folder / "01broken.json.bad").exists()
    assert "readable by other accounts" in service.stderr[0]
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


async def test_a_saved_request_of_a_run_that_already_started_is_not_run_again(
    start: Callable[..., Service], root: Path, cc_home: Path
) -> None:
    first = start("--allow-exec", sys.executable)
    async with first.client() as client:
        done = await submit(client, [sys.executable, "-c", "pass"])
        await wait_status(client, done, "ok")
    first.proc.send_signal(signal.SIGTERM)
    assert exited(first) == 0
    marker = root / "ran-again"
    again = [sys.executable, "-c", f"open({str(marker)!r}, 'w').close()"]
    RunQueue(cc_home / "queue").save(done, {"argv": again, "options": {"cwd": str(root)}}, 1.0)
    second = start("--allow-exec", sys.executable)
    second.proc.send_signal(signal.SIGTERM)
    assert exited(second) == 0
    assert (
        f"queued run {done} not queued again: the history says it already started (ok)"
        in (second.stderr[0])
    )
    assert not marker.exists()
    assert history(done).status == "ok"
    assert not (cc_home / "queue" / f"{done}.json").exists()


async def test_a_draining_manager_takes_no_new_run(tmp_path: Path) -> None:
    manager = RunManager(ManagerConfig(exec_allowlist=(sys.executable,), allow_dirs=(tmp_path,)))
    manager.begin_drain()
    with pytest.raises(ShuttingDown, match="shutting down"):
        manager.submit({"argv": [sys.executable, "-c", "pass"], "options": {"cwd": str(tmp_path)}})


def test_saved_requests_are_read_back_as_untrusted(tmp_path: Path) -> None:
    queue = RunQueue(tmp_path / "queue")
    assert queue.acquire()
    try:
        queue.save("01good", {"argv": ["x"]}, 2.0)
        queue.save("01older", {"argv": ["y"]}, 1.0)
        (queue.folder / "01wrongid.json").write_text(
            '{"run_id": "other", "spec": {}, "created_at": 1}'
        )
        (queue.folder / "01nan.json").write_text(
            '{"run_id": "01nan", "spec": {}, "created_at": NaN}'
        )
        (queue.folder / "01bytes.json").write_bytes(b"\xff\xfe")
        os.symlink("/etc/passwd", queue.folder / "01link.json")
        requests, problems = queue.pending()
        assert [r.run_id for r in requests] == ["01older", "01good"]
        assert len(problems) == 4
        assert all("set aside" in p for p in problems)
        assert queue.pending() == (requests, [])  # reported once
        with pytest.raises(ValueError, match="not a run id"):
            queue.save("../escape", {}, 0.0)
        other = RunQueue(queue.folder)
        assert not other.acquire()  # the lock: one holder at a time
    finally:
        queue.release()


@pytest.mark.slow  # over 0.3 s: starts the service
def test_drain_grace_is_checked() -> None:
    for bad in ("-1", "nan", "inf", "soon"):
        done = subprocess.run(
            [str(Path(sys.executable).parent / "cc-executor"), "serve", "--drain-grace", bad],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert "--drain-grace" in done.stderr
        assert "Traceback" not in done.stderr
