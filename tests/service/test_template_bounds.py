"""A hostile prompt template sent to the real service: refused, and the service unharmed."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests._wait import await_for
from tests.service.conftest import Service, sse_events
from tests.tasks.test_template import CPU_HOG, DOUBLING

pytestmark = pytest.mark.slow


def _status(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def _renderers(pid: int) -> list[str]:
    """The service's rendering child processes."""
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
            except FileNotFoundError:  # ended meanwhile
                continue
            if b"_template_child" in cmdline:
                found.append(child)
    return found


async def _failed_with(client: Any, run_id: str) -> str:
    events = await sse_events(client, run_id)
    assert events[-1]["status"] == "failed", events[-1]
    return str([e for e in events if e.get("task_id") == "hostile"])


def _body(prompt: str) -> dict[str, Any]:
    return {"tasks": {"tasks": [{"id": "hostile", "prompt": prompt, "template": True}]}}


async def test_the_service_answers_while_a_hostile_template_renders(service: Service) -> None:
    """Adversarial review of M5: a 100-byte template took the service's memory from 40 MB
    to 565 MB, and lipsum() 19 s of its CPU, beyond the reach of the run's timeout."""
    pid = service.proc.pid
    async with service.client() as client:
        started = await client.post("/runs", json=_body(CPU_HOG))
        assert started.status_code == 202, started.text
        await await_for(lambda: _renderers(pid), what="the template rendering")
        health = await client.get("/health")
        assert health.status_code == 200
        failed = await _failed_with(client, started.json()["run_id"])
        # The wall bound when the machine is so loaded that 10 s of CPU take over 60 s.
        assert re.search(r"more than (10 s of CPU|60 s) to render", failed), failed
        before = _status(pid, "VmHWM")
        started = await client.post("/runs", json=_body(DOUBLING[0]))
        assert "more than 256 MiB of memory to render" in await _failed_with(
            client, started.json()["run_id"]
        )
        assert _status(pid, "VmHWM") / before < 1.5
        assert (await client.get("/health")).status_code == 200
