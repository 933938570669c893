"""Launch a child with ``_engine._launch.launch`` in this fresh (single-threaded) process,
or with a second thread running (``threaded``: launch then forks and execs instead of
``posix_spawn``), then adopt or abandon it; print what happened as one JSON line.

Usage: launcher.py SPEC_JSON, where SPEC is
    {"mode": "adopt" | "abandon" | "threaded", "argv": [...], "cwd": DIR, "run_dir": DIR,
     "stdin": TEXT, "delay": SECONDS before adoption, "timeout": SECONDS or null,
     "env": {...}}
"""

import asyncio
import json
import os
import sys
import threading
import time

from cc_executor._engine._launch import launch
from cc_executor._engine._spawn import SpawnError

spec = json.loads(sys.argv[1])
os.makedirs(spec["run_dir"], exist_ok=True)
stdin_path = os.path.join(spec["run_dir"], "prompt.txt")
with open(stdin_path, "w") as f:
    f.write(spec.get("stdin", ""))
if spec.get("leak_fd"):
    leaked = 57  # high, so that it is not one the child opens itself
    os.dup2(os.open(os.devnull, os.O_RDONLY), leaked)  # dup2 makes it inheritable
if spec.get("ignore_sigchld"):
    import signal

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
if spec["mode"] == "threaded":
    threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
try:
    launched = launch(
        spec["argv"],
        cwd=spec["cwd"],
        run_id="launch-test",
        run_dir=spec["run_dir"],
        stdin_path=stdin_path,
        extra_env=spec.get("env") or {},
    )
except SpawnError as exc:
    print(json.dumps({"spawn_error": str(exc)}))
    sys.exit(0)
t_launch = time.monotonic()
time.sleep(spec.get("delay", 0))
if spec["mode"] == "abandon":
    launched.abandon()
    print(json.dumps({"pid": launched.pid, "token": launched.token}))
    sys.exit(0)


async def adopt() -> dict[str, object]:
    from cc_executor._engine import SupervisedProcess

    proc = SupervisedProcess(
        launched.argv,
        launched=launched,
        stdout_to_file=True,
        timeout=spec.get("timeout"),
        idle_timeout=spec.get("idle_timeout"),
        first_output_timeout=spec.get("first_output_timeout"),
    )
    await proc.start()
    result = await proc.wait()
    return {
        "status": result.status.value,
        "exit_code": result.exit_code,
        "timed_out": result.timed_out,
        "duration_s": result.duration_s,
        "wall_since_launch": time.monotonic() - t_launch,
        "stdout_bytes": result.stdout_bytes,
        "stdout_sha256": result.stdout_sha256,
        "stderr_bytes": result.stderr_bytes,
        "stdout_path": result.stdout_path,
        "error": result.error,
        "pid": launched.pid,
        "token": launched.token,
        "warnings": result.warnings,
        "parent_cwd": os.getcwd(),
        "leaked_fd": leaked if spec.get("leak_fd") else None,
    }


print(json.dumps(asyncio.run(adopt())))
