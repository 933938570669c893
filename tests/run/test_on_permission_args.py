"""``on_permission`` without a ``permission_policy``: refused before anything runs."""

from __future__ import annotations

import pytest

from cc_executor._run._runner import run, start_run

NO_POLICY = "on_permission decides what a permission_policy's ask rules ask, and no"


async def test_a_callback_with_no_policy_to_ask_it_is_refused() -> None:
    # It used to be never called: every call it was meant to decide was silently denied.
    with pytest.raises(ValueError, match=NO_POLICY):
        await run("x", on_permission=lambda request: "allow", timeout=5)
    with pytest.raises(ValueError, match=NO_POLICY):
        start_run("x", on_permission=lambda request: "allow", timeout=5)
    with pytest.raises(ValueError, match=NO_POLICY):
        start_run("x", on_permission=lambda request: "allow", fleet="redis://127.0.0.1:1")
