"""Gemini CLI runs (``agent="gemini"``) through the real CLI against the scripted model server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cc_executor._agents._types import (
    AgentEvent,
    RunStatus,
    TextDeltaEvent,
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
from tests._means import gemini_path
from tests._procs import pids_in, running_in
from tests._wait import await_for

pytestmark = [pytest.mark.cli, pytest.mark.slow]

MODEL = "gemini-2.5-flash"


@dataclass
class GeminiBed:
    server: ModelServer
    workdir: Path
    gemini: str

    def options(self, **extra: Any) -> dict[str, Any]:
        return {
            "agent": "gemini",
            "agent_path": self.gemini,
            "base_url": self.server.url,
            "model": MODEL,
            "cwd": self.workdir,
            "env": {"GEMINI_API_KEY": "cc-executor-testing"},
            "heartbeat_s": 0,
            "retry_initial_delay": 0.1,
            **extra,
        }


@asynccontextmanager
async def gemini_bed(tmp_path: Path, script: Script) -> AsyncIterator[GeminiBed]:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    async with ModelServer(script) as server:
        yield GeminiBed(server, workdir, gemini_path())


def one_rule(*answers: Reply | HttpErrorReply) -> Script:
    return Script([Rule(answers=list(answers))])


async def test_text_answer_with_a_home_of_the_runs_own(tmp_path: Path) -> None:
    async with gemini_bed(tmp_path, one_rule(Reply([Text("Hello from Gemini.")]))) as b:
        result = await run("say hello", **b.options())
        prompts = [r.prompt for r in b.server.gemini_requests]
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Hello from Gemini."
    assert result.session_id
    assert result.exit_code == 0
    assert prompts == ["say hello"]
    # --base-url needs API-key auth, selected in a home inside the run folder.
    assert result.event_log is not None
    settings = Path(result.event_log).parent / "agent-home" / ".gemini" / "settings.json"
    assert "gemini-api-key" in settings.read_text()


async def test_cost_is_estimated_from_the_reported_tokens(tmp_path: Path) -> None:
    usage = Usage(input_tokens=1_000_000, output_tokens=100_000, cache_read_input_tokens=200_000)
    async with gemini_bed(tmp_path, one_rule(Reply([Text("Priced.")], usage=usage))) as b:
        result = await run("what does it cost", max_budget_usd=0.25, **b.options())
    assert result.status is RunStatus.OK, result.error
    assert result.usage["models"][MODEL]["input_tokens"] == 1_000_000
    # gemini-2.5-flash: 800k uncached x $0.30 + 200k cached x $0.03 + 100k out x $2.50 per 1M.
    assert result.cost_usd == pytest.approx(0.24 + 0.006 + 0.25)
    assert result.cost_estimated
    assert result.to_dict()["cost_estimated"] is True
    # Its tokens are reported as the run ends: the budget is kept by the next run, not this.
    assert any("passed max_budget_usd $0.25" in w for w in result.warnings), result.warnings
    from cc_executor._store import open_store

    store = open_store()
    try:
        record = store.get(result.run_id)
    finally:
        store.close()
    assert record is not None
    assert (record.cost_usd, record.cost_estimated) == (result.cost_usd, True)


async def test_shell_write_and_edit_with_yolo(tmp_path: Path) -> None:
    script = one_rule(
        Reply([Text("Working."), ToolUse("Bash", {"command": "printf ran > shell.txt"})]),
        Reply([ToolUse("Write", {"file_path": "notes.txt", "content": "a\nb\n"})]),
        Reply([ToolUse("Edit", {"file_path": "notes.txt", "old_string": "b", "new_string": "B"})]),
        Reply([Text("All done.")]),
    )
    events: list[AgentEvent] = []
    async with gemini_bed(tmp_path, script) as b:
        result = await run("do it", permission_mode="yolo", on_event=events.append, **b.options())
    assert result.status is RunStatus.OK, result.error
    assert result.result == "All done."  # the answer after the last tool call
    assert (b.workdir / "shell.txt").read_text() == "ran"
    assert (b.workdir / "notes.txt").read_text() == "a\nB\n"
    assert result.files == [str(b.workdir / "notes.txt")]
    uses = [e for e in events if isinstance(e, ToolUseEvent)]
    assert [(u.name, u.kind) for u in uses] == [
        ("run_shell_command", ToolKind.EXECUTE),
        ("write_file", ToolKind.WRITE),
        ("replace", ToolKind.EDIT),
    ]
    assert [u.to_dict()["kind"] for u in uses] == ["execute", "write", "edit"]
    assert all(u.raw is not None and u.raw["type"] == "tool_use" for u in uses)


async def test_api_errors_map_to_statuses_after_one_request_each(tmp_path: Path) -> None:
    """Gemini CLI's own retries are capped (one attempt): a 429 and a 500 end at once with
    their status instead of after its ~230 s of retries; our retry policy decides."""
    script = Script(
        [
            Rule(match="bad", answers=[HttpErrorReply(400, message="bad scripted request")]),
            Rule(match="busy", answers=[HttpErrorReply(429, message="slow down")]),
            Rule(match="broken", answers=[HttpErrorReply(500, message="scripted outage")]),
        ]
    )
    async with gemini_bed(tmp_path, script) as b:
        bad = await run("bad request", retries=0, **b.options())
        busy = await run("busy now", retries=0, **b.options())
        broken = await run("broken server", retries=0, **b.options())
        sent = [r.prompt for r in b.server.gemini_requests]
    assert (bad.status, bad.exit_code, bad.api_error_status) == (RunStatus.ERROR, 144, 400)
    assert "API error 400" in (bad.error or "")
    assert "bad scripted request" in (bad.error or "")
    assert (busy.status, busy.exit_code, busy.api_error_status) == (
        RunStatus.RATE_LIMITED,
        173,
        429,
    ), busy.error
    assert "slow down" in (busy.error or "")
    assert (broken.status, broken.exit_code, broken.api_error_status) == (
        RunStatus.ERROR,
        244,
        500,
    )
    assert "API error 500" in (broken.error or "")
    assert "scripted outage" in (broken.error or "")
    assert sent == ["bad request", "busy now", "broken server"]  # no retry of its own


async def test_our_retry_policy_retries_a_server_error(tmp_path: Path) -> None:
    reply = Reply([Text("Recovered.")], errors_before=[HttpErrorReply(500, message="outage")])
    script = one_rule(reply)
    async with gemini_bed(tmp_path, script) as b:
        result = await run("anything", retries=1, **b.options())
        sent = len(b.server.gemini_requests)
    assert result.status is RunStatus.OK, result.error
    assert result.result == "Recovered."
    assert result.attempts == 2
    assert sent == 2


async def test_timeout_keeps_the_text_so_far(tmp_path: Path) -> None:
    slow = Reply([Text("abc " * 400)], chunk_size=4, delay=0.05)
    seen: list[str] = []

    def keep(event: AgentEvent) -> None:
        if isinstance(event, TextDeltaEvent):
            seen.append(event.text)

    async with gemini_bed(tmp_path, one_rule(slow)) as b:
        handle = start_run("slow", grace=1, on_event=keep, **b.options())
        await await_for(lambda: "".join(seen).startswith("abc abc"), timeout=60, what="text")
        handle.cancel()
        result = await handle.wait()
        left = pids_in(b.workdir)
    assert result.status is RunStatus.CANCELLED
    assert result.partial
    assert result.result.startswith("abc abc")
    assert left == []


async def test_cancel_mid_shell_command_leaves_no_process(tmp_path: Path) -> None:
    """Gemini CLI ignores SIGTERM while it works and runs its shell commands in their own
    session: the whole tree must still be gone (psutil)."""
    script = one_rule(Reply([ToolUse("Bash", {"command": "sleep 60"})]), Reply([Text("never")]))
    async with gemini_bed(tmp_path, script) as b:
        handle = start_run("sleep", grace=1, permission_mode="yolo", **b.options())
        await await_for(
            lambda: running_in(b.workdir, "sleep 60"), timeout=60, what="the sleep command"
        )
        handle.cancel()
        result = await handle.wait()
        left = pids_in(b.workdir)
    assert result.status is RunStatus.CANCELLED
    assert left == []


async def test_every_run_gets_a_home_of_its_own(tmp_path: Path) -> None:
    """Not only with --base-url: an endpoint given through the environment works too, and
    the user's own ~/.gemini (which selects no API-key auth here) is never used."""
    user = tmp_path / "user"
    user.mkdir()
    async with gemini_bed(tmp_path, one_rule(Reply([Text("Hello.")]))) as b:
        options = b.options()
        del options["base_url"]
        options["env"] = {
            **options["env"],
            "GOOGLE_GEMINI_BASE_URL": b.server.url,
            "HOME": str(user),
        }
        result = await run("say hello", **options)
    assert result.status is RunStatus.OK, result.error
    assert result.run_dir is not None
    home = Path(result.run_dir) / "agent-home"
    assert "gemini-api-key" in (home / ".gemini" / "settings.json").read_text()
    assert not (user / ".gemini").exists()


