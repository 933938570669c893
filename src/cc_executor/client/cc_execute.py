"""The original cc_executor client API, on top of :func:`cc_executor.run`.

::

    from cc_executor.client.cc_execute import cc_execute, CCExecutorConfig

    text = await cc_execute("Write a haiku", config=CCExecutorConfig(timeout=120))
    data = await cc_execute("Create fib.py", json_mode=True)  # data["files_created"], ...
    mine = await cc_execute("Return JSON with keys a and b", strict_json=True)

Behaviour kept from the original: the answer comes back as ``str`` (as ``dict`` with
``json_mode=True`` or ``return_dict=True``, plus ``execution_uuid``), ``json_mode`` asks the
model for a JSON object and falls back to ``{"result": <text>, "error": ...}`` when the
answer holds none, and a timeout returns what was produced so far instead of raising. The
original's other parameters are accepted, in its order: ``stream``,
``agent_predict_timeout``, ``return_json`` (the old name of ``json_mode``),
``generate_report``, ``amend_prompt``, ``validation_prompt``, ``progress_callback`` and
``return_dict``; :class:`CCExecutorConfig` also takes ``response_dir`` and
``transcript_dir``; :func:`cc_execute_task_list` and :func:`export_execution_history` keep
their names and shapes. What is new: a failure that is not a timeout raises
:class:`CCExecuteError` carrying the specific error and the full :class:`RunResult`,
instead of an "unknown error" string; ``strict_json=True`` raises it for an answer without
JSON too; the prompt reaches the CLI on stdin, never through a shell.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import sys
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cc_executor._agents._types import (
    AgentEvent,
    HeartbeatEvent,
    ResultEvent,
    RetryEvent,
    RunStartedEvent,
    RunStatus,
    TextDeltaEvent,
    TextEvent,
    ToolUseEvent,
)
from cc_executor._engine import run_sync as _run_coroutine_sync
from cc_executor._errors import CCExecuteError as CCExecuteError
from cc_executor._run._jsonmode import extract_from_answer_async, merge_json_result
from cc_executor._run._options import RunOptions
from cc_executor._run._result import STOPPED, RunResult
from cc_executor._run._runner import run
from cc_executor.client._history import export_execution_history as export_execution_history
from cc_executor.client._history import export_history_sync as export_history_sync
from cc_executor.client._task_list import cc_execute_task_list as cc_execute_task_list

ProgressCallback = Callable[[str], Any]

#: The user's call (file, line, module, warning registry) when it is not the frame that
#: awaits cc_execute: cc_execute_list's tasks and cc_execute_sync's thread would otherwise
#: have their warnings name a line of this module or of asyncio.
_CALLER: ContextVar[tuple[str, int, str, dict[Any, Any]] | None] = ContextVar(
    "cc_execute_caller", default=None
)


def _site(frame: Any) -> tuple[str, int, str, dict[Any, Any]]:
    registry = frame.f_globals.setdefault("__warningregistry__", {})
    return frame.f_code.co_filename, frame.f_lineno, frame.f_globals.get("__name__", ""), registry


def _caller_site(depth: int) -> tuple[str, int, str, dict[Any, Any]]:
    """Where the call ``depth`` frames above the caller of this function is."""
    return _site(sys._getframe(depth + 1))


def _warn_caller(message: str) -> None:
    """A ``UserWarning`` at the user's line: the one :data:`_CALLER` holds, else the first
    frame outside this module (a validation run's warning too names the user's call)."""
    site = _CALLER.get()
    if site is None:
        frame: Any = sys._getframe(1)
        while frame is not None and frame.f_code.co_filename == __file__:
            frame = frame.f_back
        if frame is None:
            warnings.warn(message, UserWarning, stacklevel=2)
            return
        site = _site(frame)
    filename, lineno, module, registry = site
    warnings.warn_explicit(message, UserWarning, filename, lineno, module, registry)


@dataclass
class CCExecutorConfig:
    """Settings of :func:`cc_execute`.

    ``timeout`` (seconds, total), ``stream_output`` (print the answer to stdout as it is
    generated), ``save_transcript`` (the full event log is always kept in the run's folder;
    with ``transcript_dir`` set, a Markdown transcript is also written there),
    ``response_dir`` (if set, a JSON file per call is written there with the original's
    keys: ``session_id, timestamp, task, output, error, return_code, execution_time,
    execution_uuid``), in the original's order; then ``options`` (any other option of
    :func:`cc_executor.run`, e.g. ``{"model": "...", "allowed_tools": ["Write"]}``).
    Unlike the original, nothing is written outside the run's folder unless a folder is
    given, and nothing is printed unless ``stream_output`` is set.
    """

    timeout: float = 600.0
    stream_output: bool = False
    save_transcript: bool = True
    response_dir: str | os.PathLike[str] | None = None
    transcript_dir: str | os.PathLike[str] | None = None
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.options, Mapping):
            raise TypeError(
                "CCExecutorConfig.options must be a mapping of run() options, not "
                f"{type(self.options).__name__}"
            )


def _printer() -> Callable[[AgentEvent], None]:
    from cc_executor._text import inert

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


def progress_message(event: AgentEvent) -> str | None:
    """The one-line progress message ``progress_callback`` receives for ``event``, if any:
    each tool call, retries, heartbeats (every ``heartbeat_s``, 10 s by default) and the
    end. (The first message, "Starting Claude execution with a timeout of N s...", comes
    before any event.)"""
    if isinstance(event, RunStartedEvent) and event.attempt > 1:
        return f"Starting attempt {event.attempt}..."
    if isinstance(event, ToolUseEvent):
        return f"Tool call: {event.name}"
    if isinstance(event, RetryEvent):
        return f"Retrying in {event.delay_s:.0f} s (attempt {event.attempt}): {event.reason}"
    if isinstance(event, HeartbeatEvent):
        return (
            f"Running for {event.elapsed_s:.0f} s: {event.last_activity} "
            f"({event.turns} turn(s), {event.tool_calls} tool call(s))"
        )
    if isinstance(event, ResultEvent):
        return "Claude execution completed"
    return None


def _on_event(
    printing: bool, progress: ProgressCallback | None
) -> Callable[[AgentEvent], Any] | None:
    printer = _printer() if printing else None
    if printer is None and progress is None:
        return None

    def on_event(event: AgentEvent) -> Any:
        if printer is not None:
            printer(event)
        message = progress_message(event) if progress is not None else None
        if progress is not None and message is not None:
            return progress(message)  # an awaitable is awaited by the run
        return None

    return on_event


def _settle_compat(arguments: dict[str, Any], stacklevel: int) -> dict[str, Any]:
    """``arguments`` (keyword arguments of :func:`cc_execute`) with the original's
    deprecated or unsupported parameters warned about, at the line ``stacklevel`` frames
    above the caller, and replaced by what they amount to: ``return_json`` becomes
    ``json_mode``; ``amend_prompt`` and ``generate_report`` are dropped. The entry points
    call it before anything runs, so the warnings name the user's line."""
    out = dict(arguments)
    return_json = out.pop("return_json", None)
    if return_json is not None:
        warnings.warn(
            "cc_execute: return_json is deprecated, use json_mode",
            DeprecationWarning,
            stacklevel + 1,
        )
        out["json_mode"] = return_json
    if out.pop("amend_prompt", False):
        warnings.warn(
            "cc_execute: amend_prompt is not supported; the prompt is sent as given",
            UserWarning,
            stacklevel + 1,
        )
    if out.pop("generate_report", False):
        warnings.warn(
            "cc_execute: generate_report is not supported; every run is recorded with its "
            "receipts instead: see cc-executor history (execution_uuid is the run's id)",
            UserWarning,
            stacklevel + 1,
        )
    return out


