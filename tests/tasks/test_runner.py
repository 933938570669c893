"""Task lists through the Python API: the real Claude Code CLI against the scripted server."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor._agents._types import AgentEvent, InitEvent, ResultEvent
from cc_executor.tasks import (
    ListStatus,
    TaskListBusy,
    TaskStateEvent,
    TaskStatus,
    get_task_list,
    resume_tasks,
    run_tasks,
    run_tasks_sync,
    start_tasks,
)
from cc_executor.tasks._state import ListFolder
from cc_executor.testing import HttpErrorReply, Reply, Rule, Script, Text
from tests.tasks.conftest import Served

Serve = Callable[[Script], Served]


def max_overlap(intervals: list[tuple[float, float]]) -> int:
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


async def test_parallel_tasks_overlap_within_max_parallel(serve: Serve) -> None:
    served = serve(Script([Rule(answers=[Reply([Text("done!")], chunk_size=1, delay=0.15)])]))
    spec = {
        "tasks": [{"id": f"t{i}", "prompt": f"Task number {i}", "depends_on": []} for i in range(5)]
    }
    events: list[tuple[str, AgentEvent]] = []
    result = await run_tasks(
        spec, max_parallel=2, on_event=lambda tid, ev: events.append((tid, ev)), **served.options()
    )
    assert result.status is ListStatus.OK, result.to_dict()
    # Every task ran as its own Claude Code process and session.
    assert served.count("Task number") == 5
    assert len({t.session_id for t in result.tasks.values()}) == 5

    # From the runner's events: never more than 2 tasks between "running" and their end.
    spans: dict[str, list[float]] = {}
    for tid, event in events:
        if isinstance(event, TaskStateEvent):
            spans.setdefault(tid, []).append(event.t)
    intervals = [(times[0], times[-1]) for times in spans.values()]
    assert max_overlap(intervals) == 2
    # From the results (wall clock): they really overlapped, and the list took less time
    # than the tasks one after the other.
    walls = [(t.started_at or 0.0, t.ended_at or 0.0) for t in result.tasks.values()]
    assert max_overlap(walls) == 2
    assert result.duration_s < 0.8 * sum(end - start for start, end in walls)

    # Per-task events: each task's own init and result, in between its state changes.
    for tid in result.tasks:
        kinds = [type(ev) for t, ev in events if t == tid]
        assert kinds[0] is TaskStateEvent
        assert kinds[-1] is TaskStateEvent
        assert InitEvent in kinds
        assert ResultEvent in kinds
    states = [(tid, ev.state) for tid, ev in events if isinstance(ev, TaskStateEvent)]
    assert sorted(states) == sorted([(f"t{i}", s) for i in range(5) for s in ("running", "ok")])


async def test_a_failed_attempt_is_retried(serve: Serve) -> None:
    served = serve(
        Script(
            [
                Rule(
                    match="^Flaky",
                    answers=[
                        Reply(
                            [Text("worked the second time")],
                            # Claude Code sends a request that got a 400 six times in all
                            # (with fewer beta features each time) before it gives up.
                            errors_before=[HttpErrorReply(400, message="scripted bad request")] * 6,
                        )
                    ],
                ),
                Rule(answers=[Reply([Text("after")])]),
            ]
        )
    )
    spec = {
        "tasks": [
            {"id": "flaky", "prompt": "Flaky step", "on_error": "retry", "retries": 1},
            {"id": "next", "prompt": "Then {{ tasks.flaky.result }}"},
        ]
    }
    result = await run_tasks(spec, **served.options())
    assert result.status is ListStatus.OK
    flaky = result.tasks["flaky"]
    assert flaky.attempts == 2
    assert [r.status for r in flaky.runs] == ["error", "ok"]
    assert "400" in (flaky.runs[0].error or "")
    assert flaky.run_id == flaky.runs[1].run_id
    assert served.count("Flaky") == 6 + 1
    assert served.prompts()[-1] == "Then worked the second time"


async def test_resume_from_continues_a_fork_of_the_session(serve: Serve) -> None:
    served = serve(
        Script(
            [
                # The second task's request continues the first task's conversation (turn 1).
                Rule(match="^Plan", answers=[Reply([Text("plan A")]), Reply([Text("step B")])]),
            ]
        )
    )
    spec = {
        "tasks": [
            {"id": "plan", "prompt": "Plan the work"},
            {"id": "carry_on", "prompt": "Now do it", "resume_from": "plan"},
        ]
    }
    result = await run_tasks(spec, **served.options())
    assert result.status is ListStatus.OK, result.to_dict()
    plan, carry_on = result.tasks["plan"], result.tasks["carry_on"]
    assert carry_on.result == "step B"
    assert carry_on.runs[0].resumed_session == plan.session_id
    assert carry_on.session_id != plan.session_id  # a fork: the plan's session is untouched
    last = served.server.message_requests[-1]
    assert (last.prompt, last.turn) == ("Plan the work", 1)


async def test_cancelling_the_caller_stops_everything_and_the_list_resumes(
    serve: Serve,
) -> None:
    served = serve(
        Script(
            [
                Rule(
                    match="^Slow",
                    answers=[
                        Reply([Text("z" * 200)], chunk_size=2, delay=0.05),
                        Reply([Text("slow finished")]),  # turn 1: the continued session
                    ],
                ),
                Rule(answers=[Reply([Text("quick")])]),
            ]
        )
    )
    spec = {
        "tasks": [
            {"id": "quick", "prompt": "Quick one"},
            {"id": "slow", "prompt": "Slow one", "timeout": 60},
        ]
    }
    seen_init = asyncio.Event()

    def on_event(task_id: str, event: AgentEvent) -> None:
        if task_id == "slow" and isinstance(event, InitEvent):
            seen_init.set()

    task = asyncio.ensure_future(
        run_tasks(spec, on_event=on_event, list_id="cancel-me", **served.options())
    )
    await asyncio.wait_for(seen_init.wait(), 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    state = get_task_list("cancel-me")
    assert state.status is ListStatus.CANCELLED
    assert state.tasks["quick"].status is TaskStatus.OK
    assert state.tasks["slow"].status is TaskStatus.CANCELLED
    assert state.tasks["slow"].runs[0].status == "cancelled"

    result = await resume_tasks("cancel-me", env=served.options()["env"])
    assert result.status is ListStatus.OK, result.to_dict()
    slow = result.tasks["slow"]
    assert slow.result == "slow finished"
    assert slow.runs[1].resumed_session == slow.runs[0].session_id
    assert served.count("Quick") == 1


async def test_an_exception_in_on_event_cancels_the_list_and_propagates(serve: Serve) -> None:
    served = serve(Script([Rule(answers=[Reply([Text("x")])])]))

    def on_event(task_id: str, event: AgentEvent) -> None:
        if isinstance(event, ResultEvent):
            raise RuntimeError("callback bug")

    with pytest.raises(RuntimeError, match="callback bug"):
        await run_tasks(
            {"tasks": [{"id": "a", "prompt": "A"}, {"id": "b", "prompt": "B"}]},
            on_event=on_event,
            list_id="buggy",
            **served.options(),
        )
    state = get_task_list("buggy")
    assert state.status is ListStatus.CANCELLED
    assert served.count("B") == 0


async def test_a_running_list_cannot_be_resumed_twice(serve: Serve) -> None:
    served = serve(Script([Rule(answers=[Reply([Text("x")], chunk_size=1, delay=0.2)])]))
    handle = start_tasks({"tasks": [{"id": "a", "prompt": "A"}]}, **served.options())
    with pytest.raises(TaskListBusy, match="being run by another process"):
        ListFolder(Path(handle.run_dir)).lock()
    with pytest.raises(TaskListBusy):
        await resume_tasks(handle.list_id)
    result = await handle.wait()
    assert result.ok


def test_sync_api_and_options_checked_up_front(serve: Serve) -> None:
    served = serve(Script([Rule(answers=[Reply([Text("sync ok")])])]))
    result = run_tasks_sync({"tasks": [{"id": "a", "prompt": "A"}]}, **served.options())
    assert result.ok
    assert result.tasks["a"].result == "sync ok"
    with pytest.raises(TypeError, match="unknown run option"):
        run_tasks_sync({"tasks": [{"id": "a", "prompt": "A"}]}, bogus=1)
    with pytest.raises(TypeError, match="set by the task runner"):
        run_tasks_sync({"tasks": [{"id": "a", "prompt": "A"}]}, resume="x")
    assert served.count("A") == 1


async def test_a_retry_after_a_timeout_continues_the_session(serve: Serve) -> None:
    served = serve(
        Script(
            [
                Rule(
                    match="^Long",
                    answers=[
                        # ~24 s: times out (10 s leaves a loaded machine time to boot the
                        # CLI, and the continuation time to reach the error: 5 s did not at
                        # a load of 12 with the suite on two workers)
                        Reply([Text("w" * 960)], chunk_size=2, delay=0.05),
                        Reply([Text("finished in the same session")]),
                    ],
                )
            ]
        )
    )
    spec = {"tasks": [{"id": "long", "prompt": "Long job", "timeout": 10, "retries": 1}]}
    result = await run_tasks(spec, **served.options())
    assert result.ok, result.tasks["long"].runs
    runs = result.tasks["long"].runs
    assert [r.status for r in runs] == ["timeout", "ok"]
    assert runs[1].resumed_session == runs[0].session_id
    assert result.tasks["long"].result == "finished in the same session"
    assert [r.turn for r in served.server.message_requests] == [0, 1]


@pytest.mark.slow  # a timeout of seconds
@pytest.mark.parametrize("resume_arg", [None, '["--resume={session_id}"]'])
async def test_a_retry_after_a_timeout_of_an_agent_that_cannot_resume_starts_afresh(
    tmp_path: Path, resume_arg: str | None
) -> None:
    """A command agent (a script here) whose first attempt hangs: the retry continues the
    session when the spec says how to resume, and otherwise starts afresh (it used to fail
    the task at once, retries unused)."""
    code = (
        "import json, os, sys, time\n"
        "print(json.dumps({'sid': 'S-1'}), flush=True)\n"
        "if not os.path.exists('hung-once'):\n"
        "    open('hung-once', 'w').close()\n"
        "    time.sleep(60)\n"
        "print(json.dumps({'t': 'args: ' + ' '.join(sys.argv[1:])}))\n"
    )
    (tmp_path / "agent.py").write_text(code)
    spec_file = tmp_path / "agent.toml"
    spec_file.write_text(
        f'command = ["{sys.executable}", "agent.py"]\noutput = "jsonl"\n'
        + (f"resume_arg = {resume_arg}\n" if resume_arg else "")
        + '[jsonl]\ntext = "t"\nsession = "sid"\n'
    )
    task = {"id": "a", "prompt": "x", "timeout": 3, "grace": 1, "retries": 1}
    spec = {"tasks": [task], "defaults": {"agent": "command", "agent_spec": str(spec_file)}}
    result = await run_tasks(spec, cwd=tmp_path, heartbeat_s=0)
    assert result.ok, result.tasks["a"]
    runs = result.tasks["a"].runs
    assert [r.status for r in runs] == ["timeout", "ok"]
    assert runs[0].session_id == "S-1"
    if resume_arg:
        assert runs[1].resumed_session == "S-1"
        assert result.tasks["a"].result == "args: --resume=S-1"
    else:
        assert runs[1].resumed_session is None
        assert result.tasks["a"].result == "args: "


async def test_a_task_whose_tool_calls_were_denied_fails(serve: Serve) -> None:
    """A denied Write is not the work the task asked for: the task fails, unless the list
    says denials are acceptable."""
    from cc_executor.testing import ToolUse

    served = serve(
        Script(
            [
                Rule(
                    answers=[
                        Reply([ToolUse("Write", {"file_path": "out.txt", "content": "x"})]),
                        Reply([Text("Wrote out.txt.")]),
                    ]
                )
            ]
        )
    )
    spec = {"tasks": [{"id": "write", "prompt": "Write out.txt"}]}
    result = await run_tasks(spec, **served.options())
    assert result.status is ListStatus.FAILED
    assert result.tasks["write"].status is TaskStatus.FAILED
    assert result.tasks["write"].run_status == "denied"
    accepted = {"tasks": [{"id": "write", "prompt": "Write out.txt", "accept_denials": True}]}
    result = await run_tasks(accepted, **served.options())
    assert result.status is ListStatus.OK, result.to_dict()


async def test_retries_n_means_n_more_attempts_and_says_why(serve: Serve) -> None:
    """retries: 1 is two runs in all. A retry after a timeout continues the session; when
    that continuation fails, the task has had its two attempts (it ran a third time,
    uncounted, so retries: N could mean 2N+1 runs)."""
    served = serve(
        Script(
            [
                Rule(
                    match="^Long",
                    answers=[
                        # ~24 s: times out (10 s leaves a loaded machine time to boot the
                        # CLI, and the continuation time to reach the error: 5 s did not at
                        # a load of 12 with the suite on two workers)
                        Reply([Text("w" * 960)], chunk_size=2, delay=0.05),
                        HttpErrorReply(400, message="scripted bad request"),  # the continuation
                    ],
                )
            ]
        )
    )
    spec = {"tasks": [{"id": "long", "prompt": "Long job", "timeout": 10, "retries": 1}]}
    events: list[TaskStateEvent] = []

    def on_event(task_id: str, event: AgentEvent) -> None:
        if isinstance(event, TaskStateEvent):
            events.append(event)

    result = await run_tasks(spec, on_event=on_event, **served.options())
    assert result.status is ListStatus.FAILED
    long = result.tasks["long"]
    assert [r.status for r in long.runs] == ["timeout", "error"]
    assert [r.reason for r in long.runs] == ["attempt 1 of 2", "attempt 2 of 2 after timeout"]
    assert long.runs[1].resumed_session == long.runs[0].session_id
    assert (long.error or "").startswith("could not continue the interrupted session: ")
    assert [r.turn for r in served.server.message_requests if r.turn == 0] == [0]
    states = [(e.state, e.reason) for e in events]
    assert states[0] == ("running", "attempt 1 of 2")
    assert states[1][0] == "retrying"
    assert (states[1][1] or "").startswith("attempt 1 of 2 ended timeout: ")
    assert (states[1][1] or "").endswith("; attempt 2 continues its session")
    assert states[2] == ("running", "attempt 2 of 2 after timeout")
    assert states[3][0] == "failed"
    assert len(states) == 4


async def test_a_task_without_a_cap_runs_alone_under_a_budget(serve: Serve) -> None:
    """It reserves the whole remainder: parallel tasks then run one at a time (each given
    what is left as its max_budget_usd), and the caller is warned."""
    served = serve(Script([Rule(answers=[Reply([Text("done")], chunk_size=1, delay=0.05)])]))
    spec = {"parallel": True, "tasks": [{"id": f"t{i}", "prompt": f"Task {i}"} for i in range(3)]}
    result = await run_tasks(spec, max_parallel=3, budget_usd=5, **served.options())
    assert result.status is ListStatus.OK, result.to_dict()
    walls = [(t.started_at or 0.0, t.ended_at or 0.0) for t in result.tasks.values()]
    assert max_overlap(walls) == 1
    reserved = [t.runs[0].reserved_usd for t in result.tasks.values()]
    assert reserved[0] == 5
    assert all(r is not None and 0 < r <= 5 for r in reserved)
    (warning,) = [w for w in result.warnings if "runs alone" in w]
    assert warning.startswith("budget_usd $5: task(s) t0, t1, t2 have no max_budget_usd")
    assert result.budget_spent_usd == pytest.approx(result.cost_usd or 0.0)


async def test_a_retry_reserves_again(serve: Serve) -> None:
    """A failed attempt's cost is spent: a retry starts only if what is left still covers
    the task's cap; else the task fails saying so."""
    from cc_executor.testing import ToolUse, Usage

    served = serve(
        Script(
            [
                Rule(
                    answers=[
                        Reply(
                            [ToolUse("Write", {"file_path": "out.txt", "content": "x"})],
                            usage=Usage(input_tokens=10, output_tokens=10),
                        ),
                        Reply(
                            [Text("Wrote it.")], usage=Usage(input_tokens=1000, output_tokens=1000)
                        ),
                    ]
                )
            ]
        )
    )
    # The Write is denied (no allowed_tools): the attempt fails, having cost about $0.024.
    spec = {
        "budget_usd": 0.05,
        "tasks": [{"id": "write", "prompt": "Write out.txt", "max_budget_usd": 0.03, "retries": 2}],
    }
    result = await run_tasks(spec, **served.options())
    write = result.tasks["write"]
    assert [r.status for r in write.runs] == ["denied"]
    assert write.runs[0].reserved_usd == 0.03
    assert result.status is ListStatus.BUDGET_EXCEEDED
    spent = result.budget_spent_usd or 0.0
    assert spent == pytest.approx(write.cost_usd or 0.0)
    assert (write.error or "").endswith(
        f"; attempt 2 not started: its reservation $0.0300 is more than the "
        f"${0.05 - spent:.4f} left of budget_usd $0.05"
    )
