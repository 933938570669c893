"""Resource limits of a run's whole tree: the kernel enforces memory, CPU and process limits
in a cgroup of the run's own (v1 or v2, detected), the engine enforces the output limit,
says which limit stopped a run, measures what the tree used and leaves no cgroup behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from cc_executor._engine import ProcessStatus, run_process
from cc_executor._engine._cgroup import Limits, detect, support
from cc_executor._run._options import parse_size
from tests._procs import run_cgroups
from tests._wait import wait_for

CLI = str(Path(sys.executable).parent / "cc-executor")
MIB = 1 << 20


def py(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def no_leftover_groups(run_id: str) -> None:
    assert run_cgroups(run_id) == []


# --- detection, on fake /sys and /proc trees ----------------------------------------------


def fake_tree(tmp_path: Path, proc: str, files: dict[str, str]) -> tuple[str, str]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    own = tmp_path / "self-cgroup"
    own.write_text(proc)
    return str(root), str(own)


HYBRID = "4:memory:/box\n8:pids:/\n1:cpu:/\n2:cpuacct:/\n0::/\n"


def test_detects_v1_in_a_hybrid_layout(tmp_path: Path) -> None:
    root, own = fake_tree(
        tmp_path,
        HYBRID,
        {
            "memory/box/memory.limit_in_bytes": "",
            "pids/pids.max": "",
            "cpu/cpu.cfs_quota_us": "",
            "cpuacct/cpuacct.usage": "",
            "unified/cgroup.controllers": "\n",  # the v2 mount of a hybrid: no controller
            "unified/cgroup.procs": "1\n",
        },
    )
    found = detect(root, own)
    assert found.version == 1
    assert found.parents == {
        "memory": f"{root}/memory/box",
        "pids": f"{root}/pids/",
        "cpu": f"{root}/cpu/",
        "cpuacct": f"{root}/cpuacct/",
    }
    assert found.describe().startswith("cgroup v1 (cpu, cpuacct, memory, pids)")
    assert found.missing(Limits(memory_max=MIB, cpus=1, pids_max=5)) is None


def test_detects_a_usable_v2_root(tmp_path: Path) -> None:
    root, own = fake_tree(
        tmp_path,
        "0::/\n",
        {
            "cgroup.controllers": "cpuset cpu io memory pids\n",
            "cgroup.subtree_control": "",
            "cgroup.procs": "1\n",
        },
    )
    found = detect(root, own)
    assert found.version == 2
    assert found.controllers == ["cpu", "memory", "pids"]


def test_a_v2_run_group_gets_its_limits_written(tmp_path: Path) -> None:
    """What the engine writes in a cgroup v2 tree (checked on a fake one: this machine's v2
    mount has no controllers to try it on)."""
    from cc_executor._engine._cgroup import RunCgroup

    root, own = fake_tree(
        tmp_path,
        "0::/\n",
        {"cgroup.controllers": "cpu memory pids\n", "cgroup.subtree_control": ""},
    )
    found = detect(root, own)
    limits = Limits(memory_max=64 * MIB, cpus=0.5, pids_max=20)
    group = RunCgroup.create("run1", limits, found)
    folder = Path(root) / "cc-executor" / "run1"
    assert set(group.folders.values()) == {str(folder)}
    assert (Path(root) / "cgroup.subtree_control").read_text() == "+cpu +memory +pids"
    assert (Path(root) / "cc-executor" / "cgroup.subtree_control").read_text() == (
        "+cpu +memory +pids"
    )
    assert (folder / "memory.max").read_text() == str(64 * MIB)
    assert (folder / "memory.oom.group").read_text() == "1"
    assert (folder / "cpu.max").read_text() == "50000 100000"
    assert (folder / "pids.max").read_text() == "20"
    group.add(4242)
    assert (folder / "cgroup.procs").read_text() == "4242"


def test_v2_group_holding_processes_is_refused_with_the_reason(tmp_path: Path) -> None:
    root, own = fake_tree(
        tmp_path,
        "0::/user.slice/me.scope\n",
        {
            "cgroup.controllers": "cpu memory pids\n",
            "user.slice/me.scope/cgroup.controllers": "memory pids cpu\n",
            "user.slice/me.scope/cgroup.subtree_control": "",
            "user.slice/me.scope/cgroup.procs": "4242\n",
        },
    )
    found = detect(root, own)
    assert found.version is None
    assert "holds processes" in found.reason
    problem = found.missing(Limits(memory_max=MIB))
    assert problem is not None
    assert problem.startswith("memory_max cannot be enforced on this machine: ")


def test_nothing_usable_names_every_limit_asked_for(tmp_path: Path) -> None:
    root, own = fake_tree(tmp_path, "0::/\n", {})
    found = detect(root, own)
    assert found.version is None
    assert found.describe().startswith("not enforceable: ")
    problem = found.missing(Limits(memory_max=MIB, pids_max=3, max_output_bytes=10))
    assert problem is not None
    assert problem.startswith("memory_max, pids_max cannot be enforced")
    # The output limit needs no cgroup.
    assert found.missing(Limits(max_output_bytes=10)) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512M", 512 * MIB), ("1.5G", 3 << 29), ("2GiB", 2 << 30), ("300MB", 300 * MIB), (7, 7)],
)
def test_sizes(text: str | int, expected: int) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("bad", ["", "lots", "-5M", "0", True, "5X"])
def test_bad_sizes_are_refused(bad: str | int) -> None:
    with pytest.raises(ValueError, match="size"):
        parse_size(bad, "memory_max")


def test_task_lists_and_the_service_take_the_limits(tmp_path: Path) -> None:
    from cc_executor._errors import InvalidRequest, TaskListError
    from cc_executor._service._policy import RunPolicy
    from cc_executor.tasks._load import parse_task_list

    spec = parse_task_list(
        "defaults:\n  memory_max: 512M\ntasks:\n  - id: a\n    prompt: hi\n"
        "    pids_max: 50\n    max_output_bytes: 10M\n    cpus: 0.5\n",
        format="yaml",
    )
    assert spec.tasks[0].options == {
        "memory_max": 512 * MIB,
        "pids_max": 50,
        "max_output_bytes": 10 * MIB,
        "cpus": 0.5,
    }
    with pytest.raises(TaskListError, match="memory_max must be a size in bytes"):
        parse_task_list("tasks:\n  - id: a\n    prompt: hi\n    memory_max: lots\n", format="yaml")
    policy = RunPolicy([tmp_path], [])
    policy.check_exec_options({"memory_max": "64M", "cpus": 1, "pids_max": 10})
    with pytest.raises(InvalidRequest, match="pids_max must be a positive integer"):
        policy.check_exec_options({"pids_max": 0})


def test_a_limit_that_cannot_be_enforced_refuses_the_run(tmp_path: Path) -> None:
    """A machine without usable cgroups (simulated: the mount point is an empty folder) runs
    nothing unbounded: the run cannot start (125), and says which limit and why."""
    done = subprocess.run(
        [CLI, "exec", "--memory-max", "64M", "--", "true"],
        capture_output=True,
        env={**os.environ, "CC_EXECUTOR_CGROUP_ROOT": str(tmp_path)},
        check=False,
        timeout=60,
    )
    assert done.returncode == 125
    assert b"memory_max cannot be enforced on this machine" in done.stderr
    assert done.stderr.count(b"\n") == 1


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_bad_limit_values_are_usage_errors() -> None:
    for flag, value, message in (
        ("--memory-max", "lots", b"size"),
        ("--pids-max", "0", b"--pids-max must be a positive integer"),
        ("--cpus", "0", b"--cpus must be positive"),
    ):
        done = subprocess.run(
            [CLI, "exec", flag, value, "--", "true"], capture_output=True, check=False, timeout=60
        )
        assert done.returncode == 2, (flag, done.stderr)
        assert message in done.stderr


# --- the output limit: the engine's own, everywhere ---------------------------------------

#: 3 MB, ten times the limit of the tests.
FLOOD = "import sys\nfor _ in range(3000):\n    sys.stdout.write('x' * 999 + '\\n')\n"


@pytest.mark.parametrize("to_file", [False, True])
async def test_output_limit_stops_a_flood_and_keeps_the_output_up_to_it(
    tmp_path: Path, to_file: bool
) -> None:
    limit = 300_000
    result = await run_process(
        py(FLOOD),
        limits=Limits(max_output_bytes=limit),
        stdout_to_file=to_file,
        run_dir=tmp_path / "run",
    )
    assert result.status is ProcessStatus.LIMIT_EXCEEDED
    assert result.partial
    assert result.error is not None
    assert result.error.startswith("output limit exceeded: max_output_bytes 300000")
    assert result.stdout_bytes == limit
    assert result.stdout_path is not None
    kept = Path(result.stdout_path).read_bytes()
    assert kept == (b"x" * 999 + b"\n") * (limit // 1000)
    assert result.stdout == kept


async def test_output_under_the_limit_is_untouched(tmp_path: Path) -> None:
    result = await run_process(
        py("print('small')"), limits=Limits(max_output_bytes=100), run_dir=tmp_path / "run"
    )
    assert result.status is ProcessStatus.OK
    assert result.stdout == b"small\n"


@pytest.mark.slow  # over 0.3 s: burns CPU
async def test_usage_is_sampled_without_a_cgroup(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass"
    result = await run_process(py(burn), run_dir=tmp_path / "run")
    assert result.status is ProcessStatus.OK
    assert result.usage_source == "sampled"
    assert result.cpu_time_s is not None
    assert result.cpu_time_s >= 0.3


# --- the kernel's limits, in a cgroup of the run's own ------------------------------------

#: Starts a grandchild that only sleeps (it must die with the tree), then allocates 256 MiB
#: a MiB at a time.
ALLOCATE = (
    "import subprocess, sys, time\n"
    "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])\n"
    "print(p.pid, flush=True)\n"
    "chunks = []\n"
    "for _ in range(256):\n"
    "    chunks.append(bytearray(1 << 20))\n"
    "print('not stopped', flush=True)\n"
)


@pytest.mark.cgroup
async def test_memory_limit_oom_kills_the_whole_tree(tmp_path: Path) -> None:
    result = await run_process(
        py(ALLOCATE), limits=Limits(memory_max=64 * MIB), run_dir=tmp_path / "run"
    )
    assert result.status is ProcessStatus.OOM_KILLED
    assert result.partial
    assert result.error is not None
    assert result.error.startswith("memory limit exceeded: memory_max 64.0 MiB")
    assert "peak 6" in result.error  # the peak, at the limit
    grandchild = int(result.stdout.split()[0])
    assert b"not stopped" not in result.stdout
    assert not psutil.pid_exists(grandchild) or psutil.Process(grandchild).status() == "zombie"
    assert result.peak_memory_bytes is not None
    assert 32 * MIB < result.peak_memory_bytes <= 64 * MIB
    assert result.usage_source == f"cgroup v{support().version}"
    no_leftover_groups(result.run_id)


#: Forks up to 200 children that sleep: bounded by the limit of 16 (by 200 without one, and
#: then it ends ok: the engine stops the sleepers it leaves).
FORK_BOMB = (
    "import os, sys, time\n"
    "for _ in range(200):\n"
    "    try:\n"
    "        if os.fork() == 0:\n"
    "            time.sleep(600)\n"
    "            os._exit(0)\n"
    "    except OSError as exc:\n"
    "        print('refused:', exc.strerror, flush=True)\n"
    "        time.sleep(600)\n"
    "print('all forked', flush=True)\n"
)


@pytest.mark.cgroup
async def test_process_limit_stops_a_fork_bomb(tmp_path: Path) -> None:
    result = await run_process(
        py(FORK_BOMB), limits=Limits(pids_max=16), grace=1, run_dir=tmp_path / "run"
    )
    assert result.status is ProcessStatus.LIMIT_EXCEEDED
    assert result.error is not None
    assert result.error.startswith("process limit reached: pids_max 16;")
    assert "peak 16 processes" in result.error
    assert b"refused: Resource temporarily unavailable" in result.stdout
    no_leftover_groups(result.run_id)


@pytest.mark.cgroup
@pytest.mark.slow  # over 0.3 s: throttled CPU for a measured while
async def test_cpu_limit_throttles_the_tree(tmp_path: Path) -> None:
    burn = "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.05: pass"
    result = await run_process(py(burn), limits=Limits(cpus=0.02), run_dir=tmp_path / "run")
    assert result.status is ProcessStatus.OK
    assert result.cpu_time_s is not None
    assert result.cpu_time_s >= 0.05
    # 50 ms of CPU at 2 ms per 100 ms period: held back in about 25 periods. The quota is
    # far below a core's share even on a loaded machine (load 14 on 2 cores still gives a
    # busy process about 14%), so the kernel, not the scheduler's crowd, is what holds it.
    assert result.cpu_throttled_s is not None
    assert result.cpu_throttled_s > 0
    no_leftover_groups(result.run_id)


@pytest.mark.cgroup
@pytest.mark.slow
def test_exec_records_peak_memory_and_cpu_in_the_history(tmp_path: Path) -> None:
    env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path / "home")}
    code = "b = bytearray(48 << 20)\nfor i in range(0, len(b), 4096): b[i] = 1\nprint('ok')"
    done = subprocess.run(
        [CLI, "exec", "--json", "--memory-max", "1G", "--cpus", "2", "--", *py(code)],
        capture_output=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    assert result["peak_memory_bytes"] > 48 * MIB
    assert result["cpu_time_s"] > 0
    shown = subprocess.run(
        [CLI, "show", "--json", result["run_id"]],
        capture_output=True,
        env=env,
        check=True,
        timeout=60,
    )
    record = json.loads(shown.stdout)
    assert record["peak_memory_bytes"] == result["peak_memory_bytes"]
    assert record["cpu_time_s"] == result["cpu_time_s"]
    verified = subprocess.run(
        [CLI, "verify", result["run_id"]], capture_output=True, env=env, check=False, timeout=60
    )
    assert verified.returncode == 0, verified.stdout
    no_leftover_groups(result["run_id"])


@pytest.mark.cgroup
def test_exec_exit_code_and_error_when_oom_killed(tmp_path: Path) -> None:
    env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [CLI, "exec", "--memory-max", "32M", "--", *py("b = bytearray(256 << 20)")],
        capture_output=True,
        env=env,
        check=False,
        timeout=120,
    )
    assert done.returncode == 137
    assert b"memory limit exceeded: memory_max 32.0 MiB" in done.stderr
    listed = subprocess.run(
        [CLI, "history", "--json"], capture_output=True, env=env, check=True, timeout=60
    )
    (record,) = json.loads(listed.stdout)
    no_leftover_groups(record["id"])


@pytest.mark.cgroup
@pytest.mark.slow
def test_crash_recovery_removes_a_dead_supervisors_cgroup(cc_home: Path) -> None:
    """A supervisor SIGKILLed mid-run: the watchdog kills the tree, and the next opening of
    the history marks the run interrupted and removes its cgroup."""
    from cc_executor._store import open_store

    def running() -> str:
        store = open_store()
        try:
            found = store.running()
        finally:
            store.close()
        return found[0].id if found else ""

    proc = subprocess.Popen(
        [CLI, "exec", "--pids-max", "50", "--", "sleep", "600"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        # This run's: the other xdist worker's runs may have groups beside it.
        run_id = wait_for(running, what="the run in the history")
        wait_for(lambda: run_cgroups(run_id), what="the run's cgroup")
    finally:
        proc.kill()
        proc.wait()
    store = open_store()
    try:
        record = store.get(run_id)
    finally:
        store.close()
    assert record is not None
    assert record.status == "interrupted"
    no_leftover_groups(run_id)
