"""The price table: estimated costs from the token counts each agent reports, and budgets
refused where no cost can be known."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from cc_executor._agents._prices import PRICES, estimate_cost, price_of, takes_budget
from cc_executor._run._options import RunOptions


def test_codex_usage_counts_cached_input_inside_input() -> None:
    usage = {"input_tokens": 1000, "cached_input_tokens": 400, "output_tokens": 10}
    cost = estimate_cost(usage, "gpt-5.1-codex")
    assert cost == pytest.approx((600 * 1.25 + 400 * 0.125 + 10 * 10.0) / 1e6)


def test_gemini_stats_are_priced_model_by_model() -> None:
    stats: dict[str, Any] = {
        "input_tokens": 2000,
        "output_tokens": 20,
        "cached": 0,
        "models": {
            "gemini-2.5-flash-lite": {"input_tokens": 1000, "output_tokens": 10, "cached": 0},
            "gemini-2.5-pro": {"input_tokens": 1000, "output_tokens": 10, "cached": 500},
        },
    }
    lite = (1000 * 0.10 + 10 * 0.40) / 1e6
    pro = (500 * 1.25 + 500 * 0.125 + 10 * 10.0) / 1e6
    assert estimate_cost(stats, "ignored") == pytest.approx(lite + pro)
    stats["models"]["mystery"] = {"input_tokens": 1, "output_tokens": 1, "cached": 0}
    assert estimate_cost(stats, "gemini-2.5-pro") is None  # one unpriced model: unknown


def test_claude_shaped_usage_keeps_cache_reads_apart() -> None:
    usage = {"input_tokens": 100, "cache_read_input_tokens": 1000, "output_tokens": 5}
    assert estimate_cost(usage, "gpt-5") == pytest.approx(
        (100 * 1.25 + 1000 * 0.125 + 5 * 10.0) / 1e6
    )


def test_no_price_or_no_tokens_is_unknown_never_zero() -> None:
    assert estimate_cost({"input_tokens": 10, "output_tokens": 1}, "mystery-model") is None
    assert estimate_cost({"input_tokens": 10, "output_tokens": 1}, None) is None
    assert estimate_cost({}, "gpt-5") is None
    assert estimate_cost({"input_tokens": 0, "output_tokens": 0}, "gpt-5") == 0.0


def test_snapshots_are_priced_as_their_model_and_prefixes_are_not() -> None:
    assert price_of("gpt-5-2025-08-07") == PRICES["gpt-5"]
    assert price_of("models/gemini-2.5-flash-001") == PRICES["gemini-2.5-flash"]
    assert price_of("gpt-5-pro") is None  # not gpt-5's price: a different, dearer model
    assert takes_budget("claude", None)
    assert takes_budget("codex", "gpt-5.1-codex")
    assert not takes_budget("gemini", None)


def test_the_table_is_dated_and_sourced() -> None:
    from cc_executor._agents import _prices

    assert _prices.PRICES_DATE[:4].isdigit()
    assert "openai.com" in _prices.PRICES_SOURCE
    assert "ai.google.dev" in _prices.PRICES_SOURCE
    assert all(p.cached_input <= p.input for p in PRICES.values())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"agent": "codex", "model": "mystery-model"}, "Codex CLI reports no cost"),
        ({"agent": "codex"}, "its default model \\(no --model given\\)"),
        ({"agent": "gemini"}, "Gemini CLI reports no cost"),
        ({"agent": "gemini", "model": "gemini-9-ultra"}, "model 'gemini-9-ultra'"),
    ],
)
def test_a_budget_without_a_price_is_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        RunOptions(max_budget_usd=1.0, **options)
    assert "\n" not in str(caught.value)
    RunOptions(max_budget_usd=1.0, **{**options, "model": "gpt-5"})  # priced: accepted


def test_a_command_agent_budget_needs_a_priced_model(tmp_path: Path) -> None:
    spec = tmp_path / "agent.toml"
    spec.write_text('name = "Mine"\ncommand = ["x"]\nmodel_arg = ["-m", "{model}"]\n')
    with pytest.raises(ValueError, match="Mine reports no cost"):
        RunOptions(agent="command", agent_spec=spec, max_budget_usd=1.0, model="local-llm")
    RunOptions(agent="command", agent_spec=spec, max_budget_usd=1.0, model="gpt-5-mini")


def test_the_command_line_refuses_it_in_one_line(tmp_path: Path) -> None:
    cli = Path(sys.executable).parent / "cc-executor"
    env = {**os.environ, "CC_EXECUTOR_HOME": str(tmp_path)}
    done = subprocess.run(
        [str(cli), "run", "--agent", "gemini", "--max-budget-usd", "1", "hello"],
        capture_output=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert done.returncode == 2
    lines = done.stderr.decode().strip().splitlines()
    assert len(lines) == 1
    assert "max-budget-usd: Gemini CLI reports no cost" in lines[0]
