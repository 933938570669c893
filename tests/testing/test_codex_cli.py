"""The real Codex CLI against ModelServer's Responses API: what a Codex adapter stands on.

Each test runs the pinned ``codex exec --json`` offline, pointed at the scripted server with
``ModelServer.codex_args()``/``codex_env()``, and checks both what the CLI printed and what it
did to the disk (docs/agents/codex-0.171.0-observed.md).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import HttpErrorReply, ModelServer, Reply, Rule, Script, ToolUse
from tests._means import codex_path

pytestmark = [pytest.mark.cli, pytest.mark.slow]

RUN_TIMEOUT = 120.0


@dataclass
class CodexRun:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def items(self, kind: str) -> list[dict[str, Any]]:
        return [
            e["item"]
            for e in self.events
            if e.get("type") == "item.completed" and e["item"].get("type") == kind
        ]


def run_codex(server: ModelServer, prompt: str, tmp_path: Path) -> CodexRun:
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    home = tmp_path / "codex-home"
    home.mkdir(exist_ok=True)
    argv = [
        codex_path(),
        "exec",
        "--json",
        "--skip-git-repo-check",
        "--ephemeral",
        "-s",
        "workspace-write",
        *server.codex_args(),
        "-",
    ]
    done = subprocess.run(
        argv,
        input=prompt.encode(),
        capture_output=True,
        check=False,
        env=server.codex_env(home, base=os.environ),
        cwd=workdir,
        timeout=RUN_TIMEOUT,
    )
    events = [json.loads(line) for line in done.stdout.decode().splitlines() if line.strip()]
    return CodexRun(done.returncode, events, done.stderr.decode(errors="replace"))


def test_text_answer(tmp_path: Path) -> None:
    script = Script([Rule(match="^say hi", answers=[Reply(["Hello from the script."])])])
    with ModelServer(script) as server:
        run = run_codex(server, "say hi\n", tmp_path)
        requests = server.responses_requests
    assert run.returncode == 0, run.stderr
    kinds = [e["type"] for e in run.events]
    assert kinds[0] == "thread.started"
    assert kinds[-1] == "turn.completed"
    assert [m["text"] for m in run.items("agent_message")] == ["Hello from the script."]
    assert run.events[-1]["usage"]["output_tokens"] > 0
    assert [r.prompt for r in requests] == ["say hi\n"]
    assert requests[0].headers["authorization"] == "[redacted]"


def test_shell_call_runs_and_file_write_writes(tmp_path: Path) -> None:
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
                    Reply(["Done."]),
                ]
            )
        ]
    )
    started = time.monotonic()
    with ModelServer(script) as server:
        run = run_codex(server, "make the files", tmp_path)
        turns = [r.turn for r in server.responses_requests]
    work = tmp_path / "work"
    # What Codex reported, should the command's file be missing (CI saw it when a leaked
    # umask had made these folders 0600: docs/agents/codex-0.171.0-observed.md).
    seen = (
        f"{time.monotonic() - started:.1f} s, returncode {run.returncode}, "
        f"work has {sorted(p.name for p in work.iterdir())}, turns {turns}, "
        f"items {run.items('command_execution')!r}, stderr tail {run.stderr[-1500:]!r}"
    )
    assert run.returncode == 0, seen
    assert (work / "shell.txt").exists(), seen
    assert (work / "shell.txt").read_text() == "ran"
    assert (work / "notes.txt").read_text() == "a\nB\n"
    (command,) = run.items("command_execution")
    assert "printf ran > shell.txt" in command["command"]
    assert command["exit_code"] == 0
    changes = [c for item in run.items("file_change") for c in item["changes"]]
    assert [(Path(c["path"]).name, c["kind"]) for c in changes] == [
        ("notes.txt", "add"),
        ("notes.txt", "update"),
    ]
    assert [m["text"] for m in run.items("agent_message")] == ["Done."]
    # A command Codex stopped waiting for is waited for again at the same turn.
    assert list(dict.fromkeys(turns)) == [0, 1, 2, 3]


def test_api_error_fails_the_turn(tmp_path: Path) -> None:
    script = Script([Rule([HttpErrorReply(400, message="prompt is too long for the model")])])
    with ModelServer(script) as server:
        run = run_codex(server, "anything", tmp_path)
        requests = server.responses_requests
    assert run.returncode == 1
    failed = [e for e in run.events if e["type"] == "turn.failed"]
    assert len(failed) == 1
    assert "prompt is too long for the model" in failed[0]["error"]["message"]
    assert len(requests) == 1
