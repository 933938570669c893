"""A task list's permission policy: its ``ask`` rules go to ``on_permission(task_id,
request)`` in Python and to the terminal from ``tasks run``, and are denied, said once,
without a decider. (Through the service: tests/service/test_permissions.py.)"""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor._agents._types import AgentEvent, PermissionDecisionEvent
from cc_executor._run._permissions import PermissionRequest
from cc_executor.tasks import run_tasks
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests.tasks.conftest import CLI, Served

pytestmark = [pytest.mark.cli, pytest.mark.slow]

NOBODY = "nobody can answer"


def writes(work: Path, *names: str) -> Script:
    """Task ``name`` (prompt ``write NAME``) writes ``NAME.txt``, then answers."""
    return Script(
        [
            Rule(
                match=f"^write {name}$",
                answers=[
                    Reply(
                        [
                            ToolUse(
                                "Write", {"file_path": str(work / f"{name}.txt"), "content": name}
                            )
                        ]
                    ),
                    Reply([Text("done")]),
                ],
            )
            for name in names
        ]
    )


def policy(tmp_path: Path) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text("ask_timeout_s: 120\nrules:\n  - ask: Write\n")
    return str(path)


async def test_parallel_tasks_ask_a_python_callback_naming_the_task(
    serve: Callable[[Script], Served], tmp_path: Path
) -> None:
    served = serve(writes(tmp_path / "work", "a", "b"))
    asked: list[tuple[str, str, str]] = []
    lock = threading.Lock()

    def on_permission(task_id: str, request: PermissionRequest) -> str:
        # Sync: called in a thread, as a run's is.
        with lock:
            asked.append((task_id, request.tool_name, Path(request.input["file_path"]).name))
        return "allow" if task_id == "a" else "deny"

    decisions: list[tuple[str, str, str]] = []

    def on_event(task_id: str, event: AgentEvent) -> None:
        if isinstance(event, PermissionDecisionEvent):
            decisions.append((task_id, event.decision, event.decided_by))

    spec = {
        "parallel": True,
        "tasks": [{"id": "a", "prompt": "write a"}, {"id": "b", "prompt": "write b"}],
    }
    result = await run_tasks(
        spec,
        on_permission=on_permission,
        on_event=on_event,
        **served.options(permission_policy=policy(tmp_path), accept_denials=True),
    )
    assert result.ok, result.to_dict()
    assert sorted(asked) == [("a", "Write", "a.txt"), ("b", "Write", "b.txt")]
    assert sorted(decisions) == [("a", "allow", "callback"), ("b", "deny", "callback")]
    assert sorted(p.name for p in served.work.iterdir()) == ["a.txt"]
    assert not [w for w in result.warnings if NOBODY in w]


def test_without_a_decider_asks_are_denied_and_said_once(
    serve: Callable[[Script], Served], tmp_path: Path
) -> None:
    served = serve(writes(tmp_path / "work", "a", "b"))
    tasks = tmp_path / "list.yaml"
    tasks.write_text(
        f"parallel: true\ndefaults:\n  permission_policy: {policy(tmp_path)}\n"
        "tasks:\n  - id: a\n    prompt: write a\n  - id: b\n    prompt: write b\n"
    )
    # Not a terminal (stdin is /dev/null): nobody can answer.
    done = served.cli("tasks", "run", str(tasks), "--json")
    result = json.loads(done.stdout)
    # A run with a denial ends "denied", and its task fails.
    assert [result["tasks"][t]["status"] for t in ("a", "b")] == ["failed", "failed"], result
    assert list(served.work.iterdir()) == []
    said = [line for line in done.stderr.splitlines() if NOBODY in line]
    assert len(said) == 1, done.stderr
    assert said[0].startswith('cc-executor tasks: warning: task "')
    assert "every ask of this list is denied" in said[0]
    assert len([w for w in result["warnings"] if NOBODY in w]) == 1


def test_tasks_run_asks_on_the_terminal_one_question_at_a_time(
    serve: Callable[[Script], Served], tmp_path: Path
) -> None:
    served = serve(writes(tmp_path / "work", "a", "b"))
    tasks = tmp_path / "list.yaml"
    tasks.write_text(
        f"parallel: true\ndefaults:\n  permission_policy: {policy(tmp_path)}\n"
        "tasks:\n  - id: a\n    prompt: write a\n  - id: b\n    prompt: write b\n"
    )
    controller, terminal = pty.openpty()
    proc = subprocess.Popen(
        [CLI, "tasks", "run", str(tasks), "--json"],
        cwd=served.work,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=served.env,
    )
    os.close(terminal)
    seen = bytearray()
    answered: dict[str, bytes] = {}
    try:
        # Both tasks ask at once; the questions come one after the other, each naming its
        # task: a is allowed, b denied, whichever comes first.
        for _ in range(2):
            read_until(controller, b"Allow? [y/N] ", seen)
            asking = re.findall(rb'cc-executor: task "(\w)": Write', bytes(seen))
            assert len(asking) == 1, bytes(seen)
            task = asking[0].decode()
            assert f"{task}.txt".encode() in seen
            answered[task] = b"y\n" if task == "a" else b"n\n"
            del seen[:]
            os.write(controller, answered[task])
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    assert sorted(answered) == ["a", "b"]
    result = json.loads(out)
    assert result["tasks"]["a"]["status"] == "ok", result
    assert sorted(p.name for p in served.work.iterdir()) == ["a.txt"]
    assert not [w for w in result["warnings"] if NOBODY in w]


def read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} not shown; the screen: {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 65536)