#: Options of the main run that the validation run must not share: its own session, its
#: own id and folder, and the answer's schema.
_NOT_FOR_VALIDATION = frozenset(
    {
        "session_id",
        "resume",
        "continue_session",
        "fork_session",
        "run_id",
        "run_dir",
        "json_schema",
        "structured_output",
    }
)


#: The JSON object ``json_mode`` asks for (the original's schema), unless a ``json_schema``
#: option gives another one.
JSON_MODE_SCHEMA: Mapping[str, Any] = {
    "type": "object",
    "properties": {
        "result": {"type": "string", "description": "the main output or answer"},
        "files_created": {"type": "array", "items": {"type": "string"}},
        "files_modified": {"type": "array", "items": {"type": "string"}},
        "summary": {"type": "string", "description": "a brief summary of what was done"},
        "execution_uuid": {"type": "string", "description": "the id given below, last"},
    },
    "required": ["result", "summary", "execution_uuid"],
}


def json_mode_prompt(
    task: str, execution_uuid: str, schema: Mapping[str, Any] | None = None
) -> str:
    """``task`` with the instruction ``json_mode`` appends: answer with one JSON object
    matching ``schema`` (default :data:`JSON_MODE_SCHEMA`) whose last key is
    ``execution_uuid``, set to the run's id (the original's check that the answer belongs
    to this run)."""
    shown = json.dumps(dict(schema if schema is not None else JSON_MODE_SCHEMA), indent=2)
    return (
        f"{task}\n\nIMPORTANT: answer with one JSON object matching this JSON Schema:\n"
        f'{shown}\n\nSet "execution_uuid" to "{execution_uuid}" and make it the last key '
        "of the object."
    )


