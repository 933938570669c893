"""The console's early start: a child launched before the event loop, then adopted by the
engine (or abandoned) in a fresh single-threaded process, as ``cc-executor run`` does."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor._engine._tree import find_tree
from tests._wait import wait_for

LAUNCHER = str(Path(__file__).parent / "children" / "launcher.py")
TREE = str(Path(__file__).parent / "children" / "tree.py")


def launcher(spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, LAUNCHER, json.dumps(spec)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.slow  # over 0.3 s: megabytes through a child
def test_adopted_child_keeps_every_byte(tmp_path: Path) -> None:
    """Output written before the adoption is all there: stdout is the file, and stderr
    (2 MiB, more than the pipe holds) waits for the supervisor without being lost."""
    code = (
        "import sys, hashlib; data = sys.stdin.read(); "
        "sys.stderr.write('e' * (2 << 20)); sys.stderr.flush(); "
        "out = (hashlib.sha256(data.encode()).hexdigest() + '\\n') * 50000; "
        "sys.stdout.write(out)"
    )
    result = launcher(
        {
            "mode": "adopt",
            "argv": [sys.executable, "-c", code],
            "cwd": str(tmp_path),
            "run_dir": str(tmp_path / "run"),
            "stdin": "the prompt \u00e9",
            "delay": 0.5,
        }
    )
    line = hashlib.sha256("the prompt \u00e9".encode()).hexdigest() + "\n"
    expected = (line * 50000).encode()
    assert result["status"] == "ok", result
    assert result["stdout_bytes"] == len(expected)
    assert result["stdout_sha256"] == hashlib.sha256(expected).hexdigest()
    assert Path(result["stdout_path"]).read_bytes() == expected
    assert result["stderr_bytes"] == 2 << 20


@pytest.mark.parametrize("mode", ["adopt", "threaded"])
def test_child_started_like_the_engine_starts_one(tmp_path: Path, mode: str) -> None:
    """Own session, the tree token, the given cwd and env, SIGPIPE back to default: alike
    whether the process is single-threaded (posix_spawn) or not (fork and exec), and the
    launching process's own cwd unchanged."""
    code = (
        "import os, json; "
        "print(json.dumps({'cwd': os.getcwd(), 'tree': os.environ.get('CC_EXECUTOR_TREE'), "
        "'extra': os.environ.get('EXTRA'), 'sid': os.getsid(0), 'pid': os.getpid()}))"
    )
    work = tmp_path / "work dir"
    work.mkdir()
    result = launcher(
        {
            "mode": mode,
            "argv": [sys.executable, "-c", code],
            "cwd": str(work),
            "run_dir": str(tmp_path / "run"),
            "env": {"EXTRA": "yes"},
        }
    )
    assert result["status"] == "ok", result
    assert result["parent_cwd"] == os.getcwd()
    seen = json.loads(Path(result["stdout_path"]).read_text())
    assert seen["cwd"] == str(work)
    assert seen["extra"] == "yes"
    assert seen["tree"].endswith(result["token"])
    assert seen["sid"] == seen["pid"] == result["pid"]
    # Python ignores SIGPIPE; like subprocess's restore_signals, the child gets it back
    # (a child that is not Python itself shows it: grep reads its own signal mask).
    grep = launcher(
        {
            "mode": mode,
            "argv": ["grep", "SigIgn", "/proc/self/status"],
            "cwd": str(work),
            "run_dir": str(tmp_path / "run2"),
        }
    )
    ignored = int(Path(grep["stdout_path"]).read_text().split()[1], 16)
    assert not ignored & (1 << (13 - 1)), "SIGPIPE still ignored"


