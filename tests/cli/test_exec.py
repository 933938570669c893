"""`cc-executor exec` through the installed console script, as a user runs it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from tests._wait import wait_for

CLI = str(Path(sys.executable).parent / "cc-executor")
RESULT_FIELDS = {
    "run_id", "status", "exit_code", "signal", "duration_s", "partial", "stdout_path",
    "stderr_path", "stdout_bytes", "stderr_bytes", "stdout_sha256", "stderr_sha256",
    "stderr_tail", "error",
}  # fmt: skip


def cc(*args: str, **kw: object) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([CLI, *args], check=False, capture_output=True, timeout=60, **kw)  # type: ignore[call-overload, no-any-return]


def test_version_and_help() -> None:
    from cc_executor import __version__

    assert cc("--version").stdout.decode() == f"cc-executor {__version__}\n"
    help_text = cc("exec", "--help").stdout.decode()
    assert "--idle-timeout" in help_text
    assert "124" in help_text


def test_streams_through_and_passes_the_exit_code() -> None:
    done = cc("exec", "--", "sh", "-c", "echo out; echo err >&2; exit 7")
    assert done.returncode == 7
    assert done.stdout == b"out\n"
    assert done.stderr.startswith(b"err\n")
    assert b"exited with code 7" in done.stderr


@pytest.mark.slow  # over 0.3 s: waits out a timeout
def test_timeout_exits_124_and_keeps_partial_output() -> None:
    done = cc("exec", "--timeout", "0.5", "--", "sh", "-c", "echo before; sleep 30")
    assert done.returncode == 124
    assert done.stdout == b"before\n"


def test_cannot_start_exits_125() -> None:
    done = cc("exec", "--", "no-such-program-xyz")
    assert done.returncode == 125
    assert b"executable not found on PATH: no-such-program-xyz" in done.stderr
    assert cc("exec", "--cwd", "/nonexistent-dir", "--", "true").returncode == 125


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_usage_errors_exit_2_on_one_line() -> None:
    """No command, a refused value, a misspelt flag: exit 2, one line naming the flag (with
    the closest one for a typo), and under --json exactly one usage_error object."""
    for args, says in (
        (["exec"], b"no command given"),
        (["exec", "--idle-timeout", "-1", "--", "true"], b"--idle-timeout must be positive"),
        (["exec", "--idle-timout", "1", "--", "true"], b"(did you mean --idle-timeout?)"),
    ):
        done = cc(*args)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count(b"\n") == 1
        assert says in done.stderr
        assert done.stdout == b""
        as_json = cc(*args[:1], "--json", *args[1:])
        assert as_json.returncode == 2
        assert json.loads(as_json.stdout) == {
            "schema_version": 1,
            "status": "usage_error",
            "error": as_json.stderr.decode().split(": error: ", 1)[1].rsplit(" (see ", 1)[0],
            "exit_code": 2,
            "run_id": None,
        }
        assert as_json.stdout.count(b"\n") == 1


def test_warnings_are_printed_on_stderr(tmp_path: Path) -> None:
    """A warning of the result (here: the history cannot be written) reaches the user
    once, not only under --json."""
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder should be")
    env = {**os.environ, "CC_EXECUTOR_HOME": str(blocker / "home")}
    done = cc("exec", "--run-dir", str(tmp_path / "run"), "--", "true", env=env)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count(b"cc-executor exec: warning: history not recorded") == 1


def test_killed_by_signal_exits_128_plus_n() -> None:
    assert cc("exec", "--", "sh", "-c", "kill -KILL $$").returncode == 128 + 9


def test_json_prints_exactly_one_object(tmp_path: Path) -> None:
    source = tmp_path / "in.txt"
    source.write_text("fed from a file\n")
    done = cc(
        "exec", "--json", "--stdin", str(source), "--cwd", str(tmp_path), "--",
        "sh", "-c", "cat; pwd; echo warn >&2",
    )  # fmt: skip
    assert done.returncode == 0
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) >= RESULT_FIELDS
    assert result["status"] == "ok"
    assert Path(result["stdout_path"]).read_text() == f"fed from a file\n{tmp_path}\n"
    assert result["stderr_tail"] == "warn\n"
    assert result["partial"] is False


def test_json_on_timeout() -> None:
    done = cc("exec", "--json", "--timeout", "0.3", "--grace", "0.2", "--", "sleep", "30")
    assert done.returncode == 124
    result = json.loads(done.stdout)
    assert result["status"] == "timeout"
    assert result["partial"] is True
    assert result["kill_signal"] == "SIGTERM"


@pytest.mark.slow
def test_sigterm_to_exec_cleans_up_the_tree(tmp_path: Path) -> None:
    pidfile = tmp_path / "pid"
    proc = subprocess.Popen(
        [
            CLI,
            "exec",
            "--",
            "sh",
            "-c",
            f"sleep 60 & echo $! > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; wait",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(pidfile.exists, what=f"{pidfile}")
    sleeper = psutil.Process(int(pidfile.read_text()))
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 143  # 128 + SIGTERM, as a shell reports it
    # Killed, it dies when it next gets a core (seconds on a loaded machine): wait for it.
    wait_for(lambda: _escapee_gone(sleeper.pid), what="the sleeper gone")


def _escapee_gone(pid: int) -> bool:
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return True


@pytest.mark.parametrize(
    "how", ["cancel", pytest.param("timeout", marks=pytest.mark.slow), "normal exit"]
)
@pytest.mark.parametrize("fork", [False, True])
def test_a_descendant_that_scrubs_its_environment_and_leaves_the_session_is_stopped(
    tmp_path: Path, how: str, fork: bool
) -> None:
    """Issue 18 F8.5: `env -i setsid` leaves no tree token and no session to find; with
    `setsid -f` it is orphaned at once too. The exec process is a child subreaper, so the
    orphan comes to it and is swept (and a non-orphan is found by its parent)."""
    pidfile, go = tmp_path / "escapee", tmp_path / "go"
    escape = "env -i setsid " + ("-f " if fork else "")
    escape += f"sh -c 'echo $$ > {pidfile}.tmp; mv {pidfile}.tmp {pidfile}; exec sleep 1000'"
    after = "true" if how == "normal exit" else "exec sleep 1000"
    script = f"{escape} {'' if fork else '&'}\nwhile [ ! -e {go} ]; do sleep 0.01; done; {after}"
    # Long enough for the escapee to start on a loaded machine: the test waits for it.
    timeout = ["--timeout", "5"] if how == "timeout" else []
    proc = subprocess.Popen(
        [CLI, "exec", *timeout, "--grace", "1", "--", "sh", "-c", script],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    wait_for(pidfile.exists, what=f"{pidfile}")
    escapee = int(pidfile.read_text())
    assert "CC_EXECUTOR_TREE" not in psutil.Process(escapee).environ()
    assert os.getsid(escapee) == escapee
    go.touch()
    if how == "cancel":
        proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=60)
    assert proc.returncode == {"cancel": 143, "timeout": 124, "normal exit": 0}[how]
    wait_for(lambda: _escapee_gone(escapee), what=f"the escapee {escapee} gone")