def _seconds(value: Any) -> str:
    """``value`` as the progress messages show seconds (any value: run() checks the type)."""
    return f"{value:g}" if isinstance(value, (int, float)) else repr(value)


async def _tell(progress: ProgressCallback | None, message: str) -> None:
    if progress is not None:
        outcome = progress(message)
        if inspect.isawaitable(outcome):
            await outcome


async def cc_execute(  # noqa: PLR0917 - the original signature, in its order
    task: str,
    config: CCExecutorConfig | None = None,
    stream: bool = True,
    agent_predict_timeout: bool = False,
    json_mode: bool = False,
    return_json: bool | None = None,
    generate_report: bool = False,
    amend_prompt: bool = False,
    validation_prompt: str | None = None,
    progress_callback: ProgressCallback | None = None,
    return_dict: bool | None = None,
    strict_json: bool = False,
    **options: Any,
) -> Any:
    """Run ``task`` in a fresh Claude Code process and return the answer.

    Returns ``str``, or with ``json_mode=True`` a ``dict``. As in the original, json_mode
    appends to the prompt an instruction to answer with one JSON object (``result``,
    ``files_created``, ``files_modified``, ``summary``, then ``execution_uuid``: see
    :func:`json_mode_prompt`; a ``json_schema`` option replaces that schema). The dict is the
    JSON object from the answer plus ``execution_uuid`` (the run's id; a non-object JSON
    value comes as ``{"json": value, ...}``); when the answer holds no JSON it warns and
    returns ``{"result": <the answer>, "error": "json_mode: <why>", "execution_uuid": ...}``.
    ``strict_json=True`` is the stricter mode: the prompt is sent as given and an answer
    without JSON raises :class:`CCExecuteError`. ``return_dict`` (the original's latest
    name): True returns the dict (json_mode is implied), False returns a string (with
    json_mode, the JSON's ``"result"`` if it has one, else the answer). On a
    timeout it returns the text so far (``str``), or ``{"result": <text so far>, "partial":
    True, "timeout_after": <s>, "error": <message>, "execution_uuid": ...}`` merged with
    whatever JSON could be salvaged. When tool calls were denied (status ``denied``: the
    answer may describe work that was not done) it warns and returns the text, or the dict
    with ``"is_error": True``, ``"error"`` and ``"permission_denials"``; pass
    ``accept_denials=True`` when denials are expected. Other failures raise
    :class:`CCExecuteError`.

    The original's parameters: ``stream=False`` turns ``config.stream_output`` off for this
    call; ``agent_predict_timeout=True`` takes the timeout from the history of similar runs
    (1.5x their 95th percentile, as ``cc-executor run --timeout auto``) instead of
    ``config.timeout``; ``return_json`` is the deprecated name of ``json_mode``;
    ``validation_prompt`` (with ``json_mode`` only) runs a second, fresh Claude Code on it,
    ``{response}`` replaced by the answer, and adds its JSON as ``"validation"`` and
    ``"is_valid"`` (True only if that JSON says ``"is_valid": true``);
    ``progress_callback`` (sync or async) receives one-line progress messages (see
    :func:`progress_message`). ``generate_report`` and ``amend_prompt`` are not supported:
    they warn, and the run goes on (every run is recorded in the history instead; the
    prompt is sent as given). ``**options``: any option of :func:`cc_executor.run`.
    """
    if config is not None and not isinstance(config, CCExecutorConfig):
        # Said here: it would otherwise fail deep inside as an AttributeError.
        raise TypeError(
            f"cc_execute: config must be a CCExecutorConfig, got {type(config).__name__} "
            "(run() options go in CCExecutorConfig(options={...}) or as keywords)"
        )
    config = config or CCExecutorConfig()
    if return_json is not None or amend_prompt or generate_report:
        settled = _settle_compat(
            {
                "json_mode": json_mode,
                "return_json": return_json,
                "amend_prompt": amend_prompt,
                "generate_report": generate_report,
            },
            2,
        )
        json_mode = settled["json_mode"]
    if return_dict is not None and not isinstance(return_dict, bool):
        raise TypeError(f"cc_execute: return_dict must be True or False, got {return_dict!r}")
    json_mode = bool(json_mode or strict_json or return_dict)
    if validation_prompt is not None and not json_mode:
        raise ValueError("cc_execute: validation_prompt needs json_mode=True")
    merged = {**config.options, **options}
    prompt = task
    if json_mode and not strict_json:
        from cc_executor._ids import new_run_id

        run_id = merged.setdefault("run_id", new_run_id())
        schema = merged.get("json_schema")
        # A schema of the wrong type is refused by run(), with the option's own message.
        prompt = json_mode_prompt(
            task, str(run_id), schema if isinstance(schema, Mapping) else None
        )
    note = ""
    if agent_predict_timeout and "timeout" not in merged:
        # From the history's similar past runs (as --timeout auto), not by asking a model.
        from cc_executor._run._timeout import predicted_timeout

        merged["timeout"], note = await asyncio.to_thread(
            predicted_timeout,
            kind="run",
            agent=merged.get("agent", RunOptions.by_name["agent"].default),
            key=merged.get("model"),
        )
        note = f" (predicted: {note})"
    merged.setdefault("timeout", config.timeout)
    limit = merged["timeout"]
    await _tell(
        progress_callback,
        "Starting Claude execution "
        + (f"with a timeout of {_seconds(limit)} s{note}..." if limit is not None else "..."),
    )
    started = time.time()
    result = await run(
        prompt, on_event=_on_event(config.stream_output and stream, progress_callback), **merged
    )
    try:
        _save_files(config, task, result, started)
    except (OSError, ValueError, TypeError) as exc:  # the answer is never lost over a side file
        warnings.warn(f"cc_execute: could not save the response or transcript: {exc}", stacklevel=2)
    stopped = result.status in STOPPED
    if stopped:
        # Returned, as the original did, but never taken for a whole answer unawares.
        _warn_caller(
            f"cc_execute: returning a partial answer: the run did not finish ({result.error}); "
            f"run {result.run_id}"
            + (f", resume with session {result.session_id}" if result.session_id else "")
        )
    denied = result.status is RunStatus.DENIED
    if denied:
        # The answer may claim work its refused tool calls never did: said, not raised,
        # as the original returned such answers.
        warnings.warn(f"cc_execute: {result.error}", stacklevel=2)
    if not result.ok and not stopped and not denied:
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
    if denied:
        base.update(
            result=result.result,
            is_error=True,
            error=result.error,
            permission_denials=[dict(d) for d in result.permission_denials],
        )
    extraction, _ = await extract_from_answer_async(result.result, stopped=stopped)
    if not (stopped or denied) and not extraction.found:
        why = f"json_mode: {extraction.error}"
        if strict_json:
            failed = RunResult(**{**_fields(result), "status": RunStatus.ERROR})
            failed.error = why
            raise CCExecuteError(failed)
        # The original's fallback: the answer as text, with the reason, never an exception.
        warnings.warn(f"cc_execute: {why}; the answer is returned under 'result'", stacklevel=2)
        base = {"result": result.result, "error": why, **base}
    data = merge_json_result(base, extraction)
    if validation_prompt is not None and not stopped:
        await _validate(data, validation_prompt, progress_callback, merged)
    if return_dict is False:
        return data.get("result", result.result)
    return data


