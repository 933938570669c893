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


def test_serve_allow_repo_lets_runs_name_the_repos_it_matches(
    tmp_path: Path, cc_home: Path
) -> None:
    """``serve --allow-repo`` reaches the run policy (so ``serve --fleet`` can submit
    ``repo`` runs); without it every repo is refused."""
    import pytest

    from cc_executor._cli import build_parser
    from cc_executor._cli._serve import _policy_and_config
    from cc_executor._errors import Forbidden
    from cc_executor._service._manager import RunManager
    from cc_executor._service._policy import RunPolicy

    def policy(*flags: str) -> RunPolicy:
        args = build_parser("serve").parse_args(
            ["serve", "--fleet", "redis://127.0.0.1:1/0", "--allow-dir", str(tmp_path), *flags]
        )
        built = _policy_and_config(args)
        assert built is not None
        return RunManager(built[1])._policy

    allowing = policy("--allow-repo", "https://git.example.com/team/*")
    allowing.check_agent_options({"repo": "https://git.example.com/team/app.git"}, "")
    with pytest.raises(Forbidden, match="not allowed here"):
        allowing.check_agent_options({"repo": "https://git.example.com/other/app.git"}, "")
    with pytest.raises(Forbidden, match="it allows none"):
        policy().check_agent_options({"repo": "https://git.example.com/team/app.git"}, "")
