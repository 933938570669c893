"""Checks of the environment, and live proofs of cc-executor's guarantees on this machine.

:func:`run_checks` answers "will cc-executor work here, and does it keep its promises here?":
it finds Claude Code and a way for it to reach a model, checks the data directory, then runs
real child processes through the engine (and, on request, the real Claude Code CLI against the
scripted model server) and verifies that output far above the pipe buffer comes back whole, that
a timeout keeps the partial output, and that no process of a stopped tree survives. Nothing here
makes a network call beyond the loopback model server.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import shutil
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cc_executor._errors import CCExecutorError

if TYPE_CHECKING:
    from cc_executor._engine import OutputEvent

#: The data directory must have at least this much free space.
MIN_FREE_BYTES = 1 << 30

_PIPE_BUFFER = 64 * 1024
_BUG_HINT = (
    "this is a bug in cc-executor or a problem of this machine; please report it with the "
    "output of `cc-executor doctor --json`"
)
_SLOW_HINT = (
    "the machine may be overloaded; run `cc-executor doctor` again, and report it if this repeats"
)
# The environment variable that marks every process a self-test starts, so a sweep of /proc
# can prove that none of them survived (independently of the engine's own bookkeeping).
_MARK_ENV = "CC_EXECUTOR_DOCTOR_MARK"


@dataclass(frozen=True, slots=True)
class CheckResult:
    """The outcome of one check.

    ``name`` is a stable identifier (``claude``, ``data-dir``, ``engine-tree-cleanup``, ...);
    ``detail`` says what was found or proven, or what went wrong; ``hint`` says how to fix a
    failure and is empty when ``ok``; ``duration_s`` is the wall time the check took.
    """

    name: str
    ok: bool
    detail: str
    hint: str = ""
    duration_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the fields."""
        return {
            "name": self.name,
            "ok": self.ok,
            "detail": self.detail,
            "hint": self.hint,
            "duration_s": round(self.duration_s, 3),
        }


Recorder = Callable[[str, float, Callable[[], Awaitable[str]]], Awaitable[CheckResult]]


class _Failed(CCExecutorError):
    """A check failed; the message is the detail, ``hint`` the way out (internal: each
    check's runner turns it into a failed :class:`CheckResult`)."""

    def __init__(self, detail: str, hint: str = _BUG_HINT) -> None:
        super().__init__(detail)
        self.hint = hint


