"""One task list, three agent CLIs: Claude Code, Codex and Gemini, each the real CLI against
the one scripted server, results passed forward from task to task."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from cc_executor._store import open_store
from cc_executor.tasks import ListStatus, run_tasks
from cc_executor.testing import Reply, Rule, Script, Text
from tests._means import agent_path, codex_path, gemini_path
from tests.tasks.conftest import CLI, Served

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
    store = open_store()
    try:
        records = {tid: store.get(task.run_id or "") for tid, task in result.tasks.items()}
    finally:
        store.close()
    agents = {tid: record.agent if record else None for tid, record in records.items()}
    assert agents == {"plan": "claude", "code": "codex", "review": "gemini"}
    # Each agent spoke its own API to the one server.
    assert [r.prompt for r in served.server.message_requests if r.prompt] == ["Plan the work"]
    assert [r.prompt for r in served.server.responses_requests] == ["Code it from PLAN-42"]
    assert [r.prompt for r in served.server.gemini_requests] == ["Review CODE-7"]


def test_a_markdown_list_of_three_agents_through_the_console(
    serve: Callable[[Script], Served], tmp_path: Path
) -> None:
    """``agent:`` per task in a Markdown list run by ``cc-executor tasks run``: Claude Code,
    Qwen Code (the command agent, through its spec) and Gemini CLI, each the real CLI;
    every answer reaches the next prompt, and the history says which agent ran each task."""
    script = Script(
        [
            Rule(match="^Plan the work", answers=[Reply([Text("PLAN-42")])]),
            Rule(match="^Code it from PLAN-42", answers=[Reply([Text("CODE-7")])]),
            Rule(match="^Review CODE-7 of PLAN-42", answers=[Reply([Text("LGTM")])]),
        ]
    )
    served = serve(script)
    url = served.server.url
    (served.work / "qwen.toml").write_text(
        textwrap.dedent(
            f"""\
            name = "Qwen Code"
            command = ["{agent_path("qwen")}", "-p", "", "--auth-type", "openai", "--yolo",
                       "-o", "stream-json"]
            output = "claude-stream-json"
            model_arg = ["--model={{model}}"]
            base_url_env = "OPENAI_BASE_URL"
            """
        )
    )
    (served.work / "agents.md").write_text(
        textwrap.dedent(
            f"""\
            ## Task 1: Plan
            Plan the work

            ## Task 2: Code
            ```yaml
            agent: command
            agent_spec: qwen.toml
            model: qwen-test
            base_url: {url}/v1
            ```
            Code it from {{{{ tasks.plan.result }}}}

            ## Task 3: Review
            ```yaml
            agent: gemini
            model: gemini-2.5-flash
            base_url: {url}
            ```
            Review {{{{ tasks.code.result }}}} of {{{{ tasks.plan.result }}}}
            """
        )
    )
    # Qwen Code's memory request after a turn, which no script answers, turned off.
    settings = served.home / ".qwen" / "settings.json"
    settings.parent.mkdir(exist_ok=True)
    settings.write_text(json.dumps({"memory": {"enableManagedAutoMemory": False}}))
    served_env = {
        "CC_EXECUTOR_GEMINI": gemini_path(),
        "OPENAI_API_KEY": "sk-cc-executor-testing",
        "GEMINI_API_KEY": "cc-executor-testing",
    }
    done = subprocess.run(
        [CLI, "tasks", "run", "agents.md", "--json"],
        cwd=served.work,
        env={**served.env, **served_env},
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    tasks = result["tasks"]
    assert {tid: task["result"] for tid, task in tasks.items()} == {
        "plan": "PLAN-42",
        "code": "CODE-7",
        "review": "LGTM",
    }
    agents = {}
    for tid, task in tasks.items():
        shown = served.cli("show", task["run_id"], "--json")
        assert shown.returncode == 0, shown.stderr
        agents[tid] = json.loads(shown.stdout)["agent"]
    assert agents == {"plan": "claude", "code": "command", "review": "gemini"}
    # Each later prompt, as its agent sent it to the model, holds the earlier results.
    assert [r.prompt for r in served.server.message_requests if r.prompt] == ["Plan the work"]
    assert [(r.prompt or "").strip() for r in served.server.chat_requests] == [
        "Code it from PLAN-42"
    ]
    assert [r.prompt for r in served.server.gemini_requests] == ["Review CODE-7 of PLAN-42"]
