"""Codex CLI runs (``agent="codex"``) through the real CLI against the scripted model server."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cc_executor._agents._types import (
    AgentEvent,
    ApiRetryEvent,
    RunStatus,
    ToolKind,
    ToolUseEvent,
)
from cc_executor._run._runner import run, start_run
from cc_executor.testing import (
    HttpErrorReply,
    ModelServer,
    Reply,
    Rule,
    Script,
    Text,
    ToolUse,
    Usage,
)
from tests._means import codex_path
from tests._net import refused_port
from tests._procs import pids_in, run_cgroups, running_in
from tests._wait import await_for, await_with_room

pytestmark = [pytest.mark.cli, pytest.mark.slow]


@dataclass
class CodexBed:
    server: ModelServer
    workdir: Path
    home: Path
    codex: str

    def options(self, **extra: Any) -> dict[str, Any]:
        env = {"CODEX_HOME": str(self.home), "OPENAI_API_KEY": "sk-cc-executor-testing"}
        env.update(extra.pop("env", {}))
        return {
            "agent": "codex",
            "agent_path": self.codex,
            "base_url": f"{self.server.url}/v1",
            "cwd": self.workdir,
            "env": env,
            "heartbeat_s": 0,
            "retry_initial_delay": 0.1,
            **extra,
        }


@asynccontextmanager
async def codex_bed(tmp_path: Path, script: Script) -> AsyncIterator[CodexBed]:
    workdir, home = tmp_path / "work", tmp_path / "codex-home"
    workdir.mkdir(exist_ok=True)
    home.mkdir(exist_ok=True)
    async with ModelServer(script) as server:
        yield CodexBed(server, workdir, home, codex_path())


def one_rule(*answers: Reply | HttpErrorReply) -> Script:
    return Script([Rule(answers=list(answers))])


async def test_text_answer(tmp_path: Path) -> None:
    async with codex_bed(tmp_path, one_rule(Reply([Text("Hello from Codex.")]))) as b:
        result = await run("say hello", **b.options())
        prompts = [r.prompt for r in b.server.responses_requests]
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Hello from Codex."
    assert not result.partial
    assert result.exit_code == 0
    assert result.session_id  # the thread id: what `--resume` takes
    assert result.cost_usd is None  # Codex reports tokens, never a price
    assert result.usage["output_tokens"] > 0
    assert prompts == ["say hello"]


@pytest.mark.cgroup
async def test_a_run_under_resource_limits(tmp_path: Path) -> None:
    """The limits are the engine's, so every agent's CLI runs in a cgroup of its own."""
    limits = {"memory_max": "1G", "cpus": 2, "pids_max": 500}
    async with codex_bed(tmp_path, one_rule(Reply([Text("Hello from Codex.")]))) as b:
        result = await run("say hello", **b.options(**limits))
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Hello from Codex."
    assert result.peak_memory_bytes is not None
    assert result.peak_memory_bytes > 1 << 20
    assert result.cpu_time_s is not None
    assert result.cpu_time_s > 0
    assert run_cgroups(result.run_id) == []


async def test_cost_is_estimated_from_the_reported_tokens(tmp_path: Path) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_input_tokens=200_000)
    async with codex_bed(tmp_path, one_rule(Reply([Text("Priced.")], usage=usage))) as b:
        result = await run("what does it cost", model="gpt-5.1-codex", **b.options())
        sent_model = b.server.responses_requests[-1].body["model"]
    assert result.status is RunStatus.OK, result.error
    assert sent_model == "gpt-5.1-codex"
    assert result.usage["cached_input_tokens"] == 200_000
    # gpt-5.1-codex: 800k uncached x $1.25 + 200k cached x $0.125 + 100k out x $10 per 1M.
    assert result.cost_usd == pytest.approx(1.0 + 0.025 + 1.0)
    assert result.cost_estimated
    assert not any("budget" in w for w in result.warnings)


async def test_a_budget_needs_a_priced_model(tmp_path: Path) -> None:
    async with codex_bed(tmp_path, one_rule(Reply([Text("unused")]))) as b:
        with pytest.raises(ValueError, match="has no price for model 'mystery-model'"):
            await run("x", model="mystery-model", max_budget_usd=1.0, **b.options())
        with pytest.raises(ValueError, match="has no price for its default model"):
            await run("x", max_budget_usd=1.0, **b.options())
        unpriced = await run("x", model="mystery-model", **b.options())
        sent = len(b.server.responses_requests)
    assert unpriced.status is RunStatus.OK, unpriced.error
    assert unpriced.cost_usd is None  # no price: unknown, never 0
    assert not unpriced.cost_estimated
    assert sent == 1  # the refused runs never started


async def test_shell_call_runs_and_written_files_are_listed(tmp_path: Path) -> None:
    script = one_rule(
        Reply([ToolUse("Bash", {"command": "printf ran > shell.txt"})]),
        Reply([ToolUse("Write", {"file_path": "notes.txt", "content": "a\n"})]),
        Reply([Text("Both done.")]),
    )
    events: list[AgentEvent] = []
    async with codex_bed(tmp_path, script) as b:
        result = await run(
            "make files", sandbox="workspace-write", on_event=events.append, **b.options()
        )
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Both done."
    assert (b.workdir / "shell.txt").read_text() == "ran"
    assert (b.workdir / "notes.txt").read_text() == "a\n"
    assert str(b.workdir / "notes.txt") in result.files
    uses = [e for e in events if isinstance(e, ToolUseEvent)]
    assert [u.name for u in uses] == ["shell", "file_change"]
    assert "printf ran > shell.txt" in uses[0].input["command"]
    assert result.tool_calls == 2


async def test_tool_calls_carry_their_normalized_kind(tmp_path: Path) -> None:
    script = one_rule(
        Reply([ToolUse("Bash", {"command": "printf ran > shell.txt"})]),
        Reply([ToolUse("Write", {"file_path": "notes.txt", "content": "a\nb\n"})]),
        Reply([ToolUse("Edit", {"file_path": "notes.txt", "old_string": "b", "new_string": "B"})]),
        Reply([Text("Done.")]),
    )
    events: list[AgentEvent] = []
    async with codex_bed(tmp_path, script) as b:
        result = await run(
            "use the tools", sandbox="workspace-write", on_event=events.append, **b.options()
        )
    assert result.status is RunStatus.OK, result.error
    assert (b.workdir / "notes.txt").read_text() == "a\nB\n"
    uses = [e for e in events if isinstance(e, ToolUseEvent)]
    assert [(u.name, u.kind) for u in uses] == [
        ("shell", ToolKind.EXECUTE),
        ("file_change", ToolKind.WRITE),  # an added file
        ("file_change", ToolKind.EDIT),  # an updated one
    ]
    assert [u.to_dict()["kind"] for u in uses] == ["execute", "write", "edit"]
    assert all(u.raw is not None and u.raw["item"]["type"] for u in uses)


async def test_read_only_sandbox_is_the_default(tmp_path: Path) -> None:
    script = one_rule(
        Reply([ToolUse("Bash", {"command": "printf x > blocked.txt"})]),
        Reply([Text("Tried.")]),
    )
    async with codex_bed(tmp_path, script) as b:
        result = await run("try to write", **b.options())
        tool_output = b.server.responses_requests[-1].body["input"][-1]
    assert result.status is RunStatus.OK, result.error
    assert not (b.workdir / "blocked.txt").exists()
    # The model was told the command failed. (Codex 0.171.0 does not always print a
    # command_execution item for a command its read-only sandbox made fail.)
    assert tool_output["type"] == "function_call_output"
    assert "Read-only file system" in tool_output["output"]


async def test_api_errors_map_to_statuses_after_one_request_each(tmp_path: Path) -> None:
    """The custom provider's own retries are off: each error ends the run at once, with
    the status Codex names (for a 500 only by its sentence)."""
    script = Script(
        [
            Rule(match="bad", answers=[HttpErrorReply(400, message="prompt is too long")]),
            Rule(match="busy", answers=[HttpErrorReply(429, message="slow down")]),
            Rule(match="broken", answers=[HttpErrorReply(500, message="scripted outage")]),
            Rule(match="gateway", answers=[HttpErrorReply(503, message="scripted gateway")]),
        ]
    )
    async with codex_bed(tmp_path, script) as b:
        bad = await run("bad request", retries=0, **b.options())
        busy = await run("busy now", retries=0, **b.options())
        broken = await run("broken server", retries=0, **b.options())
        gateway = await run("gateway down", retries=0, **b.options())
        sent = [r.prompt for r in b.server.responses_requests]
    assert bad.status is RunStatus.ERROR
    assert "prompt is too long" in (bad.error or "")
    assert (busy.status, busy.api_error_status) == (RunStatus.RATE_LIMITED, 429), busy.error
    assert (broken.status, broken.api_error_status) == (RunStatus.ERROR, 500)
    assert "API error 500: We\u2019re currently experiencing high demand" in (broken.error or "")
    assert (gateway.status, gateway.api_error_status) == (RunStatus.ERROR, 503)
    assert "scripted gateway" in (gateway.error or "")
    assert sent == ["bad request", "busy now", "broken server", "gateway down"]


async def test_our_retry_policy_retries_a_server_error(tmp_path: Path) -> None:
    reply = Reply([Text("Recovered.")], errors_before=[HttpErrorReply(500, message="outage")])
    async with codex_bed(tmp_path, one_rule(reply)) as b:
        result = await run("anything", retries=1, **b.options())
        sent = len(b.server.responses_requests)
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Recovered."
    assert result.attempts == 2
    assert sent == 2


async def test_timeout_keeps_the_answer_so_far_and_the_session(tmp_path: Path) -> None:
    script = one_rule(
        Reply([Text("First part."), ToolUse("Bash", {"command": "sleep 60"})]),
        Reply([Text("never")]),
    )
    async with codex_bed(tmp_path, script) as b:
        # The timeout must fall after the first words: more room if the CLI's start took it all.
        result, _ = await await_with_room(
            lambda t: run("long job", timeout=t, grace=1, **b.options()), 8, lambda r: r.result
        )
        left = pids_in(b.workdir)
    assert result.status is RunStatus.TIMEOUT
    assert result.partial
    assert result.result == "First part."
    assert result.session_id
    assert left == []


async def test_cancel_mid_tool_leaves_no_process(tmp_path: Path) -> None:
    script = one_rule(Reply([ToolUse("Bash", {"command": "sleep 60"})]), Reply([Text("never")]))
    started: list[ToolUseEvent] = []

    def keep(event: AgentEvent) -> None:
        if isinstance(event, ToolUseEvent):
            started.append(event)

    async with codex_bed(tmp_path, script) as b:
        handle = start_run("sleep a while", grace=1, on_event=keep, **b.options())
        await await_for(lambda: started, timeout=60, what="the shell call")
        await await_for(
            lambda: running_in(b.workdir, "sleep 60"), timeout=60, what="the sleep command"
        )
        handle.cancel()
        result = await handle.wait()
        left = pids_in(b.workdir)
    assert result.status is RunStatus.CANCELLED
    assert left == []


async def test_resume_continues_the_thread(tmp_path: Path) -> None:
    script = Script(
        [
            Rule(match="^first", answers=[Reply([Text("one")])]),
            # The resumed thread carries the first answer: this request is turn 1.
            Rule(match="^second", answers=[Reply([Text("unused")]), Reply([Text("two")])]),
        ]
    )
    async with codex_bed(tmp_path, script) as b:
        first = await run("first question", **b.options())
        second = await run("second question", resume=first.session_id, **b.options())
        last_input = b.server.responses_requests[-1].body["input"]
    assert first.status is RunStatus.OK, first.error
    assert second.status is RunStatus.OK, second.error
    assert second.result == "two"
    assert second.session_id == first.session_id
    texts = [
        part.get("text")
        for item in last_input
        if isinstance(item, dict) and item.get("type") == "message"
        for part in item.get("content", [])
    ]
    assert "first question" in texts
    assert "one" in texts


async def test_reconnects_to_a_dead_endpoint_are_not_progress(tmp_path: Path) -> None:
    events: list[AgentEvent] = []
    async with codex_bed(tmp_path, one_rule(Reply([Text("unused")]))) as b:
        with refused_port() as port:
            options = {**b.options(), "base_url": f"http://127.0.0.1:{port}/v1"}
            # Codex waits for the network forever, its notices 5, 10, 20 s apart: were they
            # output, the 12 s idle timer could not fire before the 20 s gap, and the total
            # timeout would end the run instead.
            result = await run(
                "hello", idle_timeout=12, timeout=24, grace=1, on_event=events.append, **options
            )
    assert result.status is RunStatus.IDLE_TIMEOUT, result.error
    assert result.process is not None
    assert result.process.timed_out == "idle"
    retries = [e for e in events if isinstance(e, ApiRetryEvent)]
    assert len(retries) >= 2
    assert "waiting for network" in (retries[0].error or "")
    assert any("still retrying the model API" in w for w in result.warnings), result.warnings


def _own_home_options(b: CodexBed, user: Path, **extra: Any) -> dict[str, Any]:
    """The bed's options without CODEX_HOME, and HOME pointing at ``user``: where the
    caller's own ~/.codex would be."""
    options = b.options(**extra)
    env = {k: v for k, v in options["env"].items() if k != "CODEX_HOME"}
    options["env"] = {**env, "HOME": str(user)}
    return options