async def run_checks(
    *, claude: bool, on_result: Callable[[CheckResult], None] | None = None
) -> list[CheckResult]:
    """Run every check, one after the other, and return their results in order.

    Checks: ``claude`` (the CLI is found and ``claude --version`` runs), ``model-access`` (an
    API key, a base URL or a login is configured; only looked up, never used), ``config``
    (the user config file in use, if any, parses), ``data-dir``
    (writable), ``disk-space`` (at least 1 GiB free there) and ``history-rows`` (no
    malformed row in the history, else they are listed); with a PostgreSQL history configured,
    ``history-postgres`` (it is reachable), ``history-schema`` (its version) and
    ``history-pending`` (no run of this machine waits to be written to it); then live
    engine self-tests:
    ``engine-large-output`` (8 MiB), ``engine-long-line`` (one 10 MB line),
    ``engine-timeout-partial`` and ``engine-tree-cleanup`` (a SIGTERM-ignoring grandchild
    that escaped with double fork + ``setsid``), and ``resource-limits`` (which mechanism
    enforces ``--memory-max``, ``--cpus`` and ``--pids-max`` here, proven by a child
    allocating past a memory limit; where none is usable it says why, and passes: runs
    without those limits work, runs asking for them are refused). With ``claude`` the real
    CLI runs against a scripted loopback model server: ``claude-answer``,
    ``claude-large-answer`` (2 MB) and ``claude-timeout-partial``; they fail with the
    install hint when the CLI is missing.

    A check never raises: an unexpected error or exceeding its coarse time bound is a failed
    result. ``on_result`` is called with each result as soon as it is known. Self-tests run in a
    temporary directory that is removed afterwards, with ``CC_EXECUTOR_HOME`` pointed there so
    the user's run history stays untouched; ``os.environ`` is modified while they run and
    restored afterwards (do not run this concurrently with code that reads it). Cancelling the
    awaiting task stops the running self-test and terminates its processes.
    """
    from cc_executor._paths import data_home
    from cc_executor._store._location import HISTORY_ENV, is_postgres

    results: list[CheckResult] = []
    record = recorder(results, on_result)
    home = data_home()
    # Read before the self-tests' environment: the PostgreSQL history, when one is set.
    postgres = os.environ.get(HISTORY_ENV)
    if postgres is not None and not is_postgres(postgres):
        postgres = None
    from cc_executor._run._config import config_path

    config_at = config_path()  # the self-tests' environment below has a home of its own
    with tempfile.TemporaryDirectory(
        prefix="cc-executor-doctor-", ignore_cleanup_errors=True
    ) as tmp_name:
        tmp = Path(tmp_name)
        with _environ({**os.environ, "CC_EXECUTOR_HOME": str(tmp / "cc-home")}):
            claude_path: list[str] = []
            found = await record("claude", 30, lambda: _check_claude(tmp, claude_path))
            await record("model-access", 5, _check_model_access)
            await record("config", 5, lambda: _check_config(*config_at))
            await record("data-dir", 10, lambda: _check_data_dir(home))
            await record("disk-space", 5, lambda: _check_disk_space(home))
            await record("history-rows", 30, lambda: _check_history_rows(home))
            if postgres is not None:
                await record("history-postgres", 20, lambda: _check_postgres(postgres))
                await record("history-schema", 20, lambda: _check_postgres_schema(postgres))
                await record("history-pending", 10, lambda: _check_pending(home))
            await record("engine-large-output", 60, lambda: _check_large_output(tmp))
            await record("engine-long-line", 60, lambda: _check_long_line(tmp))
            await record("engine-timeout-partial", 20, lambda: _check_timeout_partial(tmp))
            await record("engine-tree-cleanup", 30, lambda: _check_tree_cleanup(tmp))
            await record("resource-limits", 30, lambda: _check_resource_limits(tmp))
            if claude:
                await _claude_checks(record, tmp, claude_path[0] if claude_path else None, found)
    return results


def recorder(
    results: list[CheckResult], on_result: Callable[[CheckResult], None] | None
) -> Recorder:
    """``record(name, bound, check)``: run one check within ``bound`` seconds, append its
    result to ``results`` (and pass it to ``on_result``); a check never raises."""

    async def record(name: str, bound: float, check: Callable[[], Awaitable[str]]) -> CheckResult:
        started = time.monotonic()
        try:
            detail = await asyncio.wait_for(check(), bound)
            result = CheckResult(name, True, detail)
        except _Failed as exc:
            result = CheckResult(name, False, str(exc), exc.hint)
        except asyncio.TimeoutError:
            result = CheckResult(name, False, f"did not finish within {bound:g} s", _SLOW_HINT)
        except Exception as exc:
            result = CheckResult(name, False, f"unexpected error: {exc!r}", _BUG_HINT)
        result = CheckResult(
            result.name, result.ok, result.detail, result.hint, time.monotonic() - started
        )
        results.append(result)
        if on_result is not None:
            on_result(result)
        return result

    return record


