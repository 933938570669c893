"""``testing serve``: a real process, real HTTP, real signals."""

from __future__ import annotations

import json
import os
import shlex
import shutil
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


@pytest.mark.slow
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
        # Nothing that moves the user's data: no HOME, no XDG folder, no CC_EXECUTOR_HOME.
        assert not {"HOME", "XDG_DATA_HOME", "XDG_CONFIG_HOME", "CC_EXECUTOR_HOME"} & set(exports)
        assert Path(exports["CLAUDE_CONFIG_DIR"]).is_dir()

        response = httpx.post(
            f"{url}/v1/messages",
            json={"model": "m", "messages": [{"role": "user", "content": "make hello.txt"}]},
        )
        assert response.json()["content"][0]["name"] == "Write"
        assert len(httpx.get(f"{url}/_testing/requests").json()) == 1

        stopping = time.monotonic()
        process.send_signal(stop_signal)
        out, err = process.communicate(timeout=30)
        # Liveness, not speed: it stops at the signal (~0.2 s) instead of serving on (50x slack).
        assert time.monotonic() - stopping < 10
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert out.strip().endswith("Stopped.")
    assert not Path(exports["CLAUDE_CONFIG_DIR"]).exists()  # empty: nothing of anyone's lost
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


@pytest.mark.slow
def test_serve_rejects_a_bad_script(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("rules: []\n")
    process = serve("--script", str(bad))
    out, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert out == ""
    assert err.strip() == f"cc-executor testing serve: {bad}: rules: expected at least one rule"


@pytest.mark.slow
def test_serve_refuses_a_public_host() -> None:
    process = serve("--script", str(example_path()), "--host", "0.0.0.0")
    _, err = process.communicate(timeout=10)
    assert process.returncode == 2
    assert "loopback addresses only" in err


@pytest.mark.slow
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


@pytest.mark.cli
def test_run_finds_the_cli_with_the_printed_throwaway_home(tmp_path: Path) -> None:
    """``claude_env(home=...)`` gives a child process a throwaway HOME; the CLI installed in
    the account's own cache must still be found (it was not: spawn_failed)."""
    import os
    import pwd

    from tests._means import claude_path

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


def read_until_ready(process: subprocess.Popen[str]) -> dict[str, str]:
    """The variables ``serve`` prints (unquoted by a shell), once it says it is ready."""
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("Press Ctrl-C"):
            break
    else:
        raise AssertionError(f"serve ended early: {''.join(lines)}{process.communicate()}")
    script = "".join(line for line in lines if line.startswith("export ")) + "env -0"
    return shell_env(script, {})


def shell_env(script: str, env: dict[str, str]) -> dict[str, str]:
    """The environment a POSIX shell ends with after ``script`` (which must end in ``env -0``)."""
    done = subprocess.run(
        ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    pairs = (item.partition("=") for item in done.stdout.split("\0") if item)
    return {name: value for name, _, value in pairs if name not in {"PWD", "SHLVL", "_"}}


def stop(process: subprocess.Popen[str]) -> tuple[str, str]:
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    return out, err


@pytest.mark.slow
def test_stop_keeps_a_config_folder_that_runs_wrote_to() -> None:
    process = serve("--script", "write_file")
    try:
        config = Path(read_until_ready(process)["CLAUDE_CONFIG_DIR"])
        written = config / "projects" / "session.jsonl"
        written.parent.mkdir()
        written.write_text("a transcript a run left\n")
        out, _ = stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    try:
        assert written.read_text() == "a transcript a run left\n"
        assert f"Kept Claude Code's config folder {config}: runs wrote to it" in out
        assert out.strip().endswith("Stopped.")
    finally:
        shutil.rmtree(config)


@pytest.mark.slow
def test_env_file_loads_with_set_a_and_matches_the_printed_env(tmp_path: Path) -> None:
    env_file = tmp_path / "test env's.env"  # a space and a quote: the name is quoted too
    process = serve("--script", "write_file", "--env-file", str(env_file))
    try:
        printed = read_until_ready(process)
        text = env_file.read_text()
        assert text.startswith("# cc-executor testing serve: ")
        loaded = shell_env(f"set -a; . {shlex.quote(str(env_file))}; set +a; env -0", {})
        assert loaded == printed
        # Every line is NAME=value or a comment: what dotenv readers accept.
        for line in text.splitlines():
            assert line.startswith("#") or line.partition("=")[0].isidentifier(), line
        out, _ = stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not env_file.exists()
    assert not Path(printed["CLAUDE_CONFIG_DIR"]).exists()
    assert out.strip().endswith("Stopped.")


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_env_file_never_replaces_a_file_serve_did_not_write(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET=keep me\n")
    process = serve("--script", "write_file", "--env-file", str(env_file))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert out == ""
    assert err.strip() == (
        f"cc-executor testing serve: --env-file {env_file}: exists and was not written by "
        "cc-executor testing serve; choose another name or remove it"
    )
    assert env_file.read_text() == "SECRET=keep me\n"


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_env_file_that_is_a_fifo_or_a_link_is_refused_not_waited_on(tmp_path: Path) -> None:
    """Third pass, T6: a FIFO made serve wait for a writer forever (deaf to SIGTERM), and a
    link to /dev/zero was read without end."""
    fifo = tmp_path / "fifo.env"
    os.mkfifo(fifo)
    link = tmp_path / "zero.env"
    link.symlink_to("/dev/zero")
    for env_file in (fifo, link):
        process = serve("--script", "write_file", "--env-file", str(env_file))
        _, err = process.communicate(timeout=60)
        assert process.returncode == 2, err
        assert err.strip() == (
            f"cc-executor testing serve: --env-file {env_file}: exists and is not a regular "
            "file; choose another name"
        )


@pytest.mark.slow
def test_env_file_left_by_an_earlier_serve_is_replaced(tmp_path: Path) -> None:
    env_file = tmp_path / "test.env"
    env_file.write_text("# cc-executor testing serve: the scripted model server at old\n")
    process = serve("--script", "write_file", "--env-file", str(env_file))
    try:
        printed = read_until_ready(process)
        assert printed["ANTHROPIC_BASE_URL"] in env_file.read_text()
        stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert not env_file.exists()


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_script_accepts_an_example_name_and_lists_them_when_unknown() -> None:
    process = serve("--script", "write_fil")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert out == ""
    assert err.strip() == (
        "cc-executor testing serve: no script file or example named 'write_fil' "
        "(examples: rate_limited, slow_answer, write_file)"
    )


@pytest.mark.slow
@pytest.mark.parametrize("name", ["write_file", "write_file.yaml"])
def test_script_by_example_name_serves_it(name: str) -> None:
    process = serve("--script", name)
    try:
        url = read_until_ready(process)["ANTHROPIC_BASE_URL"]
        response = httpx.post(
            f"{url}/v1/messages",
            json={"model": "m", "messages": [{"role": "user", "content": "make hello.txt"}]},
        )
        assert response.json()["content"][0]["name"] == "Write"
        stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_every_shipped_example_is_a_valid_script() -> None:
    from cc_executor.testing import load_script
    from cc_executor.testing._examples import example_names, example_path

    names = example_names()
    assert {"write_file", "slow_answer", "rate_limited"} <= set(names)
    for name in names:
        path = example_path(name)
        assert path is not None
        load_script(path)


def test_serve_help_summarises_the_format_and_names_the_docs() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, "testing", "serve", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "docs/testing.md" in done.stdout
    for field in ("match", "tool_use", "delay", "errors_before", "when_exhausted", "error"):
        assert f"{field}:" in done.stdout or f"{field}," in done.stdout, field
    assert "rate_limited, slow_answer, write_file" in done.stdout


@pytest.mark.cli
@pytest.mark.slow
def test_a_run_with_only_the_env_file_loaded_records_in_the_users_history(
    tmp_path: Path,
) -> None:
    """The whole user workflow through the console script and the real Claude Code CLI: the
    run is recorded in the default data folder under the user's HOME, which stopping the
    server leaves alone."""
    from tests._means import claude_path

    claude = claude_path()
    if claude is None:
        pytest.skip("Claude Code CLI not installed: run scripts/install-claude-code")
    cli = str(Path(sys.executable).parent / "cc-executor")
    home, work, env_file = tmp_path / "home", tmp_path / "work", tmp_path / "test.env"
    home.mkdir()
    work.mkdir()
    # A user's shell: no CC_EXECUTOR_HOME, no XDG_DATA_HOME, so the data folder is the default.
    user = {"HOME": str(home), "PATH": os.environ["PATH"], "CC_EXECUTOR_CLAUDE": claude}
    process = subprocess.Popen(
        [cli, "testing", "serve", "--script", "write_file", "--env-file", str(env_file)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=user,
    )
    try:
        config = Path(read_until_ready(process)["CLAUDE_CONFIG_DIR"])
        load_then_run = [
            "sh", "-c", 'set -a; . "$1"; set +a; shift; exec "$@"', "sh", str(env_file),
            cli, "run", "Create hello.txt", "--allowed-tools", "Write", "--json",
        ]  # fmt: skip
        done = subprocess.run(
            load_then_run,
            cwd=work,
            env=user,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        result = json.loads(done.stdout)
        assert result["status"] == "ok"
        assert result["result"] == "I created hello.txt."
        assert (work / "hello.txt").read_text() == "Hello from the scripted model.\n"
        out, _ = stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    try:
        assert f"Kept Claude Code's config folder {config}" in out
        assert (home / ".local" / "share" / "cc-executor" / "history.sqlite3").is_file()
        # The CLI's config went to the throwaway folder: HOME holds cc-executor's data only.
        data = home / ".local" / "share" / "cc-executor"
        outside = [p for p in home.rglob("*") if p not in data.parents and data not in p.parents]
        assert outside == [data]
        shown = subprocess.run(
            [cli, "show", result["run_id"]],
            env=user,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert shown.returncode == 0, shown.stderr
        assert result["run_id"] in shown.stdout
    finally:
        shutil.rmtree(config, ignore_errors=True)


@pytest.mark.slow
def test_background_prints_commands_for_eval_and_stops_on_kill(tmp_path: Path) -> None:
    import psutil

    script = (
        f'eval "$({shlex.quote(sys.executable)} -c {shlex.quote(HARNESS)} testing serve '
        '--script write_file --background)" && echo "pid=$CC_EXECUTOR_TESTING_PID" && env -0'
    )
    done = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    first, _, rest = done.stdout.partition("\n")
    pid = int(first.removeprefix("pid="))
    server = psutil.Process(pid)
    try:
        env = dict(item.partition("=")[::2] for item in rest.split("\0") if item)
        url = env["ANTHROPIC_BASE_URL"]
        assert "HOME" not in done.stdout.split("pid=")[0]
        assert f"in the background (pid {pid}); stop it with: kill {pid}" in done.stderr
        response = httpx.post(
            f"{url}/v1/messages",
            json={"model": "m", "messages": [{"role": "user", "content": "make hello.txt"}]},
        )
        assert response.json()["content"][0]["name"] == "Write"
        server.terminate()
        server.wait(timeout=30)  # not our child: its exit status is not ours to read
    finally:
        if server.is_running():
            server.kill()
    assert not Path(env["CLAUDE_CONFIG_DIR"]).exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url)


def test_background_with_a_bad_script_fails_at_once() -> None:
    process = serve("--script", "nope", "--background")
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert out == ""
    assert "no script file or example named 'nope'" in err


@pytest.mark.slow
def test_serve_warns_about_variables_that_would_send_the_cli_elsewhere() -> None:
    env = {**os.environ, "ANTHROPIC_AUTH_TOKEN": "t", "CLAUDE_CODE_USE_BEDROCK": "1"}
    process = subprocess.Popen(
        [sys.executable, "-c", HARNESS, "testing", "serve", "--script", "write_file"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        read_until_ready(process)
        _, err = stop(process)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    for name in ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK"):
        assert (
            f"cc-executor testing serve: warning: {name} is set here; if the shell that runs "
            "Claude Code has it too, it may send the CLI elsewhere: unset it there"
        ) in err


@pytest.mark.slow
def test_background_with_an_env_file_left_by_an_earlier_serve(tmp_path: Path) -> None:
    """The stale file must not be taken for the new server's: its URL is a dead one."""
    import psutil

    env_file = tmp_path / "test.env"
    env_file.write_text(
        "# cc-executor testing serve: the scripted model server at http://127.0.0.1:9\n"
        "ANTHROPIC_BASE_URL=http://127.0.0.1:9\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", HARNESS, "testing", "serve", "--script", "write_file",
         "--background", "--env-file", str(env_file)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    printed = shell_env(done.stdout + "export CC_EXECUTOR_TESTING_PID; env -0", {})
    server = psutil.Process(int(printed["CC_EXECUTOR_TESTING_PID"]))
    try:
        assert printed["ANTHROPIC_BASE_URL"] != "http://127.0.0.1:9"
        assert httpx.get(printed["ANTHROPIC_BASE_URL"]).status_code == 200
        assert shell_env(f"set -a; . {env_file}; set +a; env -0", {}) == {
            k: v for k, v in printed.items() if k != "CC_EXECUTOR_TESTING_PID"
        }
        server.terminate()
        server.wait(timeout=30)
    finally:
        if server.is_running():
            server.kill()
    assert not env_file.exists()


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_background_never_replaces_a_file_serve_did_not_write(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("SECRET=keep me\n")
    process = serve("--script", "write_file", "--background", "--env-file", str(env_file))
    out, err = process.communicate(timeout=60)
    assert process.returncode == 2
    assert out == ""
    assert "exists and was not written by cc-executor testing serve" in err
    assert env_file.read_text() == "SECRET=keep me\n"
