"""Issue 18, third pass: the command agent's ``model_arg`` cannot turn a model name into a
flag. With ``model_arg = ["-m", "{model}"]``, ``--model=--yolo`` reached the agent CLI as
its own ``--yolo`` argument (the built-in agents refused such a value; a server running
the command agent takes ``model`` from remote callers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from cc_executor._agents._types import RunStatus
from cc_executor._run._runner import run

#: A command agent whose answer is the argv it was given.
ECHO_ARGV = "import sys, json; print(json.dumps(sys.argv[1:]))"


def argv_agent(tmp_path: Path) -> Path:
    spec = tmp_path / "argv.toml"
    spec.write_text(
        f"command = [\"{sys.executable}\", \"-c\", '''{ECHO_ARGV}''']\n"
        'model_arg = ["-m", "{model}"]\n'
    )
    return spec


@pytest.mark.parametrize("model", ["--yolo", "-x"])
async def test_a_model_that_would_be_a_flag_is_refused(tmp_path: Path, model: str) -> None:
    spec = argv_agent(tmp_path)
    with pytest.raises(ValueError, match=r"^model must be a model name, got ") as caught:
        await run("x", agent="command", agent_spec=spec, cwd=tmp_path, model=model)
    assert "\n" not in str(caught.value)


async def test_a_model_name_is_passed_as_the_spec_says(tmp_path: Path) -> None:
    spec = argv_agent(tmp_path)
    result = await run(
        "x", agent="command", agent_spec=spec, cwd=tmp_path, model="qwen3-coder", heartbeat_s=0
    )
    assert result.status is RunStatus.OK, result.error
    assert json.loads(result.result) == ["-m", "qwen3-coder"]