async def test_use_login_runs_in_the_callers_own_home(tmp_path: Path) -> None:
    user = tmp_path / "user"
    (user / ".gemini").mkdir(parents=True)
    # The user's own settings: API-key auth, as `gemini` would have saved it.
    (user / ".gemini" / "settings.json").write_text(
        '{"security": {"auth": {"selectedType": "gemini-api-key"}}}'
    )
    async with gemini_bed(tmp_path, one_rule(Reply([Text("Hello.")]))) as b:
        options = b.options(use_login=True)
        options["env"] = {**options["env"], "HOME": str(user)}
        result = await run("say hello", **options)
    assert result.status is RunStatus.OK, result.error
    assert result.run_dir is not None
    assert not (Path(result.run_dir) / "agent-home").exists()


async def test_timeout_keeps_the_text_and_the_session_which_resumes(tmp_path: Path) -> None:
    """A run cut by its timeout keeps the text so far and its session id; resuming that id
    (Gemini CLI 0.61's ``--resume UUID``, in the session's own agent home, found through
    the history) goes on with the same conversation."""
    script = Script(
        [
            Rule(
                match="^long job",
                answers=[
                    Reply([Text("First part."), ToolUse("Bash", {"command": "sleep 60"})]),
                    Reply([Text("Resumed.")]),
                    Reply([Text("Resumed.")]),
                ],
            )
        ]
    )
    async with gemini_bed(tmp_path, script) as b:
        first = await run("long job", timeout=20, grace=1, permission_mode="yolo", **b.options())
        left = pids_in(b.workdir)
        second = await run("go on", resume=first.session_id, **b.options())
        last = b.server.gemini_requests[-1].prompt
    assert first.status is RunStatus.TIMEOUT
    assert first.partial
    assert first.result.startswith("First part.")
    assert first.session_id
    assert left == []
    assert second.status is RunStatus.OK, second.error
    assert second.result == "Resumed."
    assert second.session_id == first.session_id
    assert last == "long job"  # the conversation the scripted server saw starts there


