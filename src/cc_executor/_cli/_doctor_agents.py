"""``cc-executor doctor --agent NAME``: is this agent CLI usable here?

One check per line, each for one agent: the executable is found (and from where: the
``--agent-path`` flag, the agent's ``CC_EXECUTOR_*`` variable, the cache of
``scripts/install-agents``, ``PATH``); its ``--version`` is the pinned one; the Node.js it
runs on is recent enough (for the CLIs that run on node); the API key variable is set (for
Claude Code: a key, a base URL or a login); and, given ``--base-url``, a real run answers
through that endpoint. Nothing here calls a network unless ``--base-url`` is given.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cc_executor._cli._doctor_checks import (
    CheckResult,
    Recorder,
    _check_model_access,
    _environ,
    _Failed,
    recorder,
)

#: The agent CLI versions cc-executor is tested with: ``scripts/install-agents`` installs
#: exactly these (a test holds the two equal).
PINNED = {"claude": "2.1.330", "codex": "0.171.0", "gemini": "0.61.0"}


@dataclass(frozen=True, slots=True)
class AgentFacts:
    """What doctor knows of one agent CLI: its title, the variable naming its executable,
    its folder in the cache, its npm package, the oldest Node.js major it runs on (None:
    it does not run on node) and the variables its API key may be in."""

    title: str
    variable: str | None
    cache_folder: str | None
    package: str | None
    node_major: int | None
    keys: tuple[str, ...]


AGENTS = {
    "claude": AgentFacts(
        "Claude Code", "CC_EXECUTOR_CLAUDE", "claude-code", "@anthropic-ai/claude-code", None, ()
    ),
    "codex": AgentFacts(
        "Codex CLI",
        "CC_EXECUTOR_CODEX",
        "codex",
        "@openai/codex",
        16,
        ("OPENAI_API_KEY", "CODEX_API_KEY"),
    ),
    "gemini": AgentFacts(
        "Gemini CLI",
        "CC_EXECUTOR_GEMINI",
        "gemini-cli",
        "@google/gemini-cli",
        20,
        ("GEMINI_API_KEY", "GOOGLE_API_KEY"),
    ),
    "command": AgentFacts("the command agent", None, None, None, None, ()),
}

_VERSION = re.compile(r"\d+\.\d+\.\d+")
#: ``exec "/path/to/node" ...`` in the wrapper scripts/install-agents writes.
_EXEC_NODE = re.compile(r'^exec "([^"]*/node)" ', re.MULTILINE)
#: The model of Gemini CLI's round trip, unless ``GEMINI_MODEL`` names one.
GEMINI_MODEL = "gemini-2.5-flash"
#: The prompt of the round trip, and the answer the scripted server gives it in the tests.
ROUND_TRIP_PROMPT = "Reply with the single word: ok"


def _cache_root() -> str:
    return os.environ.get("CC_EXECUTOR_CACHE") or os.path.join(
        os.path.expanduser("~"), ".cache", "cc-executor"
    )


def _where(facts: AgentFacts, explicit: str | None, path: str) -> str:
    """Where the executable was found, for people."""
    if explicit:
        return "from --agent-path"
    if facts.variable and os.environ.get(facts.variable):
        return f"from {facts.variable}"
    if facts.cache_folder and path.startswith(
        os.path.join(_cache_root(), facts.cache_folder) + os.sep
    ):
        return "from the cache of scripts/install-agents"
    on_path = shutil.which(os.path.basename(path))
    if on_path and os.path.realpath(on_path) == os.path.realpath(path):
        return "from PATH"
    return f"from {os.path.dirname(path)}"


def _install_hint(agent: str, facts: AgentFacts) -> str:
    if facts.package is None:
        return "check the command of the agent spec (--agent-spec FILE)"
    pin = PINNED.get(agent)
    at = f"@{pin}" if pin else ""
    return (
        f"install it with `npm install -g {facts.package}{at}` (in the source tree: "
        f"`scripts/install-agents {agent}`), or point --agent-path or {facts.variable} at it"
    )


def _node_of(executable: str) -> str | None:
    """The node an npm-installed CLI runs on: the one its wrapper execs, or the first on
    ``PATH`` for a ``#!/usr/bin/env node`` script; None for a native binary."""
    try:
        with open(executable, "rb") as file:
            head = file.read(4096)
    except OSError:
        return None
    if not head.startswith(b"#!"):
        return None  # a native binary (Claude Code)
    text = head.decode("utf-8", errors="replace")
    wrapped = _EXEC_NODE.search(text)
    if wrapped:
        return wrapped.group(1)
    first = text.splitlines()[0]
    if first.endswith("node") or " node" in first:
        return shutil.which("node") or "node"
    return None


