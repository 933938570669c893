"""Every agent through the service and the MCP server: the operator's allowlist of agents
(``--agent``) and per-agent settings (``--base-url AGENT=URL``, ...), and Codex CLI, Gemini
CLI and the command agent (Qwen Code through a spec) started by real HTTP, WebSocket and MCP
clients, offline against the scripted model server."""

from __future__ import annotations

import os
import subprocess
import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client, StdioServerParameters
from mcp.client.stdio import stdio_client

from cc_executor.testing import ModelServer, Reply, Rule, Script, Text
from tests._means import agent_path, codex_path, gemini_path
from tests.service.conftest import CLI, Service, sse_events
from tests.service.test_mcp import data
from tests.service.test_ws import call, notifications, ws

#: The agent each prompt goes to, and what the scripted model answers it.
ANSWERS = {
    "codex": "Hello from Codex through the server.",
    "gemini": "Hello from Gemini through the server.",
    "command": "Hello from Qwen Code through the server.",
}
SCRIPT = Script(
    [
        Rule(match="ask codex", answers=[Reply([Text(ANSWERS["codex"])])]),
        Rule(match="ask gemini", answers=[Reply([Text(ANSWERS["gemini"])])]),
        Rule(answers=[Reply([Text(ANSWERS["command"])])]),
    ]
)
#: The model each agent asks for (Gemini CLI's default makes a routing call first).
MODELS = {"gemini": "gemini-2.5-flash", "command": "qwen-test"}


def _says_token(line: str) -> bool:
    # The token lines every start prints before the options are checked.
    return "bearer token" in line or "read-only token" in line


