"""The permission round trip: a tool call asked of an ``on_permission`` callback, against the
same call allowed up front, through the real Claude Code CLI.

    .venv/bin/python benchmarks/bench_permissions.py [--reps N] [--calls N] [--claude PATH]

Each repetition runs, in a random order, two runs of the same script (``--calls`` Write tool
calls, then an answer) against ``cc_executor.testing.ModelServer``:

- baseline: ``allowed_tools=["Write"]``: the CLI never asks;
- policy: ``permission_policy`` with ``ask: Write`` and a callback that allows at once: each
  call goes CLI -> permission MCP server (stdio) -> unix socket -> the run -> callback -> back.

The time a call costs is the gap between the model server receiving the request that answered
with the tool call and the next request (the CLI ran the tool and continued). The round trip
is the median gap with the policy minus the median gap of the baseline, paired within each
repetition; the target is < 50 ms. The run's own view (request received -> decision sent,
``PermissionDecisionEvent.waited_s`` for the callback alone) and the whole run's wall time
(the MCP server's start included) are shown too.

A second part times the same path without the CLI's own noise: an MCP client (the ``mcp``
library's, over stdio, as the CLI is) calls the permission server's ``decide`` tool
``--direct`` times against a run's broker in this process, with the same policy and callback;
the median call is the round trip of the channel alone; three rounds of it, interleaved with
the same through the server as it was on the ``mcp`` SDK (up to c90f9c7).

A third part times the permission server's start (``--starts`` times each, interleaved):
spawn -> its answer to ``initialize``, for cc-executor's server against the same one tool
served by the ``mcp`` SDK's ``MCPServer`` (what the server was before), and a bare
``python -I -S -c pass`` for the interpreter's own floor.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from cc_executor import run  # noqa: E402
from cc_executor._agents._types import AgentEvent, PermissionDecisionEvent  # noqa: E402
from cc_executor._run._permission_server import command  # noqa: E402
from cc_executor.testing import ModelServer, Reply, Rule, Script, Text, ToolUse  # noqa: E402


def claude(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("CC_EXECUTOR_CLAUDE"):
        return os.environ["CC_EXECUTOR_CLAUDE"]
    out = subprocess.run(
        [str(ROOT / "scripts" / "install-claude-code")], capture_output=True, text=True, check=True
    )
    return out.stdout.strip().splitlines()[-1]


async def one(
    server: ModelServer, exe: str, work: Path, policy: Path | None
) -> tuple[list[float], float, list[float]]:
    home = Path(tempfile.mkdtemp(prefix="bench-perm-home-"))
    before = len(server.requests)
    waited: list[float] = []

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, PermissionDecisionEvent):
            waited.append(event.waited_s)

    options: dict[str, Any] = {
        "cwd": str(work),
        "env": server.claude_env(home=home),
        "claude_path": exe,
        "heartbeat_s": 0,
        "record": False,
    }
    if policy is None:
        options["allowed_tools"] = ["Write"]
    else:
        options["permission_policy"] = str(policy)
    began = time.perf_counter()
    result = await run("write", on_event=on_event, on_permission=lambda r: "allow", **options)
    wall = time.perf_counter() - began
    if result.status.value != "ok":
        raise SystemExit(f"a run failed: {result.status.value}: {result.error}")
    times = [
        r.time for r in server.requests[before:] if r.method == "POST" and "messages" in r.path
    ]
    return [b - a for a, b in itertools.pairwise(times)], wall, waited


async def direct(
    calls: int, work: Path, policy_file: Path, server: list[str] | None = None
) -> list[float]:
    """Round trips of the channel alone: MCP client -> permission server -> broker -> back.
    ``server``: its argv after the interpreter for the broker's socket (appended); default
    cc-executor's."""
    from mcp import Client, StdioServerParameters
    from mcp.client.stdio import stdio_client

    from cc_executor._run._permissions import PermissionBroker
    from cc_executor._run._policy import load_policy

    async def emit(event: AgentEvent) -> None:
        return None

    broker = PermissionBroker(
        policy=load_policy(policy_file),
        run_id="bench",
        cwd=str(work),
        run_dir=str(work),
        decider=lambda r: "allow",
        decider_name="callback",
        emit=emit,
        record=lambda entry: None,
        hold=lambda: None,
        release=lambda: None,
    )
    await broker.start()
    argv = [*server, broker.path] if server is not None else command(broker.path)
    params = StdioServerParameters(command=sys.executable, args=argv)
    took = []
    try:
        async with Client(stdio_client(params)) as client:
            arguments = {"tool_name": "Write", "input": {"file_path": "a", "content": "x"}}
            for _ in range(calls):
                began = time.perf_counter()
                await client.call_tool("decide", arguments)
                took.append(time.perf_counter() - began)
    finally:
        await broker.close()
    return took