@pytest.mark.slow
def test_timeout_counts_from_the_launch(tmp_path: Path) -> None:
    """Adopted 2 s after its launch with a 4 s timeout: stopped 4 s after the launch, not
    4 s after the adoption (6 s)."""
    result = launcher(
        {
            "mode": "adopt",
            "argv": [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
            "cwd": str(tmp_path),
            "run_dir": str(tmp_path / "run"),
            "delay": 2.0,
            "timeout": 4.0,
        }
    )
    assert result["status"] == "timeout", result
    assert result["timed_out"] == "total"
    # The two readings are 2 s apart; the bounds split the difference, so up to 1 s of delay
    # from other load is no failure.
    assert 3.9 <= result["duration_s"] < 5.0
    assert result["wall_since_launch"] < 5.0  # not 2.0 + 4.0 (+ grace)
    assert Path(result["stdout_path"]).read_text() == "up\n"


@pytest.mark.slow
def test_abandon_kills_the_whole_tree(tmp_path: Path) -> None:
    """A child that was never adopted is killed with everything it started, including a
    grandchild that left for a session of its own."""
    pidfile = tmp_path / "pids"
    result = launcher(
        {
            "mode": "abandon",
            "argv": [sys.executable, TREE, str(pidfile), "--escape", "--ignore-term"],
            "cwd": str(tmp_path),
            "run_dir": str(tmp_path / "run"),
            "delay": 1.5,
        }
    )
    pids = [int(p) for p in pidfile.read_text().split()]
    assert len(pids) >= 2  # the child and its escaped grandchild were running
    # Killed processes die when they next get a core (seconds on a loaded machine).
    wait_for(lambda: find_tree([result["token"]]) == [], what="the abandoned tree gone")
    for pid in pids:
        assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie"


def test_launch_refusals_are_specific(tmp_path: Path) -> None:
    base = {"mode": "adopt", "run_dir": str(tmp_path / "run")}
    missing_cwd = launcher({**base, "argv": ["/bin/true"], "cwd": str(tmp_path / "nope")})
    assert "working directory does not exist" in missing_cwd["spawn_error"]
    missing_exe = launcher({**base, "argv": [str(tmp_path / "no-such")], "cwd": str(tmp_path)})
    assert "executable not found" in missing_exe["spawn_error"]
    # Nothing was left behind: no output file, the folder usable by the ordinary path.
    assert not (tmp_path / "run" / "stdout.log").exists()
    assert os.listdir(tmp_path / "run") == ["prompt.txt"]


def test_inherited_descriptors_are_not_passed_on(tmp_path: Path) -> None:
    """Like subprocess's close_fds: an inheritable descriptor of the launching process (a
    make jobserver, a caller's pipe) does not reach the child."""
    result = launcher(
        {
            "mode": "adopt",
            "argv": ["ls", "/proc/self/fd"],
            "cwd": str(tmp_path),
            "run_dir": str(tmp_path / "run"),
            "leak_fd": True,
        }
    )
    assert result["status"] == "ok", result
    fds = sorted(int(n) for n in Path(result["stdout_path"]).read_text().split())
    assert result["leaked_fd"] > 2
    assert result["leaked_fd"] not in fds
    assert fds[:3] == [0, 1, 2]


@pytest.mark.slow
def test_output_before_the_adoption_counts_as_activity(tmp_path: Path) -> None:
    """A child that writes every 0.1 s, adopted 1 s after its launch with a 0.5 s idle
    timeout (and a 0.5 s first-output timeout), is not idle: it runs to its end."""
    code = "import time\nfor i in range(15):\n    print(i, flush=True); time.sleep(0.1)\n"
    for option in ("idle_timeout", "first_output_timeout"):
        result = launcher(
            {
                "mode": "adopt",
                "argv": [sys.executable, "-c", code],
                "cwd": str(tmp_path),
                "run_dir": str(tmp_path / option),
                "delay": 1.0,
                option: 0.5,
            }
        )
        assert result["status"] == "ok", (option, result)
        assert Path(result["stdout_path"]).read_text().split() == [str(i) for i in range(15)]


def test_exit_status_when_the_kernel_reaps_the_child(tmp_path: Path) -> None:
    """Started with SIGCHLD ignored, the child is reaped by the kernel: the run still ends
    (exit code 0, as subprocess reports it then), without waiting or a reaping warning."""
    result = launcher(
        {
            "mode": "adopt",
            "argv": [sys.executable, "-c", "print('done')"],
            "cwd": str(tmp_path),
            "run_dir": str(tmp_path / "run"),
            "ignore_sigchld": True,
        }
    )
    assert result["status"] == "ok", result
    assert result["exit_code"] == 0
    assert not any("reaped" in w for w in result["warnings"])