def refused_at_start(home: Path, *args: str, command: str = "serve") -> str:
    """``cc-executor COMMAND ARGS`` refused before it listens: its one-line message."""
    done = subprocess.run(
        [CLI, command, "--port", "0", *args],
        env={**os.environ, "CC_EXECUTOR_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, (done.stdout, done.stderr)
    lines = [line for line in done.stderr.splitlines() if not _says_token(line)]
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.slow
def test_agent_settings_are_checked_before_the_server_starts(cc_home: Path) -> None:
    assert "--agent cursor: unknown agent (known: claude, codex, gemini, command)" in (
        refused_at_start(cc_home, "--agent", "cursor")
    )
    ambiguous = refused_at_start(
        cc_home, "--agent", "codex", "--agent", "gemini", "--base-url", "http://127.0.0.1:9/v1"
    )
    assert "--base-url http://127.0.0.1:9/v1: say which agent it is for" in ambiguous
    assert "this server allows codex, gemini" in ambiguous
    assert "gemini is not allowed (add --agent gemini)" in refused_at_start(
        cc_home, "--agent", "codex", "--base-url", "gemini=http://127.0.0.1:9"
    )
    assert "--agent command needs --agent-spec FILE" in refused_at_start(
        cc_home, "--agent", "command", command="mcp"
    )
    assert "--base-url is given twice for codex" in refused_at_start(
        cc_home, "--agent", "codex", "--base-url", "codex=http://a", "--base-url", "codex=http://b"
    )
    assert "the codex agent's settings: agent_spec is not supported by the codex agent" in (
        refused_at_start(cc_home, "--agent", "codex", "--agent-spec", "codex=/dev/null")
    )


async def test_only_the_agents_the_server_allows_run(start: Callable[..., Service]) -> None:
    default = start()
    async with default.client() as client:
        codex = await client.post("/runs", json={"prompt": "hi", "options": {"agent": "codex"}})
        task = await client.post(
            "/runs",
            json={"tasks": {"tasks": [{"id": "a", "prompt": "hi", "agent": "gemini"}]}},
        )
        spec = await client.post(
            "/runs",
            json={"prompt": "hi", "options": {"agent": "command", "agent_spec": "/x.toml"}},
        )
    assert codex.status_code == 403, codex.text
    assert codex.json()["error"]["message"] == (
        "agent 'codex' is not allowed on this server (it allows claude; the server allows "
        "more with --agent NAME)"
    )
    assert task.status_code == 403, task.text
    assert task.json()["error"]["message"].startswith("task \"a\": agent 'gemini' is not allowed")
    assert spec.status_code == 403, spec.text
    assert "set by the server only: agent_spec" in spec.json()["error"]["message"]

    only_codex = start("--agent", "codex")
    async with only_codex.client() as client:
        claude = await client.post("/runs", json={"prompt": "hi", "options": {"agent": "claude"}})
    assert claude.status_code == 403, claude.text
    assert "agent 'claude' is not allowed on this server (it allows codex" in claude.text


# --- the real CLIs ---------------------------------------------------------------------------


@dataclass
class AgentsBed:
    """A scripted model server, and the flags and environment of a cc-executor server whose
    operator lets callers run Codex CLI, Gemini CLI and Qwen Code (the command agent)."""

    server: ModelServer
    args: list[str]
    env: dict[str, str]

    def options(self, agent: str | None, root: Path) -> dict[str, Any]:
        """A caller's options: no path, endpoint or key, only the agent and its model."""
        options: dict[str, Any] = {"cwd": str(root), "heartbeat_s": 0, "retries": 0}
        if agent is not None:
            options["agent"] = agent
        if agent in MODELS:
            options["model"] = MODELS[agent]
        return options


@pytest.fixture
def agents(tmp_path: Path) -> Callable[[], Any]:
    """``async with agents() as bed:`` the scripted model server and the server settings
    pointing every agent at it (the operator's, not the caller's)."""

    @asynccontextmanager
    async def begin() -> AsyncIterator[AgentsBed]:
        spec = tmp_path / "qwen.toml"
        spec.write_text(
            textwrap.dedent(
                f"""\
                name = "Qwen Code"
                command = ["{agent_path("qwen")}", "-p", "", "--auth-type", "openai",
                           "--bare", "-o", "stream-json"]
                output = "claude-stream-json"
                model_arg = ["--model={{model}}"]
                base_url_env = "OPENAI_BASE_URL"
                """
            )
        )
        homes = {name: tmp_path / name for name in ("agent-home", "codex-home")}
        for folder in homes.values():
            folder.mkdir()
        async with ModelServer(SCRIPT) as server:
            args = [
                "--agent", "codex", "--agent", "gemini", "--agent", "command",
                "--agent-path", f"codex={codex_path()}",
                "--agent-path", f"gemini={gemini_path()}",
                "--agent-spec", f"command={spec}",
                "--base-url", f"codex={server.url}/v1",
                "--base-url", f"gemini={server.url}",
                "--base-url", f"command={server.url}/v1",
            ]  # fmt: skip
            # The keys and homes are the server's own environment, which its runs inherit.
            env = {
                "OPENAI_API_KEY": "sk-cc-executor-testing",
                "GEMINI_API_KEY": "cc-executor-testing",
                "CODEX_HOME": str(homes["codex-home"]),
                "HOME": str(homes["agent-home"]),
            }
            yield AgentsBed(server, args, env)

    return begin


@pytest.mark.cli
async def test_every_agent_through_http_and_websocket(
    agents: Callable[[], Any], start: Callable[..., Service], root: Path
) -> None:
    async with agents() as bed:
        service = start(*bed.args, env=bed.env)
        async with service.client() as client:
            finished = {}
            for agent in ANSWERS:
                body = {"prompt": f"ask {agent}", "options": bed.options(agent, root)}
                response = await client.post("/runs", json=body)
                assert response.status_code == 202, response.text
                run_id = response.json()["run_id"]
                events = await sse_events(client, run_id)
                finished[agent] = (events, (await client.get(f"/runs/{run_id}")).json())
            # A run naming no agent runs the first the server allows.
            response = await client.post(
                "/runs", json={"prompt": "ask codex", "options": bed.options(None, root)}
            )
            default = await sse_events(client, response.json()["run_id"])
            # A list mixing agents: each task gets the server's settings of its own agent.
            tasks = [
                {"id": agent, "prompt": f"ask {agent}", "agent": agent, "model": MODELS[agent]}
                for agent in ("gemini", "command")
            ]
            response = await client.post(
                "/runs", json={"tasks": {"tasks": tasks}, "options": {"cwd": str(root)}}
            )
            assert response.status_code == 202, response.text
            listed = await sse_events(client, response.json()["run_id"])
        async with ws(service) as conn:
            over_ws = {}
            for agent in ANSWERS:
                params = {"prompt": f"ask {agent}", "options": bed.options(agent, root)}
                reply = await call(conn, "execute", params)
                over_ws[agent] = await notifications(conn, reply["result"]["run_id"])
    for agent, (events, run) in finished.items():
        assert events[-1]["status"] == "ok", (agent, events[-3:])
        assert run["status"] == "ok", (agent, run)
        assert run["result"]["result"] == ANSWERS[agent]
    assert default[-1]["result"]["result"] == ANSWERS["codex"]
    # Codex CLI alone speaks the Responses API: once for its run, once for the default one.
    assert [r.prompt for r in bed.server.responses_requests][:2] == ["ask codex"] * 2
    assert listed[-1]["status"] == "ok", listed[-3:]
    answers = {name: t["result"] for name, t in listed[-1]["result"]["tasks"].items()}
    assert answers == {"gemini": ANSWERS["gemini"], "command": ANSWERS["command"]}
    for agent, messages in over_ws.items():
        assert messages[-1]["params"]["status"] == "ok", (agent, messages[-3:])
        assert messages[-1]["params"]["result"]["result"] == ANSWERS[agent]


@pytest.mark.cli
@pytest.mark.slow
async def test_every_agent_through_mcp(
    agents: Callable[[], Any], cc_home: Path, root: Path
) -> None:
    async with agents() as bed:
        params = StdioServerParameters(
            command=CLI,
            args=["mcp", "--allow-dir", str(root), *bed.args],
            env={**os.environ, **bed.env, "CC_EXECUTOR_HOME": str(cc_home)},
        )
        async with Client(stdio_client(params)) as client:
            ended = {}
            for agent in ANSWERS:
                arguments = {"prompt": f"ask {agent}", "options": bed.options(agent, root)}
                state = data(await client.call_tool("start_run", arguments))
                while not state.get("done"):
                    state = data(
                        await client.call_tool(
                            "wait_run", {"run_id": state["run_id"], "timeout_s": 50}
                        )
                    )
                ended[agent] = state
            refused = await client.call_tool(
                "start_run", {"prompt": "hi", "options": {"agent": "claude"}}
            )
    for agent, state in ended.items():
        assert state["status"] == "ok", (agent, state)
        assert state["result"] == ANSWERS[agent]
    assert refused.is_error
    assert "agent 'claude' is not allowed on this server" in refused.content[0].text  # type: ignore[union-attr]
