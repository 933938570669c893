"""The original cc_executor client API, on top of :func:`cc_executor.run`.

::

    from cc_executor.client.cc_execute import cc_execute, CCExecutorConfig

    text = await cc_execute("Write a haiku", config=CCExecutorConfig(timeout=120))
    data = await cc_execute("Return JSON with keys a and b", json_mode=True)

Behaviour kept from the original: the answer comes back as ``str`` (as ``dict`` with
``json_mode=True``, plus ``execution_uuid``), and a timeout returns what was produced so far
instead of raising. What is new: a failure that is not a timeout raises
:class:`CCExecuteError` carrying the specific error and the full :class:`RunResult`, instead
of an "unknown error" string.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._types import AgentEvent, RunStatus, TextDeltaEvent, TextEvent
from cc_executor._engine import run_sync as _run_coroutine_sync
from cc_executor._run._jsonmode import extract_from_answer, merge_json_result
from cc_executor._run._result import STOPPED, RunResult
from cc_executor._run._runner import run


class CCExecuteError(RuntimeError):
    """A run failed for a reason other than a timeout; ``result`` holds everything known."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"{result.status}: {result.error}")
        self.result = result


@dataclass
class CCExecutorConfig:
    """Settings of :func:`cc_execute`.

    ``timeout`` (seconds, total), ``stream_output`` (print the answer to stdout as it is
    generated), ``save_transcript`` (accepted for compatibility: the full event log is
    always kept in the run's folder), ``options`` (any other option of
    :func:`cc_executor.run`, e.g. ``{"model": "...", "allowed_tools": ["Write"]}``).
    """

    timeout: float = 600.0
    stream_output: bool = False
    save_transcript: bool = True
    options: Mapping[str, Any] = field(default_factory=dict)


def _printer() -> Any:
    from cc_executor._cli._live import inert

    streamed: set[str | None] = set()
    safe = inert if sys.stdout.isatty() else (lambda text: text)

    def on_event(event: AgentEvent) -> None:
        if isinstance(event, TextDeltaEvent):
            streamed.add(event.message_id)
            sys.stdout.write(safe(event.text))
        elif isinstance(event, TextEvent):
            # Without token-level streaming the block arrives whole.
            if event.message_id not in streamed:
                sys.stdout.write(safe(event.text))
            sys.stdout.write("\n")
        else:
            return
        sys.stdout.flush()

    return on_event


async def cc_execute(
    task: str,
    config: CCExecutorConfig | None = None,
    json_mode: bool = False,
    **options: Any,
) -> Any:
    """Run ``task`` in a fresh Claude Code process and return the answer.

    Returns ``str``, or with ``json_mode=True`` a ``dict``: the JSON object from the answer
    plus ``execution_uuid`` (a non-object JSON value comes as ``{"json": value, ...}``). On a
    timeout it returns the text so far (``str``), or ``{"result": <text so far>, "partial":
    True, "timeout_after": <s>, "error": <message>, "execution_uuid": ...}`` merged with
    whatever JSON could be salvaged. Other failures raise :class:`CCExecuteError`.
    """
    config = config or CCExecutorConfig()
    merged = {**config.options, **options}
    merged.setdefault("timeout", config.timeout)
    result = await run(task, on_event=_printer() if config.stream_output else None, **merged)
    stopped = result.status in STOPPED
    if not result.ok and not stopped:
        raise CCExecuteError(result)
    if not json_mode:
        return result.result
    base: dict[str, Any] = {"execution_uuid": result.run_id}
    if stopped:
        base.update(
            result=result.result,
            partial=True,
            timeout_after=result.timeout_after,
            error=result.error,
        )
    extraction, _ = extract_from_answer(result.result, stopped=stopped)
    if not stopped and not extraction.found:
        failed = RunResult(**{**_fields(result), "status": RunStatus.ERROR})
        failed.error = f"json_mode: {extraction.error}"
        raise CCExecuteError(failed)
    return merge_json_result(base, extraction)


def _fields(result: RunResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in RunResult.__dataclass_fields__}


def cc_execute_sync(
    task: str, config: CCExecutorConfig | None = None, json_mode: bool = False, **options: Any
) -> Any:
    """:func:`cc_execute` for synchronous code."""
    return _run_coroutine_sync(cc_execute(task, config, json_mode, **options))


async def cc_execute_list(
    tasks: Sequence[str],
    config: CCExecutorConfig | None = None,
    json_mode: bool = False,
    **options: Any,
) -> list[Any]:
    """Run ``tasks`` one after another, each in a fresh Claude Code process (a full context
    window each); returns their answers in order. A failing task raises
    :class:`CCExecuteError` and the later tasks do not run."""
    return [await cc_execute(task, config, json_mode, **options) for task in tasks]