# --- environment -----------------------------------------------------------------------------


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    """Replace ``os.environ`` with ``values`` for the duration; restored even on error."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


async def _check_claude(tmp: Path, found: list[str]) -> str:
    from cc_executor._agents._claude import ClaudeNotFound, locate_claude
    from cc_executor._agents._claude._locate import INSTALL_HINT
    from cc_executor._engine import ProcessStatus, run_process

    try:
        path = locate_claude()
    except ClaudeNotFound as exc:
        raise _Failed("Claude Code CLI not found", str(exc)) from None
    reinstall = f"the CLI at {path} does not run properly; reinstall it: {INSTALL_HINT}"
    result = await run_process(
        [path, "--version"], timeout=20, grace=2, run_dir=tmp / "claude-version"
    )
    if result.status is not ProcessStatus.OK:
        why = result.error or result.stderr_tail.strip() or f"status {result.status}"
        raise _Failed(f"`{path} --version` failed: {why}", reinstall)
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if not lines:
        raise _Failed(f"`{path} --version` printed nothing", reinstall)
    found.append(path)
    return f"Claude Code {lines[0]} at {path}"


def _claude_config_dir() -> Path:
    configured = os.environ.get("CLAUDE_CONFIG_DIR")
    return Path(configured).expanduser() if configured else Path.home() / ".claude"


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or None if it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


async def _check_model_access() -> str:
    sources = [
        f"{name} is set"
        for name in ("ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")
        if os.environ.get(name)
    ]
    for name, cloud in (
        ("CLAUDE_CODE_USE_BEDROCK", "Amazon Bedrock"),
        ("CLAUDE_CODE_USE_VERTEX", "Google Vertex AI"),
    ):
        if os.environ.get(name, "").lower() not in ("", "0", "false", "no"):
            sources.append(f"{cloud} ({name})")
    base_url = os.environ.get("ANTHROPIC_BASE_URL")
    if base_url:
        # Only scheme, host and port: a URL may carry credentials.
        parts = urlsplit(base_url)
        shown = f"{parts.scheme}://{parts.hostname}" if parts.hostname else "a server"
        if parts.hostname and parts.port:
            shown += f":{parts.port}"
        sources.append(f"ANTHROPIC_BASE_URL points at {shown}")
    config = _claude_config_dir()
    credentials = config / ".credentials.json"
    if _json_object(credentials):
        sources.append(f"logged in (credentials in {credentials})")
    settings = _json_object(config / "settings.json")
    if settings and settings.get("apiKeyHelper"):
        sources.append(f"apiKeyHelper in {config / 'settings.json'}")
    state_file = (
        config / ".claude.json"
        if os.environ.get("CLAUDE_CONFIG_DIR")
        else Path.home() / ".claude.json"
    )
    state = _json_object(state_file)
    if state and state.get("primaryApiKey"):
        sources.append(f"API key saved by `claude` in {state_file}")
    if state and state.get("oauthAccount") and sys.platform == "darwin":
        sources.append("logged in (token in the macOS keychain)")
    if not sources:
        raise _Failed(
            f"no API key, base URL or login found (looked at ANTHROPIC_API_KEY, "
            f"ANTHROPIC_BASE_URL and {credentials})",
            "set ANTHROPIC_API_KEY, or run `claude` once and log in with /login, or point "
            "ANTHROPIC_BASE_URL at an Anthropic-compatible server",
        )
    return "; ".join(sources) + " (not contacted)"


def _check_data_dir_sync(home: Path) -> str:
    hint = (
        f"make {home} a directory writable by this user, or set CC_EXECUTOR_HOME to one "
        "(runs keep their output and history there)"
    )
    missing = []
    parent = home
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    try:
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise _Failed(f"cannot create {home}: {exc.strerror or exc}", hint) from None
        try:
            fd, probe = tempfile.mkstemp(prefix=".doctor-", dir=home)
        except OSError as exc:
            raise _Failed(f"cannot create a file in {home}: {exc.strerror or exc}", hint) from None
        try:
            os.write(fd, b"cc-executor doctor\n")
        finally:
            os.close(fd)
            os.unlink(probe)
    finally:
        # Leave the file system as we found it: remove the folders this check created.
        for folder in missing:
            with contextlib.suppress(OSError):
                folder.rmdir()
    return f"{home} is writable"


def check_config(path: str, explicit: bool) -> str:
    """The user config file at ``path`` (``explicit``: named by ``--config`` or
    ``$CC_EXECUTOR_CONFIG``) parses, or there is none; else :class:`_Failed` with the
    file's error."""
    from cc_executor._errors import ConfigError
    from cc_executor._run._config import UserConfig

    if path == os.devnull:
        return "no config file read (--no-config, or CC_EXECUTOR_CONFIG=/dev/null)"
    if not explicit and not os.path.exists(path):
        return f"no config file ({path} does not exist): built-in defaults apply"
    try:
        config = UserConfig.load(path)
    except ConfigError as exc:
        raise _Failed(
            str(exc), "fix the file (docs/config.md), or run commands with --no-config"
        ) from None
    parts = [f"[reserve_usd] {', '.join(f'{m}={u:g}' for m, u in config.reserve_usd.items())}"]
    parts.append(f"[defaults] {', '.join(config.defaults)}")
    shown = "; ".join(p for p in parts if not p.endswith("] "))
    return f"{path} parsed" + (f": {shown}" if shown else " (empty)")


