"""Claude Code runs through the real CLI against the scripted model server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import textwrap
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor._agents._types import (
    AgentEvent,
    HeartbeatEvent,
    InitEvent,
    NoiseEvent,
    ResultEvent,
    RetryEvent,
    RunStartedEvent,
    RunStatus,
    TextDeltaEvent,
    ToolKind,
    ToolUseEvent,
    UnknownEvent,
)
from cc_executor._run._result import RunResult
from cc_executor._run._runner import run, start_run, stream
from cc_executor.client.cc_execute import (
    CCExecuteError,
    CCExecutorConfig,
    cc_execute,
    cc_execute_list,
    cc_execute_sync,
)
from cc_executor.testing import HttpErrorReply, ModelServer, Reply, Rule, Script, Text, ToolUse
from tests._means import claude_path
from tests._net import refused_port
from tests._wait import await_for, await_with_room, wait_for
from tests.run.conftest import Bed


def answer(text: str, **reply: Any) -> Script:
    return Script([Rule(answers=[Reply([Text(text)], **reply)])])


async def test_plain_answer_and_typed_events(bed: Any) -> None:
    events: list[AgentEvent] = []
    async with bed(answer("Hello there.")) as b:
        result = await run("Say hello", on_event=events.append, **b.options())
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Hello there."
    assert not result.partial
    assert result.session_id
    assert result.cost_usd is not None
    assert result.num_turns == 1
    assert result.exit_code == 0
    assert isinstance(events[1], InitEvent)
    assert isinstance(events[-1], ResultEvent)
    assert "".join(e.text for e in events if isinstance(e, TextDeltaEvent)) == "Hello there."
    assert result.event_log
    assert Path(result.event_log).stat().st_size > 0
    assert (Path(result.run_dir or "") / "prompt.txt").read_text() == "Say hello"


@pytest.mark.parametrize("size", [100_000, 2_000_000, 20_000_000])
async def test_large_answers_arrive_whole(bed: Any, size: int) -> None:
    text = "".join(f"{i:07d} the quick brown fox\n" for i in range(size // 28 + 1))[:size]
    async with bed(answer(text, chunk_size=max(1000, size // 200))) as b:
        result = await run("big", timeout=240, **b.options())
        assert result.status is RunStatus.OK, result.error
        assert len(result.result) == size
        assert result.result == text
        if size == 100_000:
            as_str = await cc_execute("big", CCExecutorConfig(options=b.options()))
            assert as_str == text


async def test_100k_json_answer_as_dict(bed: Any) -> None:
    payload = {"items": [f"item-{i:06d}" for i in range(8000)]}
    text = "Here it is:\n```json\n" + json.dumps(payload) + "\n```"
    assert len(text) > 100_000
    async with bed(answer(text, chunk_size=5000)) as b:
        data = await cc_execute("json", CCExecutorConfig(options=b.options()), json_mode=True)
    assert data["items"] == payload["items"]
    assert data["execution_uuid"]


async def test_timeout_returns_partial_text_and_leaves_nothing(bed: Any) -> None:
    slow = Reply([Text("word " * 200)], chunk_size=10, delay=0.25)
    async with bed(Script([Rule(answers=[slow])])) as b:
        # The timeout must fall after some words: more room if the CLI's start took it all.
        result, timeout = await await_with_room(
            lambda t: run("slow please", timeout=t, grace=2, **b.options()),
            5,
            lambda r: len(r.result) > 20,
        )
    assert result.status is RunStatus.TIMEOUT
    assert result.partial
    assert result.timeout_after == timeout
    assert result.session_id
    assert result.result.startswith("word word")
    assert 20 < len(result.result) < 1000
    assert result.process is not None
    assert result.process.pid is not None
    assert not psutil.pid_exists(result.process.pid) or (
        psutil.Process(result.process.pid).status() == psutil.STATUS_ZOMBIE
    )


async def test_compat_timeout_dict(bed: Any) -> None:
    slow = Reply(
        [Text('{"answer": "partial json", "more": "wor' + "d " * 600)], chunk_size=8, delay=0.2
    )
    async with bed(Script([Rule(answers=[slow])])) as b:
        options = b.options()
        options.pop("timeout", None)
        # The timeout must fall after the answer's first field: more room if the CLI's start
        # took it all.
        data, timeout = await await_with_room(
            lambda t: cc_execute(
                "slow json", CCExecutorConfig(timeout=t, options=options), json_mode=True
            ),
            4,
            lambda d: '"partial json",' in d["result"],
        )
    assert data["partial"] is True
    assert data["timeout_after"] == timeout
    assert data["result"].startswith('{"answer"')
    # The limit asked for, as timeout_after.
    assert f"timed out after {timeout:g} s" in data["error"]
    assert data["answer"] == "partial json"  # salvaged from the truncated JSON
    assert data["execution_uuid"]


@pytest.mark.parametrize(
    ("status", "expected", "fragment"),
    [
        (400, RunStatus.ERROR, "API error 400"),
        (429, RunStatus.RATE_LIMITED, "rate limited"),
        (500, RunStatus.ERROR, "API error 500"),
    ],
)
async def test_api_errors_map_to_statuses(
    bed: Any, status: int, expected: RunStatus, fragment: str
) -> None:
    script = Script([Rule(answers=[HttpErrorReply(status, message=f"scripted {status}")])])
    async with bed(script) as b:
        result = await run("fail", retries=0, **b.options())
    assert result.status is expected
    assert fragment in (result.error or "")
    assert f"scripted {status}" in (result.error or "")
    assert result.exit_code == 1


async def test_connection_refused(bed: Any) -> None:
    # The port stays bound through the run: a port closed first could be taken meanwhile by
    # a server of another test (xdist runs two at once), and then answer.
    async with bed(answer("unused")) as b:
        with refused_port() as port:
            env = {"ANTHROPIC_BASE_URL": f"http://127.0.0.1:{port}"}
            result = await run("hello", **b.options(env=env, retries=0))
    assert result.status is RunStatus.ERROR
    assert "Connection refused" in (result.error or "")


async def test_overload_is_retried_with_backoff(bed: Any) -> None:
    reply = Reply([Text("after retry")], errors_before=[HttpErrorReply(529)])
    events: list[AgentEvent] = []
    async with bed(Script([Rule(answers=[reply])])) as b:
        result = await run("retry me", on_event=events.append, retries=2, **b.options())
    assert result.status is RunStatus.OK, result.error
    assert result.result == "after retry"
    assert result.attempts == 2
    assert any(isinstance(e, RetryEvent) for e in events)
    # Issue 18: the retried attempt's logs are in the history with receipts too.
    from cc_executor._store import open_store, verify

    store = open_store()
    try:
        record = store.get(result.run_id)
    finally:
        store.close()
    assert record is not None
    names = {a.name for a in record.artifacts}
    assert {"prompt", "events", "stderr", "attempt-1 events", "attempt-1 stderr"} <= names
    assert verify(record, result.run_id).ok


async def test_retries_run_out_then_the_last_attempt_is_the_answer(bed: Any) -> None:
    reply = Reply([Text("too late")], errors_before=[HttpErrorReply(529), HttpErrorReply(529)])
    events: list[AgentEvent] = []
    async with bed(Script([Rule(answers=[reply])])) as b:
        result = await run("retry me", on_event=events.append, retries=1, **b.options())
    assert result.status is RunStatus.ERROR
    assert "529" in (result.error or "")
    assert result.attempts == 2
    retries = [e for e in events if isinstance(e, RetryEvent)]
    assert [(e.attempt, e.delay_s) for e in retries] == [(2, 0.1)]
    assert not any("not retried" in w for w in result.warnings)


async def test_no_retry_when_the_timeout_leaves_no_time(bed: Any) -> None:
    reply = Reply([Text("never")], errors_before=[HttpErrorReply(529)])
    async with bed(Script([Rule(answers=[reply])])) as b:
        options = {**b.options(), "retry_initial_delay": 60.0, "timeout": 30}
        result = await run("retry me", retries=2, **options)
    assert result.status is RunStatus.ERROR
    assert result.attempts == 1
    assert any("the timeout leaves no time" in w for w in result.warnings)


async def test_cancel_during_the_back_off_ends_at_once_and_keeps_the_failure(bed: Any) -> None:
    """A cancel while waiting to retry: no further CLI is started, no waiting out the
    back-off, and the error that was being retried is kept."""
    reply = Reply([Text("never")], errors_before=[HttpErrorReply(529), HttpErrorReply(529)])
    async with bed(Script([Rule(answers=[reply])])) as b:
        retried = asyncio.Event()

        def on_event(event: AgentEvent) -> None:
            if isinstance(event, RetryEvent):
                retried.set()

        options = {**b.options(), "retry_initial_delay": 30.0, "retry_max_delay": 30.0}
        handle = start_run("retry me", on_event=on_event, retries=3, **options)
        await asyncio.wait_for(retried.wait(), 30)
        loop = asyncio.get_running_loop()
        cancelled_at = loop.time()
        handle.cancel()
        result = await asyncio.wait_for(handle.wait(), 10)
        waited = loop.time() - cancelled_at
        requests = len(b.server.message_requests)
    # Liveness, not speed: at once (~0.1 s), not after the 30 s back-off (50x slack).
    assert waited < 5, waited
    assert result.status is RunStatus.CANCELLED
    assert result.partial
    assert result.attempts == 1
    assert requests == 1  # no second CLI was started
    assert result.api_error_status == 529
    assert "cancelled while waiting to retry" in (result.error or "")
    assert "529" in (result.error or "")


async def test_heartbeats_go_on_during_the_back_off(bed: Any) -> None:
    reply = Reply([Text("after retry")], errors_before=[HttpErrorReply(529)])
    events: list[AgentEvent] = []
    async with bed(Script([Rule(answers=[reply])])) as b:
        options = {**b.options(), "retry_initial_delay": 1.5, "heartbeat_s": 0.25}
        result = await run("retry me", on_event=events.append, retries=1, **options)
    assert result.status is RunStatus.OK, result.error
    assert result.attempts == 2
    start = next(i for i, e in enumerate(events) if isinstance(e, RetryEvent))
    waiting = [
        e
        for e in events[start:]
        if isinstance(e, HeartbeatEvent) and e.last_activity.startswith("waiting")
    ]
    assert len(waiting) >= 3, [e.last_activity for e in events if isinstance(e, HeartbeatEvent)]
    assert "to retry (attempt 1 failed)" in waiting[0].last_activity


async def test_no_retry_after_a_tool_ran(bed: Any) -> None:
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Write", {"file_path": "a.txt", "content": "x"})]),
                    HttpErrorReply(529),
                ]
            )
        ]
    )
    async with bed(script) as b:
        result = await run("tool then fail", retries=2, allowed_tools=["Write"], **b.options())
    assert result.status is RunStatus.ERROR
    assert result.attempts == 1
    assert any("a tool already ran" in w for w in result.warnings)


async def test_write_tool_really_writes_and_is_listed(bed: Any) -> None:
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Write", {"file_path": "out/hello.txt", "content": "hi\n"})]),
                    Reply([Text("Done.")]),
                ]
            )
        ]
    )
    events: list[AgentEvent] = []
    async with bed(script) as b:
        result = await run(
            "write it", allowed_tools=["Write"], on_event=events.append, **b.options()
        )
        written = b.workdir / "out" / "hello.txt"
        assert result.status is RunStatus.OK, result.error
        assert written.read_text() == "hi\n"
        assert result.files == [str(written)]
    assert result.tool_calls == 1
    assert any(isinstance(e, ToolUseEvent) and e.name == "Write" for e in events)


async def test_tool_calls_carry_their_normalized_kind(bed: Any) -> None:
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": "printf ran > shell.txt"})]),
                    Reply([ToolUse("Write", {"file_path": "notes.txt", "content": "a\nb\n"})]),
                    Reply(
                        [
                            ToolUse(
                                "Edit",
                                {"file_path": "notes.txt", "old_string": "b", "new_string": "B"},
                            )
                        ]
                    ),
                    Reply([ToolUse("Read", {"file_path": "notes.txt"})]),
                    Reply([ToolUse("Grep", {"pattern": "a"})]),
                    Reply([Text("Done.")]),
                ]
            )
        ]
    )
    events: list[AgentEvent] = []
    async with bed(script) as b:
        result = await run(
            "use the tools",
            allowed_tools=["Bash", "Write", "Edit", "Read", "Grep"],
            on_event=events.append,
            **b.options(),
        )
        assert result.status is RunStatus.OK, result.error
        assert (b.workdir / "shell.txt").read_text() == "ran"
        assert (b.workdir / "notes.txt").read_text() == "a\nB\n"
    uses = [e for e in events if isinstance(e, ToolUseEvent)]
    assert [(u.name, u.kind) for u in uses] == [
        ("Bash", ToolKind.EXECUTE),
        ("Write", ToolKind.WRITE),
        ("Edit", ToolKind.EDIT),
        ("Read", ToolKind.READ),
        ("Grep", ToolKind.SEARCH),
    ]
    # The JSON form (service, WebSocket, SSE) carries it as a string, the raw object too.
    assert [u.to_dict()["kind"] for u in uses] == ["execute", "write", "edit", "read", "search"]
    assert all(u.raw is not None and u.raw["type"] == "assistant" for u in uses)


async def test_permission_denial_is_reported(bed: Any) -> None:
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Write", {"file_path": "nope.txt", "content": "x"})]),
                    Reply([Text("I could not write it.")]),
                ]
            )
        ]
    )
    async with bed(script) as b:
        result = await run("write without permission", **b.options())
        assert not (b.workdir / "nope.txt").exists()
        accepted = await run("write without permission", accept_denials=True, **b.options())
    # The agent answered, but the work its refused call was for was not done: never ok.
    assert result.status is RunStatus.DENIED
    assert not result.ok
    assert result.error is not None
    assert "1 tool call(s) were denied (Write)" in result.error
    assert "--allowed-tools Write" in result.error
    assert "--accept-denials" in result.error
    assert result.files == []
    assert [d["tool_name"] for d in result.permission_denials] == ["Write"]
    assert any("permission denied for: Write" in w for w in result.warnings)
    # Where denials are expected, the run may end ok; the warning stays.
    assert accepted.status is RunStatus.OK, accepted.error
    assert any("permission denied for: Write" in w for w in accepted.warnings)


async def test_compat_client_warns_of_denials(bed: Any) -> None:
    """cc_execute returns the answer, as the original did, but warns at the caller's line
    and marks the dict mode's result as an error."""
    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Write", {"file_path": "nope.txt", "content": "x"})]),
                    Reply([Text('Done: {"written": true}')]),
                ]
            )
        ]
    )
    async with bed(script) as b:
        config = CCExecutorConfig(options=b.options())
        with pytest.warns(UserWarning, match=r"were denied \(Write\)") as caught:
            text = await cc_execute("write it", config)
        with pytest.warns(UserWarning, match="were denied"):
            data = await cc_execute("write it", config, json_mode=True)
    assert text == 'Done: {"written": true}'
    assert caught[0].filename == __file__
    assert data["is_error"] is True
    assert [d["tool_name"] for d in data["permission_denials"]] == ["Write"]
    assert "--allowed-tools Write" in data["error"]