async def test_sessions_live_in_a_home_in_the_run_folder_and_resume_there(
    tmp_path: Path,
) -> None:
    script = Script(
        [
            Rule(match="^first", answers=[Reply([Text("one")])]),
            Rule(match="^second", answers=[Reply([Text("unused")]), Reply([Text("two")])]),
            Rule(match="^third", answers=[Reply([Text("u")]), Reply([Text("u")]), Reply(["3"])]),
        ]
    )
    user = tmp_path / "user"
    user.mkdir()
    async with codex_bed(tmp_path, script) as b:
        first = await run("first question", **_own_home_options(b, user))
        second = await run("second question", resume=first.session_id, **_own_home_options(b, user))
        # Found again from the run that resumed it last.
        third = await run("third question", resume=first.session_id, **_own_home_options(b, user))
    assert first.status is RunStatus.OK, first.error
    assert second.status is RunStatus.OK, second.error
    assert third.status is RunStatus.OK, third.error
    assert (second.result, third.result) == ("two", "3")
    assert first.run_dir is not None
    assert second.run_dir is not None
    home = Path(first.run_dir) / "agent-home"
    assert list(home.glob(f"sessions/**/*{first.session_id}*.jsonl"))
    assert (Path(second.run_dir) / "agent-home").resolve() == home.resolve()
    assert not (user / ".codex").exists()  # the caller's home was not used