async def _check_config(path: str, explicit: bool) -> str:
    return check_config(path, explicit)


async def _check_data_dir(home: Path) -> str:
    return _check_data_dir_sync(home)


def check_history_rows(home: Path) -> str:
    """Every row of the history at ``home`` can be read; else :class:`_Failed` listing the
    malformed ones (every command skips them, with a warning). The history is opened
    read-only: the check changes nothing."""
    from cc_executor._store import HistoryError, open_store
    from cc_executor._text import inert

    path = home / "history.sqlite3"
    try:
        store = open_store(path, readonly=True)
    except HistoryError as exc:
        raise _Failed(str(exc), f"move {path} aside to start a new history") from None
    try:
        bad = store.bad_rows()
        total = store.count()
        # Crash recovery never touches a `running` row without a host (whose PIDs belong
        # to no known machine, docs/security.md P18): said here so that one is not missed.
        hostless = [r.id for r in store.running() if r.host is None]
    finally:
        store.close()
    if not bad:
        if hostless:
            shown = ", ".join(inert(run_id) for run_id in hostless[:20])
            return (
                f"no malformed row in {total} runs; {len(hostless)} marked running without "
                f"a host, which crash recovery leaves alone: {shown}"
            )
        return f"no malformed row in {total} runs"
    listed = "; ".join(f"{inert(run_id)!r}: {inert(reason)}" for run_id, reason in bad[:20])
    more = f"; and {len(bad) - 20} more" if len(bad) > 20 else ""
    raise _Failed(
        f"{len(bad)} malformed row(s) in {total} (skipped by every command): {listed}{more}",
        f"they were damaged or edited outside cc-executor; look at them with `sqlite3 {path}` "
        "and delete the ones of no use",
    )


async def _check_history_rows(home: Path) -> str:
    return check_history_rows(home)


def _open_postgres(url: str) -> Any:
    from cc_executor._store import HistoryError
    from cc_executor._store._location import parse_postgres_url
    from cc_executor._store._postgres import PostgresStore

    try:
        return PostgresStore(parse_postgres_url(url), readonly=True, max_size=1)
    except HistoryError as exc:
        raise _Failed(
            str(exc),
            "start the database or fix CC_EXECUTOR_HISTORY / --history; meanwhile runs are "
            "recorded in this machine's history and written to the database when it is back",
        ) from None


async def _check_postgres(url: str) -> str:
    """The PostgreSQL history answers."""
    store = await asyncio.to_thread(_open_postgres, url)
    try:
        return f"{store.url} is reachable"
    finally:
        await asyncio.to_thread(store.close)


async def _check_postgres_schema(url: str) -> str:
    """The PostgreSQL history's schema is one this cc-executor reads."""
    from cc_executor._store import SCHEMA_VERSION

    store = await asyncio.to_thread(_open_postgres, url)
    try:
        version = await asyncio.to_thread(lambda: store.schema_version)
    finally:
        await asyncio.to_thread(store.close)
    if version == 0:
        return f"no schema yet: the first run creates schema {SCHEMA_VERSION}"
    if version < SCHEMA_VERSION:
        return f"schema {version}: the next run migrates it to {SCHEMA_VERSION}"
    return f"schema {version}, this cc-executor's"


