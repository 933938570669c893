"""``testing serve --agent NAME``: the environment each agent needs to reach the scripted
server, printed by a real ``serve`` process, and each real CLI run with only that."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests._means import agent_path, codex_path, gemini_path
from tests.testing.test_cli import read_until_ready, serve, shell_env, stop

SCRIPT = """\
rules:
  - answers:
      - text: "Hello from the scripted server."
"""
CLI = str(Path(sys.executable).parent / "cc-executor")
ANSWER = "Hello from the scripted server."
#: Variables of this machine that would send an agent elsewhere: not passed to the CLIs.
_THEIRS = ("OPENAI_", "CODEX_", "AZURE_OPENAI_", "GEMINI_", "GOOGLE_", "QWEN_", "ANTHROPIC_")


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "script.yaml"
    path.write_text(SCRIPT)
    return path


@pytest.fixture
def served(script: Path, tmp_path: Path) -> Iterator[Any]:
    """``served(agent)``: a real ``testing serve --agent`` process writing an env file; its
    printed environment (checked against the file) and the process, stopped at the end."""
    started: list[subprocess.Popen[str]] = []

    def start(agent: str) -> tuple[dict[str, str], subprocess.Popen[str]]:
        env_file = tmp_path / f"{agent}.env"
        process = serve("--script", str(script), "--agent", agent, "--env-file", str(env_file))
        started.append(process)
        printed = read_until_ready(process)

        loaded = shell_env(f"set -a; . {env_file}; set +a; env -0", {})
        assert loaded == printed
        return printed, process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


def child_env(printed: dict[str, str], home: Path) -> dict[str, str]:
    """This machine's environment without its agent settings, plus ``printed``; ``HOME`` a
    folder of the test's, to show nothing is written there."""
    home.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(_THEIRS)}
    return {**base, "HOME": str(home), **printed}


def stopped(process: subprocess.Popen[str], folder: str) -> None:
    """Stop serve; its folder is gone, or kept with a message saying so (runs wrote to it)."""
    out, _ = stop(process)
    assert out.strip().endswith("Stopped.")
    if os.path.exists(folder):
        assert f"{folder}: runs wrote to it" in out
        shutil.rmtree(folder)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("agent", "variables"),
    [
        ("codex", {"CODEX_HOME", "OPENAI_API_KEY"}),
        ("gemini", {"GOOGLE_GEMINI_BASE_URL", "GEMINI_API_KEY", "GEMINI_CLI_HOME",
                    "GEMINI_CLI_NO_RELAUNCH", "GEMINI_MODEL"}),
        ("command", {"OPENAI_BASE_URL", "OPENAI_API_KEY", "QWEN_HOME"}),
    ],
)  # fmt: skip
def test_each_agent_gets_its_variables_and_a_folder_that_goes_on_stop(
    served: Any, agent: str, variables: set[str]
) -> None:
    printed, process = served(agent)
    assert set(printed) == variables
    folder = next(v for k, v in printed.items() if k.endswith("HOME"))
    assert Path(folder).is_dir()
    assert not Path(folder).is_relative_to(Path.home())
    if agent == "codex":
        config = (Path(folder) / "config.toml").read_text()
        assert 'model_provider = "cc_executor_testing"' in config
        assert "/v1" in config
    if agent == "gemini":
        settings = json.loads((Path(folder) / ".gemini" / "settings.json").read_text())
        assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"
    out, _ = stop(process)
    assert not Path(folder).exists(), out  # only serve's own files were in it


@pytest.mark.cli
@pytest.mark.slow
def test_codex_with_only_the_printed_env(served: Any, tmp_path: Path) -> None:
    printed, process = served("codex")
    work = tmp_path / "work"
    work.mkdir()
    # cc-executor with no --base-url: with --use-login the run takes the printed CODEX_HOME,
    # where the CLI finds the server as its model provider.
    done = subprocess.run(
        [CLI, "run", "--agent", "codex", "--use-login", "--agent-path", codex_path(), "--cwd",
         str(work), "--json", "--heartbeat", "0", "--timeout", "120", "say hello"],
        env=child_env(printed, tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    assert result["result"] == ANSWER
    assert not any((tmp_path / "home").iterdir())
    stopped(process, printed["CODEX_HOME"])


@pytest.mark.cli
@pytest.mark.slow
def test_gemini_with_only_the_printed_env(served: Any, tmp_path: Path) -> None:
    printed, process = served("gemini")
    done = subprocess.run(
        [gemini_path(), "--output-format", "stream-json", "--skip-trust", "-p", ""],
        input="say hello",
        env=child_env(printed, tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    text = "".join(e.get("content", "") for e in events if e.get("type") == "message"
                   and e.get("role") == "assistant")  # fmt: skip
    assert text == ANSWER
    assert events[-1]["type"] == "result"
    assert not any((tmp_path / "home").iterdir())
    stopped(process, printed["GEMINI_CLI_HOME"])


@pytest.mark.cli
@pytest.mark.slow
def test_qwen_code_with_only_the_printed_env(served: Any, tmp_path: Path) -> None:
    printed, process = served("command")
    done = subprocess.run(
        [agent_path("qwen"), "-p", "", "--auth-type", "openai", "--bare", "-o", "stream-json",
         "--model", "qwen-test"],
        input="say hello",
        env=child_env(printed, tmp_path / "home"),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert events[-1]["type"] == "result", events[-1]
    assert events[-1]["result"] == ANSWER
    stopped(process, printed["QWEN_HOME"])
