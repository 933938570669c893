"""A list's budget webhook and ``on_budget_exhausted``, with command agents (scripts that
report no cost, so each task is charged its whole reservation) and a local receiver."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from cc_executor._agents._types import BudgetEvent
from cc_executor.tasks import (
    ListStatus,
    TaskListError,
    parse_task_list,
    resume_tasks,
    run_tasks,
    run_tasks_sync,
)
from tests.tasks.conftest import CLI


class Receiver:
    def __init__(self, address: str = "127.0.0.1") -> None:
        self.notes: list[dict[str, Any]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.notes.append(json.loads(body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((address, 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/budget"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    got = Receiver()
    thread = threading.Thread(target=got.server.serve_forever, daemon=True)
    thread.start()
    yield got
    got.server.shutdown()
    got.server.server_close()


def _agent(tmp_path: Path, name: str, code: str) -> str:
    (tmp_path / f"{name}.py").write_text(code)
    spec = tmp_path / f"{name}.toml"
    spec.write_text(
        f'command = ["{sys.executable}", "{name}.py"]\noutput = "jsonl"\n[jsonl]\ntext = "t"\n'
        'session = "sid"\n'
    )
    return str(spec)


#: A session id: a run that reached its agent's session and reported no cost is charged
#: its whole reservation.
QUICK = "import json\nprint(json.dumps({'sid': 'S', 't': 'done'}))\n"


async def test_the_webhook_gets_the_threshold_and_the_exhaustion(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Two tasks of $0.45 each pass 80% of $1; the third cannot be covered: the list drains
    (the default) and says so, each time with the fleet's payload."""
    quick = _agent(tmp_path, "quick", QUICK)
    events: list[tuple[str, BudgetEvent]] = []
    spec = {
        "name": "paid",
        "tasks": [{"id": f"t{i}", "prompt": "x"} for i in range(3)],
        "defaults": {"agent": "command", "agent_spec": quick},
    }
    result = await run_tasks(
        spec,
        budget_usd=1.0,
        reserve_usd=0.45,
        budget_webhook=receiver.url,
        on_event=lambda tid, e: events.append((tid, e)) if isinstance(e, BudgetEvent) else None,
        cwd=tmp_path,
        heartbeat_s=0,
    )
    assert result.status is ListStatus.BUDGET_EXCEEDED
    assert [t.status.value for t in result.tasks.values()] == ["ok", "ok", "budget_exceeded"]
    # The run's webhook calls end before its result.
    threshold, exhausted = receiver.notes
    assert threshold == {
        "version": 1,
        "event": "budget_threshold",
        "budget": "paid",
        "total_usd": 1.0,
        "spent_usd": 0.9,
        "held_usd": 0.0,
        "run_id": result.list_id,
        "at": threshold["at"],
        "threshold": 0.8,
        "task_id": "t1",
    }
    assert exhausted["event"] == "budget_exhausted"
    assert (exhausted["task_id"], exhausted["on_exhausted"]) == ("t2", "drain")
    assert [(tid, e.what) for tid, e in events] == [("t1", "threshold"), ("t2", "exhausted")]


async def test_cancel_cancels_the_running_tasks_once_one_cannot_be_covered(
    tmp_path: Path, receiver: Receiver
) -> None:
    """``long`` hangs; ``quick`` (once ``long`` runs) spends its $0.4 of $1; ``after`` needs
    $0.4 of the $0.2 left: the budget is exhausted, ``long`` is cancelled and ends
    budget_exceeded, as ``after`` does without starting."""
    long = _agent(
        tmp_path,
        "long",
        "import json, time\nprint(json.dumps({'sid': 'L', 't': 'started'}), flush=True)\n"
        "open('long-started', 'w').close()\ntime.sleep(3600)\n",
    )
    quick = _agent(
        tmp_path,
        "quick",
        "import json, os, time\nwhile not os.path.exists('long-started'):\n"
        "    time.sleep(0.02)\n" + QUICK,
    )
    spec = {
        "parallel": True,
        # The list's own key (the caller's on_budget_exhausted would win).
        "on_budget_exhausted": "cancel",
        "tasks": [
            {"id": "long", "prompt": "x", "agent_spec": long},
            {"id": "quick", "prompt": "x", "agent_spec": quick},
            {"id": "after", "prompt": "x", "agent_spec": quick, "depends_on": ["quick"]},
        ],
        "defaults": {"agent": "command"},
    }
    result = await run_tasks(
        spec,
        max_parallel=2,
        budget_usd=1.0,
        reserve_usd=0.4,
        budget_webhook=receiver.url,
        cwd=tmp_path,
        heartbeat_s=0,
    )
    assert result.status is ListStatus.BUDGET_EXCEEDED
    tasks = result.tasks
    assert tasks["quick"].status.value == "ok"
    assert tasks["long"].status.value == "budget_exceeded"
    assert [r.status for r in tasks["long"].runs] == ["cancelled"]
    assert tasks["after"].status.value == "budget_exceeded"
    assert not tasks["after"].runs
    assert "on_budget_exhausted: cancel" in (result.stopped_reason or "")
    # Then the cancelled run, charged its whole reservation (it reported no cost), passes
    # 80%.
    note, passed = receiver.notes
    assert (passed["event"], passed["task_id"], passed["spent_usd"]) == (
        "budget_threshold",
        "long",
        0.8,
    )
    assert (note["event"], note["on_exhausted"], note["task_id"]) == (
        "budget_exhausted",
        "cancel",
        "after",
    )