async def _validate(
    data: dict[str, Any],
    template: str,
    progress: ProgressCallback | None,
    options: Mapping[str, Any],
) -> None:
    """The original's ``validation_prompt``: a second, fresh run on ``template`` with
    ``{response}`` replaced by the answer's JSON (a plain replacement, as the original did:
    other braces stay as they are, and the answer goes in as data, never read as a
    template), with the main run's options but its own session, id and folder and no
    schema. A validation that fails or gives no JSON makes ``is_valid`` False, with the
    reason under ``"validation"``; the main answer is kept either way."""
    prompt = template.replace("{response}", json.dumps(data, ensure_ascii=False))
    kept = {k: v for k, v in options.items() if k not in _NOT_FOR_VALIDATION}
    try:
        # Strict: the template says what JSON it wants, and no JSON is a failed validation.
        validation = await cc_execute(
            prompt, stream=False, strict_json=True, progress_callback=progress, **kept
        )
    except CCExecuteError as exc:
        data["validation"] = {"error": str(exc), "execution_uuid": exc.result.run_id}
        data["is_valid"] = False
        return
    data["validation"] = validation
    # A validation cut off by its timeout has a salvaged, partial verdict: not a pass.
    data["is_valid"] = validation.get("is_valid") is True and not validation.get("partial")


