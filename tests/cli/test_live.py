"""The live view of ``cc-executor run``: what the model wrote reaches the terminal inert."""

from __future__ import annotations

import io

from cc_executor._agents._types import (
    InitEvent,
    LimitWaitEvent,
    StatusEvent,
    ToolResultEvent,
    ToolUseEvent,
)
from cc_executor._cli._live import LiveView


def test_the_live_view_shows_hostile_tool_input_inert() -> None:
    """The live view's progress lines (off a terminal) neutralise what the model wrote."""
    out = io.StringIO()
    view = LiveView(out, tty=False)
    view.handle(InitEvent(t=0.0, session_id="s", model="m\u202e"))
    view.handle(ToolUseEvent(t=0.0, name="Read", input={"file_path": "evil\u202etxt.exe"}))
    view.handle(ToolResultEvent(t=0.0, content="no\u2066such\u200bfile\x1b[2J", is_error=True))
    view.close()
    shown = out.getvalue()
    assert "evil\\u202etxt.exe" in shown
    assert "no\\u2066such\\u200bfile\\x1b[2J" in shown
    assert "model m\\u202e" in shown
    assert not any(c in shown for c in ["\u202e", "\u2066", "\u200b", "\x1b"])


def test_the_live_view_says_when_a_fleet_run_waits_for_a_shared_rate_limit() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=False)
    view.handle(
        LimitWaitEvent(
            t=0.0, why="paused", credential="0123abcd", wait_s=4.2, reason="rate limited (429)"
        )
    )
    view.handle(LimitWaitEvent(t=0.0, why="full", credential="0123abcd", cap=2))
    view.close()
    shown = out.getvalue()
    assert (
        "waiting for the fleet's rate limit: credential 0123abcd paused after rate limited "
        "(429), 4 s left" in shown
    )
    assert "credential 0123abcd its 2 run(s) in flight are at the fleet's cap" in shown


def test_the_live_view_says_when_a_fleet_run_lost_its_worker() -> None:
    out = io.StringIO()
    view = LiveView(out, tty=False)
    view.handle(StatusEvent(t=0.0, status="requesting"))
    view.handle(StatusEvent(t=0.0, status="interrupted: worker w1 lost: resumes its session"))
    view.handle(StatusEvent(t=0.0, status="session_resumed: abc"))
    view.close()
    lines = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert lines == ["interrupted: worker w1 lost: resumes its session", "session_resumed: abc"]
