"""``serve --fleet`` refuses settings that would not reach the fleet's runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = str(Path(sys.executable).parent / "cc-executor")


def test_a_permission_policy_is_refused_with_a_fleet(tmp_path: Path) -> None:
    # Fourth pass P13: accepted, and silently not applied to a single fleet run (the
    # workers run the agents and take no policy).
    policy = tmp_path / "p.yaml"
    policy.write_text("default: deny\n")
    done = subprocess.run(
        [CLI, "serve", "--fleet", "redis://127.0.0.1:1/0", "--permission-policy", str(policy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    # (Before it, a line about the new bearer token of the test's data folder.)
    last = done.stderr.splitlines()[-1]
    assert "--permission-policy does not apply to fleet runs" in last
