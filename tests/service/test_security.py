"""Every way in is guarded: token, Host, Origin, sizes, binding, token file."""

from __future__ import annotations

import glob
import json
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from cc_executor._errors import ExecPolicyError
from cc_executor._service._exec_policy import load_exec_policy
from cc_executor._service._security import load_or_create_token
from tests.service.conftest import CLI, Service, launch, sse_events

ENDPOINTS = [
    ("GET", "/health"),
    ("GET", "/openapi.json"),
    ("GET", "/runs"),
    ("POST", "/runs"),
    ("GET", "/runs/x"),
    ("GET", "/runs/x/events"),
    ("GET", "/fleet"),
    ("POST", "/runs/x/cancel"),
    ("POST", "/runs/x/pause"),
    ("POST", "/runs/x/resume"),
    ("POST", "/tasks/x/resume"),
    ("GET", "/workspaces"),
    ("POST", "/workspaces/prune"),
]


async def expect(
    service: Service, headers: dict[str, str], status: int, code: str, *, token: bool = True
) -> None:
    base = service.headers() if token else {}
    async with httpx.AsyncClient(base_url=service.url, headers={**base, **headers}) as client:
        for method, path in ENDPOINTS:
            response = await client.request(method, path, json={"prompt": "x"})
            assert response.status_code == status, (method, path, response.text)
            assert response.json()["error"]["code"] == code
    ws_headers = {**base, **headers}
    url, extra = service.ws_url, dict[str, Any]()
    if "Host" in ws_headers:
        # The client sends the URL's host as Host: connect to us under the other name.
        port = int(service.url.rsplit(":", 1)[1])
        url = f"ws://{ws_headers.pop('Host')}/ws"
        extra = {"host": "127.0.0.1", "port": port}
    with pytest.raises(InvalidStatus) as info:
        async with connect(url, additional_headers=ws_headers, **extra):
            pass
    assert info.value.response.status_code == status


async def test_no_token_and_wrong_token_are_refused(service: Service) -> None:
    await expect(service, {}, 401, "unauthorized", token=False)
    await expect(service, {"Authorization": "Bearer wrong"}, 401, "unauthorized", token=False)
    await expect(
        service, {"Authorization": f"Basic {service.token}"}, 401, "unauthorized", token=False
    )
    assert service.token
    await expect(
        service, {"Authorization": f"Bearer {service.token[:-1]}"}, 401, "unauthorized", token=False
    )
    async with httpx.AsyncClient(base_url=service.url) as client:
        response = await client.get("/health")
    assert response.headers["www-authenticate"] == "Bearer"


async def test_wrong_host_is_refused(service: Service) -> None:
    await expect(service, {"Host": "evil.example"}, 403, "bad_host")
    await expect(service, {"Host": "127.0.0.1.evil.example:80"}, 403, "bad_host")
    async with service.client() as client:
        for host in (
            "localhost:1", "127.0.0.1", "[::1]:8000", "[::1]", "LocalHost.:65535",
            "app.localhost:8000", "127.9.8.7",
        ):  # fmt: skip
            assert (await client.get("/health", headers={"Host": host})).status_code == 200


async def test_wrong_origin_is_refused(service: Service) -> None:
    await expect(service, {"Origin": "http://evil.example"}, 403, "bad_origin")
    await expect(service, {"Origin": "null"}, 403, "bad_origin")
    same = service.url
    async with service.client() as client:
        assert (await client.get("/health", headers={"Origin": same})).status_code == 200
    async with connect(service.ws_url, additional_headers=service.headers(), origin=same):  # type: ignore[arg-type]
        pass


async def test_allowed_host_and_origin(start: Callable[..., Service]) -> None:
    service = start("--allow-host", "box.internal", "--allow-origin", "https://app.example")
    async with service.client() as client:
        ok = await client.get(
            "/health", headers={"Host": "box.internal:9", "Origin": "https://app.example"}
        )
        assert ok.status_code == 200
        bad = await client.get("/health", headers={"Origin": "https://other.example"})
        assert bad.status_code == 403


