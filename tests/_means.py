"""What the test markers need from the machine, found once, and the current test.

Each marker of ``pyproject.toml`` that needs something the machine may lack has a probe
here returning ``None`` when the means are present, else the reason a test of that marker
cannot run; ``tests/conftest.py`` skips (or, under CI, fails) such a test with it.
"""

from __future__ import annotations

import functools
import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

CLAUDE_VERSION = "2.1.330"
CHROMIUM = Path("/usr/lib/chromium/chromium")

F = TypeVar("F", bound=Callable[..., Any])
CLI_FIXTURES: set[Callable[..., Any]] = set()
SERVER_FIXTURES: set[Callable[..., Any]] = set()


def uses_cli(fixture: F) -> F:
    """Mark every test using ``fixture`` (directly or through other fixtures) ``cli``.
    Put it under ``@pytest.fixture``."""
    CLI_FIXTURES.add(fixture)
    return fixture


def starts_server(fixture: F) -> F:
    """Mark every test using ``fixture`` ``slow``: it starts a server (the service, the
    MCP server). Put it under ``@pytest.fixture``."""
    SERVER_FIXTURES.add(fixture)
    return fixture


#: The test being set up or run; ``claude_path`` refuses to serve a test lacking ``cli``.
current: pytest.Item | None = None


def _claude_location() -> str | None:
    configured = os.environ.get("CC_EXECUTOR_CLAUDE")
    if configured:
        return configured
    cache = Path(os.environ.get("CC_EXECUTOR_CACHE", Path.home() / ".cache" / "cc-executor"))
    default = cache / "claude-code" / CLAUDE_VERSION / "bin" / "claude"
    return str(default) if default.exists() else None


# The tripwire of tests/conftest.py replaces CC_EXECUTOR_CLAUDE while a test runs, so the
# real location is read once, before any test.
_REAL_CLAUDE = _claude_location()


def claude_path() -> str | None:
    """The real Claude Code CLI: ``$CC_EXECUTOR_CLAUDE``, else the cache of
    ``scripts/install-claude-code``; ``None`` if neither has it.

    Fails the current test if it is not marked ``cli``: a test that runs the real CLI must
    be left out of the fast tier, and forgetting the marker must not pass unnoticed.
    """
    if current is not None and current.get_closest_marker("cli") is None:
        pytest.fail(
            f"{current.nodeid} asks for the real Claude Code CLI but is not marked `cli`: "
            "add @pytest.mark.cli, or use a fixture decorated with uses_cli"
        )
    return _REAL_CLAUDE


#: The pinned npm agent CLIs of scripts/install-agents: variable, cache folder, version, name.
AGENTS = {
    "codex": ("CC_EXECUTOR_CODEX", "codex", "0.171.0", "codex", "Codex CLI"),
    "gemini": ("CC_EXECUTOR_GEMINI", "gemini-cli", "0.61.0", "gemini", "Gemini CLI"),
    "qwen": ("CC_EXECUTOR_QWEN", "qwen-code", "0.24.4", "qwen", "Qwen Code"),
}


def agent_path(agent: str) -> str:
    """The real CLI of ``agent`` (a key of :data:`AGENTS`): its ``CC_EXECUTOR_<AGENT>``
    variable, else the cache of ``scripts/install-agents``.

    Fails the current test if it is not marked ``cli``; skips it when the CLI is not
    installed, or fails it under CI (``CI=true``), which installs every agent.
    """
    variable, folder, version, binary, title = AGENTS[agent]
    if current is not None and current.get_closest_marker("cli") is None:
        pytest.fail(f"{current.nodeid} asks for the real {title} but is not marked `cli`")
    path = os.environ.get(variable)
    if not path:
        cache = Path(os.environ.get("CC_EXECUTOR_CACHE", Path.home() / ".cache" / "cc-executor"))
        path = str(cache / folder / version / "bin" / binary)
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        reason = (
            f"no {title}: {path} is not an executable file; run scripts/install-agents "
            f"{agent} (scripts/test does) or set {variable}"
        )
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have the {title}: {reason}")
        pytest.skip(reason)
    return path


