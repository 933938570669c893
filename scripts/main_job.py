"""The main job: a real Claude Code task, end to end, against the scripted model server.

Starts `cc_executor.testing.ModelServer` with the shipped example script (a Write tool call
that creates hello.txt, then the answer), and runs `cc-executor run` on it exactly as a user
would, with the live view on the terminal. With a real Claude login, the same `cc-executor
run` command talks to Anthropic instead.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

from cc_executor.testing import ModelServer

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "src" / "cc_executor" / "testing" / "examples" / "write_file.yaml"
CLI = str(Path(sys.executable).parent / "cc-executor")


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="cc-executor-main-") as tmp:
        work = Path(tmp) / "project"
        home = Path(tmp) / "home"
        work.mkdir()
        home.mkdir()
        with ModelServer(EXAMPLE) as server:
            env = server.claude_env(home=home, base=os.environ)
            env["CC_EXECUTOR_HOME"] = str(Path(tmp) / "cc-executor-data")
            print(f"scripted model server: {server.url}", file=sys.stderr)
            argv = [
                CLI, "run", "Please create hello.txt with a greeting.",
                "--allowed-tools", "Write", "--cwd", str(work), "--timeout", "120",
                "--heartbeat", "2",
            ]  # fmt: skip
            print("$ " + " ".join(argv[1:]), file=sys.stderr)
            code = subprocess.call(argv, env=env)
            created = work / "hello.txt"
            if code != 0 or not created.exists():
                print(f"main job FAILED (exit {code}, hello.txt exists: {created.exists()})")
                return 1
            print(f"--- {created.name} (written by Claude Code's Write tool) ---")
            print(created.read_text(), end="")
            print("main job OK: the real CLI ran a tool call and answered, supervised end to end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
