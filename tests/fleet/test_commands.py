"""The fleet's commands refuse bad input in one line, before anything connects."""

from __future__ import annotations

import os
import subprocess

import pytest

from tests.fleet.conftest import CLI


def cc(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "CC_EXECUTOR_FLEET"}
    return subprocess.run(
        [CLI, *args],
        env={**environment, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_worker_needs_a_fleet_url() -> None:
    done = cc("worker")
    assert done.returncode == 2
    assert done.stderr == "cc-executor worker: give --fleet URL or set CC_EXECUTOR_FLEET\n"


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_worker_refuses_a_bad_url_and_bad_settings() -> None:
    done = cc("worker", "--fleet", "http://example.com")
    assert done.returncode == 2
    assert "the scheme must be redis://" in done.stderr
    assert "Traceback" not in done.stderr
    done = cc("worker", "--slots", "0", CC_EXECUTOR_FLEET="redis://localhost:1/0")
    assert done.returncode == 2
    assert "--slots must be at least 1" in done.stderr
    done = cc("worker", "--agent", "nope", CC_EXECUTOR_FLEET="redis://localhost:1/0")
    assert done.returncode == 2
    assert "--agent 'nope': unknown agent" in done.stderr


def test_cancel_refuses_a_password_on_the_command_line() -> None:
    done = cc("cancel", "01abcdefghjkmnpqrstvwxyz01", "--fleet", "redis://u:pw@localhost:1/0")
    assert done.returncode == 2
    assert "CC_EXECUTOR_FLEET_PASSWORD" in done.stderr
    assert "Traceback" not in done.stderr


UNREACHABLE = "unix:///nonexistent/redis.sock"
#: Each control command with each way of naming the fleet; without --fleet, cancel, pause
#: and unpause act on a local run instead (tests/run/test_control.py).
GIVEN = [
    *((c, ["--fleet", UNREACHABLE]) for c in ("cancel", "pause", "unpause", "attach")),
    *((c, ["--fleet"]) for c in ("cancel", "pause", "unpause", "attach")),
    ("attach", []),
]


@pytest.mark.parametrize(("command", "flags"), GIVEN)
@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_an_unreachable_fleet_is_one_line_and_exit_2_for_every_control_command(
    command: str, flags: list[str]
) -> None:
    done = cc(command, "01abcdefghjkmnpqrstvwxyz01", *flags, CC_EXECUTOR_FLEET=UNREACHABLE)
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith(f"cc-executor {command}: the fleet at {UNREACHABLE}")
    assert done.stderr.count("\n") == 1


def test_a_worker_whose_fleet_is_unreachable_says_so_and_exits() -> None:
    done = cc("worker", "--fleet", "unix:///nonexistent/redis.sock")
    assert done.returncode == 1
    assert done.stderr.startswith("cc-executor worker: the fleet at unix:///nonexistent")
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_fleet_status_needs_a_url_and_says_when_the_fleet_is_unreachable() -> None:
    done = cc("fleet", "status")
    assert done.returncode == 2
    assert done.stderr == "cc-executor fleet status: give --fleet URL or set CC_EXECUTOR_FLEET\n"
    done = cc("fleet", "status", "--fleet", "unix:///nonexistent/redis.sock")
    assert done.returncode == 2
    assert done.stderr.startswith("cc-executor fleet status: the fleet at unix:///nonexistent")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    "flags", [["--max-concurrent-per-credential", "-1"], ["--limit-backoff", "0"]]
)
def test_a_worker_refuses_bad_shared_limits_in_one_line(flags: list[str]) -> None:
    done = cc("worker", "--fleet", "unix:///nonexistent/redis.sock", *flags)
    assert done.returncode == 2, done.stderr
    assert done.stderr == (
        "cc-executor worker: --max-concurrent-per-credential must be >= 0, "
        "--limit-backoff in (0, 60]\n"
    )
