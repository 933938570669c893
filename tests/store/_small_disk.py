"""Run commands with a small tmpfs mounted on a folder, in the private mount namespace this
script was started in (``unshare -m`` / ``unshare -rm``): a real full disk, seen by no one
else and gone when the last command ends.

``python _small_disk.py SIZE FOLDER COMMANDS_JSON`` prints one JSON list with the
``returncode``, ``stdout`` and ``stderr`` of each command (each an argv list), run in order.
"""

from __future__ import annotations

import json
import subprocess
import sys


def main() -> None:
    size, folder, commands = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", folder], check=True)
    done = [
        subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        for argv in commands
    ]
    print(
        json.dumps(
            [{"returncode": d.returncode, "stdout": d.stdout, "stderr": d.stderr} for d in done]
        )
    )


if __name__ == "__main__":
    main()