def check_pending(home: Path) -> str:
    """The runs of this machine still to be written to the PostgreSQL history."""
    import sqlite3

    path = home / "history.sqlite3"
    try:
        with contextlib.closing(
            sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
        ) as db:
            (pending,) = db.execute("SELECT COUNT(*) FROM history_pending").fetchone()
    except sqlite3.Error:
        pending = 0  # no local history (or one from before the table): nothing pending
    if not pending:
        return "no run of this machine is waiting to be written to it"
    raise _Failed(
        f"{pending} run(s) of this machine are recorded only in {path}: the database was "
        "unreachable when they were recorded",
        "the next run, or a running worker or serve, writes them to the database once it "
        "is reachable",
    )


async def _check_pending(home: Path) -> str:
    return await asyncio.to_thread(check_pending, home)


async def _check_disk_space(home: Path) -> str:
    existing = home
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        free = shutil.disk_usage(existing).free
    except OSError as exc:
        raise _Failed(
            f"cannot measure free space at {existing}: {exc.strerror or exc}",
            "set CC_EXECUTOR_HOME to a directory on a local, mounted file system",
        ) from None
    detail = f"{free / (1 << 30):.1f} GiB free at {existing}"
    if free < MIN_FREE_BYTES:
        raise _Failed(
            f"only {detail} (at least 1 GiB needed)",
            f"free some space on the file system of {existing} (runs keep every byte of output "
            "there), or set CC_EXECUTOR_HOME to a directory on a larger disk",
        )
    return detail


# --- engine self-tests -----------------------------------------------------------------------

_LARGE_LINE = b"%07d abcdefghijklmnopqrstuvw\n"  # 32 bytes
_LARGE_COUNT = (8 << 20) // len(_LARGE_LINE % 0)
_LARGE_CHILD = textwrap.dedent(
    """
    import sys
    line, count = sys.argv[1].encode(), int(sys.argv[2])
    sys.stdout.buffer.write(b"".join(line % i for i in range(count)))
    """
)
_LONG_UNIT = b"0123456789"
_LONG_REPEAT = 1_000_000
_LONG_CHILD = textwrap.dedent(
    """
    import sys
    sys.stdout.buffer.write(sys.argv[1].encode() * int(sys.argv[2]) + b"\\n")
    """
)
_TIMEOUT_CHILD = textwrap.dedent(
    """
    import sys, time
    print(sys.argv[1], flush=True)
    time.sleep(300)
    """
)
# The child ignores SIGTERM; its grandchild escapes the process group and session (double fork
# + setsid, as daemons do), keeps the output pipe open and ignores SIGTERM too. Each records
# "pid starttime" so a recycled pid is never mistaken for a survivor.
_TREE_CHILD = textwrap.dedent(
    """
    import os, signal, sys, time
    pidfile = sys.argv[1]
    signal.signal(signal.SIGTERM, signal.SIG_IGN)

    def record():
        with open("/proc/self/stat") as f:
            start = f.read().rsplit(")", 1)[1].split()[19]
        with open(pidfile, "a") as f:
            f.write(f"{os.getpid()} {start}\\n")

    record()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            record()
            time.sleep(300)
        os._exit(0)
    os.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with open(pidfile) as f:
            if len(f.read().split()) >= 4:
                break
        time.sleep(0.01)
    print("tree ready", flush=True)
    time.sleep(300)
    """
)


def _python(code: str, *args: str) -> list[str]:
    return [sys.executable, "-c", code, *args]


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