#: A run in a process of its own, printing its session id as soon as it has one.
_RUN_AND_SAY_SESSION = """
import asyncio, json, sys
from cc_executor._agents._types import InitEvent
from cc_executor._run._runner import run

def say(event):
    if isinstance(event, InitEvent) and event.session_id:
        print(event.session_id, flush=True)

asyncio.run(run("first question", on_event=say, **json.loads(sys.argv[1])))
"""


async def test_resume_finds_the_home_of_a_run_killed_before_its_end(tmp_path: Path) -> None:
    """A task list interrupted mid-task continues the session on ``tasks resume``, but the
    killed run never recorded its session id: its home is found by what it holds."""
    script = Script(
        [
            Rule(match="^first", answers=[Reply([Text("never")], latency=120)]),
            Rule(match="^second", answers=[Reply([Text("two")]), Reply([Text("two")])]),
        ]
    )
    user = tmp_path / "user"
    user.mkdir()
    async with codex_bed(tmp_path, script) as b:
        options = {**_own_home_options(b, user), "cwd": str(b.workdir)}
        child = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _RUN_AND_SAY_SESSION,
            json.dumps(options),
            stdout=asyncio.subprocess.PIPE,
        )
        assert child.stdout is not None
        session = (await child.stdout.readline()).decode().strip()
        await await_for(lambda: b.server.responses_requests, timeout=60, what="the request")
        child.kill()
        await child.wait()
        result = await run("second question", resume=session, **_own_home_options(b, user))
        texts = [
            part.get("text")
            for item in b.server.responses_requests[-1].body["input"]
            if isinstance(item, dict) and item.get("type") == "message"
            for part in item.get("content", [])
        ]
    assert session
    assert result.status is RunStatus.OK, result.error
    assert result.result == "two"
    assert "first question" in texts  # the killed run's thread, continued