async def _output(
    argv: Sequence[str], tmp: Path, name: str, extra_env: Mapping[str, str] | None = None
) -> str:
    """The first line ``argv`` prints, or :class:`_Failed` saying why it did not run."""
    from cc_executor._engine import ProcessStatus, run_process

    result = await run_process(
        list(argv), timeout=30, grace=2, run_dir=tmp / name, extra_env=extra_env
    )
    if result.status is not ProcessStatus.OK:
        why = result.error or result.stderr_tail.strip() or f"status {result.status}"
        raise _Failed(f"`{' '.join(argv)}` failed: {why}", "reinstall it")
    lines = result.stdout.decode(errors="replace").strip().splitlines()
    if not lines:
        raise _Failed(f"`{' '.join(argv)}` printed nothing", "reinstall it")
    return lines[0]


async def agent_checks(
    record: Recorder,
    tmp: Path,
    agent: str,
    *,
    agent_path: str | None = None,
    agent_spec: str | None = None,
    base_url: str | None = None,
) -> None:
    """Record the checks of ``agent``: ``AGENT-executable``, ``AGENT-version``,
    ``AGENT-node``, ``AGENT-api-key`` and, with ``base_url``, ``AGENT-round-trip``. A check
    that cannot run because an earlier one failed fails saying so."""
    from cc_executor._errors import AgentNotFound

    facts = AGENTS[agent]
    found: list[str] = []
    #: The agent's home variable (CODEX_HOME, GEMINI_CLI_HOME) pointed at a folder of the
    #: checks': even `gemini --version` writes in its home (two temporary files it leaves).
    homes: dict[str, str] = {}

    async def executable() -> str:
        from cc_executor._agents import adapter_for
        from cc_executor._run._options import RunOptions

        try:
            options = RunOptions(agent=agent, agent_spec=agent_spec)
            adapter = adapter_for(options)
            path = adapter.locate(agent_path, os.environ)
        except AgentNotFound as exc:
            # The adapter's message ends with its own install hint: the hint line says it.
            where = str(exc).split("; install it", 1)[0]
            raise _Failed(f"not found: {where}", _install_hint(agent, facts)) from None
        except (TypeError, ValueError) as exc:
            raise _Failed(str(exc), "give the command agent a valid --agent-spec FILE") from None
        found.append(path)
        # Claude Code's is its config folder (its HOME holds .claude.json otherwise).
        variable = "CLAUDE_CONFIG_DIR" if agent == "claude" else adapter.home_variable
        if variable is not None:
            home = tmp / f"{agent}-home"
            home.mkdir(exist_ok=True)
            homes[variable] = str(home)
        return f"{path} ({_where(facts, agent_path, path)})"

    await record(f"{agent}-executable", 10, executable)
    missing = f"not checked: {facts.title} was not found (see {agent}-executable)"

    async def version() -> str:
        if not found:
            raise _Failed(missing, _install_hint(agent, facts))
        line = await _output([found[0], "--version"], tmp, f"{agent}-version", homes)
        match = _VERSION.search(line)
        pin = PINNED.get(agent)
        if pin is None:
            return f"{line[:80]} (no pinned version for {facts.title})"
        if match is None:
            raise _Failed(
                f"`--version` printed {line[:80]!r}, no version", _install_hint(agent, facts)
            )
        if match.group() != pin:
            raise _Failed(
                f"{facts.title} {match.group()}; cc-executor is tested with {pin}",
                _install_hint(agent, facts),
            )
        return f"{facts.title} {pin}, the pinned version"

    await record(f"{agent}-version", 40, version)

    async def node() -> str:
        if not found:
            raise _Failed(missing, _install_hint(agent, facts))
        runner = _node_of(found[0])
        if runner is None:
            return f"{facts.title} runs without Node.js (a native executable)"
        line = await _output([runner, "--version"], tmp, f"{agent}-node")
        match = re.match(r"v?(\d+)\.", line)
        need = facts.node_major or 0
        if match is None or int(match.group(1)) < need:
            raise _Failed(
                f"{facts.title} runs on {runner} {line[:40]}; it needs Node.js {need} or newer",
                f"install Node.js {need}+ first on PATH (scripts/install-agents installs a "
                "pinned Node.js 22 and wrappers that use it)",
            )
        needs = f" (needs {need}+)" if need else ""
        return f"Node.js {line} at {runner}{needs}"

    await record(f"{agent}-node", 40, node)

    async def api_key() -> str:
        if agent == "claude":
            return await _check_model_access()
        if not facts.keys:
            return "not checked: the agent spec decides which variables it reads"
        present = [name for name in facts.keys if os.environ.get(name)]
        if not present:
            raise _Failed(
                f"no API key: {' and '.join(facts.keys)} are not set",
                f"export {facts.keys[0]}=... (for --base-url, the key that endpoint takes)",
            )
        return f"{present[0]} is set (not shown, not used without --base-url)"

    await record(f"{agent}-api-key", 5, api_key)
    if base_url is None:
        return

    async def round_trip() -> str:
        from cc_executor._agents._types import RunStatus
        from cc_executor._run._runner import run

        if not found:
            raise _Failed(missing, _install_hint(agent, facts))
        work = tmp / f"{agent}-work"
        work.mkdir(exist_ok=True)
        options: dict[str, Any] = {}
        if agent == "gemini":
            # Its default model, auto, asks a routing model first (an extra call to time out).
            options["model"] = os.environ.get("GEMINI_MODEL") or GEMINI_MODEL
        if agent in ("codex", "claude"):
            # Its sessions (and Claude Code's settings and telemetry) go to a folder of the
            # check's, not the user's ~/.codex, ~/.claude or ~/.claude.json; the key and the
            # endpoint come from the environment. Gemini CLI's run gets a home of its own.
            options["env"] = dict(homes)
        result = await run(
            ROUND_TRIP_PROMPT,
            agent=agent,
            agent_path=found[0],
            agent_spec=agent_spec,
            base_url=base_url,
            cwd=work,
            timeout=90,
            grace=2,
            retries=0,
            heartbeat_s=0,
            **options,
        )
        if result.status is not RunStatus.OK:
            raise _Failed(
                f"the run through {base_url} ended {result.status.value}: {result.error}",
                "check the URL, the key and the model the endpoint serves",
            )
        return f"answered through {base_url} in {result.duration_s:.1f} s: {result.result[:60]!r}"

    await record(f"{agent}-round-trip", 120, round_trip)


async def run_agent_checks(
    agents: Sequence[str],
    *,
    agent_path: str | None = None,
    agent_spec: str | None = None,
    base_url: str | None = None,
    on_result: Callable[[CheckResult], None] | None = None,
) -> list[CheckResult]:
    """The checks of each of ``agents`` in order (see :func:`agent_checks`), in a temporary
    folder removed afterwards, with ``CC_EXECUTOR_HOME`` there: the round trip is not
    recorded in the user's history."""
    import tempfile

    results: list[CheckResult] = []
    record = recorder(results, on_result)
    with tempfile.TemporaryDirectory(
        prefix="cc-executor-doctor-", ignore_cleanup_errors=True
    ) as tmp_name:
        tmp = Path(tmp_name)
        with _environ({**os.environ, "CC_EXECUTOR_HOME": str(tmp / "cc-home")}):
            for agent in agents:
                await agent_checks(
                    record,
                    tmp,
                    agent,
                    agent_path=agent_path,
                    agent_spec=agent_spec,
                    base_url=base_url,
                )
    return results
