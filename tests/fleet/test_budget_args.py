"""The worker's budget options refuse bad input in one line, before anything connects."""

from __future__ import annotations

import re

import pytest

from cc_executor._cli import build_parser
from cc_executor._cli._fleet import _budget_settings
from cc_executor._run._budget import check_webhook
from tests.fleet.test_commands import cc

FLEET = {"CC_EXECUTOR_FLEET": "redis://localhost:1/0"}


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--reserve-usd", "1"], "--reserve-usd, --budget-threshold, --budget-webhook and "
         "--on-budget-exhausted need --budget-usd"),
        (["--budget-usd", "0"], "--budget-usd must be a number > 0, got 0"),
        (["--budget-usd", "5", "--budget-threshold", "120"],
         "--budget-threshold must be a percentage in [0.1, 100], got 120"),
        (["--budget-usd", "5", "--budget-threshold", "0.04"],
         "--budget-threshold must be a percentage in [0.1, 100], got 0.04"),
        (["--budget-usd", "5", "--budget-webhook", "http://169.254.169.254/latest"],
         "--budget-webhook 'http://169.254.169.254/latest': 169.254.169.254 is neither a "
         "loopback address nor allowed by --budget-webhook-allow-host (docs/security.md)"),
        (["--budget-usd", "5", "--budget-name", "a b"],
         "budget name 'a b': letters, digits, '.', '_' or '-', at most 64"),
    ],
)  # fmt: skip
def test_bad_budget_options_are_refused_saying_why(args: list[str], said: str) -> None:
    parsed = build_parser("worker").parse_args(["worker", *args])
    with pytest.raises(ValueError, match="^" + re.escape(said) + "$"):
        _budget_settings(parsed)


def test_the_worker_exits_2_with_one_line_for_a_bad_budget() -> None:
    done = cc("worker", "--budget-usd", "5", "--budget-threshold", "0", **FLEET)
    assert done.returncode == 2
    assert done.stderr == (
        "cc-executor worker: --budget-threshold must be a percentage in [0.1, 100], got 0\n"
    )


def test_good_budget_options_make_the_settings() -> None:
    parsed = build_parser("worker").parse_args(
        ["worker", "--budget-usd", "5", "--reserve-usd", "0.5", "--reserve-usd", "opus=2",
         "--budget-threshold", "90", "--budget-threshold", "50", "--budget-threshold", "50",
         "--budget-threshold", "33.33", "--on-budget-exhausted",
         "drain", "--budget-webhook", "http://127.0.0.1:9/b"]
    )  # fmt: skip
    settings = _budget_settings(parsed)
    assert settings.reserve == {"*": 0.5, "opus": 2.0}
    # Lowest first, each once, to a tenth of a percent: as a task list's (one check).
    assert settings.thresholds == (0.333, 0.5, 0.9)
    assert (settings.on_exhausted, settings.webhook) == ("drain", "http://127.0.0.1:9/b")


def test_the_webhook_goes_to_loopback_or_an_allowed_host_only() -> None:
    assert check_webhook("http://127.0.0.1:9000/b") == "http://127.0.0.1:9000/b"
    assert check_webhook("http://[::1]/b") == "http://[::1]/b"
    assert check_webhook("https://hooks.example.com/b", ["hooks.example.com"])
    for bad, why in (
        ("https://hooks.example.com/b", "neither a loopback address"),
        ("file:///etc/passwd", "an http:// or https:// URL"),
        ("http://u:p@127.0.0.1/", "no credentials"),
    ):
        with pytest.raises(ValueError, match=why):
            check_webhook(bad)