@pytest.mark.slow  # over 0.3 s: starts the service
def test_non_loopback_bind_without_token_is_refused(cc_home: Path) -> None:
    env = {**os.environ, "CC_EXECUTOR_HOME": str(cc_home)}
    for command in (["serve"], ["mcp", "--transport", "http"]):
        done = subprocess.run(
            [CLI, *command, "--host", "0.0.0.0", "--no-token", "--port", "0"],
            check=False,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 2
        assert "without a token" in done.stderr


@pytest.mark.slow  # over 0.3 s: starts the service
async def test_no_token_mode_on_loopback(cc_home: Path, root: Path) -> None:
    service = launch(cc_home, root, "--no-token", token=False)
    try:
        async with httpx.AsyncClient(base_url=service.url) as client:
            assert (await client.get("/health")).status_code == 200
            bad = await client.get("/health", headers={"Host": "evil.example"})
            assert bad.status_code == 403
    finally:
        service.stop()
    assert not (cc_home / "service-token").exists()


@pytest.mark.slow  # over 0.3 s: starts the service
def test_token_file_is_private_and_printed_once(cc_home: Path, root: Path) -> None:
    first = launch(cc_home, root)
    first.stop()
    second = launch(cc_home, root)
    second.stop()
    token_file = cc_home / "service-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert first.token == second.token
    token, created = load_or_create_token(token_file)
    assert (token, created) == (first.token, False)
    token_file.chmod(0o644)
    with pytest.raises(PermissionError):
        load_or_create_token(token_file)


@pytest.mark.slow  # over 0.3 s: starts the service
def test_token_is_printed_only_on_creation(cc_home: Path, root: Path) -> None:
    outputs = []
    for _ in range(2):
        service = launch(cc_home, root)
        service.proc.terminate()
        _, err = service.proc.communicate(timeout=15)
        outputs.append(err)
    token = (cc_home / "service-token").read_text().strip()
    assert token in outputs[0]
    assert token not in outputs[1]


async def test_oversize_bodies_get_413(service: Service) -> None:
    big = b'{"prompt": "' + b"x" * (2 << 20) + b'"}'

    async def chunks() -> Any:
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    async with service.client() as client:
        announced = await client.post("/runs", content=big)
        assert announced.status_code == 413
        assert announced.json()["error"]["code"] == "too_large"
        streamed = await client.post("/runs", content=chunks())
        assert streamed.status_code == 413
        assert (await client.get("/health")).status_code == 200


async def test_a_host_that_only_starts_like_loopback_is_refused(service: Service) -> None:
    """Issue 18 L13: text after the brackets, or a bare IPv6, passed for loopback; F8.4:
    so did forms no browser sends (a bracketed IPv4, a port out of range, a fragment)."""
    async with service.client() as client:
        for host in (
            "[::1]evil.com", "[::1]@evil.com", "[::1]:80x", "[::1", "::1", "localhost:x",
            "[127.0.0.1]", "[127.0.0.1]:80", "[::1]:99999", "localhost:65536", "localhost:0",
            "localhost:080", "localhost:", "evil.com#.localhost", "evil.com/.localhost",
            "evil.com?.localhost", "[::1%lo]", "127.1", "127.0.0.01", "2130706433",
            "localhost..", "a..localhost", "-x.localhost", "evil.com\\.localhost",
            "localhost:+80", "localhost:1 2",
        ):  # fmt: skip
            response = await client.get("/health", headers={"Host": host})
            assert response.status_code == 403, (host, response.text)
            assert response.json()["error"]["code"] == "bad_host"


#: Variables that load code into an agent CLI's runtime (Bun, Node, Python, git, the
#: dynamic loader, shells) or choose another program: never settable by a remote caller.
CODE_LOADING_ENV = (
    "BUN_OPTIONS", "BUN_CONFIG_PRELOAD", "BUN_INSTALL", "BUN_JSC_useJIT", "JSC_useJIT",
    "NODE_OPTIONS", "NODE_PATH", "NODE_EXTRA_CA_CERTS", "PYTHONPATH", "PYTHONSTARTUP",
    "PYTHONWARNINGS", "BROWSER", "GIT_CONFIG_GLOBAL", "GIT_SSH_COMMAND", "GIT_EXEC_PATH",
    "GIT_CONFIG_PARAMETERS", "LD_PRELOAD", "LD_LIBRARY_PATH", "BASH_ENV", "ENV", "PATH",
    "SHELL", "XDG_CONFIG_HOME", "CC_EXECUTOR_CLAUDE", "CLAUDE_CODE_SHELL",
    "CLAUDE_CODE_SHELL_PREFIX", "CLAUDE_CODE_PROCESS_WRAPPER", "CLAUDE_CODE_TEAMMATE_COMMAND",
    "CLAUDE_PTY_HOST_EXEC", "CLAUDE_CODE_SHELL_MCP_SERVERS", "OPENAI_BASE_URL",
    "GEMINI_SANDBOX", "GEMINI_SANDBOX_PROXY_COMMAND", "GEMINI_SYSTEM_MD",
    "GEMINI_CLI_TRUST_WORKSPACE", "CODEX_HOME", "GEMINI_CLI_HOME",
)  # fmt: skip
#: Variables naming a file, folder, socket or credential, even under an allowed prefix:
#: settable only when the server allows each by name (``--allow-env NAME``).
PLACE_ENV = (
    "HOME", "CLAUDE_CONFIG_DIR", "CLAUDE_ENV_FILE", "CLAUDE_CODE_CLIENT_CERT",
    "CLAUDE_CODE_CLIENT_KEY", "CLAUDE_CODE_MANAGED_SETTINGS_PATH", "ANTHROPIC_CONFIG_DIR",
    "ANTHROPIC_UNIX_SOCKET", "ANTHROPIC_IDENTITY_TOKEN_FILE", "AWS_CONFIG_FILE",
    "AWS_SHARED_CREDENTIALS_FILE", "AWS_CA_BUNDLE", "AWS_WEB_IDENTITY_TOKEN_FILE",
    "GOOGLE_APPLICATION_CREDENTIALS", "GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES",
    "CLAUDE_CODE_DISABLE_BG_STABLE_PATH", "MCP_PROXY_PATH", "ANTHROPIC_BASE_URL",
    "ANTHROPIC_BEDROCK_BASE_URL", "ANTHROPIC_API_HOST",
)  # fmt: skip
#: Variables routing the agent's traffic (third pass, T9): a proxy of the caller's choosing
#: would see an operator's plain-http endpoint and its key, and NO_PROXY bypasses an egress
#: proxy the operator relies on.
ROUTING_ENV = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "ALL_PROXY")


