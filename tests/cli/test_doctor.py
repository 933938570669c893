"""`cc-executor doctor` through the console script: real checks, real self-tests, real CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor._engine._cgroup import detect
from tests._means import claude_path

CLI = str(Path(sys.executable).parent / "cc-executor")
BASE_CHECKS = [
    "claude",
    "model-access",
    "config",
    "data-dir",
    "disk-space",
    "history-rows",
    "engine-large-output",
    "engine-long-line",
    "engine-timeout-partial",
    "engine-tree-cleanup",
    "resource-limits",
]
CLAUDE_CHECKS = ["claude-answer", "claude-large-answer", "claude-timeout-partial"]
INSTALL_HINT = "npm install -g @anthropic-ai/claude-code"


def clean_env(**extra: str) -> dict[str, str]:
    """Our environment without anything that configures Claude Code, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "CLAUDE_CODE_", "CLAUDE_CONFIG_DIR"))
    }
    if "CC_EXECUTOR_CLAUDE" not in extra:
        env["CC_EXECUTOR_CLAUDE"] = str(claude_path())
    env.update(extra)
    return env


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, "doctor", *args],
        capture_output=True,
        text=True,
        encoding="utf-8",
        env=env,
        timeout=120,
        check=False,
    )


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout.count("\n") == 1, done.stdout  # exactly one JSON object, one line
    data: dict[str, Any] = json.loads(done.stdout)
    assert set(data) == {"ok", "checks"}
    for check in data["checks"]:
        assert set(check) == {"name", "ok", "detail", "hint", "duration_s"}
        assert isinstance(check["duration_s"], float | int)
        assert check["duration_s"] >= 0
        assert check["detail"]
        assert bool(check["hint"]) is not check["ok"], check  # a hint for every failure only
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in data["checks"]}


@pytest.mark.cli
def test_json_every_check_passes(cc_home: Path) -> None:
    done = doctor(clean_env(ANTHROPIC_API_KEY="sk-ant-doctor-test-secret"), "--json")
    assert done.returncode == 0, done.stdout + done.stderr
    data = as_json(done)
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]] == BASE_CHECKS
    assert all(c["ok"] for c in data["checks"]), data
    checks = by_name(data)
    assert "2.1" in checks["claude"]["detail"]
    assert "ANTHROPIC_API_KEY" in checks["model-access"]["detail"]
    assert "sk-ant-doctor-test-secret" not in done.stdout + done.stderr
    assert str(cc_home) in checks["data-dir"]["detail"]
    assert checks["config"]["detail"] == (
        f"no config file ({cc_home / 'config.toml'} does not exist): built-in defaults apply"
    )
    assert "sha256" in checks["engine-large-output"]["detail"]
    assert "SIGKILL" in checks["engine-tree-cleanup"]["detail"]
    # Which mechanism enforces the limits here (or why none can), as the engine detects it.
    found = detect()
    assert found.describe() in checks["resource-limits"]["detail"]
    if found.version is not None:
        assert "OOM-killed" in checks["resource-limits"]["detail"]
    # The self-tests ran under a temporary home; the probe of the real one left nothing behind.
    assert not cc_home.exists()


@pytest.mark.cli
def test_claude_self_tests_pass(tmp_path: Path, cc_home: Path) -> None:
    home = tmp_path / "user-home"
    home.mkdir()
    done = doctor(
        clean_env(ANTHROPIC_API_KEY="sk-ant-doctor-test", HOME=str(home)), "--claude", "--json"
    )
    assert done.returncode == 0, done.stdout + done.stderr
    data = as_json(done)
    assert data["ok"] is True
    assert [c["name"] for c in data["checks"]] == BASE_CHECKS + CLAUDE_CHECKS
    assert all(c["ok"] for c in data["checks"]), data
    checks = by_name(data)
    assert "2,000,000" in checks["claude-large-answer"]["detail"]
    assert "partial=true" in checks["claude-timeout-partial"]["detail"]
    # The CLI ran with a throwaway config: nothing written to the user's home or data dir.
    assert list(home.iterdir()) == []
    assert not cc_home.exists()


@pytest.mark.slow
def test_missing_claude_fails_with_install_hint() -> None:
    env = clean_env(CC_EXECUTOR_CLAUDE="/nonexistent", ANTHROPIC_API_KEY="sk-ant-doctor-test")
    done = doctor(env, "--claude", "--json")
    assert done.returncode == 1, done.stdout + done.stderr
    data = as_json(done)
    assert data["ok"] is False
    checks = by_name(data)
    assert not checks["claude"]["ok"]
    assert "/nonexistent" in checks["claude"]["hint"]
    assert INSTALL_HINT in checks["claude"]["hint"]
    for name in CLAUDE_CHECKS:
        assert not checks[name]["ok"]
        assert "not run" in checks[name]["detail"]
        assert INSTALL_HINT in checks[name]["hint"]
    assert all(checks[name]["ok"] for name in BASE_CHECKS if name != "claude"), data


@pytest.mark.cli
def test_plain_output_data_dir_under_a_file(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory\n")
    env = clean_env(
        ANTHROPIC_API_KEY="sk-ant-doctor-test", CC_EXECUTOR_HOME=str(blocker / "cc-home")
    )
    done = doctor(env)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    marked = [line for line in lines if line.startswith(("\u2713 ", "\u2717 "))]
    assert [line.split()[1] for line in marked] == BASE_CHECKS
    failed = [line for line in marked if line.startswith("\u2717 ")]
    assert len(failed) == 1
    assert failed[0].split()[1] == "data-dir"
    assert str(blocker / "cc-home") in failed[0]
    hint = lines[lines.index(failed[0]) + 1]
    assert hint.strip().startswith("hint:")
    assert "CC_EXECUTOR_HOME" in hint
    assert lines[-1].startswith(f"1 of {len(BASE_CHECKS)} checks failed")
    assert blocker.read_text() == "not a directory\n"


@pytest.mark.parametrize("logged_in", [False, True])
@pytest.mark.cli
def test_model_access_from_login_or_nothing(tmp_path: Path, logged_in: bool) -> None:
    """Without a UTF-8 stdout the marks are words; a login counts, and its token stays secret."""
    home = tmp_path / "user-home"
    (home / ".claude").mkdir(parents=True)
    if logged_in:
        credentials = {"claudeAiOauth": {"accessToken": "sk-ant-oat-very-secret"}}
        (home / ".claude" / ".credentials.json").write_text(json.dumps(credentials))
    done = doctor(clean_env(HOME=str(home), PYTHONIOENCODING="ascii"))
    lines = done.stdout.splitlines()
    access = next(line for line in lines if line.split()[1:2] == ["model-access"])
    assert "sk-ant-oat-very-secret" not in done.stdout + done.stderr
    if logged_in:
        assert done.returncode == 0, done.stdout + done.stderr
        assert access.startswith("PASS ")
        assert "logged in" in access
        assert lines[-1].startswith(f"all {len(BASE_CHECKS)} checks passed")
    else:
        assert done.returncode == 1, done.stdout + done.stderr
        assert access.startswith("FAIL ")
        assert "ANTHROPIC_API_KEY" in lines[lines.index(access) + 1]
        assert "\u2713" not in done.stdout
    assert sum(line.startswith(("PASS ", "FAIL ")) for line in lines) == len(BASE_CHECKS)
