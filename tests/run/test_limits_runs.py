"""Resource limits on agent runs: the real Claude CLI against the scripted model server, its
Bash tool going past ``memory_max`` or ``pids_max``. The engine's own limit tests are in
tests/engine/test_limits.py; these show the run's outcome, whatever the CLI managed to print
before the tree was stopped."""

from __future__ import annotations

import json
import os
from typing import Any

import pytest

from cc_executor._agents._types import RunStatus
from cc_executor._engine._cgroup import leftover_groups
from cc_executor._run._runner import run
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse
from tests._procs import pids_in

pytestmark = [pytest.mark.cgroup, pytest.mark.slow]

#: Allocates 1 GiB in 1 MiB steps: the kernel's OOM killer ends it under a 400M limit.
HOG = "python3 -c 'b=[bytearray(1<<20) for _ in range(1024)]'; echo survived"
#: Starts sleepers until a fork is refused, then waits for them.
FORKS = "for i in $(seq 300); do sleep 600 & done; wait"


def tool_then(command: str, answer: str) -> Script:
    # The final reply is instant: the CLI may print its clean result line before the engine
    # has stopped the tree, which must not turn the limit into a success.
    return Script(
        [Rule(answers=[Reply([ToolUse("Bash", {"command": command})]), Reply([Text(answer)])])]
    )


def no_trace_of(result: Any, workdir: os.PathLike[str]) -> None:
    assert pids_in(workdir) == []  # type: ignore[arg-type]
    assert [g for g in leftover_groups() if os.path.basename(g).startswith(result.run_id)] == []


@pytest.mark.parametrize("where", ["tool", "stop_hook"])
async def test_memory_max_ends_oom_killed_even_after_the_final_line(bed: Any, where: str) -> None:
    """``tool``: the reported case, a Bash call past the limit then an instant final reply
    (whether the result line beats the engine's stop is a race). ``stop_hook``: the same
    allocation in a Stop hook, which Claude Code runs after printing its result line, so the
    clean result line always comes first."""
    if where == "tool":
        script = tool_then(HOG, "done")
    else:
        script = Script([Rule(answers=[Reply([Text("done")])])])
    async with bed(script) as b:
        if where == "stop_hook":
            hooks = {"Stop": [{"hooks": [{"type": "command", "command": HOG}]}]}
            (b.workdir / ".claude").mkdir()
            (b.workdir / ".claude" / "settings.json").write_text(json.dumps({"hooks": hooks}))
        result = await run(
            "allocate", allowed_tools=["Bash"], memory_max="400M", timeout=300, **b.options()
        )
        assert result.status is RunStatus.OOM_KILLED, (result.status, result.error)
        assert result.error is not None
        assert "memory_max 400.0 MiB" in result.error, result.error
        assert "peak 400.0 MiB" in result.error, result.error
        if where == "stop_hook":
            assert result.result == "done"  # the answer produced is kept
        assert result.partial
        assert not any("despite a clean result" in w for w in result.warnings)
        no_trace_of(result, b.workdir)


async def test_pids_max_stops_a_fork_loop(bed: Any) -> None:
    async with bed(tool_then(FORKS, "done")) as b:
        result = await run("fork", allowed_tools=["Bash"], pids_max=96, timeout=300, **b.options())
        assert result.status is RunStatus.LIMIT_EXCEEDED, (result.status, result.error)
        assert result.error is not None
        assert "pids_max 96" in result.error, result.error
        no_trace_of(result, b.workdir)
