"""What a worker says and does with a lost run, by its options (no Redis: the plan alone):
a ``repo`` run resumes only from work it pushed, and otherwise restarts and says so."""

from __future__ import annotations

from typing import Any

import pytest

from cc_executor._service._worker import RESUMES, lost_run_plan

RUN = "01jd3y0q8z6w1c5m7v4t2r9n0p"
REPO = {"repo": "file:///srv/app.git", "workspace": "worktree"}


@pytest.mark.parametrize(
    ("options", "session", "pushed", "said"),
    [
        ({}, "s1", None, f"{RESUMES} its session s1"),
        ({}, None, None, "no session transcript was shipped yet: it restarts from its prompt"),
        (REPO, "s1", "c0ffee" * 7, f"{RESUMES} its session s1 on its pushed branch "),
        (REPO, "s1", None, "nothing of its work was pushed yet: it restarts from its prompt "),
        (REPO, None, "c0ffee" * 7, "no session transcript was shipped yet: it restarts "),
        ({"repo": "file:///a.git"}, "s1", None, "a repo run without a workspace pushes "),
        ({**REPO, "on_worker_lost": "restart"}, "s1", "c0", "on_worker_lost is restart"),
        ({**REPO, "on_worker_lost": "fail"}, "s1", "c0", "on_worker_lost is fail"),
        ({"agent": "codex"}, "s1", None, "the codex agent's session cannot be carried"),
    ],
)
def test_a_lost_run_resumes_only_from_what_was_carried(
    options: dict[str, Any], session: str | None, pushed: str | None, said: str
) -> None:
    plan = lost_run_plan(options, session, pushed, RUN)
    assert plan.startswith(said), plan
    if "repo" in options and not plan.startswith(RESUMES) and "on_worker_lost" not in options:
        assert plan.endswith("in a fresh clone"), plan
    if plan.startswith(RESUMES) and "repo" in options:
        assert f"cc-executor/{RUN} (checkpoint c0ffeec0ffee)" in plan