def test_resume_takes_only_a_session_id() -> None:
    from cc_executor._run._options import RunOptions

    for bad in ("latest", "5", "--yolo", "9fefb3bb"):
        with pytest.raises(ValueError, match="must be a session id"):
            RunOptions(agent="gemini", resume=bad)


async def test_the_clis_own_warnings_reach_the_result(tmp_path: Path) -> None:
    """Gemini CLI's top-level ``error`` lines (here its loop detection, which cuts the answer
    short) were kept only as unknown events: an ok run with a cut answer said nothing."""
    looping = Reply([Text("I will check the same file once more. " * 400)], chunk_size=64)
    async with gemini_bed(tmp_path, one_rule(looping)) as b:
        result = await run("loop", **b.options())
    assert "Gemini CLI (warning): Loop detected, stopping execution" in result.warnings


async def test_a_tool_the_cli_did_not_offer_is_a_denial(tmp_path: Path) -> None:
    """Headless, Gemini CLI's default approval mode offers no write tool: the call failed
    with ``Tool "write_file" not found``, the model said it wrote the file, and the run
    ended ``ok``. It ends ``denied``, naming the tool and how to have it offered."""
    script = one_rule(
        Reply([ToolUse("Write", {"file_path": "notes.txt", "content": "a\n"})]),
        Reply([Text("I wrote notes.txt.")]),
    )
    async with gemini_bed(tmp_path, script) as b:
        result = await run("write it", **b.options())
    assert result.status is RunStatus.DENIED, result.to_dict()
    assert not (b.workdir / "notes.txt").exists()
    assert result.error is not None
    assert "(write_file)" in result.error
    assert "--permission-mode" in result.error
    assert any("did not offer the tool write_file" in w for w in result.warnings)