def codex_path() -> str:
    """The real Codex CLI (see :func:`agent_path`)."""
    return agent_path("codex")


def gemini_path() -> str:
    """The real Gemini CLI (see :func:`agent_path`)."""
    return agent_path("gemini")


def cli_test() -> bool:
    """Whether the current test is marked ``cli`` (may run the real CLI)."""
    return current is not None and current.get_closest_marker("cli") is not None


def _missing_cli() -> str | None:
    path = _REAL_CLAUDE
    if path is None:
        return (
            "no Claude Code CLI: CC_EXECUTOR_CLAUDE is unset and the cache has no "
            f"claude-code/{CLAUDE_VERSION}; run scripts/install-claude-code (scripts/test does)"
        )
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return f"no Claude Code CLI: {path} is not an executable file"
    return None


def _missing_redis() -> str | None:
    return None if shutil.which("redis-server") else "no redis-server on PATH"


def _missing_postgres() -> str | None:
    # What tests/_postgres.py needs: the server's programs, the account to run them as when
    # we are root (initdb refuses root), and the driver of the `postgres` extra.
    if not (shutil.which("initdb") or glob.glob("/usr/lib/postgresql/*/bin/initdb")):
        return "no PostgreSQL: initdb is neither on PATH nor in /usr/lib/postgresql/*/bin"
    if os.geteuid() == 0:
        import pwd

        try:
            pwd.getpwnam("postgres")
        except KeyError:
            return "no `postgres` account to run PostgreSQL as (initdb refuses root)"
    from importlib.util import find_spec

    if find_spec("psycopg") is None or find_spec("psycopg_pool") is None:
        return "no psycopg: install the `postgres` extra (pip install -e '.[all,test]')"
    return None


def _missing_browser() -> str | None:
    return None if os.access(CHROMIUM, os.X_OK) else f"no browser: {CHROMIUM} is missing"


def _missing_cgroup() -> str | None:
    # What the engine itself would use for a run's limits (v2 or v1, see _engine/_cgroup).
    from cc_executor._engine._cgroup import detect

    found = detect()
    if found.version is None or not {"memory", "pids", "cpu"} <= set(found.parents):
        return f"no usable cgroups for run limits: {found.describe()}"
    return None


def unshare_argv() -> list[str]:
    """The command starting a program in a private mount namespace where it may mount:
    ``unshare -m`` as root, else with a user namespace of its own (``unshare -rm``)."""
    return ["unshare", "-m"] if os.geteuid() == 0 else ["unshare", "-rm"]


def _missing_mount() -> str | None:
    # What the tests do: mount a small tmpfs in a private namespace (our mounts unchanged).
    unshare, mount = shutil.which("unshare"), shutil.which("mount")
    if unshare is None or mount is None:
        return "no unshare or mount on PATH (util-linux)"
    with tempfile.TemporaryDirectory() as folder:
        try:
            done = subprocess.run(
                [*unshare_argv(), mount, "-t", "tmpfs", "-o", "size=64k", "tmpfs", folder],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"cannot run unshare: {exc}"
    if done.returncode != 0:
        reason = (done.stderr.strip().splitlines() or ["no reason given"])[-1]
        return f"cannot mount a tmpfs in a private mount namespace: {reason}"
    return None


#: Marker name -> probe; markers without a probe (``slow``, ``soak``) only select.
PROBES: dict[str, Callable[[], str | None]] = {
    "cli": _missing_cli,
    "redis": _missing_redis,
    "postgres": _missing_postgres,
    "browser": _missing_browser,
    "cgroup": _missing_cgroup,
    "mount": _missing_mount,
}


@functools.cache
def missing(marker: str) -> str | None:
    """Why the machine cannot run tests marked ``marker``, or ``None`` if it can."""
    probe = PROBES.get(marker)
    return probe() if probe is not None else None
