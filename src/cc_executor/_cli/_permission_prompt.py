"""The console's decider: a permission policy's ``ask`` becomes a question on the terminal."""

from __future__ import annotations

import json
import select
import sys
import threading
from collections.abc import Callable
from typing import Any

from cc_executor._text import inert

#: The most of a tool call's input shown in the question.
_SHOWN = 400


def console_decider(view: Any = None) -> Callable[..., str] | None:
    """A decider asking on the terminal, or None when stdin is not one (then a policy's
    ``ask`` is denied). It runs in a thread of its own (the run calls sync deciders so):
    it waits for an answer at most the request's timeout, so a late keystroke never
    answers the next question. ``view``: the live view, suspended while it asks.

    ``decide(request, task_id=None)``: questions come one at a time, however many runs
    (the parallel tasks of a list) ask at once; ``task_id`` is named in the question."""
    if not sys.stdin.isatty():
        return None
    one_at_a_time = threading.Lock()

    def decide(request: Any, task_id: str | None = None) -> str:
        with one_at_a_time:
            if view is not None:
                view.suspend()
            try:
                return ask(request, task_id)
            finally:
                if view is not None:
                    view.unsuspend()

    def ask(request: Any, task_id: str | None) -> str:
        # The model wrote the input: shown inert, on one line, cut short.
        shown = inert(json.dumps(dict(request.input), ensure_ascii=False))
        if len(shown) > _SHOWN:
            shown = shown[: _SHOWN - 3] + "..."
        rule = inert(request.rule) if request.rule else "the policy's default"
        asking = f'task "{inert(task_id)}": ' if task_id is not None else ""
        sys.stderr.write(
            f"\ncc-executor: {asking}{inert(request.tool_name)} {shown}\n"
            f"  asked by {rule}; denied after {request.timeout_s:g} s. Allow? [y/N] "
        )
        sys.stderr.flush()
        ready, _, _ = select.select([sys.stdin], [], [], request.timeout_s)
        if not ready:
            sys.stderr.write("(no answer: denied)\n")
            return "deny"
        answer = sys.stdin.readline().strip().lower()
        return "allow" if answer in ("y", "yes") else "deny"

    return decide
