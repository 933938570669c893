"""One task list, three agent CLIs: Claude Code, Codex and Gemini, each the real CLI against
the one scripted server, results passed forward from task to task."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor.tasks import ListStatus, run_tasks
from cc_executor.testing import Reply, Rule, Script, Text
from tests._means import codex_path, gemini_path
from tests.tasks.conftest import Served

pytestmark = [pytest.mark.cli, pytest.mark.slow]


async def test_three_tasks_three_agents_results_forward(
    serve: Callable[[Script], Served], tmp_path: Path
) -> None:
    script = Script(
        [
            Rule(match="^Plan the work", answers=[Reply([Text("PLAN-42")])]),
            Rule(match="^Code it from PLAN-42", answers=[Reply([Text("CODE-7")])]),
            Rule(match="^Review CODE-7", answers=[Reply([Text("LGTM")])]),
        ]
    )
    served = serve(script)
    url = served.server.url
    spec = {
        "tasks": [
            {"id": "plan", "prompt": "Plan the work", "agent": "claude"},
            {
                "id": "code",
                "prompt": "Code it from {{ tasks.plan.result }}",
                "agent": "codex",
                "base_url": f"{url}/v1",
            },
            {
                "id": "review",
                "prompt": "Review {{ tasks.code.result }}",
                "agent": "gemini",
                "base_url": url,
                "model": "gemini-2.5-flash",
            },
        ]
    }
    codex_home = tmp_path / "codex-home"
    codex_home.mkdir()
    env = {
        **served.server.claude_env(home=served.home, max_retries=0),
        "CC_EXECUTOR_CLAUDE": served.claude,
        "CC_EXECUTOR_CODEX": codex_path(),
        "CC_EXECUTOR_GEMINI": gemini_path(),
        "CODEX_HOME": str(codex_home),
        "OPENAI_API_KEY": "sk-cc-executor-testing",
        "GEMINI_API_KEY": "cc-executor-testing",
    }
    result = await run_tasks(spec, cwd=served.work, env=env, heartbeat_s=0)
    assert result.status is ListStatus.OK, result.to_dict()
    answers = {tid: task.result for tid, task in result.tasks.items()}
    assert answers == {"plan": "PLAN-42", "code": "CODE-7", "review": "LGTM"}
    # Each agent spoke its own API to the one server.
    assert [r.prompt for r in served.server.message_requests if r.prompt] == ["Plan the work"]
    assert [r.prompt for r in served.server.responses_requests] == ["Code it from PLAN-42"]
    assert [r.prompt for r in served.server.gemini_requests] == ["Review CODE-7"]
