"""``serve --fleet``: which settings reach the fleet's runs."""

from __future__ import annotations

from pathlib import Path

import pytest


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


def test_serve_refuses_a_bad_port_limit_or_folder_before_it_starts(
    tmp_path: Path, cc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A port out of range was a traceback (bind's OverflowError); a limit of 0 or less, or
    an --allow-dir that is no folder, was taken, and then refused every request or run."""
    from cc_executor._cli import build_parser
    from cc_executor._cli._serve import _policy_and_config
    from cc_executor._service._manager import RunManager

    for command in ("serve", "mcp"):
        for flags, says in (
            (["--port", "99999"], "argument --port: must be 0 to 65535, got '99999'"),
            (["--port", "http"], "argument --port: not a port number: 'http'"),
            (["--max-body", "-1"], "argument --max-body: must be positive, got '-1'"),
            (["--max-message", "0"], "argument --max-message: must be positive, got '0'"),
            (["--max-concurrent", "0"], "argument --max-concurrent: must be positive, got '0'"),
            (["--max-queued", "-1"], "argument --max-queued: must be 0 or more, got '-1'"),
        ):
            with pytest.raises(SystemExit) as stopped:
                build_parser(command).parse_args([command, *flags])
            assert stopped.value.code == 2
            assert says in capsys.readouterr().err, (command, flags)
    (tmp_path / "file").write_text("")
    for folder, says in (
        (tmp_path / "missing", "no such directory"),
        (tmp_path / "file", "not a directory"),
    ):
        args = build_parser("serve").parse_args(["serve", "--allow-dir", str(folder)])
        built = _policy_and_config(args)
        assert built is not None
        with pytest.raises(ValueError, match=f"^--allow-dir {folder}: {says}$"):
            RunManager(built[1])


def test_mcp_names_itself_in_the_history_warnings(
    cc_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """cc-executor mcp said "cc-executor serve: warning: ..." of a data folder others
    could read: its manager is opened by the code serve shares."""
    import asyncio

    from cc_executor._cli._serve import _open_manager
    from cc_executor._service._manager import ManagerConfig

    cc_home.mkdir(mode=0o755)
    cc_home.chmod(0o755)  # past the umask
    manager = _open_manager(ManagerConfig(allow_dirs=(str(cc_home),)), "mcp")
    asyncio.run(manager.aclose())
    err = capsys.readouterr().err
    assert err.startswith(f"cc-executor mcp: warning: {cc_home} was readable by other"), err