async def test_agent_runs_refuse_code_loading_and_place_variables(
    start: Callable[..., Service],
) -> None:
    """Issue 18 M2: a denylist missed BUN_OPTIONS (Claude Code is a Bun binary: --preload
    runs code inside it), and an allowed prefix let through names of files and folders
    (CLAUDE_CONFIG_DIR, AWS_CONFIG_FILE with a credential_process, HOME with a .gitconfig).
    Each is refused with 403 and one line naming the variable and the flag allowing it."""
    service = start("--allow-env", "CLAUDE_CONFIG_DIR")
    async with service.client() as client:
        for name in (*CODE_LOADING_ENV, *PLACE_ENV, *ROUTING_ENV):
            if name == "CLAUDE_CONFIG_DIR":
                continue
            for where in ("options", "task"):
                env = {"ANTHROPIC_MODEL": "m", name: "/tmp/x"}
                if where == "options":
                    body: dict[str, Any] = {"prompt": "x", "options": {"env": env}}
                else:
                    task = {"id": "a", "prompt": "x", "env": env}
                    body = {"tasks": {"tasks": [task]}}
                response = await client.post("/runs", json=body)
                assert response.status_code == 403, (name, where, response.text)
                message = response.json()["error"]["message"]
                assert f"env {name} cannot be set by a remote caller" in message, message
                assert f"--allow-env {name}" in message, message
                assert "\n" not in message, message
        for name in PLACE_ENV:
            if name != "CLAUDE_CONFIG_DIR":
                response = await client.post(
                    "/runs", json={"prompt": "x", "options": {"env": {name: "/tmp/x"}}}
                )
                message = response.json()["error"]["message"]
                assert "names a file, folder, program or endpoint" in message
        listed = await client.get("/runs")
        assert listed.json()["runs"] == [], "a refused run must not exist"