@pytest.mark.parametrize(
    "text",
    [
        'Sure! Here you go:\n```json\n{"a": 1, "b": [1, 2]}\n```\nAnything else?',
        'The answer is {"a": 1, "b": [1, 2]} as requested.',
        '{"a": 1, "b": [1, 2,],}',
    ],
)
async def test_json_answers_are_parsed(bed: Any, text: str) -> None:
    async with bed(answer(text)) as b:
        result = await run("json", json_mode=True, **b.options())
    assert result.status is RunStatus.OK, result.error
    assert result.json == {"a": 1, "b": [1, 2]}


async def test_truncated_json_in_a_finished_answer_is_repaired(bed: Any) -> None:
    """An answer that ends inside its JSON (the model's output limit) still gives the
    complete keys, with a warning saying it was cut off; str and dict forms alike."""
    from cc_executor._run._jsonmode import CUT_OFF_WARNING

    cut = 'Here is the data: {"a": 1, "b": [1, 2, 3], "c": {"d": "some te'
    async with bed(answer(cut)) as b:
        result = await run("json", json_mode=True, **b.options())
        data = await cc_execute("json", CCExecutorConfig(options=b.options()), json_mode=True)
    assert result.status is RunStatus.OK, result.error
    assert not result.partial
    assert isinstance(result.json, dict)
    assert result.json["a"] == 1
    assert result.json["b"] == [1, 2, 3]
    assert CUT_OFF_WARNING in result.warnings
    assert result.json_error is None
    assert data["a"] == 1
    assert data["b"] == [1, 2, 3]
    assert data["execution_uuid"]


