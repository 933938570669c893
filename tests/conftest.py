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

import contextlib
import dataclasses
import logging
import os
import signal
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from cc_executor._engine import _tree
from tests import _means, _postgres

_LEFTOVERS_AT_START = pytest.StashKey[frozenset[str]]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_LEFTOVERS_AT_START] = sandbox_leftovers()


def pytest_sessionfinish(session: pytest.Session) -> None:
    # At the end of the session, not of each test: on a shared machine someone else's Codex
    # may have made them, and no test should fail for it. Removed, so no later run trips.
    before = session.config.stash.get(_LEFTOVERS_AT_START, frozenset())
    for path in remove_new_leftovers(before):
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(
                f"tests: {path} appeared during the run (a Codex command killed in "
                "workspace-write?); removed if empty"
            )


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


#: The signals whose handlers a test (or our code run in-process) could change and leave
#: changed for the rest of the worker: the Ctrl-C tests need SIGINT's, every child
#: inherits an ignored SIGPIPE or SIGCHLD (SIG_IGN survives exec).
_GUARDED_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGCHLD,
    signal.SIGPIPE,
    signal.SIGUSR1,
    signal.SIGUSR2,
)

#: The folders Codex's sandbox makes in its writable roots (/tmp among them) and leaves,
#: empty, when its command is killed: in /tmp, every folder of every test is under them.
_SANDBOX_LEFTOVERS = (".git", ".codex", ".agents", ".aws")


def sandbox_leftovers(root: str = "/tmp") -> frozenset[str]:
    """Which of :data:`_SANDBOX_LEFTOVERS` are in ``root``."""
    return frozenset(n for n in _SANDBOX_LEFTOVERS if os.path.lexists(os.path.join(root, n)))


def remove_new_leftovers(before: frozenset[str], root: str = "/tmp") -> list[str]:
    """Remove those of :data:`_SANDBOX_LEFTOVERS` in ``root`` that were not in ``before``
    and are empty (never one with anything in it); the paths of those that appeared."""
    appeared = []
    for name in sorted(sandbox_leftovers(root) - before):
        path = os.path.join(root, name)
        appeared.append(path)
        with contextlib.suppress(OSError):  # not empty, or gone: left as it is
            os.rmdir(path)
    return appeared


@dataclasses.dataclass(frozen=True)
class _ProcessState:
    """What of the worker process one test must not change for the next: the whole
    worker shares it, so a leak makes the order of the tests matter. About 25 us to read."""

    umask: int
    cwd: str
    environ: dict[str, str]
    signals: dict[str, object]
    path: list[str]
    logging: tuple[int, list[logging.Handler], int]
    # A child subreaper takes every child of the process for its one run's (see
    # adopt_orphans): concurrent runs of later tests then SIGTERM each other's processes.
    subreaper: bool

    @classmethod
    def now(cls) -> _ProcessState:
        os.umask(mask := os.umask(0o022))
        try:
            cwd = os.getcwd()
        except FileNotFoundError:  # a test removed the folder it went into
            cwd = "(a removed folder)"
        root = logging.getLogger()
        return cls(
            umask=mask,
            cwd=cwd,
            # PYTEST_CURRENT_TEST: pytest's own, naming the phase.
            environ={k: v for k, v in os.environ.items() if k != "PYTEST_CURRENT_TEST"},
            signals={s.name: signal.getsignal(s) for s in _GUARDED_SIGNALS},
            path=list(sys.path),
            # pytest's own capture handlers come and go with each phase of a test.
            logging=(root.level, _own_handlers(root), logging.root.manager.disable),
            subreaper=os.getpid() in _tree._ADOPTER,
        )

    def changes(self, after: _ProcessState) -> list[str]:
        said = []
        if after.umask != self.umask:
            said.append(f"the process umask at {after.umask:#o} (it was {self.umask:#o})")
        if after.cwd != self.cwd:
            said.append(f"the working directory at {after.cwd} (it was {self.cwd})")
        if after.environ != self.environ:
            old, new = self.environ, after.environ
            keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
            said.append(f"the environment variables {', '.join(keys)} changed")
        for name, handler in self.signals.items():
            if after.signals[name] != handler:
                said.append(f"the handler of {name} at {after.signals[name]!r}")
        if after.path != self.path:
            said.append("sys.path changed")
        if after.logging != self.logging:
            said.append(f"the root logger changed ({self.logging} -> {after.logging})")
        if after.subreaper != self.subreaper:
            said.append(
                "the process a child subreaper (adopt_orphans: an in-process `run` or "
                "`exec` command; run the console in a subprocess)"
            )
        return said

    def restore(self) -> None:
        os.umask(self.umask)
        with contextlib.suppress(OSError):
            os.chdir(self.cwd)
        current = os.environ.get("PYTEST_CURRENT_TEST")
        os.environ.clear()
        os.environ.update(self.environ)
        if current is not None:
            os.environ["PYTEST_CURRENT_TEST"] = current
        for name, handler in self.signals.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signal.Signals[name], handler)  # type: ignore[arg-type]
        sys.path[:] = self.path
        level, ours, disable = self.logging
        root = logging.getLogger()
        root.setLevel(level)
        for handler in _own_handlers(root):
            if handler not in ours:
                root.removeHandler(handler)
        logging.disable(disable)
        if not self.subreaper and os.getpid() in _tree._ADOPTER:
            import ctypes

            ctypes.CDLL(None).prctl(_tree._PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)
            _tree._ADOPTER.discard(os.getpid())


def _own_handlers(logger: logging.Logger) -> list[logging.Handler]:
    return [h for h in logger.handlers if not type(h).__module__.startswith("_pytest")]


@pytest.fixture(autouse=True)
def _process_state_kept() -> Iterator[None]:
    """A test that leaves the process state of :class:`_ProcessState` changed fails (and
    the state is put back, so the next test does not fail too): it is the whole worker's,
    and later tests would get it. A leaked umask 0177 made tmp_path folders 0600, which
    Codex's sandboxed commands cannot enter. Defined before every fixture that uses
    monkeypatch, so their undoing comes first."""
    before = _ProcessState.now()
    yield
    said = before.changes(_ProcessState.now())
    if said:
        before.restore()
        pytest.fail(f"this test left {'; '.join(said)}")


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
