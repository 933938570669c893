"""``cc-executor doctor --agent NAME`` through the console script, with the real CLIs, a
missing one and one of another version."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from cc_executor._cli._doctor_agents import PINNED
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text
from tests._means import claude_path, codex_path, gemini_path
from tests.cli.test_doctor import CLI, as_json

CHECKS = ["executable", "version", "node", "api-key"]
#: Variables that would give an agent a key, an endpoint or an executable of this machine's.
_AGENT_VARIABLES = (
    "ANTHROPIC_", "CLAUDE_CODE_", "CLAUDE_CONFIG_DIR", "OPENAI_", "CODEX_", "GEMINI_",
    "GOOGLE_", "CC_EXECUTOR_CLAUDE", "CC_EXECUTOR_CODEX", "CC_EXECUTOR_GEMINI",
)  # fmt: skip


def agent_env(**extra: str) -> dict[str, str]:
    """Our environment without anything that configures an agent, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_AGENT_VARIABLES)}
    return {**env, **extra}


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "doctor", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=600,
        check=False,
    )


def by_name(done: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in as_json(done)["checks"]}


def test_pins_are_those_install_agents_installs() -> None:
    script = (Path(__file__).parents[2] / "scripts" / "install-agents").read_text()
    variables = {"claude": "CLAUDE_CODE_VERSION", "codex": "CODEX_VERSION",
                 "gemini": "GEMINI_VERSION"}  # fmt: skip
    for agent, variable in variables.items():
        match = re.search(rf'^{variable}="\$\{{{variable}:-([^}}]+)\}}"$', script, re.MULTILINE)
        assert match is not None, variable
        assert PINNED[agent] == match.group(1)


@pytest.mark.slow
def test_a_missing_cli_fails_each_check_with_the_install_hint(tmp_path: Path) -> None:
    done = doctor(agent_env(), "--agent", "gemini", "--agent-path", str(tmp_path / "gemini"))
    assert done.returncode == 1, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("\u2717 gemini-executable")
    assert f"not found: Gemini CLI at {tmp_path / 'gemini'} (from argument) not found" in lines[0]
    assert "hint: install it with `npm install -g @google/gemini-cli@0.61.0`" in lines[1]
    assert "\u2717 gemini-version          not checked: Gemini CLI was not found" in done.stdout
    assert "\u2717 gemini-api-key          no API key: GEMINI_API_KEY and GOOGLE_API_KEY" in (
        done.stdout
    )
    assert lines[-1].startswith("4 of 4 checks failed")
    checks = by_name(doctor(agent_env(), "--agent", "codex", "--agent-path", "/nope", "--json"))
    assert list(checks) == [f"codex-{c}" for c in CHECKS]
    assert not any(c["ok"] for c in checks.values())


@pytest.mark.slow
def test_a_cli_of_another_version_fails_the_version_check(tmp_path: Path) -> None:
    fake = tmp_path / "codex"
    fake.write_text("#!/bin/sh\necho 'codex-cli 0.1.0'\n")
    fake.chmod(0o755)
    checks = by_name(
        doctor(agent_env(OPENAI_API_KEY="sk-x"), "--agent", "codex", "--agent-path", str(fake),
               "--json")
    )  # fmt: skip
    assert checks["codex-executable"]["ok"]
    assert checks["codex-executable"]["detail"] == f"{fake} (from --agent-path)"
    assert not checks["codex-version"]["ok"]
    assert checks["codex-version"]["detail"] == (
        "Codex CLI 0.1.0; cc-executor is tested with 0.171.0"
    )
    assert checks["codex-api-key"]["ok"]
    assert checks["codex-api-key"]["detail"].startswith("OPENAI_API_KEY is set")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--base-url", "http://x"], "--base-url goes with --agent NAME"),
        (["--agent", "command"], "--agent command needs --agent-spec FILE"),
        (["--agent", "codex", "--agent", "gemini", "--agent-path", "/x"],
         "--agent-path names one executable: give it with one --agent"),
    ],
)  # fmt: skip
def test_bad_agent_flags_are_one_line_errors(args: list[str], message: str) -> None:
    done = doctor(agent_env(), *args)
    assert done.returncode == 2
    assert done.stderr == f"cc-executor doctor: {message}\n"
    assert done.stdout == ""


@pytest.mark.cli
@pytest.mark.slow
def test_real_clis_pass_every_check_and_answer_through_the_base_url(tmp_path: Path) -> None:
    script = Script([Rule(answers=[Reply([Text("ok")])])])
    # The user's home: the checks write nothing there (before, `gemini --version` left two
    # files in ~/.gemini, Claude Code's round trip its session in ~/.claude).
    home = tmp_path / "home"
    home.mkdir()
    with ModelServer(script) as server:
        codex = doctor(
            agent_env(
                CC_EXECUTOR_CODEX=codex_path(),
                OPENAI_API_KEY="sk-cc-executor-testing",
                HOME=str(home),
            ),
            "--agent", "codex", "--base-url", f"{server.url}/v1",
        )  # fmt: skip
        gemini = doctor(
            agent_env(GEMINI_API_KEY="cc-executor-testing", HOME=str(home)),
            "--agent", "gemini", "--agent-path", gemini_path(), "--base-url", server.url,
            "--json",
        )  # fmt: skip
        claude = doctor(
            agent_env(
                CC_EXECUTOR_CLAUDE=str(claude_path()), ANTHROPIC_API_KEY="sk-ant-x", HOME=str(home)
            ),
            "--agent", "claude", "--base-url", server.url, "--json",
        )  # fmt: skip
    assert sorted(str(p.relative_to(home)) for p in home.rglob("*")) == []
    assert codex.returncode == 0, codex.stdout
    lines = codex.stdout.splitlines()
    names = [line.split()[1] for line in lines[:-1]]
    assert names == [f"codex-{c}" for c in [*CHECKS, "round-trip"]]
    assert all(line.startswith("\u2713 ") for line in lines[:-1])
    assert f"{codex_path()} (from CC_EXECUTOR_CODEX)" in lines[0]
    assert "Codex CLI 0.171.0, the pinned version" in lines[1]
    assert re.search(r"Node\.js v(\d+)\.\S+ at \S+/node \(needs 16\+\)", lines[2])
    assert f"answered through {server.url}/v1 in" in lines[4]
    assert lines[-1].startswith("all 5 checks passed")

    checks = by_name(gemini)
    assert gemini.returncode == 0, checks
    assert checks["gemini-executable"]["detail"] == f"{gemini_path()} (from --agent-path)"
    assert checks["gemini-node"]["detail"].endswith("(needs 20+)")
    assert checks["gemini-round-trip"]["detail"].endswith(": 'ok'")

    checks = by_name(claude)
    assert claude.returncode == 0, checks
    assert checks["claude-node"]["detail"] == (
        "Claude Code runs without Node.js (a native executable)"
    )
    assert checks["claude-version"]["detail"] == "Claude Code 2.1.330, the pinned version"