async def test_resuming_a_session_without_a_known_home_is_refused(tmp_path: Path) -> None:
    user = tmp_path / "user"
    user.mkdir()
    unknown = "01a24ce1-e5dd-7251-8481-77e9554995af"
    async with codex_bed(tmp_path, one_rule(Reply([Text("unused")]))) as b:
        result = await run("go on", resume=unknown, **_own_home_options(b, user))
        requests = len(b.server.responses_requests)
    assert result.status is RunStatus.SPAWN_FAILED
    assert f"cannot resume Codex CLI session {unknown}" in (result.error or "")
    assert "--use-login" in (result.error or "")
    assert requests == 0


async def test_use_login_runs_in_the_callers_own_home(tmp_path: Path) -> None:
    script = Script(
        [
            Rule(match="^first", answers=[Reply([Text("one")])]),
            Rule(match="^second", answers=[Reply([Text("unused")]), Reply([Text("two")])]),
        ]
    )
    user = tmp_path / "user"
    (user / ".codex").mkdir(parents=True)
    async with codex_bed(tmp_path, script) as b:
        first = await run("first question", use_login=True, **_own_home_options(b, user))
        session = first.session_id
        refused = await run("second question", resume=session, **_own_home_options(b, user))
        second = await run(
            "second question", resume=session, use_login=True, **_own_home_options(b, user)
        )
    assert first.status is RunStatus.OK, first.error
    assert list((user / ".codex").glob(f"sessions/**/*{session}*.jsonl"))
    assert first.run_dir is not None
    assert not (Path(first.run_dir) / "agent-home").exists()
    # Its session is not in a home of cc-executor's: resuming it needs the login again.
    assert refused.status is RunStatus.SPAWN_FAILED
    assert "--use-login" in (refused.error or "")
    assert second.status is RunStatus.OK, second.error
    assert second.result == "two"
