"""``serve --fleet``: which settings reach the fleet's runs."""

from __future__ import annotations

from pathlib import Path


def test_a_permission_policy_goes_with_the_fleet_runs(tmp_path: Path, cc_home: Path) -> None:
    # Fourth pass P13 refused it (the workers took no policy); now its rules travel with
    # every fleet run (tests/fleet/test_serve.py), and only it of the agent settings.
    from cc_executor._cli import build_parser
    from cc_executor._cli._serve import _policy_and_config
    from cc_executor._service._manager import RunManager

    policy = tmp_path / "p.yaml"
    policy.write_text("default: deny\n")
    argv = ["serve", "--fleet", "redis://127.0.0.1:1/0", "--allow-dir", str(tmp_path)]
    args = build_parser("serve").parse_args(
        [*argv, "--permission-policy", str(policy), "--claude", "/bin/true"]
    )
    built = _policy_and_config(args)
    assert built is not None
    assert RunManager(built[1])._agent_defaults("claude") == {"permission_policy": str(policy)}


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
