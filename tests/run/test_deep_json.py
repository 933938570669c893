"""Issue 18, third pass: a model's deeply nested JSON answer checked against a recursive
schema is a schema error of that run, never a RecursionError escaping from ``run`` (the
console then exited with a traceback and no result), and a schema nested too deeply to be
checked is refused before the run with one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._agents._types import RunStatus
from cc_executor._run._runner import run

#: Deeper than jsonschema can descend with Python's default recursion limit (1,000 frames),
#: well within what the JSON parsers accept (orjson: 1,024 levels).
DEPTH = 900
RECURSIVE = {"type": "array", "items": {"$ref": "#"}}
CLI = str(Path(sys.executable).parent / "cc-executor")


def deep_agent(tmp_path: Path) -> Path:
    """A command agent whose answer is an array nested DEPTH deep."""
    spec = tmp_path / "deep.toml"
    code = f"print('[' * {DEPTH} + ']' * {DEPTH})"
    spec.write_text(f"command = [\"{sys.executable}\", \"-c\", '''{code}''']\n")
    return spec


async def test_a_deep_answer_against_a_recursive_schema_is_a_schema_error(
    tmp_path: Path,
) -> None:
    result = await run(
        "nest",
        agent="command",
        agent_spec=deep_agent(tmp_path),
        cwd=tmp_path,
        json_schema=RECURSIVE,
        heartbeat_s=0,
    )
    assert result.status is RunStatus.ERROR, result
    assert result.json_error == (
        "JSON does not match the schema: $: the JSON is nested too deeply to be checked "
        "against the schema"
    )
    assert result.json is not None  # the value was found; only its check failed


@pytest.mark.slow  # starts the console twice
def test_the_console_gives_a_result_or_one_line_never_a_traceback(tmp_path: Path) -> None:
    spec = deep_agent(tmp_path)
    schema_file = tmp_path / "recursive.json"
    schema_file.write_text(json.dumps(RECURSIVE))
    deep_schema: dict[str, object] = {}
    node = deep_schema
    for _ in range(DEPTH):
        node["items"] = {}
        node = node["items"]  # type: ignore[assignment]
    deep_file = tmp_path / "deep-schema.json"
    deep_file.write_text(json.dumps(deep_schema))
    base = [CLI, "run", "--agent", "command", "--agent-spec", str(spec), "--json"]
    checked = subprocess.run(
        [*base, "--json-schema", str(schema_file), "nest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    refused = subprocess.run(
        [*base, "--json-schema", str(deep_file), "nest"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert "Traceback" not in checked.stderr, checked.stderr[-2000:]
    result = json.loads(checked.stdout)
    assert result["status"] == "error"
    assert "nested too deeply" in result["json_error"]
    assert "Traceback" not in refused.stderr, refused.stderr[-2000:]
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == (
        "cc-executor run: error: invalid JSON schema: nested too deeply to be checked (use "
        "$defs and $ref for deep structures) (see cc-executor run --help)"
    )