def test_a_webhook_elsewhere_and_a_bad_policy_are_refused_clearly(tmp_path: Path) -> None:
    """The fleet's URL check (request forgery: loopback only), one line and exit 2, before
    anything runs; a bad ``on_budget_exhausted`` in the list is a problem of the list."""
    spec = tmp_path / "tasks.yaml"
    quick = _agent(tmp_path, "quick", QUICK)
    spec.write_text(f"tasks:\n  - {{id: a, prompt: x, agent: command, agent_spec: {quick}}}\n")
    done = subprocess.run(
        [CLI, "tasks", "run", str(spec), "--budget-usd", "1", "--quiet",
         "--budget-webhook", "http://example.com/hook"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1
    assert "example.com is neither a loopback address" in done.stderr
    bad = subprocess.run(
        [CLI, "tasks", "run", str(spec), "--budget-usd", "1", "--budget-threshold", "0"],
        capture_output=True, text=True, cwd=tmp_path, check=False,
    )  # fmt: skip
    assert (bad.returncode, bad.stderr) == (
        2,
        "cc-executor tasks: --budget-threshold must be a percentage in [0.1, 100], got 0\n",
    )
    with pytest.raises(TaskListError, match="on_budget_exhausted: cancel or drain"):
        parse_task_list(
            "tasks:\n  - {id: a, prompt: x}\non_budget_exhausted: stop\n", format="yaml"
        )


async def test_several_thresholds_are_each_announced_once_saying_which(
    tmp_path: Path, receiver: Receiver
) -> None:
    """Thresholds given out of order and twice: the second task's end passes 50% and 80% of
    $1 at once, announced lowest first, each once, in the events and the webhook's body."""
    quick = _agent(tmp_path, "quick", QUICK)
    events: list[tuple[str, BudgetEvent]] = []
    spec = {
        "tasks": [{"id": f"t{i}", "prompt": "x"} for i in range(2)],
        "defaults": {"agent": "command", "agent_spec": quick},
    }
    result = await run_tasks(
        spec,
        budget_usd=1.0,
        reserve_usd=0.45,
        budget_threshold=[80, 50, 50],
        budget_webhook=receiver.url,
        on_event=lambda tid, e: events.append((tid, e)) if isinstance(e, BudgetEvent) else None,
        cwd=tmp_path,
        heartbeat_s=0,
    )
    assert result.ok, result.tasks
    assert [(tid, e.what, e.threshold) for tid, e in events] == [
        ("t1", "threshold", 0.5),
        ("t1", "threshold", 0.8),
    ]
    assert [(n["event"], n["threshold"], n["task_id"]) for n in receiver.notes] == [
        ("budget_threshold", 0.5, "t1"),
        ("budget_threshold", 0.8, "t1"),
    ]


def _named_receiver() -> tuple[str, Receiver]:
    """A host name of this machine that is not ``localhost``, so a webhook naming it needs
    ``--budget-webhook-allow-host``, and a receiver on the address it resolves to: the
    machine's name, else ``127.1`` (a name to the URL check, 127.0.0.1 to the resolver)."""
    for name in (socket.gethostname(), "127.1"):
        try:
            address = socket.getaddrinfo(name, None, socket.AF_INET)[0][4][0]
            return name, Receiver(str(address))
        except OSError:
            continue  # not resolved, or not an address of this machine
    raise AssertionError("no receiver on 127.1")


def test_the_list_s_threshold_and_an_allowed_host_from_the_command_line(
    tmp_path: Path,
) -> None:
    """The list's ``budget_threshold: 50`` is announced on the progress view and POSTed to
    a webhook on a host that only ``--budget-webhook-allow-host`` allows: refused (exit
    2, one line, nothing run) without it."""
    name, got = _named_receiver()
    thread = threading.Thread(target=got.server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://{name}:{got.server.server_address[1]}/budget"
        quick = _agent(tmp_path, "quick", QUICK)
        listed = tmp_path / "tasks.yaml"
        listed.write_text(
            "budget_usd: 1\nbudget_threshold: 50\nreserve_usd: 0.5\n"
            f"defaults: {{agent: command, agent_spec: {quick}}}\n"
            "tasks:\n  - {id: a, prompt: x}\n  - {id: b, prompt: y}\n"
        )
        base = [CLI, "tasks", "run", str(listed), "--budget-webhook", url]
        refused = subprocess.run(base, capture_output=True, text=True, cwd=tmp_path, check=False)
        assert refused.returncode == 2, refused.stderr
        assert refused.stderr == (
            f"cc-executor tasks: --budget-webhook {url!r}: {name} is neither a loopback "
            "address nor allowed by --budget-webhook-allow-host (docs/security.md)\n"
        )
        done = subprocess.run(
            [*base, "--budget-webhook-allow-host", name],
            capture_output=True, text=True, cwd=tmp_path, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "budget: 50% passed ($0.5000 of $1 spent) as a ended" in done.stderr
        assert [(n["event"], n["threshold"], n["task_id"]) for n in got.notes] == [
            ("budget_threshold", 0.5, "a"),
        ]
    finally:
        got.server.shutdown()
        got.server.server_close()


def test_a_list_file_cannot_name_the_webhook_nor_where_it_may_go() -> None:
    """Where the notes go is the caller's: a list with ``budget_webhook`` or
    ``budget_webhook_allow_host`` is refused, as a bad ``budget_threshold`` is."""
    for key, value, said in (
        ("budget_webhook", "http://127.0.0.1:9/b", 'unknown field "budget_webhook"'),
        ("budget_webhook_allow_host", "example.com", 'unknown field "budget_webhook_allow_host"'),
        ("budget_threshold", 0, "budget_threshold must be a percentage in [0.1, 100], got 0"),
        ("budget_threshold", "[]", "budget_threshold: at least one percentage"),
    ):
        with pytest.raises(TaskListError, match=re.escape(said)):
            parse_task_list(f"tasks:\n  - {{id: a, prompt: x}}\n{key}: {value}\n", format="yaml")


def test_the_caller_s_thresholds_and_allowed_hosts_are_checked() -> None:
    for given, said in (
        ({"budget_threshold": 101}, "budget_threshold must be a percentage in [0.1, 100]"),
        ({"budget_threshold": [50, True]}, "got True"),
        ({"budget_webhook_allow_host": [""]}, "budget_webhook_allow_host: host names"),
        ({"budget_usd": None, "budget_threshold": 50}, "need a budget (budget_usd, given or"),
    ):
        kwargs: dict[str, Any] = {"budget_usd": 1, **given}
        with pytest.raises(ValueError, match=re.escape(said)):
            run_tasks_sync({"tasks": [{"id": "a", "prompt": "x"}]}, **kwargs)


async def test_a_resume_keeps_the_first_run_s_thresholds(tmp_path: Path) -> None:
    """``b`` fails at first, before its session (charged nothing: 45% of $1 spent);
    resumed without thresholds, its end passes the 90% the first run asked for, announced
    as 90%, not as the default 80%."""
    quick = _agent(tmp_path, "quick", QUICK)
    flaky = _agent(
        tmp_path,
        "flaky",
        "import os, sys\nif not os.path.exists('fixed'):\n    sys.exit(3)\n" + QUICK,
    )
    spec = {
        "tasks": [
            {"id": "a", "prompt": "x", "agent_spec": quick},
            {"id": "b", "prompt": "x", "agent_spec": flaky},
        ],
        "defaults": {"agent": "command"},
    }
    events: list[BudgetEvent] = []

    def keep(_tid: str, event: Any) -> None:
        if isinstance(event, BudgetEvent):
            events.append(event)

    first = await run_tasks(
        spec,
        budget_usd=1.0,
        reserve_usd=0.45,
        budget_threshold=90,
        on_event=keep,
        cwd=tmp_path,
        heartbeat_s=0,
    )
    assert [t.status.value for t in first.tasks.values()] == ["ok", "failed"]
    assert first.budget_spent_usd == pytest.approx(0.45)
    assert events == []
    (tmp_path / "fixed").touch()
    again = await resume_tasks(first.list_id, on_event=keep, heartbeat_s=0)
    assert again.ok, again.tasks
    assert [(e.what, e.threshold) for e in events] == [("threshold", 0.9)]