async def test_json_mode_without_json_is_an_error(bed: Any) -> None:
    async with bed(answer("No JSON here, sorry.")) as b:
        result = await run("json", json_mode=True, **b.options())
    assert result.status is RunStatus.ERROR
    assert (result.error or "").startswith("json_mode: ")
    assert result.result == "No JSON here, sorry."


async def test_big_prompts_and_shell_metacharacters_arrive_byte_for_byte(bed: Any) -> None:
    tricky = "$(rm -rf /) `id` ; | & > < * ? ~ ' \" \\ \n\t 🙂 ünïcödé $HOME %s {} [] !! #"
    two_mb = tricky + "\n" + ("0123456789abcdef" * (2 * 1024 * 1024 // 16))
    async with bed(answer("ok")) as b:
        for prompt in (tricky, two_mb):
            result = await run(prompt, **b.options())
            assert result.status is RunStatus.OK, result.error
            assert b.server.message_requests[-1].prompt == prompt


async def test_five_mb_prompt_works(bed: Any) -> None:
    """All 5 MB go on stdin (no argv limit, no shell) and reach the model byte for byte.

    Claude Code checks a prompt against the context window it believes the model has before
    sending anything; 5 MB is over its default, so the scripted model's window is declared
    with ``max_context_tokens``, as for any model whose window the CLI does not know."""
    prompt = "0123456789abcdef" * (5 * 1024 * 1024 // 16)
    async with bed(answer("ok")) as b:
        result = await run(prompt, max_context_tokens=4_000_000, **b.options())
        requests = b.server.message_requests
    assert result.status is RunStatus.OK, result.error
    assert result.result == "ok"
    assert len(requests) == 1
    assert requests[0].prompt == prompt


async def test_prompt_over_the_assumed_window_is_a_specific_error(bed: Any) -> None:
    prompt = "0123456789abcdef" * (5 * 1024 * 1024 // 16)
    async with bed(answer("ok")) as b:
        result = await run(prompt, **b.options())
        requests = b.server.message_requests
    assert result.process is not None
    # The whole prompt reached the CLI: its stdin is the saved prompt file (issue 18: not
    # a pipe fed by the event loop), all 5 MiB of it.
    assert result.run_dir is not None
    assert (Path(result.run_dir) / "prompt.txt").stat().st_size == len(prompt)
    assert requests == []  # refused by the CLI itself
    assert result.status is RunStatus.ERROR
    assert (result.error or "").startswith("Prompt is too long: Claude Code refused the prompt")
    assert "max_context_tokens" in (result.error or "")
    assert result.attempts == 1  # not retried: another attempt cannot help


async def test_unknown_events_and_garbage_lines_do_not_break_a_run(
    bed: Any, tmp_path: Path
) -> None:
    """The real CLI behind a wrapper that injects garbage and an unknown event type."""
    wrapper = tmp_path / "claude-noisy"
    wrapper.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import subprocess, sys
            sys.stdout.buffer.write(b"not json at all \\x00\\xff\\n")
            sys.stdout.buffer.write(b'{{"type": "brand_new_event", "x": 1}}\\n[1, 2]\\n\\n')
            sys.stdout.flush()
            sys.exit(subprocess.call([{os.environ.get("CC_EXECUTOR_CLAUDE", "")!r} or "claude",
                                      *sys.argv[1:]]))
            """
        )
    )
    wrapper.chmod(0o755)
    events: list[AgentEvent] = []
    async with bed(answer("still fine")) as b:
        options = b.options(claude_path=str(wrapper))
        if not os.environ.get("CC_EXECUTOR_CLAUDE"):
            options["env"]["CC_EXECUTOR_CLAUDE"] = b.claude
            wrapper.write_text(wrapper.read_text().replace("''", repr(b.claude)))
        result = await run("hi", on_event=events.append, **options)
    assert result.status is RunStatus.OK, result.error
    assert result.result == "still fine"
    noise = [e for e in events if isinstance(e, NoiseEvent)]
    assert [n.text for n in noise][:2] == ["not json at all \x00\ufffd", "[1, 2]"]
    assert any(isinstance(e, UnknownEvent) and e.event_type == "brand_new_event" for e in events)


async def test_max_turns(bed: Any) -> None:
    tool = Reply([ToolUse("Bash", {"command": "true"})])
    async with bed(Script([Rule(answers=[tool, tool, tool, tool])])) as b:
        result = await run("loop", max_turns=1, allowed_tools=["Bash"], **b.options())
    assert result.status is RunStatus.MAX_TURNS
    assert "turn limit" in (result.error or "")


async def test_resuming_an_unknown_session_says_why(bed: Any) -> None:
    # The CLI's result line has no "result", only "errors": the error said nothing but
    # "Claude Code reported an error: error_during_execution".
    unknown = "00000000-0000-4000-8000-000000000000"
    async with bed(answer("x")) as b:
        result = await run("x", resume=unknown, **b.options())
    assert result.status is RunStatus.ERROR
    assert result.error == (
        f"Claude Code reported an error: No conversation found with session ID: {unknown}"
    )


async def test_bypass_permissions_as_root_gives_a_hint(bed: Any) -> None:
    if os.geteuid() != 0:
        pytest.skip("the CLI refuses bypassPermissions only as root")
    async with bed(answer("x")) as b:
        result = await run("x", permission_mode="bypassPermissions", **b.options())
    assert result.status is RunStatus.CRASHED
    assert "IS_SANDBOX=1" in (result.error or "")


async def test_missing_cli_says_how_to_install(tmp_path: Path) -> None:
    result = await run("x", claude_path=str(tmp_path / "no-claude"))
    assert result.status is RunStatus.SPAWN_FAILED
    assert "npm install -g @anthropic-ai/claude-code" in (result.error or "")


async def test_stream_ends_with_the_result_and_heartbeats_flow(bed: Any) -> None:
    slow = Reply([Text("tick " * 8)], chunk_size=5, delay=0.3)
    items: list[Any] = []
    async with bed(Script([Rule(answers=[slow])])) as b:
        options = b.options(heartbeat_s=0.5)
        async for item in stream("slow", **options):
            items.append(item)
    assert isinstance(items[-1], RunResult)
    assert items[-1].status is RunStatus.OK
    assert any(isinstance(i, HeartbeatEvent) for i in items)


async def test_cancel_through_the_handle_keeps_partial_text(bed: Any) -> None:
    slow = Reply([Text("abc " * 500)], chunk_size=4, delay=0.1)
    texts: list[str] = []

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, TextDeltaEvent):
            texts.append(event.text)

    async with bed(Script([Rule(answers=[slow])])) as b:
        handle = start_run("slow", grace=2, on_event=on_event, **b.options())
        await await_for(lambda: "".join(texts).startswith("abc abc"), what="the answer's start")
        assert handle.pause()
        await asyncio.sleep(0.5)  # paused for a while: the behaviour under test
        assert handle.resume()
        handle.cancel()
        result = await handle.wait()
    assert result.status is RunStatus.CANCELLED
    assert result.partial
    assert result.result.startswith("abc abc")


async def test_cancel_after_a_huge_block_keeps_it_and_the_text_so_far(bed: Any) -> None:
    """The partial answer is rebuilt from the event log; there the finished 3 MB block is one
    line longer than the framing budget, read back in pieces."""
    big = "".join(f'{i:07d} "quoted" \u00e9\U0001f600\n' for i in range(3_000_000 // 22))
    # Long enough (40 pieces, 0.2 s apart) that a loaded machine still cancels mid-tail.
    tail = "tock " * 2_000_000
    reply = Reply([Text(big), Text(tail)], chunk_size=1 << 18, delay=0.2)
    cancel_now = asyncio.Event()

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, TextDeltaEvent) and event.index == 1:
            cancel_now.set()

    async with bed(Script([Rule(answers=[reply])])) as b:
        handle = start_run("huge then slow", on_event=on_event, grace=2, **b.options())
        await asyncio.wait_for(cancel_now.wait(), 60)
        handle.cancel()
        result = await handle.wait()
    assert result.status is RunStatus.CANCELLED
    assert result.partial
    assert result.result.startswith(big + "\n\n")
    rest = result.result[len(big) + 2 :]
    assert rest
    assert tail.startswith(rest)


async def test_compat_raises_specific_errors(bed: Any) -> None:
    async with bed(Script([Rule(answers=[HttpErrorReply(400, message="bad request here")])])) as b:
        with pytest.raises(CCExecuteError, match="bad request here") as info:
            await cc_execute("x", CCExecutorConfig(options={**b.options(), "retries": 0}))
    assert info.value.result.status is RunStatus.ERROR


async def test_claude_runs_are_recorded_and_verifiable(bed: Any, cc_home: Path) -> None:
    from cc_executor._store import Query, open_store, verify

    async with bed(answer("Recorded answer.")) as b:
        result = await run("remember me", **b.options())
    store = open_store()
    (record,) = store.query(Query(kind="run"))
    store.close()
    assert record.id == result.run_id
    assert record.status == "ok"
    assert record.agent == "claude"
    assert record.session_id == result.session_id
    assert record.cost_usd == result.cost_usd
    assert record.prompt_preview == "remember me"
    assert record.result_preview == "Recorded answer."
    assert {a.name for a in record.artifacts} == {"prompt", "events", "stderr"}
    assert verify(record, record.id).ok
    Path(record.run_dir or "", "prompt.txt").write_text("a different prompt")
    assert not verify(record, record.id).unaltered


async def test_compat_original_parameters(bed: Any, tmp_path: Path, capsys: Any) -> None:
    """The original cc_execute's other parameters: each has an effect or a warning, none is
    a TypeError (they used to be taken for run options)."""
    messages: list[str] = []

    async def progress(message: str) -> None:
        messages.append(message)

    responses, transcripts = tmp_path / "responses", tmp_path / "transcripts"
    config_kwargs: dict[str, Any] = {
        "stream_output": True,
        "response_dir": responses,
        "transcript_dir": transcripts,
    }
    async with bed(answer('Done: {"a": 1}')) as b:
        config = CCExecutorConfig(timeout=45, options=b.options(), **config_kwargs)
        with pytest.warns(DeprecationWarning, match="return_json is deprecated"):
            data = await cc_execute(
                "go", config, stream=False, return_json=True, progress_callback=progress
            )
        with pytest.warns(UserWarning, match="not supported") as caught:
            text = await cc_execute("go", config, generate_report=True, amend_prompt=True)
    assert data["a"] == 1
    assert text == 'Done: {"a": 1}'
    # stream=False kept the first call quiet; the second one streamed the answer.
    assert capsys.readouterr().out == 'Done: {"a": 1}\n'
    assert messages[0] == "Starting Claude execution with a timeout of 45 s..."
    assert messages[-1] == "Claude execution completed"
    warned = [str(w.message) for w in caught]
    assert any("amend_prompt is not supported" in w for w in warned)
    assert any(
        "generate_report is not supported" in w and "cc-executor history" in w for w in warned
    )
    # The warnings name the caller's line, not ours.
    assert all(w.filename == __file__ for w in caught)
    saved = sorted(responses.glob("cc_execute_*.json"))
    assert len(saved) == 2
    first = next(json.loads(p.read_text()) for p in saved if data["execution_uuid"] in p.name)
    assert list(first)[-1] == "execution_uuid"
    assert first["execution_uuid"] == data["execution_uuid"]
    assert first["task"] == "go"
    assert first["output"] == 'Done: {"a": 1}'
    assert first["return_code"] == 0
    assert len(list(transcripts.glob("claude_*.md"))) == 2


async def test_compat_validation(bed: Any) -> None:
    messages: list[str] = []
    script = Script(
        [
            Rule(match="^Check this", answers=[Reply([Text('{"is_valid": true, "issues": []}')])]),
            Rule(match="^Judge", answers=[Reply([Text('{"is_valid": false}')])]),
            Rule(match="^Chat", answers=[Reply([Text("Looks fine to me.")])]),
            Rule(answers=[Reply([Text('```json\n{"code": "x = {1}"}\n```')])]),
        ]
    )
    async with bed(script) as b:
        config = CCExecutorConfig(options=b.options())
        template = 'Check this: {response}. Answer {"is_valid": bool}'
        data = await cc_execute(
            "write code",
            config,
            json_mode=True,
            validation_prompt=template,
            progress_callback=messages.append,
        )
        prompts = [r.prompt or "" for r in b.server.message_requests]
        refused = await cc_execute("write code", config, json_mode=True, validation_prompt="Judge")
        # A validator without JSON: the main answer is kept, is_valid is False.
        chat = await cc_execute("write code", config, json_mode=True, validation_prompt="Chat")
        with pytest.raises(ValueError, match="needs json_mode"):
            await cc_execute("x", config, validation_prompt="{response}")
        assert len(b.server.message_requests) == 6  # the refused call ran nothing
    assert data["code"] == "x = {1}"
    assert data["validation"]["issues"] == []
    assert data["is_valid"] is True
    # The answer's JSON went into the prompt as data, the template's other braces as written.
    inserted = json.dumps({"code": "x = {1}", "execution_uuid": data["execution_uuid"]})
    assert f'Check this: {inserted}. Answer {{"is_valid": bool}}' in prompts
    assert messages.count("Claude execution completed") == 2  # the answer, the validation
    assert refused["is_valid"] is False
    assert refused["code"] == "x = {1}"
    assert chat["is_valid"] is False
    assert chat["code"] == "x = {1}"
    assert "no JSON" in chat["validation"]["error"] or "json_mode" in chat["validation"]["error"]


async def test_compat_predicted_timeout(bed: Any) -> None:
    """The history keeps the model Claude Code reports; a call without a model still finds
    the earlier runs, and an explicit timeout wins over the prediction."""
    messages: list[str] = []
    async with bed(answer("ok")) as b:
        config = CCExecutorConfig(options=b.options())
        await cc_execute(
            "first", config, agent_predict_timeout=True, progress_callback=messages.append
        )
        for _ in range(4):
            await cc_execute("again", config)
        await cc_execute(
            "fifth", config, agent_predict_timeout=True, progress_callback=messages.append
        )
        fixed = CCExecutorConfig(options={**b.options(), "timeout": 77})
        await cc_execute(
            "own", fixed, agent_predict_timeout=True, progress_callback=messages.append
        )
    starts = [m for m in messages if m.startswith("Starting")]
    assert starts[0].startswith("Starting Claude execution with a timeout of 600 s (predicted:")
    assert "0 similar past run(s)" in starts[0]
    # Five runs of ~0.5 s: 1.5 x p95, raised to the 30 s floor.
    assert starts[1].startswith("Starting Claude execution with a timeout of 30 s (predicted:")
    assert "5 similar past runs" in starts[1]
    assert starts[2] == "Starting Claude execution with a timeout of 77 s..."


async def test_compat_list_concurrent(bed: Any) -> None:
    def slow(word: str) -> Reply:  # 20 chunks 0.25 s apart: at least 5 s per answer
        return Reply([Text(" ".join([word] * 20))], chunk_size=len(word) + 1, delay=0.25)

    script = Script(
        [
            Rule(match="^bad", answers=[HttpErrorReply(400, message="scripted refusal")]),
            *(Rule(match=f"^{w}", answers=[slow(w)]) for w in ("one", "two", "three")),
        ]
    )
    async with bed(script) as b:
        config = CCExecutorConfig(options=b.options(retries=0))
        answers = await cc_execute_list(["one", "two", "three"], config, sequential=False)
        times = sorted(r.time for r in b.server.message_requests)
        with pytest.raises(CCExecuteError, match="API error 400") as caught:
            await cc_execute_list(["one", "bad", "two"], config, sequential=False)
    assert answers == [" ".join([w] * 20) for w in ("one", "two", "three")]  # in order
    # All three started before the first one's answer could have ended: the server's own
    # pacing makes an answer last at least 5 s, however fast or loaded the machine.
    assert times[2] - times[0] < 5
    outcomes = caught.value.outcomes  # type: ignore[attr-defined]
    assert isinstance(outcomes[1], CCExecuteError)
    assert outcomes[0] == " ".join(["one"] * 20)
    assert outcomes[2] == " ".join(["two"] * 20)


@pytest.mark.cli
def test_compat_sync_warns_at_the_callers_line(tmp_path: Path) -> None:
    claude = claude_path()
    assert claude is not None  # the cli marker's probe skipped the test otherwise
    (tmp_path / "work").mkdir()
    (tmp_path / "home").mkdir()
    with ModelServer(answer('{"a": 2}')) as server:
        b = Bed(server, tmp_path / "work", tmp_path / "home", claude)
        with pytest.warns(DeprecationWarning, match="return_json is deprecated") as caught:
            data = cc_execute_sync("go", CCExecutorConfig(options=b.options()), return_json=True)
    assert data["a"] == 2
    assert [w.filename for w in caught] == [__file__]


def _recorded() -> list[Any]:
    from cc_executor._store import Query, open_store

    store = open_store()
    try:
        return store.query(Query(kind="run"))
    finally:
        store.close()


def _claude_pids_in(cwd: Path) -> list[int]:
    """CLI processes still running in ``cwd`` (checked with psutil, not our own sweep)."""
    pids = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        with contextlib.suppress(psutil.Error):
            if proc.info["cwd"] == str(cwd) and "--output-format=stream-json" in (
                proc.info["cmdline"] or []
            ):
                pids.append(proc.pid)
    return pids


async def test_a_heartbeat_callback_that_raises_stops_the_run(bed: Any, cc_home: Path) -> None:
    """As for any other event: the run stops, the CLI is gone, the caller gets the
    exception, and the history does not keep the run as running."""

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, HeartbeatEvent):
            raise LookupError("callback broke")

    slow = Reply([Text("word " * 600)], chunk_size=5, delay=0.1)  # about 60 s
    async with bed(Script([Rule(answers=[slow])])) as b:
        started = asyncio.get_running_loop().time()
        with pytest.raises(LookupError, match="callback broke"):
            await asyncio.wait_for(run("slow", on_event=on_event, **b.options(heartbeat_s=0.3)), 90)
        # Stopped at the first heartbeat, not after the whole answer (the exception used
        # to wait for the run's end, and to skip closing the CLI when the run was stopped).
        # Liveness, not speed: ~2 s with the CLI's start, not the answer's 60 s.
        assert asyncio.get_running_loop().time() - started < 30
        assert not _claude_pids_in(b.workdir)
    (record,) = _recorded()
    assert record.status == "error"
    assert "LookupError: callback broke" in (record.error or "")
    # Issue 18 L9: the files of a run ended by an exception exist, and get receipts.
    assert {"prompt", "events", "stderr"} <= {a.name for a in record.artifacts}


async def test_a_cancelled_run_is_closed_in_the_history(bed: Any, cc_home: Path) -> None:
    slow = Reply([Text("word " * 100)], chunk_size=5, delay=0.1)
    async with bed(Script([Rule(answers=[slow])])) as b:
        task = asyncio.ensure_future(run("slow", **b.options()))
        await await_for(lambda: b.server.message_requests, what="the CLI's request")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not _claude_pids_in(b.workdir)
    (record,) = _recorded()
    assert record.status == "cancelled"
    assert record.ended_at is not None
    assert {"prompt", "events", "stderr"} <= {a.name for a in record.artifacts}


async def test_a_slow_callback_does_not_hold_the_result_past_the_timeout(bed: Any) -> None:
    async def on_event(event: AgentEvent) -> None:
        await asyncio.sleep(0.5)

    # Many small deltas, fast: the callback falls far behind the CLI.
    quick = Reply([Text("word " * 400)], chunk_size=5, delay=0.005)
    async with bed(Script([Rule(answers=[quick])])) as b:
        started = asyncio.get_running_loop().time()
        # 15 s: time for the CLI to finish even on a loaded machine (3 s was not).
        result = await run("many", on_event=on_event, timeout=15, grace=1, **b.options())
        took = asyncio.get_running_loop().time() - started
    # Liveness, not speed: ~17 s (timeout + the callback's 2 s); before, the 400 queued
    # events at 0.5 s each, 200 s.
    assert took < 60
    assert result.status is RunStatus.OK  # the CLI itself finished in time
    assert result.result == "word " * 400
    assert any("were not passed to on_event" in w for w in result.warnings)


async def test_compat_a_timed_out_validation_is_not_a_pass(bed: Any) -> None:
    cut = Reply(
        [Text('{"is_valid": true, "note": "' + "still thinking " * 200)], chunk_size=8, delay=0.1
    )
    script = Script(
        [
            Rule(match="^Judge", answers=[cut]),
            Rule(answers=[Reply([Text('{"code": "x = 1"}')])]),
        ]
    )
    async with bed(script) as b:
        options = b.options()
        # Both runs must start, and the judge's first field come, within the timeout: more
        # room if the CLIs' starts took it all.
        data, _ = await await_with_room(
            lambda t: cc_execute(
                "write code",
                CCExecutorConfig(timeout=t, options=options),
                json_mode=True,
                validation_prompt="Judge {response}",
            ),
            4,
            lambda d: d.get("code") == "x = 1" and (d.get("validation") or {}).get("is_valid"),
        )
    assert data.get("code") == "x = 1", data
    assert data["validation"]["partial"] is True
    assert data["validation"]["is_valid"] is True  # salvaged from the cut-off JSON
    assert data["is_valid"] is False


async def test_the_prompt_is_a_file_the_cli_can_read_at_once(bed: Any) -> None:
    """Issue 18: Claude Code gives up on a stdin that stays empty for 3 s. A prompt piped
    from the event loop waited for the loop, which 50 runs starting at once kept busy for
    seconds. The CLI's stdin is now the saved prompt file, readable from the spawn on, so
    a caller that blocks its loop right after the start loses nothing."""
    import time

    stdin_of: list[str] = []

    def on_event(event: Any) -> None:
        if isinstance(event, RunStartedEvent) and event.pid is not None:
            stdin_of.append(os.readlink(f"/proc/{event.pid}/fd/0"))
            time.sleep(4)  # the caller's loop, blocked past the CLI's 3 s wait for stdin

    async with bed(answer("Here.")) as b:
        result = await run("hello", on_event=on_event, **b.options())
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Here."
    assert result.run_dir is not None
    assert stdin_of == [str(Path(result.run_dir) / "prompt.txt")]


@pytest.mark.slow
async def test_a_prompt_not_delivered_in_time_is_ours_not_the_agents_crash(bed: Any) -> None:
    """Issue 18: when a piped prompt (the fallback when it cannot be saved as a file) was
    not written within the 3 s Claude Code waits for its stdin, the run said ``crashed``,
    the agent's fault. It is cc-executor's: ``spawn_failed`` (nothing ran), retryable."""
    from cc_executor._agents import get_adapter
    from cc_executor._engine import SupervisedProcess
    from cc_executor._run._options import RunOptions

    adapter = get_adapter("claude")
    async with bed(answer("Never asked.")) as b:
        options = RunOptions.from_kwargs(b.options())
        argv = adapter.command(b.claude, options)
        proc = SupervisedProcess(
            argv, stdin=b"hello", cwd=b.workdir, extra_env=options.process_env(), timeout=60
        )
        await proc.start()
        pid = proc.pid
        assert pid is not None
        # The loop that would write the pipe, blocked until the CLI gave up on its stdin
        # and exited (a zombie: only this loop reaps it). Not a fixed time: the CLI's own
        # start (before its 3 s wait begins) took over a second on a loaded machine, and
        # past the 8 s this test slept, the prompt arrived and the run went on.
        wait_for(lambda: _exited(pid), timeout=120, what="the CLI gave up on stdin")
        process = await proc.wait()
        assert not b.server.message_requests
    assert "no stdin data received" in process.stderr_tail
    outcome = adapter.outcome(process, None)
    assert outcome.status is RunStatus.SPAWN_FAILED, outcome
    assert outcome.retryable
    assert outcome.error is not None
    assert "cc-executor's failure" in outcome.error


def _exited(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


async def test_a_used_run_id_is_refused_before_anything_runs(bed: Any) -> None:
    """Issue 18: reusing a run id failed at the spawn (File exists) and overwrote the
    earlier run's history record with that failure."""
    from cc_executor._store import open_store

    async with bed(answer("First.")) as b:
        first = await run("hello", run_id="reused-id", **b.options())
        assert first.status is RunStatus.OK, first.error
        asked = len(b.server.message_requests)
        with pytest.raises(ValueError, match="run_id reused-id is already used"):
            await run("hello again", run_id="reused-id", **b.options())
        assert len(b.server.message_requests) == asked  # no CLI was started for it
    store = open_store()
    try:
        record = store.get("reused-id")
    finally:
        store.close()
    assert record is not None
    assert record.status == "ok"


async def test_files_changed_by_bash_are_listed_in_a_git_repository(bed: Any) -> None:
    """``files``: the tool events, plus what ``git status`` shows changed during the run
    (a Bash command's file); a file already changed before the run is not listed."""
    import subprocess

    script = Script(
        [
            Rule(
                answers=[
                    Reply([ToolUse("Bash", {"command": "mkdir -p gen && echo x > gen/made.txt"})]),
                    Reply([ToolUse("Write", {"file_path": "note.txt", "content": "n\n"})]),
                    Reply([Text("Done.")]),
                ]
            )
        ]
    )
    async with bed(script) as b:
        subprocess.run(["git", "init", "-q", str(b.workdir)], check=True)
        (b.workdir / "untouched.txt").write_text("there before the run\n")
        result = await run("make files", allowed_tools=["Bash", "Write"], **b.options())
        assert result.status is RunStatus.OK, result.error
        made = b.workdir / "gen" / "made.txt"
        assert made.read_text() == "x\n"
        assert sorted(result.files) == sorted([str(b.workdir / "note.txt"), str(made)])
        # Outside git: the tool events only.
        outside = b.workdir.parent / "plain"
        outside.mkdir()
        plain = await run(
            "make files", allowed_tools=["Bash", "Write"], **{**b.options(), "cwd": str(outside)}
        )
        assert (outside / "gen" / "made.txt").is_file()
        assert plain.files == [str(outside / "note.txt")]
