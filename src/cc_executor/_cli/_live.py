"""The live view of ``cc-executor run``: on a terminal, a status line (spinner, elapsed time,
turns, tool calls, tokens, cost) above the answer as it streams; elsewhere, or without rich
(the ``cli`` extra), one plain progress line per notable event. Always on stderr, so stdout
carries only the answer.

Model output is untrusted: every piece of it, the status line included, is shown through
:func:`cc_executor._text.inert`, so an answer cannot move the cursor, retitle the window,
hide text or reorder it with bidirectional controls.
"""

from __future__ import annotations

import sys
import time
from typing import IO, Any

from cc_executor._agents._types import (
    AgentEvent,
    ApiRetryEvent,
    HeartbeatEvent,
    InitEvent,
    LimitWaitEvent,
    PermissionDecisionEvent,
    ResultEvent,
    RetryEvent,
    StatusEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEvent,
    ToolResultEvent,
    ToolUseEvent,
)
from cc_executor._extras import missing_module
from cc_executor._text import inert

_ANSWER_LINES = 12
#: The status events of a fleet run's recovery from a lost worker (docs/fleet.md).
_RECOVERY = ("interrupted: ", "session_resumed: ", "restarted: ")
_TAIL_CHARS = 4096


def _tool_summary(event: ToolUseEvent) -> str:
    for key in ("file_path", "notebook_path", "command", "pattern", "url", "description"):
        value = event.input.get(key)
        if isinstance(value, str) and value:
            value = value if len(value) <= 60 else value[:57] + "..."
            return f"{event.name} {value}"
    return event.name


class LiveView:
    """Follows a run's events and renders them. Call :meth:`handle` for every event and
    :meth:`close` at the end."""

    def __init__(self, stream: IO[str] | None = None, *, tty: bool | None = None) -> None:
        self._out = stream or sys.stderr
        # Without rich (the cli extra) a terminal gets the plain progress lines too.
        self._tty = (self._out.isatty() if tty is None else tty) and missing_module("cli") is None
        self._start = time.monotonic()
        self._turns: set[str] = set()
        self._tools = 0
        self._last_tool = ""
        self._tokens = 0
        self._cost: float | None = None
        self._model = ""
        self._answer: list[str] = []
        self._activity = "starting"
        self._live: Any = None
        self._spinner: Any = None
        if self._tty:
            from rich.console import Console
            from rich.live import Live
            from rich.spinner import Spinner

            # One spinner for the whole run: its frame comes from the time since its first
            # render, so a new one per refresh would never move.
            self._spinner = Spinner("dots")

            console = Console(file=self._out, highlight=False)
            self._live = Live(
                console=console, refresh_per_second=8, transient=True, get_renderable=self._render
            )
            self._live.start()

    def _status(self) -> str:
        parts = [f"{time.monotonic() - self._start:5.1f}s", f"turns {len(self._turns)}"]
        parts.append(f"tools {self._tools}" + (f" ({self._last_tool})" if self._last_tool else ""))
        if self._tokens:
            parts.append(f"{self._tokens:,} tokens out")
        if self._cost is not None:
            parts.append(f"${self._cost:.4f}")
        if self._model:
            parts.append(self._model)
        return " · ".join(parts) + f" · {self._activity}"

    def _render(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        tail = "".join(self._answer).splitlines()[-_ANSWER_LINES:]
        self._spinner.update(text=Text(inert(self._status()), style="bold"))
        return Group(self._spinner, Text(inert("\n".join(tail)), style="dim"))

    def _line(self, text: str) -> None:
        if not self._tty:
            self._out.write(f"[{time.monotonic() - self._start:6.1f}s] {inert(text)}\n")
            self._out.flush()

    def handle(self, event: AgentEvent) -> None:
        """Update the view with one event."""
        if isinstance(event, InitEvent):
            self._model = event.model or ""
            self._activity = "session started"
            # Codex names no model when its thread starts.
            model = f" · model {event.model}" if event.model else ""
            self._line(f"session {event.session_id}{model}")
        elif isinstance(event, TextDeltaEvent):
            self._answer.append(event.text)
            if len(self._answer) > 256:
                # Only the last lines are shown: keep a bounded tail, not the whole answer.
                self._answer = ["".join(self._answer)[-_TAIL_CHARS:]]
            self._activity = "writing"
        elif isinstance(event, TextEvent):
            if event.message_id:
                self._turns.add(event.message_id)
            if not self._answer:
                self._answer.append(event.text[-_TAIL_CHARS:])
            self._answer.append("\n")
            self._activity = "answered"
        elif isinstance(event, ToolUseEvent):
            if event.message_id:
                self._turns.add(event.message_id)
            self._tools += 1
            self._last_tool = event.name
            self._activity = f"tool: {_tool_summary(event)}"
            self._answer = []
            self._line(f"tool: {_tool_summary(event)}")
        elif isinstance(event, ToolResultEvent):
            self._activity = "tool failed" if event.is_error else "tool done"
            if event.is_error:
                self._line(f"tool error: {event.content[:200]}")
        elif isinstance(event, StreamEvent):
            usage = event.event.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
                self._tokens += usage["output_tokens"]
        elif isinstance(event, (ApiRetryEvent, RetryEvent)):
            self._activity = "retrying"
            self._line(f"retrying: {getattr(event, 'error', None) or getattr(event, 'reason', '')}")
        elif isinstance(event, LimitWaitEvent):
            self._activity = "waiting for the fleet's rate limit"
            if event.why == "full":
                why = f"its {event.cap} run(s) in flight are at the fleet's cap"
            else:
                left = f", {event.wait_s:.0f} s left" if event.wait_s is not None else ""
                why = f"paused after {event.reason}{left}"
            self._line(f"waiting for the fleet's rate limit: credential {event.credential} {why}")
        elif isinstance(event, ResultEvent):
            self._cost = event.cost_usd
            self._activity = "finished"
        elif isinstance(event, PermissionDecisionEvent):
            by = event.decided_by + (f" ({event.rule})" if event.rule else "")
            self._activity = f"{event.tool_name} {event.decision} by {by}"
            self._line(f"permission: {event.tool_name} {event.decision} by {by}")
        elif isinstance(event, StatusEvent) and event.status.startswith(_RECOVERY):
            # A fleet run's worker was lost, and what became of the run: worth a line.
            self._activity = event.status.split(":", 1)[0].replace("_", " ")
            self._line(event.status)
        elif isinstance(event, HeartbeatEvent):
            self._line(
                f"running · turns {event.turns} · tools {event.tool_calls} · "
                f"idle {event.idle_s:.0f}s · {event.last_activity}"
            )

    def suspend(self) -> None:
        """Stop redrawing (a question is asked on the terminal) until :meth:`unsuspend`."""
        if self._live is not None:
            self._live.stop()

    def unsuspend(self) -> None:
        if self._live is not None:
            self._live.start()

    def close(self) -> None:
        """Stop the live display (it disappears; the caller prints the answer)."""
        if self._live is not None:
            self._live.stop()
            self._live = None