async def _check_large_output(tmp: Path) -> str:
    from cc_executor._engine import ProcessStatus, run_process

    expected = b"".join(_LARGE_LINE % i for i in range(_LARGE_COUNT))
    digest = hashlib.sha256(expected).hexdigest()
    result = await run_process(
        _python(_LARGE_CHILD, _LARGE_LINE.decode(), str(_LARGE_COUNT)),
        timeout=45,
        grace=2,
        run_dir=tmp / "large-output",
    )
    if result.status is not ProcessStatus.OK:
        raise _Failed(f"the child ended with status {result.status}: {result.error}")
    if result.stdout_bytes != len(expected) or result.stdout_sha256 != digest:
        raise _Failed(
            f"{result.stdout_bytes} of {len(expected)} bytes came back "
            f"(sha256 {result.stdout_sha256[:12]}, expected {digest[:12]})"
        )
    if hashlib.sha256(result.stdout).hexdigest() != digest:
        raise _Failed("the receipt matches but the stored output differs")
    return (
        f"{_mib(len(expected))} ({len(expected) // _PIPE_BUFFER}x the 64 KiB pipe buffer) "
        "came back whole, sha256 verified"
    )


async def _check_long_line(tmp: Path) -> str:
    from cc_executor._engine import ProcessStatus, run_process

    expected = _LONG_UNIT * _LONG_REPEAT
    lines: list[tuple[int, bool, bool]] = []

    def on_line(event: OutputEvent) -> None:
        if event.stream == "stdout":
            lines.append((event.length, event.complete, event.data == expected))

    result = await run_process(
        _python(_LONG_CHILD, _LONG_UNIT.decode(), str(_LONG_REPEAT)),
        timeout=45,
        grace=2,
        on_line=on_line,
        run_dir=tmp / "long-line",
    )
    if result.status is not ProcessStatus.OK:
        raise _Failed(f"the child ended with status {result.status}: {result.error}")
    if [n for n, _, _ in lines] != [len(expected)]:
        raise _Failed(
            f"expected one line of {len(expected):,} bytes, got lengths "
            f"{[n for n, _, _ in lines][:5]}"
        )
    if not lines[0][1] or not lines[0][2]:
        raise _Failed("the line has the right length but its bytes differ")
    return f"a single {len(expected):,}-byte line arrived as one line through on_line, intact"


_ALLOCATING_CHILD = "b = bytearray(256 << 20)\nprint('not stopped')"


async def _check_resource_limits(tmp: Path) -> str:
    from cc_executor._engine import ProcessStatus, run_process
    from cc_executor._engine._cgroup import Limits, leftover_groups, support

    found = support()
    if found.version is None:
        return (
            f"--memory-max, --cpus and --pids-max {found.describe()}; runs asking for them "
            "are refused (--max-output-bytes works everywhere)"
        )
    if "memory" not in found.parents:
        return f"{found.describe()}; --memory-max is refused here"
    result = await run_process(
        _python(_ALLOCATING_CHILD),
        limits=Limits(memory_max=32 << 20),
        run_dir=tmp / "resource-limits",
    )
    if result.status is not ProcessStatus.OOM_KILLED:
        raise _Failed(
            f"{found.describe()}: a child allocating 256 MiB under a 32 MiB memory limit "
            f"ended {result.status.value} ({result.error}), not oom_killed"
        )
    left = [g for g in leftover_groups(found) if os.path.basename(g) == result.run_id]
    if left:
        raise _Failed(f"the run's cgroup was not removed: {', '.join(left)}")
    return (
        f"{found.describe()}: a child allocating past a 32 MiB memory limit was OOM-killed "
        f"(peak {_mib(result.peak_memory_bytes or 0)}), its cgroup removed"
    )


async def _check_timeout_partial(tmp: Path) -> str:
    from cc_executor._engine import ProcessStatus, run_process

    marker = f"cc-executor-doctor-{secrets.token_hex(6)}"
    started = time.monotonic()
    result = await run_process(
        _python(_TIMEOUT_CHILD, marker), timeout=1.0, grace=2, run_dir=tmp / "timeout-partial"
    )
    elapsed = time.monotonic() - started
    if result.status is not ProcessStatus.TIMEOUT:
        raise _Failed(f"expected status timeout, got {result.status} ({result.error})")
    if not result.partial:
        raise _Failed("the result of a timed-out run is not marked partial")
    if marker.encode() not in result.stdout:
        raise _Failed("the output printed before the timeout was lost")
    return (
        f"stopped after {elapsed:.1f} s ({result.kill_signal}); output printed before the "
        "timeout kept, partial=true"
    )


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, starttime) of ``pid`` from /proc, or None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (fields[0], fields[19]) if len(fields) > 19 else None