def _save_files(config: CCExecutorConfig, task: str, result: RunResult, started: float) -> None:
    """The original's response file and transcript, when their folders are configured."""
    stamp = time.strftime("%Y%m%d_%H%M%S", time.localtime(started))
    if config.response_dir is not None:
        folder = Path(config.response_dir)
        folder.mkdir(parents=True, exist_ok=True)
        response = {
            "session_id": result.session_id,
            "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(started)),
            "task": task,
            "output": result.result,
            "error": result.error,
            "return_code": result.exit_code,
            "execution_time": result.duration_s,
            "execution_uuid": result.run_id,  # last, as in the original
        }
        path = folder / f"cc_execute_{result.run_id}_{stamp}.json"
        path.write_text(json.dumps(response, indent=2, ensure_ascii=False), encoding="utf-8")
    if config.save_transcript and config.transcript_dir is not None:
        folder = Path(config.transcript_dir)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"claude_{result.run_id}_{stamp}.md"
        path.write_text(
            f"# Claude Execution Transcript\n\n**Run ID**: {result.run_id}\n"
            f"**Session ID**: {result.session_id}\n**Status**: {result.status.value}\n"
            f"**Event log**: {result.event_log}\n\n## Task\n\n{task}\n\n"
            f"## Output\n\n{result.result}\n",
            encoding="utf-8",
        )


def _fields(result: RunResult) -> dict[str, Any]:
    return {name: getattr(result, name) for name in RunResult.__dataclass_fields__}


def cc_execute_sync(task: str, *args: Any, **kwargs: Any) -> Any:
    """:func:`cc_execute` for synchronous code (same parameters)."""
    bound = inspect.signature(cc_execute).bind(task, *args, **kwargs)  # a bad call fails here
    arguments = dict(bound.arguments)
    arguments.update(arguments.pop("options", {}))
    settled = _settle_compat(arguments, 2)
    site = _caller_site(1)

    async def call() -> Any:
        _CALLER.set(site)  # in the run's own task: its warnings name the caller's line
        return await cc_execute(**settled)

    return _run_coroutine_sync(call())


#: How many tasks ``cc_execute_list(sequential=False)`` runs at once by default.
DEFAULT_MAX_PARALLEL = 4


async def cc_execute_list(  # noqa: PLR0917 - the original signature, in its order
    tasks: Sequence[str],
    config: CCExecutorConfig | None = None,
    sequential: bool = True,
    json_mode: bool = False,
    return_json: bool | None = None,
    amend_prompt: bool = False,
    max_parallel: int | None = None,
    **kwargs: Any,
) -> list[Any]:
    """Run ``tasks`` one after another, each in a fresh Claude Code process (a full context
    window each); returns their answers in order. A failing task raises
    :class:`CCExecuteError` and the later tasks do not run. ``sequential=False`` runs them
    side by side instead, at most ``max_parallel`` at once (default 4: every Claude Code
    process takes hundreds of MB), still one process each; once all have ended, the first
    failure is raised, its ``outcomes`` attribute holding every task's answer or exception
    in order. ``max_parallel`` other than 1 with ``sequential=True`` is a ``ValueError``.
    Warnings (a partial answer, denied tools) name the line of this call.
    ``**kwargs``: the other parameters of :func:`cc_execute`."""
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise ValueError(
            f"cc_execute_list: max_parallel must be an integer >= 1, got {max_parallel!r}"
        )
    if sequential and max_parallel not in (None, 1):
        raise ValueError(
            f"cc_execute_list: max_parallel={max_parallel} needs sequential=False "
            "(sequential=True, the default, runs one task at a time)"
        )
    kwargs.update(config=config, json_mode=json_mode, return_json=return_json)
    kwargs["amend_prompt"] = amend_prompt
    settled = _settle_compat(kwargs, 2)
    if sequential:
        return [await cc_execute(task, **settled) for task in tasks]
    site = _caller_site(1)
    slots = asyncio.Semaphore(max_parallel or DEFAULT_MAX_PARALLEL)

    async def one(task: str) -> Any:
        _CALLER.set(site)  # each task runs in a context of its own
        async with slots:
            return await cc_execute(task, **settled)

    outcomes = await asyncio.gather(*(one(task) for task in tasks), return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            outcome.outcomes = outcomes  # type: ignore[attr-defined]
            raise outcome
    return list(outcomes)
