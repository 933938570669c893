"""``cc-executor run --permission-policy``: an ``ask`` is a question on the terminal, and
denied without one."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cc_executor.testing import ModelServer, Reply, Rule, Script, Text, ToolUse
from tests._means import claude_path, uses_cli

CLI = str(Path(sys.executable).parent / "cc-executor")


@pytest.fixture
@uses_cli
def served(tmp_path: Path) -> Iterator[tuple[dict[str, str], Path, Path]]:
    claude = claude_path()
    assert claude is not None
    tools = [ToolUse("Write", {"file_path": f"{n}.txt", "content": n}) for n in ("yes", "no")]
    script = Script([Rule(answers=[*(Reply([t]) for t in tools), Reply([Text("done")])])])
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text("ask_timeout_s: 120\nrules:\n  - ask: Write\n")
    with ModelServer(script) as server:
        env = server.claude_env(home=home, base=os.environ, max_retries=0)
        env["CC_EXECUTOR_CLAUDE"] = claude
        env["CC_EXECUTOR_HOME"] = str(tmp_path / "cc-home")
        yield env, work, policy


def read_until(fd: int, marker: bytes, seen: bytearray, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while marker not in seen:
        if time.monotonic() > deadline:
            raise AssertionError(f"{marker!r} not shown; the screen: {bytes(seen)!r}")
        ready, _, _ = select.select([fd], [], [], 0.5)
        if ready:
            seen += os.read(fd, 65536)


def test_the_terminal_answers_and_the_history_says_so(
    served: tuple[dict[str, str], Path, Path],
) -> None:
    env, work, policy = served
    controller, terminal = pty.openpty()
    # The live view draws on the same terminal: it is suspended while a question is asked.
    argv = [CLI, "run", "go", "--json", "--accept-denials"]
    proc = subprocess.Popen(
        [*argv, "--permission-policy", str(policy)],
        cwd=work,
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=terminal,
        env=env,
    )
    os.close(terminal)
    seen = bytearray()
    try:
        read_until(controller, b"Allow? [y/N] ", seen)
        assert b"yes.txt" in seen
        os.write(controller, b"y\n")
        del seen[:]
        read_until(controller, b"Allow? [y/N] ", seen)
        assert b"no.txt" in seen
        os.write(controller, b"n\n")
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(controller)
    result = json.loads(out)
    assert result["status"] == "ok", result
    assert sorted(p.name for p in work.iterdir()) == ["yes.txt"]
    shown = subprocess.run(
        [CLI, "show", result["run_id"], "--json"], capture_output=True, env=env, check=True
    )
    decisions = json.loads(shown.stdout)["permission_decisions"]
    assert [(d["decision"], d["decided_by"]) for d in decisions] == [
        ("allow", "console"),
        ("deny", "console"),
    ]


def test_without_a_terminal_an_ask_is_denied(served: tuple[dict[str, str], Path, Path]) -> None:
    env, work, policy = served
    done = subprocess.run(
        [CLI, "run", "go", "--json", "--permission-policy", str(policy)],
        cwd=work,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    result = json.loads(done.stdout)
    assert result["status"] == "denied", result
    assert list(work.iterdir()) == []
    shown = subprocess.run(
        [CLI, "show", result["run_id"]], capture_output=True, text=True, env=env, check=True
    ).stdout
    assert "deny Write" in shown
    assert "by no decider (Write): the permission policy asks, and nobody can answer" in shown