@pytest.mark.cli
async def test_agent_runs_take_the_variables_that_configure_an_agent(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    """The other side of M2: what configures Claude Code is accepted, and so is a place
    variable the server allows by name."""
    # The runs start the real CLI: with a home of the test's own, never the user's ~/.claude
    # (which every run of the suite wrote to, from both workers at once).
    home = tmp_path / "home"
    home.mkdir()
    service = start(
        "--allow-env", "MY_SETTING", "--allow-env", "AWS_CONFIG_FILE",
        env={"HOME": str(home), "CLAUDE_CONFIG_DIR": str(home / ".claude")},
    )  # fmt: skip
    async with service.client() as client:
        accepted = (
            "ANTHROPIC_API_KEY", "ANTHROPIC_MODEL", "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "DISABLE_TELEMETRY", "AWS_REGION",
            "LC_ALL", "MY_SETTING", "AWS_CONFIG_FILE", "OPENAI_API_KEY",
            "GEMINI_API_KEY", "GOOGLE_GENAI_USE_VERTEXAI",
        )  # fmt: skip
        for name in accepted:
            # Pointed at a closed local port: the run starts (202) and fails at once.
            env = {"ANTHROPIC_BASE_URL": "http://127.0.0.1:9", name: "1"}
            body = {"prompt": "x", "options": {"env": env, "timeout": 5}}
            response = await client.post("/runs", json=body)
            assert response.status_code == 202, (name, response.text)


async def test_an_exec_allowlist_entry_can_pin_the_arguments(
    start: Callable[..., Service],
) -> None:
    """Issue 18 M3: `--allow-exec git` let `git -c core.fsmonitor=CMD` run anything; an
    entry with arguments allows only commands starting with exactly them, and commands get
    no environment unless the server allows a variable by name."""
    script = "import sys; print(sys.argv[1:])"
    service = start(
        "--allow-exec", f"{sys.executable} -c '{script}' pinned",
        "--allow-exec-env", "ALLOWED_VAR",
    )  # fmt: skip
    async with service.client() as client:
        ok = await client.post("/runs", json={"argv": [sys.executable, "-c", script, "pinned"]})
        assert ok.status_code == 202, ok.text
        for argv in (
            [sys.executable, "-c", "import os; os.system('id')"],
            [sys.executable, "-c", script],
            [sys.executable],
        ):
            refused = await client.post("/runs", json={"argv": argv})
            assert refused.status_code == 403, (argv, refused.text)
            assert "does not start with an allowed command" in refused.json()["error"]["message"]
        pinned = [sys.executable, "-c", script, "pinned"]
        for env, status in (({"ALLOWED_VAR": "1"}, 202), ({"PYTHONWARNINGS": "x"}, 403)):
            body = {"argv": pinned, "options": {"env": env}}
            response = await client.post("/runs", json=body)
            assert response.status_code == status, (env, response.text)


async def test_a_queued_runs_folder_is_checked_again_as_it_starts(
    start: Callable[..., Service], root: Path, tmp_path: Path
) -> None:
    """Issue 18 L4: --allow-dir was checked at submission only; a queued run's cwd swapped
    for a symlink to the outside ran there."""
    from tests.service.conftest import sse_events

    service = start("--allow-exec", sys.executable, "--max-concurrent", "1")
    work, outside = root / "work", tmp_path / "outside"
    work.mkdir()
    outside.mkdir()
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    marker = [sys.executable, "-c", "open('ran', 'w').close()"]
    async with service.client() as client:
        first = (await client.post("/runs", json={"argv": sleeper})).json()["run_id"]
        body = {"argv": marker, "options": {"cwd": str(work)}}
        second = (await client.post("/runs", json=body)).json()["run_id"]
        assert (await client.get(f"/runs/{second}")).json()["status"] == "queued"
        work.rmdir()
        work.symlink_to(outside)
        assert (await client.post(f"/runs/{first}/cancel")).status_code == 200
        events = await sse_events(client, second)
    assert events[-1]["status"] == "error"
    assert "refused at the start" in events[-1]["error"]
    assert "outside the allowed directories" in events[-1]["error"]
    assert not (outside / "ran").exists()


@pytest.mark.slow  # over 0.3 s: starts the service
def test_every_start_says_where_the_token_is(cc_home: Path, root: Path) -> None:
    """The first start shows the new token once; every later start names its file."""
    said = []
    for _ in range(2):
        service = launch(cc_home, root)
        assert service.proc.stderr is not None
        service.proc.send_signal(signal.SIGTERM)
        service.proc.wait(30)
        said.append(service.proc.stderr.read())
        service.stop()
    path = cc_home / "service-token"
    assert f"new bearer token (stored in {path}, shown only this once)" in said[0]
    assert f"bearer token in {path}" in said[1]
    assert path.read_text().strip() not in said[1]
    readonly = cc_home / "service-token-readonly"
    for text in said:
        assert f"read-only token (sees everything, changes nothing) in {readonly}" in text
        assert readonly.read_text().strip() not in text


def toml_string(text: str) -> str:
    """``text`` as a TOML basic string (a JSON string is one)."""
    return json.dumps(text)


async def test_an_exec_policy_file_pins_arguments_by_prefix_or_pattern(
    start: Callable[..., Service], tmp_path: Path
) -> None:
    """Issue 18 M3 (the policy file): entries pin a command's arguments exactly (`prefix`)
    or argument by argument with patterns (`match`, no more arguments unless `rest`), and
    name the variables a caller may set for that command only."""
    script = "import os, sys; print(sys.argv[1:], os.environ.get('PREFIX_VAR'))"
    python = toml_string(sys.executable)
    policy = tmp_path / "policy.toml"
    policy.write_text(
        f"""
[[exec]]
prefix = [{python}, "-c", {toml_string(script)}, "pinned"]
env = ["PREFIX_VAR"]

[[exec]]
match = [{python}, "-c", {toml_string(glob.escape(script))}, "file-*.txt"]
rest = "file-*.txt"
env = ["MATCH_VAR"]
"""
    )
    service = start("--exec-policy", str(policy))
    pinned = [sys.executable, "-c", script, "pinned"]
    matched = [sys.executable, "-c", script, "file-a.txt"]
    async with service.client() as client:
        for argv in (
            pinned,
            [*pinned, "--anything", "goes"],
            matched,
            [*matched, "file-b.txt", "file-c.txt"],
        ):
            response = await client.post("/runs", json={"argv": argv})
            assert response.status_code == 202, (argv, response.text)
        for argv in (
            [sys.executable, "-c", "import os; os.system('id')"],
            [sys.executable, "-c", script],
            [sys.executable, "-c", script, "file-a.txt", "-x"],
            [sys.executable, "-c", script, "file-a.txt", "file-b.py"],
            [sys.executable, "-c", script, "other.txt"],
            [sys.executable],
        ):
            response = await client.post("/runs", json={"argv": argv})
            assert response.status_code == 403, (argv, response.text)
            message = response.json()["error"]["message"]
            assert "does not start with an allowed command or match an allowed" in message
        cases = (
            (pinned, {"PREFIX_VAR": "1"}, 202),
            (pinned, {"MATCH_VAR": "1"}, 403),
            (matched, {"MATCH_VAR": "1"}, 202),
            (matched, {"PREFIX_VAR": "1"}, 403),
            (pinned, {"PYTHONWARNINGS": "x"}, 403),
        )
        for argv, env, status in cases:
            body = {"argv": argv, "options": {"env": env}}
            response = await client.post("/runs", json=body)
            assert response.status_code == status, (argv, env, response.text)
            if status == 403:
                message = response.json()["error"]["message"]
                assert f"env {next(iter(env))} cannot be set for this command" in message
        # The variable an entry allows reaches the command.
        body = {"argv": pinned, "options": {"env": {"PREFIX_VAR": "from-the-caller"}}}
        run_id = (await client.post("/runs", json=body)).json()["run_id"]
        events = await sse_events(client, run_id)
    lines = [e["text"] for e in events if e["type"] == "output"]
    assert lines == ["['pinned'] from-the-caller"]


def test_exec_policy_loading_errors_name_the_file_and_the_entry(tmp_path: Path) -> None:
    """A policy that cannot be used is one line naming the file and the entry, never a
    traceback and never a policy half applied."""
    python = toml_string(sys.executable)
    cases = {
        "prefix = [": "not valid TOML: ",
        "[other]\nx = 1": "unknown key 'other'",
        "": "no [[exec]] entry",
        f"[[exec]]\nprefix = [{python}]\nmatch = [{python}]": "[[exec]] #1: give exactly one",
        f'[[exec]]\nprefix = [{python}]\n[[exec]]\nmatch = ["py*"]': "[[exec]] #2 (py*): match[0]",
        "[[exec]]\nprefix = []": "[[exec]] #1: prefix must be a non-empty list",
        f"[[exec]]\nprefix = [{python}]\nargs = 1": "[[exec]] #1: unknown key 'args'",
        f'[[exec]]\nmatch = [{python}]\nenv = ["A=B"]': "env 'A=B' is not a variable name",
        f"[[exec]]\nmatch = [{python}]\nrest = 3": "rest must be a pattern",
        '[[exec]]\nprefix = ["no-such-program-x"]': "(no-such-program-x): no such executable",
        "exec = 3": "no [[exec]] entry",
    }
    for i, (text, expected) in enumerate(cases.items()):
        policy = tmp_path / f"policy{i}.toml"
        policy.write_text(text)
        with pytest.raises(ExecPolicyError) as info:
            load_exec_policy(policy)
        message = str(info.value)
        assert message.startswith(f"{policy}: "), message
        assert expected in message, (text, message)
        assert "\n" not in message, message
    with pytest.raises(ExecPolicyError, match=r"^--exec-policy .*: cannot read: No such file"):
        load_exec_policy(tmp_path / "missing.toml")


@pytest.mark.slow
def test_serve_refuses_to_start_with_a_bad_exec_policy(tmp_path: Path, cc_home: Path) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[[exec]]\nmatch = ["*"]\n')
    env = {**os.environ, "CC_EXECUTOR_HOME": str(cc_home)}
    done = subprocess.run(
        [CLI, "serve", "--port", "0", "--exec-policy", str(policy)],
        check=False,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        f"cc-executor serve: {policy}: [[exec]] #1 (*): match[0] must name the program, "
        "not a pattern or an empty string"
    ), done.stderr
    assert "Traceback" not in done.stderr
    assert "listening" not in done.stdout


async def test_the_reported_git_attacks_are_refused_by_a_policy(
    start: Callable[..., Service], root: Path, tmp_path: Path
) -> None:
    """The attacks of issue 18 M3 on a real git: with `git status` pinned, the `-c
    core.fsmonitor=CMD` and `-c alias.x=!CMD` forms and a HOME with a crafted .gitconfig
    are refused before anything runs; the pinned command itself runs."""
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    marker = tmp_path / "pwned"
    policy = tmp_path / "policy.toml"
    policy.write_text('[[exec]]\nprefix = ["git", "status"]\nrest = "[!-]*"\n')
    service = start("--exec-policy", str(policy))
    command = f"touch {marker}"
    async with service.client() as client:
        for argv in (
            ["git", "-c", f"core.fsmonitor={command}", "status"],
            ["git", "-c", f"alias.x=!{command}", "x"],
            ["git", "status", "--porcelain", f"--output={marker}"],
        ):
            body = {"argv": argv, "options": {"cwd": str(root)}}
            response = await client.post("/runs", json=body)
            assert response.status_code == 403, (argv, response.text)
        body = {"argv": ["git", "status"], "options": {"cwd": str(root), "env": {"HOME": "/x"}}}
        response = await client.post("/runs", json=body)
        assert response.status_code == 403, response.text
        assert "env HOME cannot be set for this command" in response.json()["error"]["message"]
        ok = await client.post(
            "/runs", json={"argv": ["git", "status"], "options": {"cwd": str(root)}}
        )
        events = await sse_events(client, ok.json()["run_id"])
    assert events[-1]["status"] == "ok", events[-1]
    assert not marker.exists()


async def test_a_pinned_git_status_runs_nothing_the_repository_names(
    start: Callable[..., Service], root: Path, tmp_path: Path
) -> None:
    """Issue 18 F8.8: with `git status` pinned, the repository's own .git/config (an
    fsmonitor, a clean filter) still ran programs; the service's exec runs now get
    overrides in GIT_CONFIG_COUNT/KEY/VALUE, which git reads after the repository's."""
    from tests.run.test_git import hostile_repo

    repo, marker = hostile_repo(root)
    service = start("--allow-exec", "git status")
    async with service.client() as client:
        body = {"argv": ["git", "status", "--porcelain"], "options": {"cwd": str(repo)}}
        response = await client.post("/runs", json=body)
        assert response.status_code == 202, response.text
        events = await sse_events(client, response.json()["run_id"])
    assert events[-1]["status"] == "ok", events[-1]
    output = "".join(e.get("text", "") for e in events if e["type"] == "output")
    assert " M a.txt" in output
    assert not marker.exists()
