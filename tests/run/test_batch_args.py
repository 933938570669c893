"""run_many's checks: bad arguments are one clear error before anything runs; keys are
stable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor import run_many, run_many_sync
from cc_executor._run._batch import batch_key
from cc_executor._run._options import RunOptions


async def test_a_timeout_is_required() -> None:
    with pytest.raises(TypeError, match=r"^run_many needs timeout= \(seconds, for each run\)"):
        await run_many(["x"])
    with pytest.raises(TypeError, match="run_many needs timeout="):
        run_many_sync(["x"], timeout=None)
    with pytest.raises(TypeError, match=r"prompts\[1\]: its timeout is None"):
        await run_many(["x", {"prompt": "y", "options": {"timeout": None}}], timeout=5)


@pytest.mark.parametrize(
    ("prompts", "kwargs", "error", "message"),
    [
        ("one prompt", {}, TypeError, "prompts must be a list of prompts"),
        (["a", " \n"], {}, ValueError, r"prompts\[1\]: the prompt is empty"),
        (["a", 3], {}, TypeError, r"prompts\[1\]: the prompt must be a str or bytes, got int"),
        ([{"text": "a"}], {}, ValueError, r"prompts\[0\]: unknown field\(s\) text \(known: "),
        ([{"key": "a"}], {}, ValueError, r"prompts\[0\]: no 'prompt'"),
        (
            [{"prompt": "a", "key": "k"}, {"prompt": "b", "key": "k"}],
            {},
            ValueError,
            r"prompts\[1\]: key 'k' is also the key of prompts\[0\]",
        ),
        ([{"prompt": "a", "key": ""}], {}, ValueError, "the key must be a non-empty string"),
        (
            ["a", {"prompt": "b", "options": {"max_turns": 0}}],
            {},
            ValueError,
            r"prompts\[1\]: max_turns",
        ),
        (["a"], {"no_such_option": 1}, TypeError, r"prompts\[0\]: unknown run option"),
        (["a"], {"run_id": "x"}, ValueError, "run_id is chosen by the batch for each run"),
        (["a"], {"concurrency": 0}, ValueError, "concurrency must be an integer >= 1, got 0"),
        (["a"], {"concurrency": True}, ValueError, "concurrency must be an integer >= 1"),
        (["a"], {"budget_usd": 0}, ValueError, "budget_usd must be a number > 0, got 0"),
        (["a"], {"budget_usd": float("nan")}, ValueError, "budget_usd must be a number > 0"),
        (["a"], {"batch_id": " "}, ValueError, "batch_id must be a non-empty string"),
    ],
)
async def test_bad_arguments_raise_before_anything_runs(
    prompts: Any, kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    # Outside the cli tier a started CLI would be the tripwire, which fails the test.
    with pytest.raises(error, match=message):
        await run_many(prompts, timeout=5, **kwargs)


@pytest.mark.slow  # over 0.3 s: a fresh interpreter
def test_keys_follow_what_is_asked_not_how_long_it_may_take(tmp_path: Path) -> None:
    base = RunOptions(cwd=tmp_path, timeout=10, model="m")
    key = batch_key("Summarise a.txt", base)
    assert key.startswith("sha256:")
    assert key == batch_key(b"Summarise a.txt", base)
    assert key == batch_key("Summarise a.txt", base.replace(timeout=99, retries=0))
    assert key == batch_key("Summarise a.txt", base.replace(env={"ANTHROPIC_API_KEY": "new"}))
    assert key != batch_key("Summarise b.txt", base)
    assert key != batch_key("Summarise a.txt", base.replace(model="other"))
    assert key != batch_key("Summarise a.txt", base.replace(allowed_tools=("Write",)))
    code = (
        "from cc_executor._run._batch import batch_key\n"
        "from cc_executor._run._options import RunOptions\n"
        f"print(batch_key('Summarise a.txt', RunOptions(cwd={str(tmp_path)!r}, model='m')))"
    )
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert other.stdout.strip() == key  # the same in another process (no hash seed)
