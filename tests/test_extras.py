"""The core install (no extras) in a venv of its own: agents and commands run, and every
feature whose extra is missing says in one line which extra to install."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cc_executor.testing import ModelServer, Reply, Rule, Script, Text
from tests._means import claude_path
from tests._pty import run_on_pty

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def core(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The ``bin`` folder of a fresh venv holding this checkout installed without extras."""
    venv = tmp_path_factory.mktemp("core") / "venv"
    # Without a pip of its own (ensurepip's copy took 8 s of the set-up): this suite's pip
    # installs into it with --python, and the venv holds only the core install.
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300
    )
    python = str(venv / "bin" / "python")
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", python, "install", "--quiet", str(ROOT)],
        check=True,
        timeout=600,
    )
    return venv / "bin"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return {**clean, "CC_EXECUTOR_HOME": str(tmp_path / "cc-home")}


def run(argv: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=120,
        check=False,
    )


def test_the_core_install_has_no_optional_library(core: Path, env: dict[str, str]) -> None:
    """The venv really lacks every optional library (else the tests below prove nothing)."""
    probe = "import importlib.util as u; print([m for m in {mods} if u.find_spec(m)])"
    mods = ["rich", "jinja2", "yaml", "starlette", "uvicorn", "websockets", "mcp", "watchdog"]
    done = run([str(core / "python"), "-c", probe.format(mods=mods)], env, Path.cwd())
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_version_and_exec_run_on_the_core(core: Path, env: dict[str, str], tmp_path: Path) -> None:
    version = run([str(core / "cc-executor"), "--version"], env, tmp_path)
    assert version.returncode == 0, version.stderr
    assert version.stdout.startswith("cc-executor ")
    echo = run([str(core / "cc-executor"), "exec", "--", "/bin/echo", "hi"], env, tmp_path)
    assert echo.returncode == 0, echo.stderr
    assert echo.stdout == "hi\n"
    helped = run([str(core / "cc-executor"), "--help"], env, tmp_path)
    assert helped.returncode == 0, helped.stderr
    assert "serve" in helped.stdout


@pytest.mark.parametrize(
    ("argv", "extra"),
    [
        (["serve"], "service"),
        (["mcp"], "service"),
        (["tasks", "validate", "x.md"], "tasks"),
        (["notify", "--to", "."], "notify"),
        (["inbox", "list"], "notify"),
        (["testing", "serve", "--script", "x.yaml"], "testing"),
    ],
)
def test_a_command_without_its_extra_names_it_in_one_line(
    core: Path, env: dict[str, str], tmp_path: Path, argv: list[str], extra: str
) -> None:
    (tmp_path / "x.md").write_text("## Task 1: one\n\nSay hi.\n")
    done = run([str(core / "cc-executor"), *argv], env, tmp_path)
    assert done.returncode == 2
    assert done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"cc-executor: the '{argv[0]}' command needs the {extra} extra")
    assert f"pip install 'cc-executor[{extra}]'" in done.stderr


def test_the_api_runs_on_the_core_and_names_missing_extras(
    core: Path, env: dict[str, str], tmp_path: Path
) -> None:
    code = (
        "import cc_executor\n"
        "cc_executor.run_sync, cc_executor.run_process_sync, cc_executor.RunResult\n"
        "from cc_executor.client.cc_execute import cc_execute\n"
        "for name in ('tasks', 'notify'):\n"
        "    try:\n"
        "        __import__('cc_executor.' + name)\n"
        "    except ImportError as exc:\n"
        "        print(exc)\n"
        "try:\n"
        "    from cc_executor.testing import ModelServer\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = run([str(core / "python"), "-c", code], env, tmp_path)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 3, done.stdout
    for line, extra in zip(lines, ("tasks", "notify", "testing"), strict=True):
        assert f"pip install 'cc-executor[{extra}]'" in line


def test_run_without_its_cli_is_an_ordinary_spawn_failure(
    core: Path, env: dict[str, str], tmp_path: Path
) -> None:
    """The run path imports nothing optional: a missing CLI is the usual status and exit."""
    missing = str(tmp_path / "no-claude")
    done = run([str(core / "cc-executor"), "run", "--claude", missing, "hi"], env, tmp_path)
    assert done.returncode == 125
    assert "Traceback" not in done.stderr
    assert done.stderr.startswith("spawn_failed")


@pytest.fixture
def served(tmp_path: Path, env: dict[str, str]) -> Iterator[tuple[dict[str, str], Path]]:
    claude = claude_path()
    if claude is None:
        pytest.skip("Claude Code CLI not installed: run scripts/install-claude-code")
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    with ModelServer(Script([Rule(answers=[Reply([Text("Plain answer.")])])])) as server:
        served_env = server.claude_env(home=home, base=env, max_retries=0)
        yield {**served_env, "CC_EXECUTOR_CLAUDE": claude}, work


@pytest.mark.cli
def test_run_on_a_terminal_without_rich_prints_plain_progress_lines(
    core: Path, served: tuple[dict[str, str], Path]
) -> None:
    """Without the cli extra the live view on a terminal falls back to the plain lines."""
    env, work = served
    returncode, screen = run_on_pty(
        [str(core / "cc-executor"), "run", "say hi", "--cwd", str(work)],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    assert returncode == 0, screen
    assert b"Traceback" not in screen
    assert b"s] session " in screen  # the plain progress line of the session's start
    assert b"Plain answer." in screen
