"""Shared fixtures and the test tiers.

Every test gets its own cc-executor home, so nothing touches ~/.local.

Markers (registered in pyproject.toml) that need something of the machine skip with the
reason when it is missing, and fail instead under CI (``CI=true``), which installs
everything: a broken install must never pass as skipped. A test using a fixture decorated
with ``tests._means.uses_cli`` is marked ``cli`` by itself, one using a fixture decorated
with ``tests._means.starts_server`` ``slow`` (as is every ``soak`` test). A test without
``cli`` that runs the real Claude Code CLI anyway (found through the environment) fails.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import _means, _postgres


def pytest_configure(config: pytest.Config) -> None:
    # Started by a shell without job control (`nohup pytest &` in a script), we inherit
    # SIGINT ignored, and so would every child: the tests that press Ctrl-C on a child need
    # the default, which a Python handler here gives them (handlers do not survive exec).
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # tryfirst: the markers must be on the items before `-m` deselects by them.
    for item in items:
        info = getattr(item, "_fixtureinfo", None)  # pytest's, on every test function
        funcs = {d.func for defs in info.name2fixturedefs.values() for d in defs} if info else set()
        if funcs & _means.CLI_FIXTURES:
            item.add_marker(pytest.mark.cli)
        if funcs & _means.SERVER_FIXTURES or item.get_closest_marker("soak"):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    _means.current = item
    for marker in _means.PROBES:
        if item.get_closest_marker(marker) is None:
            continue
        reason = _means.missing(marker)
        if reason is None:
            continue
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI must have every means of the `{marker}` tests: {reason}")
        pytest.skip(reason)


def pytest_runtest_teardown(item: pytest.Item) -> None:
    _means.current = None


@pytest.fixture(scope="session")
def _tripwire(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A stand-in for the Claude Code CLI that writes down each call, and its log."""
    folder = tmp_path_factory.mktemp("tripwire")
    log = folder / "calls"
    script = folder / "claude"
    script.write_text(
        "#!/bin/sh\n"
        f'echo "$*" >> "{log}"\n'
        'echo "tests: the real Claude Code CLI was run by a test not marked cli" >&2\n'
        "exit 97\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script, log


@pytest.fixture(autouse=True)
def _umask_kept() -> Iterator[None]:
    """A test that leaves the process umask changed fails: the umask is the whole worker's,
    and later tests' folders would get it (a leaked 0177 made tmp_path folders 0600, which
    Codex's sandboxed commands cannot enter)."""
    before = os.umask(0o022)
    os.umask(before)
    yield
    after = os.umask(before)
    if after != before:
        pytest.fail(f"this test left the process umask at {after:#o} (it was {before:#o})")


@pytest.fixture(autouse=True)
def cc_home(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
    _tripwire: tuple[Path, Path],
) -> Iterator[Path]:
    home = tmp_path / "cc-home"
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(home))
    if request.node.get_closest_marker("cli") is not None:
        yield home
        return
    # Outside the cli tier, the CLI found through the environment is the tripwire.
    script, log = _tripwire
    log.unlink(missing_ok=True)
    monkeypatch.setenv("CC_EXECUTOR_CLAUDE", str(script))
    yield home
    if log.exists():
        pytest.fail(
            f"this test ran the Claude Code CLI ({log.read_text().strip()!r}) but is not "
            "marked `cli`: add @pytest.mark.cli or use a fixture decorated with uses_cli"
        )


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[_postgres.PostgresServer]:
    """One real PostgreSQL for the session (tests/_postgres.py); use it from tests marked
    ``postgres``."""
    server = _postgres.start_postgres()
    yield server
    server.stop()
