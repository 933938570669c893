"""``testing serve``: a real process, real HTTP, real signals."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import httpx
import pytest

# The subcommand as the main CLI registers it, without depending on the rest of that CLI.
HARNESS = """
import argparse, sys
from cc_executor._cli._testing import add_parser
parser = argparse.ArgumentParser(prog="cc-executor")
add_parser(parser.add_subparsers(dest="command"))
args = parser.parse_args(sys.argv[1:])
sys.exit(args.handler(args))
"""


def serve(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", HARNESS, "testing", "serve", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def example_path() -> Path:
    example = resources.files("cc_executor.testing") / "examples" / "write_file.yaml"
    assert isinstance(example, Path)
    return example


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_serve_prints_url_and_env_then_stops_on_signal(stop_signal: signal.Signals) -> None:
    process = serve("--script", str(example_path()))
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("Scripted model server listening on http://127.0.0.1:")
        url = first.split()[-1]
        exports: dict[str, str] = {}
        for line in process.stdout:
            if line.startswith("export "):
                name, _, value = line.removeprefix("export ").strip().partition("=")
                exports[name] = value
            if line.startswith("Press Ctrl-C"):
                break
        assert exports["ANTHROPIC_BASE_URL"] == url
        assert exports["CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC"] == "1"
        assert "HOME" in exports

        response = httpx.post(
            f"{url}/v1/messages",
            json={"model": "m", "messages": [{"role": "user", "content": "make hello.txt"}]},
        )
        assert response.json()["content"][0]["name"] == "Write"
        assert len(httpx.get(f"{url}/_testing/requests").json()) == 1

        stopping = time.monotonic()
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=10)
        assert time.monotonic() - stopping < 3
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip().endswith("Stopped.")
    assert not Path(exports["HOME"]).exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_serve_rejects_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    process = serve("--script", str(bad))
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert out == ""
    assert err.strip() == f"cc-executor testing serve: {bad}: rules: expected at least one rule"


def test_serve_refuses_a_public_host() -> None:
    process = serve("--script", str(example_path()), "--host", "0.0.0.0")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "loopback addresses only" in err


def test_serve_on_a_port_in_use_is_a_clear_error() -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen(1)
    try:
        port = taken.getsockname()[1]
        process = serve("--script", str(example_path()), "--port", str(port))
        _, err = process.communicate(timeout=60)
    finally:
        taken.close()
    assert process.returncode == 2, err
    assert "cannot listen" in err
    assert f"127.0.0.1:{port}: Address already in use" in err
    assert "Traceback" not in err


def test_run_finds_the_cli_with_the_printed_throwaway_home(tmp_path: Path) -> None:
    """The env ``testing serve`` prints exports a throwaway HOME; the CLI installed in the
    account's own cache must still be found (it was not: spawn_failed)."""
    import os
    import pwd

    from tests.run.conftest import claude_path

    installed = claude_path()
    account_home = pwd.getpwuid(os.getuid()).pw_dir
    if (
        installed is None
        or os.environ.get("CC_EXECUTOR_CACHE")
        or not installed.startswith(account_home + os.sep)
    ):
        pytest.skip("the Claude Code CLI is not in the account's own cache")
    code = (
        "from cc_executor._agents._claude._locate import locate_claude; "
        "import os; print(locate_claude(None, dict(os.environ)))"
    )
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "PYTHONPATH": os.pathsep.join(sys.path)}
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().startswith(account_home)