# The permission server as it was on the SDK (up to c90f9c7), forwarding to the broker.
SDK_SERVER = """\
import asyncio, json, sys
from typing import Any
from mcp.server.mcpserver import MCPServer
path = sys.argv[1]
server: Any = MCPServer("cc_executor_permissions")
@server.tool(name="decide", structured_output=False)
async def decide(tool_name: str, input: dict[str, Any], tool_use_id: str | None = None) -> str:
    request = {"tool_name": tool_name, "input": input, "tool_use_id": tool_use_id}
    reader, writer = await asyncio.open_unix_connection(path, limit=64 << 20)
    writer.write(json.dumps(request).encode() + b"\\n")
    await writer.drain()
    line = await reader.readline()
    writer.close()
    return json.dumps(json.loads(line))
server.run()
"""
INITIALIZE = (
    b'{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25",'
    b'"capabilities":{},"clientInfo":{"name":"bench","version":"1"}}}\n'
)


def start_time(argv: list[str]) -> float:
    """Spawn -> the answer to initialize (or the exit of a plain command)."""
    began = time.perf_counter()
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    assert proc.stdin is not None
    assert proc.stdout is not None
    proc.stdin.write(INITIALIZE)
    proc.stdin.flush()
    proc.stdout.readline()
    took = time.perf_counter() - began
    proc.stdin.close()
    proc.wait()
    return took


def starts(n: int, work: Path) -> dict[str, list[float]]:
    sdk = work / "sdk_server.py"
    sdk.write_text(SDK_SERVER)
    kinds = {
        "python -I -S (floor)": [sys.executable, "-I", "-S", "-c", "print()"],
        "cc-executor's server": [sys.executable, *command(str(work / "none.sock"))],
        "mcp SDK server (before)": [sys.executable, str(sdk), str(work / "none.sock")],
    }
    took: dict[str, list[float]] = {k: [] for k in kinds}
    for _ in range(n):
        for kind, argv in kinds.items():
            took[kind].append(start_time(argv))
    return took


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--claude")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--direct", type=int, default=200)
    parser.add_argument("--starts", type=int, default=20)
    parser.add_argument("--only-starts", action="store_true", help="only the third part")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-perm-"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}")
    began = starts(args.starts, work)
    floor = statistics.median(began["python -I -S (floor)"])
    for kind, times in began.items():
        median = statistics.median(times)
        print(
            f"start {kind}: median {median * 1000:.1f} ms, min {min(times) * 1000:.1f} ms "
            f"({median / floor:.1f}x the floor)"
        )
    if args.only_starts:
        return
    exe = claude(args.claude)
    policy = work.parent / f"{work.name}-policy.yaml"
    policy.write_text("rules:\n  - ask: Write\n")
    calls = [
        Reply([ToolUse("Write", {"file_path": str(work / f"f{n}.txt"), "content": "x"})])
        for n in range(args.calls)
    ]
    script = Script([Rule(answers=[*calls, Reply([Text("done")])])])
    rng = random.Random(args.seed)
    rows = []
    with ModelServer(script) as server:
        await one(server, exe, work, policy)  # warm-up: page cache, bytecode
        for _ in range(args.reps):
            order = [None, policy]
            rng.shuffle(order)
            got = {}
            for which in order:
                got["policy" if which else "base"] = await one(server, exe, work, which)
            rows.append(got)
    trips = [statistics.median(r["policy"][0]) - statistics.median(r["base"][0]) for r in rows]
    walls = [r["policy"][1] - r["base"][1] for r in rows]
    inside = [w for r in rows for w in r["policy"][2]]
    gap_base = statistics.median(g for r in rows for g in r["base"][0])
    gap_policy = statistics.median(g for r in rows for g in r["policy"][0])
    print(f"{args.reps} repetitions x {args.calls} Write calls, Claude Code at {exe}")
    print(
        f"gap per call, median: baseline {gap_base * 1000:.1f} ms, "
        f"policy {gap_policy * 1000:.1f} ms"
    )
    print(
        "permission round trip (policy - baseline, paired): median "
        f"{statistics.median(trips) * 1000:.1f} ms (min {min(trips) * 1000:.1f}, "
        f"max {max(trips) * 1000:.1f}); target < 50 ms"
    )
    print(f"callback alone (waited_s), median: {statistics.median(inside) * 1000:.2f} ms")
    print(f"whole run, policy - baseline, median: {statistics.median(walls) * 1000:.0f} ms")
    # Interleaved with the SDK's server (as it was), each in three rounds.
    sdk = [str(work / "sdk_server.py")]
    took, before = [], []
    for _ in range(3):
        took += await direct(args.direct, work, policy)
        before += await direct(args.direct, work, policy, sdk)
    took.sort()
    before.sort()
    for name, times in (("cc-executor's server", took), ("mcp SDK server (before)", before)):
        p90 = times[int(len(times) * 0.9)]
        print(
            f"channel alone, {name} ({len(times)} MCP calls): median "
            f"{statistics.median(times) * 1000:.2f} ms, p90 {p90 * 1000:.2f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
