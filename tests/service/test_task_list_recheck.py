"""Issue 18 L4 for task lists: each task's folders are checked against ``--allow-dir``
again right before its run starts, not only when the list was submitted."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import Reply, Rule, Script, Text
from tests.service.conftest import Service

#: The first task's answer waits this long: the folder of the second is swapped meanwhile
#: (after the first task's init event is seen, which takes milliseconds).
FIRST_LATENCY_S = 4.0

SCRIPT = Script(
    [
        Rule(match="first step", answers=[Reply([Text("A")], latency=FIRST_LATENCY_S)]),
        Rule(match="second step", answers=[Reply([Text("B")])]),
    ]
)


@pytest.mark.parametrize("where", ["cwd", "add_dirs"])
async def test_a_later_tasks_folder_swapped_for_a_symlink_does_not_run_outside(
    start: Callable[..., Service], bed: Any, root: Path, tmp_path: Path, where: str
) -> None:
    service = start()
    sub, sub2, outside = root / "sub", root / "sub2", tmp_path / "outside"
    for folder in (sub, sub2, outside):
        folder.mkdir()
    events: list[dict[str, Any]] = []
    second = {"cwd": str(sub2)} if where == "cwd" else {"add_dirs": [str(sub2)]}
    async with bed(SCRIPT) as b, service.client() as client:
        body = {
            "tasks": {
                "tasks": [
                    {"id": "a", "prompt": "first step", "cwd": str(sub)},
                    {"id": "b", "prompt": "second step", "cwd": str(sub), **second},
                ]
            },
            "options": b.options(),
        }
        response = await client.post("/runs", json=body)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        swapped = False
        async with client.stream("GET", f"/runs/{run_id}/events") as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                events.append(event)
                if not swapped and event.get("task_id") == "a" and event["type"] == "init":
                    # Task a runs: b's folder, checked at submission, becomes a way out.
                    sub2.rename(root / "sub2.bak")
                    sub2.symlink_to(outside)
                    swapped = True
        run = (await client.get(f"/runs/{run_id}")).json()
        prompts = [r.prompt for r in b.server.message_requests]
    assert swapped, events
    inits = {e["task_id"]: e["cwd"] for e in events if e.get("type") == "init"}
    assert inits == {"a": str(sub)}, inits  # b never started, in /tmp/outside or anywhere
    assert not any("second step" in p for p in prompts)
    tasks = run["result"]["tasks"]
    assert tasks["a"]["status"] == "ok"
    b_task = tasks["b"]
    assert b_task["status"] == "failed"
    assert b_task["run_status"] == "error"
    error = b_task["error"]
    assert error.startswith(f"refused at the start: cwd {str(sub2)!r} (resolved: {outside})")
    assert "outside the allowed directories" in error
    assert "\n" not in error
    assert b_task["runs"][-1]["status"] == "error"
    assert b_task["runs"][-1]["error"] == error
    assert run["status"] == "failed"