def _alive(pid: int, starttime: str) -> bool:
    """True if the process ``pid`` started at ``starttime`` still runs (zombies are gone)."""
    stat = _proc_stat(pid)
    return stat is not None and stat[1] == starttime and stat[0] not in ("Z", "X")


def _marked(mark: str) -> list[int]:
    """Live (non-zombie) processes whose environment holds ``_MARK_ENV=mark``."""
    needle = f"{_MARK_ENV}={mark}".encode()
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            environ = Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            continue
        stat = _proc_stat(int(name))
        if needle in environ.split(b"\0") and stat is not None and stat[0] not in ("Z", "X"):
            found.append(int(name))
    return found


async def _wait_gone(check: Callable[[], list[Any]], within: float) -> list[Any]:
    """Poll ``check`` until it returns nothing or ``within`` seconds pass; the last answer."""
    deadline = time.monotonic() + within
    left = check()
    while left and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        left = check()
    return left


async def _check_tree_cleanup(tmp: Path) -> str:
    from cc_executor._engine import ProcessStatus, run_process

    pidfile = tmp / "tree.pids"
    mark = secrets.token_hex(8)
    result = await run_process(
        _python(_TREE_CHILD, str(pidfile)),
        timeout=1.5,
        grace=0.5,
        extra_env={_MARK_ENV: mark},
        run_dir=tmp / "tree-cleanup",
    )
    words = pidfile.read_text().split() if pidfile.exists() else []
    recorded = [(int(words[i]), words[i + 1]) for i in range(0, len(words) - 1, 2)]
    if result.status is not ProcessStatus.TIMEOUT or b"tree ready" not in result.stdout:
        raise _Failed(
            f"the test tree did not start as planned (status {result.status}, "
            f"{len(recorded)} processes recorded, error: {result.error})"
        )
    survivors = await _wait_gone(lambda: [p for p, t in recorded if _alive(p, t)], within=3)
    stray = await _wait_gone(lambda: _marked(mark), within=1)
    if survivors or stray:
        pids = sorted({*survivors, *stray})
        for pid in pids:
            # A doctor must not leave its own test processes behind either.
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        raise _Failed(
            f"process(es) {pids} of the stopped tree were still alive after the timeout",
            "the engine could not find every process of the tree: check that /proc is mounted "
            "and readable by this user; if it is, this is a bug in cc-executor: please report "
            "it with the output of `cc-executor doctor --json`",
        )
    return (
        f"{len(recorded)} processes ignoring SIGTERM, one escaped with double fork + setsid: "
        f"all gone after {result.kill_signal}"
    )


# --- Claude Code self-tests ------------------------------------------------------------------

_CLAUDE_PLAIN = "cc-executor doctor: the plain answer arrived."
_CLAUDE_BIG_SIZE = 2_000_000


def _big_answer() -> str:
    text = "".join(f"{i:07d} the quick brown fox\n" for i in range(_CLAUDE_BIG_SIZE // 28 + 1))
    return text[:_CLAUDE_BIG_SIZE]


async def _claude_checks(
    record: Recorder, tmp: Path, claude_path: str | None, found: CheckResult
) -> None:
    names = ("claude-answer", "claude-large-answer", "claude-timeout-partial")
    if claude_path is None:
        detail = "not run: the Claude Code CLI is not usable (see the claude check)"
        for name in names:
            await record(name, 5, _failing(detail, found.hint))
        return
    from cc_executor._extras import MissingExtra, require_extra

    try:
        require_extra("testing", "the scripted model server")
    except MissingExtra as exc:
        hint = f"pip install 'cc-executor[{exc.extra}]'"
        for name in names:
            await record(name, 5, _failing(f"not run: {exc}", hint))
        return
    from cc_executor.testing import ModelServer, Reply, Rule, Script, Text

    big = _big_answer()
    script = Script(
        [
            Rule(match="large", answers=[Reply([Text(big)], chunk_size=20_000)]),
            Rule(match="slow", answers=[Reply([Text("word " * 400)], chunk_size=10, delay=0.1)]),
            Rule(answers=[Reply([Text(_CLAUDE_PLAIN)])]),
        ]
    )
    home = tmp / "claude-home"
    work = tmp / "claude-work"
    home.mkdir()
    work.mkdir()
    async with ModelServer(script) as server:
        # The CLI must talk to the scripted server only, whatever the user's environment says,
        # and keep its config and sessions out of the user's ~/.claude.
        with _environ(server.claude_env(home=home, base=os.environ, max_retries=0)):
            await record("claude-answer", 60, lambda: _claude_answer(claude_path, work))
            await record("claude-large-answer", 90, lambda: _claude_large(claude_path, work, big))
            await record("claude-timeout-partial", 30, lambda: _claude_timeout(claude_path, work))


def _failing(detail: str, hint: str) -> Callable[[], Awaitable[str]]:
    async def check() -> str:
        raise _Failed(detail, hint)

    return check


async def _claude_run(claude_path: str, work: Path, prompt: str, **options: Any) -> Any:
    from cc_executor._run._runner import run

    return await run(
        prompt,
        claude_path=claude_path,
        cwd=work,
        heartbeat_s=0,
        retries=0,
        **options,
    )


async def _claude_answer(claude_path: str, work: Path) -> str:
    from cc_executor._agents._types import RunStatus

    result = await _claude_run(claude_path, work, "say something", timeout=45, grace=2)
    if result.status is not RunStatus.OK:
        raise _Failed(f"the run ended with status {result.status}: {result.error}")
    if result.result != _CLAUDE_PLAIN or result.partial:
        raise _Failed(f"unexpected answer {result.result[:80]!r} (partial={result.partial})")
    return f"the real CLI answered from the scripted server in {result.duration_s:.1f} s"


async def _claude_large(claude_path: str, work: Path, big: str) -> str:
    from cc_executor._agents._types import RunStatus

    result = await _claude_run(claude_path, work, "a large answer", timeout=75, grace=2)
    if result.status is not RunStatus.OK:
        raise _Failed(f"the run ended with status {result.status}: {result.error}")
    if result.result != big:
        raise _Failed(f"{len(result.result):,} of {len(big):,} characters arrived, or they differ")
    return (
        f"a {len(big):,}-character answer ({len(big) // _PIPE_BUFFER}x the 64 KiB pipe buffer) "
        "arrived whole"
    )


async def _claude_timeout(claude_path: str, work: Path) -> str:
    from cc_executor._agents._types import RunStatus

    mark = secrets.token_hex(8)
    result = await _claude_run(
        claude_path, work, "a slow answer", timeout=3, grace=2, env={_MARK_ENV: mark}
    )
    if result.status is not RunStatus.TIMEOUT:
        raise _Failed(f"expected status timeout, got {result.status} ({result.error})")
    if not result.partial or not result.result.startswith("word word"):
        raise _Failed(
            f"the text streamed before the timeout was not kept "
            f"(partial={result.partial}, {len(result.result)} characters)"
        )
    stray = await _wait_gone(lambda: _marked(mark), within=3)
    if stray:
        for pid in stray:
            with contextlib.suppress(OSError):
                os.kill(pid, 9)
        raise _Failed(
            f"process(es) {stray} of the stopped CLI were still alive after the timeout",
            _BUG_HINT,
        )
    kill = result.process.kill_signal if result.process is not None else None
    return (
        f"stopped after {result.timeout_after:g} s ({kill}); {len(result.result)} characters of "
        "partial text kept, partial=true, no CLI process left"
    )
