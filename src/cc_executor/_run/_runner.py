"""Running an agent CLI: one prompt in, typed events out, a trustworthy result at the end.

The agent (Claude Code by default) is reached only through its adapter
(:func:`cc_executor._agents.adapter_for`), chosen by the ``agent`` option. A run is one or
more *attempts*. Each attempt is one supervised CLI process (the process engine bounds it
in time and owns its tree); its stdout is parsed line by line into typed events as it
arrives. An attempt that failed with a rate limit, overload or server error is
retried with exponential back-off, but only while no tool has run: after a tool ran, the
side effects are real and the caller decides (``resume=result.session_id``).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import json
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cc_executor._agents import adapter_for
from cc_executor._agents._types import (
    AgentEvent,
    ApiRetryEvent,
    HeartbeatEvent,
    InitEvent,
    Outcome,
    ResultEvent,
    RetryEvent,
    RunStartedEvent,
    RunStatus,
    StatusEvent,
    StderrEvent,
    StreamEvent,
    TextDeltaEvent,
    TextEvent,
    ToolResultEvent,
    ToolUseEvent,
)
from cc_executor._engine import OutputEvent, ProcessResult, SupervisedProcess
from cc_executor._engine import run_sync as run_coroutine_sync
from cc_executor._engine._launch import Launched
from cc_executor._errors import AgentNotFound
from cc_executor._ids import new_run_id
from cc_executor._paths import make_run_dir, runs_dir
from cc_executor._run._control import ControlChannel, open_control
from cc_executor._run._homes import link_home, new_home, own_home, session_home
from cc_executor._run._options import RunOptions
from cc_executor._run._prepare import limits_of, process_env, run_marker, save_prompt
from cc_executor._run._result import STOPPED, RunResult, join_texts
from cc_executor._store import (
    Artifact,
    Recorder,
    RunRecord,
    file_receipt,
    preview,
    process_receipts,
    redact_argv,
    redact_text,
)

if TYPE_CHECKING:
    from cc_executor._agents._base import AgentAdapter, StreamParser
    from cc_executor._run._permissions import Decider, PermissionBroker
    from cc_executor._run._policy import Policy
    from cc_executor._run._repo import Checkpoints
    from cc_executor._run._workspace import Workspace

EventCallback = Callable[[AgentEvent], "Awaitable[Any] | Any"]


@dataclass
class _AttemptState:
    """What one attempt has shown so far.

    During a run no answer text is kept (``keep_text=False``): the final answer comes from
    the result line, and a 20 MB answer must not sit in memory three times over (deltas,
    text block, result). Only when the answer is needed without a result line (timeout,
    cancel, crash) is the event log replayed into a ``keep_text=True`` state.
    """

    cwd: str
    adapter: AgentAdapter
    keep_text: bool = False
    init: InitEvent | None = None
    result: ResultEvent | None = None
    texts: list[str] = field(default_factory=list)
    streaming: dict[tuple[str | None, int], list[str]] = field(default_factory=dict)
    tools: dict[str, ToolUseEvent] = field(default_factory=dict)
    tool_calls: int = 0
    files: list[str] = field(default_factory=list)
    message_ids: set[str] = field(default_factory=set)
    output_tokens: int = 0
    last_activity: str = "starting"
    last_t: float = field(default_factory=time.monotonic)
    #: The CLI's own API retries (``api_retry`` events) and the last one's error.
    api_retries: int = 0
    last_retry: str | None = None

    def apply(self, event: AgentEvent) -> None:
        self.last_t = event.t
        if isinstance(event, TextDeltaEvent):
            if self.keep_text:
                self.streaming.setdefault((event.message_id, event.index), []).append(event.text)
            self.last_activity = "writing"
        elif isinstance(event, TextEvent):
            # The whole block arrived: its deltas are no longer needed.
            for key in [k for k in self.streaming if k[0] == event.message_id]:
                del self.streaming[key]
            if self.keep_text:
                self.texts.append(event.text)
            self._message(event.message_id)
            self.last_activity = "answered"
        elif isinstance(event, ToolUseEvent):
            self.tools[event.id] = event
            self.tool_calls += 1
            self._message(event.message_id)
            self.last_activity = f"tool: {event.name}"
        elif isinstance(event, ToolResultEvent):
            use = self.tools.get(event.tool_use_id)
            if use is not None and not event.is_error:
                self._record_file(use)
            self.last_activity = f"tool result{' (error)' if event.is_error else ''}"
        elif isinstance(event, InitEvent):
            self.init = event
            if event.cwd:
                self.cwd = event.cwd
            self.last_activity = "session started"
        elif isinstance(event, ResultEvent):
            self.result = event
            self.last_activity = "finished"
        elif isinstance(event, ApiRetryEvent):
            self.api_retries += 1
            self.last_retry = event.error
            self.last_activity = "retrying the API"
        elif isinstance(event, StreamEvent):
            if event.abandoned_from is not None:
                # A broken stream was retracted: its text will be streamed again.
                for key in [
                    k
                    for k in self.streaming
                    if k[0] == event.message_id and k[1] >= (event.abandoned_from or 0)
                ]:
                    del self.streaming[key]
            usage = event.event.get("usage")
            if isinstance(usage, Mapping) and isinstance(usage.get("output_tokens"), int):
                self.output_tokens += usage["output_tokens"]

    def _message(self, message_id: str | None) -> None:
        if message_id:
            self.message_ids.add(message_id)

    def _record_file(self, use: ToolUseEvent) -> None:
        path = self.adapter.changed_file(use, self.cwd)
        if path is not None and path not in self.files:
            self.files.append(path)

    def text_so_far(self) -> str:
        """Completed assistant text plus what is still streaming."""
        return join_texts([*self.texts, *("".join(parts) for parts in self.streaming.values())])


#: Seconds one ``git`` call may take for the file-change snapshot before it is given up.
GIT_TIMEOUT_S = 10.0


def _in_git_tree(cwd: str) -> bool:
    """Whether ``cwd`` is inside a git tree, or ``GIT_DIR`` names one: the only places where
    git has something to say."""
    from cc_executor._run._git import in_git_tree

    return bool(os.environ.get("GIT_DIR")) or in_git_tree(cwd)


def git_snapshot(cwd: str) -> tuple[str, dict[str, str]] | str | None:
    """``(top level, {absolute path: porcelain status})`` of the git work tree holding
    ``cwd``: its changed and untracked files. None when ``cwd`` is in no work tree (or git
    is not installed); a string saying why when git failed or took too long there."""
    if not _in_git_tree(cwd):
        return None  # no git process started beside a booting CLI for nothing
    import shutil
    import subprocess

    from cc_executor._run._git import ALWAYS, git_c_args, git_env, git_overrides

    executable = shutil.which("git")
    if executable is None:
        return None  # no git: as outside a repository
    # The repository's configuration must not make our status run its programs (F8.8).
    env = {**os.environ, **git_env(git_overrides(cwd, git=executable), os.environ)}

    def git(*args: str) -> bytes | str | None:
        try:
            done = subprocess.run(
                [executable, *git_c_args(list(ALWAYS)), "-C", cwd, *args],
                capture_output=True,
                stdin=subprocess.DEVNULL,
                env=env,
                timeout=GIT_TIMEOUT_S,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return f"git {args[0]} took over {GIT_TIMEOUT_S:g} s"
        except OSError:
            return None
        return done.stdout if done.returncode == 0 else None

    top = git("rev-parse", "--show-toplevel")
    if not isinstance(top, bytes):
        return top
    root = os.fsdecode(top.strip())
    listing = git("status", "--porcelain=v1", "-z", "--untracked-files=all")
    if not isinstance(listing, bytes):
        return listing or "git status failed"
    entries: dict[str, str] = {}
    records = iter(listing.split(b"\0"))
    for entry in records:
        if len(entry) < 4:
            continue
        code = entry[:2].decode("ascii", "replace")
        entries[os.path.join(root, os.fsdecode(entry[3:]))] = code
        if "R" in code or "C" in code:
            next(records, None)  # the source path of a rename or copy
    return root, entries


def _no_snapshot(cwd: str) -> None:
    """No ``git status`` snapshot (a run in a workspace)."""


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _replay_text(process: ProcessResult, cwd: str, adapter: AgentAdapter) -> str:
    """The assistant text of an attempt, rebuilt from its event log: completed blocks plus
    the deltas of blocks still streaming when it ended (retracted ones dropped)."""
    state = _AttemptState(cwd=cwd, adapter=adapter, keep_text=True)
    parser = adapter.parser()
    if process.warnings and any("cannot write" in w for w in process.warnings):
        lines: Iterable[bytes] = process.stdout.splitlines()
        for line in lines:
            for event in parser.parse(line, 0.0):
                state.apply(event)
        return state.text_so_far()
    if not process.stdout_path:
        return ""
    try:
        with open(process.stdout_path, "rb") as log:
            for event in parser.parse_log(log):
                state.apply(event)
    except OSError:
        return ""
    return state.text_so_far()


@dataclass
class _Attempt:
    number: int
    process: ProcessResult
    state: _AttemptState
    outcome: Outcome


class _Run:
    def __init__(
        self,
        prompt: str | bytes,
        options: RunOptions,
        on_event: EventCallback | None,
        launched: Launched | None = None,
        *,
        on_permission: Decider | None = None,
        decider_name: str = "callback",
        policy: Policy | None = None,
    ):
        if not isinstance(prompt, (str, bytes, bytearray, memoryview)):
            raise TypeError(f"the prompt must be a str or bytes, got {type(prompt).__name__}")
        self.prompt = prompt.encode("utf-8") if isinstance(prompt, str) else bytes(prompt)
        self.adapter = adapter_for(options)
        if not self.prompt.strip():
            raise ValueError(f"the prompt is empty: {self.adapter.title} needs something to do")
        self.options = options
        self.on_event = on_event
        #: The first attempt's CLI when the console already started it (see start_run).
        self.launched = launched
        if launched is not None:
            self.run_id = launched.run_id
            self.cwd = launched.cwd
            self.run_dir = Path(launched.run_dir)
            self.started = launched.t0
        else:
            self.run_id = options.run_id or new_run_id()
            self.cwd = os.path.abspath(os.fspath(options.cwd)) if options.cwd else os.getcwd()
            self.run_dir = Path(options.run_dir) if options.run_dir else runs_dir() / self.run_id
            self.started = time.monotonic()
            if any((self.run_dir / name).exists() for name in ("prompt.txt", "stdout.log")):
                # Reusing it would fail at the spawn and overwrite the earlier run's record.
                given = f"run_id {self.run_id}" if options.run_id else f"run_dir {self.run_dir}"
                raise ValueError(
                    f"{given} is already used by another run ({self.run_dir} holds its files): "
                    "give a new one, or none for a fresh one"
                )
        self.warnings: list[str] = []
        try:
            self.prompt.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.warnings.append(
                f"the prompt is not valid UTF-8 (byte {exc.start}): {self.adapter.title} reads "
                "it with the invalid bytes replaced by U+FFFD"
            )
        self._emit_lock = asyncio.Lock()
        self.process: SupervisedProcess | None = None
        self.stop_requested = False
        #: Why the run was stopped, when the one who stopped it said (a batch's budget):
        #: it leads the cancelled result's error.
        self.stop_reason: str | None = None
        self._stop_event = asyncio.Event()
        self.recorder = Recorder(enabled=options.record)
        self.record = RunRecord(
            id=self.run_id,
            kind="run",
            agent=options.agent,
            cwd=self.cwd,
            prompt_sha256=hashlib.sha256(self.prompt).hexdigest(),
            prompt_preview=preview(self.prompt.decode("utf-8", "replace")),
            started_at=launched.started_at if launched is not None else time.time(),
            model=options.model,
            parent_id=options.parent_id,
            run_dir=str(self.run_dir),
        )
        self._stopping: set[asyncio.Task[Any]] = set()
        #: An exception raised by ``on_event`` for a heartbeat: it stops the run and is
        #: raised to the caller, as one raised for any other event is.
        self._callback_error: Exception | None = None
        #: When the run's time is up or it was stopped (monotonic). After it, ``on_event``
        #: may use at most ``max(grace, 2 s)`` more of its own time: a slow callback
        #: cannot hold the result long past the run's time limit.
        self._deadline: float | None = None
        self._late_spent = 0.0
        self._undelivered = 0
        #: The history's start record, written in a thread (None until the CLI started).
        self._record_start: asyncio.Future[None] | None = None
        self._record_finished = False
        #: The prompt saved in the run folder, the CLI's stdin (None: it is piped).
        self._prompt_file: Path | None = None
        #: Every attempt's process, in order (the history receipts all their logs).
        self._processes: list[ProcessResult] = []
        #: The cost each attempt reported (an attempt that reported none adds nothing).
        self._costs: list[float] = []
        # Whether a cost in _costs was estimated from token counts (the agent reported none).
        self._estimated = False
        #: The agent home of the run's session (None: the caller's; see ``_homes``).
        self.home: str | None = None
        #: The run's own worktree or copy (``workspace`` option), once made.
        self.workspace: Workspace | None = None
        #: A repo run's pushes while it runs (with repo_branch), and the earlier attempt's
        #: pushed work it goes on from (with repo_continue): (tip, base).
        self.checkpoints: Checkpoints | None = None
        self._continue_from: tuple[str, str] | None = None
        #: Who decides a permission policy's ``ask`` (None: such calls are denied).
        self.on_permission = on_permission
        self.decider_name = decider_name
        #: A permission policy given as data (a fleet run's, from its message), in place of
        #: ``permission_policy``'s file.
        self.policy = policy
        self._broker: PermissionBroker | None = None
        #: The run folder's control socket, while the run lasts (see ``_control``).
        self._control: ControlChannel | None = None

    def _cancel_elsewhere(self) -> bool:
        if self.stop_requested:
            return False
        self.request_stop("cancelled by another process (cc-executor cancel)")
        return True

    def _pause(self) -> bool:
        return self.process is not None and self.process.pause()

    def _resume(self) -> bool:
        return self.process is not None and self.process.resume()

    def request_stop(self, reason: str | None = None) -> None:
        """Stop the run as soon as possible; it then ends ``cancelled`` with its partial
        result, and no further attempt starts. ``reason`` (the first one given) leads the
        result's error."""
        if reason is not None and self.stop_reason is None:
            self.stop_reason = reason
        self.stop_requested = True
        self._stop_event.set()  # ends a retry's back-off at once
        self._set_deadline(time.monotonic())
        if self.process is not None and self.process.running:
            task = asyncio.ensure_future(self.process.cancel())
            self._stopping.add(task)
            task.add_done_callback(self._stopping.discard)

    async def emit(self, event: AgentEvent) -> None:
        if self.on_event is None:
            return
        async with self._emit_lock:
            outcome = self.on_event(event)
            if inspect.isawaitable(outcome):
                await outcome

    def _ensure_run_dir(self) -> None:
        """Create the run folder; the default one falls back to a temporary folder, with a
        warning (see :func:`~cc_executor._paths.make_run_dir`). A failure is left to the
        attempt, which reports it (spawn_failed)."""
        if self.launched is not None:
            return  # the launch made it
        try:
            made, warning = make_run_dir(
                str(self.run_dir), self.run_id, explicit=self.options.run_dir is not None
            )
        except OSError:
            return
        if warning:
            self.warnings.append(warning)
            self.run_dir = Path(made)
            self.record.run_dir = made

    def _prepare_run_dir(self) -> None:
        self._ensure_run_dir()
        self._save_prompt()

    def _save_prompt(self) -> None:
        """Save the prompt in the run folder: it is the CLI's stdin, a file the CLI can read
        at once (Claude Code gives up on a stdin that stays empty for 3 s, which a pipe
        written from a busy event loop was)."""
        if self.launched is not None:
            return  # saved before the launch: it is the CLI's stdin
        try:
            self._prompt_file = Path(save_prompt(str(self.run_dir), self.prompt))
        except OSError as exc:
            # Keeping the prompt is bookkeeping; it is never the reason a run fails.
            self.warnings.append(f"could not save the prompt in {self.run_dir}: {exc.strerror}")

    def _remaining(self) -> float | None:
        if self.options.timeout is None:
            return None
        return self.options.timeout - (time.monotonic() - self.started)

    async def run(self) -> RunResult:
        try:
            return await self._run()
        except (Exception, asyncio.CancelledError) as exc:
            await self._record_abort(exc)
            raise
        finally:
            if self.launched is not None:
                self.launched.abandon()  # a no-op once adopted
            if self._broker is not None:
                await self._broker.close()
            if self._control is not None:
                await self._control.aclose()

    async def _permission_flags(self) -> list[str]:
        """Start the run's permission channel and return the CLI flags that use it: the
        permission server as an MCP server, its tool as the permission prompt, and the
        policy's deny rules the CLI can enforce itself."""
        from cc_executor._run._permissions import TOOL_NAME, PermissionBroker, mcp_config
        from cc_executor._run._policy import load_policy

        opts = self.options
        if self.policy is not None:
            given = self.policy
        else:
            assert opts.permission_policy is not None
            path = os.path.join(self.cwd, os.fspath(opts.permission_policy))
            given = await asyncio.to_thread(load_policy, path)
        policy = given.with_tool_lists(list(opts.allowed_tools), list(opts.disallowed_tools))

        def hold() -> None:
            if self.process is not None:
                self.process.hold_quiet_clocks()

        def release() -> None:
            if self.process is not None:
                self.process.release_quiet_clocks()

        def record(entry: dict[str, Any]) -> None:
            self.recorder.permission(self.run_id, entry)

        self._broker = PermissionBroker(
            policy=policy,
            run_id=self.run_id,
            cwd=self.cwd,
            run_dir=str(self.run_dir),
            decider=self.on_permission,
            decider_name=self.decider_name,
            emit=self.emit,
            record=record,
            hold=hold,
            release=release,
        )
        await self._broker.start()
        flags = [
            f"--mcp-config={json.dumps(mcp_config(self._broker.path))}",
            f"--permission-prompt-tool={TOOL_NAME}",
        ]
        flags += [f"--disallowedTools={rule}" for rule in policy.cli_denials()]
        return flags

    async def _record_abort(self, exc: BaseException) -> None:
        """Close the history record of a run that ends by an exception (a callback raised,
        the awaiting task was cancelled, ...): without it the record would say
        ``running`` for as long as this process lives (a process that dies is found by
        the history's recovery). Shielded: a second cancellation does not stop it."""
        if self._record_start is None or self._record_finished:
            return
        self._record_finished = True
        record = self.record
        record.ended_at = time.time()
        record.duration_s = time.monotonic() - self.started
        cancelled = isinstance(exc, asyncio.CancelledError)
        record.status = (RunStatus.CANCELLED if cancelled else RunStatus.ERROR).value
        record.error = redact_text(
            "cancelled: the task running it was cancelled"
            if cancelled
            else f"the run ended by an exception: {type(exc).__name__}: {exc}"
        )[:2000]
        # The workspace's changes are committed whatever ended the run.
        await self._finish_workspace(record.status)
        # Its files exist (the CLI's tree is stopped by now): they get receipts too.
        last = self.process.result if self.process is not None else None
        record.artifacts = self._receipts(last)
        started = self._record_start

        async def finish() -> None:
            with contextlib.suppress(Exception):
                await started  # the start record first, or the end would update nothing
            await asyncio.to_thread(self._finish_record, record)

        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.shield(asyncio.ensure_future(finish()))

    async def _run(self) -> RunResult:
        opts = self.options
        try:
            executable = self.adapter.locate(opts.agent_path, {**os.environ, **opts.env})
        except AgentNotFound as exc:
            return await self._recorded(
                RunResult(
                    run_id=self.run_id,
                    status=RunStatus.SPAWN_FAILED,
                    error=str(exc),
                    duration_s=time.monotonic() - self.started,
                    warnings=self.warnings,
                )
            )
        if opts.resume and own_home(self.adapter, opts):
            try:  # the session's files are in the home of the run that made it
                self.home = await asyncio.to_thread(session_home, self.adapter, opts.resume)
            except ValueError as exc:
                return await self._recorded(
                    RunResult(
                        run_id=self.run_id,
                        status=RunStatus.SPAWN_FAILED,
                        error=str(exc),
                        duration_s=time.monotonic() - self.started,
                        warnings=self.warnings,
                    )
                )
        # In a thread: a large prompt takes a while to write, and other runs share the loop.
        await asyncio.to_thread(self._prepare_run_dir)
        if opts.repo is not None:
            failed = await self._make_clone()
            if failed is not None:
                return await self._recorded(failed)
        if opts.workspace is not None:
            failed = await self._make_workspace()
            if failed is not None:
                return await self._recorded(failed)
        if opts.record:
            # Found through the history by `cc-executor cancel|pause|unpause RUN_ID`.
            self._control = await open_control(
                str(self.run_dir),
                {
                    "cancel": self._cancel_elsewhere,
                    "pause": self._pause,
                    "resume": self._resume,
                },
            )
        if self.home is not None:
            link_home(str(self.run_dir), self.home)
        elif own_home(self.adapter, opts):
            self.home = new_home(str(self.run_dir))
        argv = self.adapter.command(executable, opts)
        if opts.permission_policy is not None or self.policy is not None:
            try:
                argv += await self._permission_flags()
            except (OSError, ValueError) as exc:
                return await self._recorded(
                    RunResult(
                        run_id=self.run_id,
                        status=RunStatus.SPAWN_FAILED,
                        error=f"permission_policy: {exc}",
                        duration_s=time.monotonic() - self.started,
                        warnings=self.warnings,
                    )
                )
        self.record.argv = redact_argv(argv)
        if self.launched is not None and self.launched.argv != argv:
            # Cannot happen (both come from the adapter on the same options); if it
            # did, the launched CLI is not the one asked for: stop it, start the right one.
            self.launched.abandon()
            self.launched = None
            self.warnings.append("the early-started CLI did not match the options; restarted")
            with contextlib.suppress(OSError):
                os.unlink(self.run_dir / "stdout.log")
            self._save_prompt()
        # Taken beside the first attempt, not before it: the CLI's start is not delayed,
        # and it boots for far longer than git takes before it can change a file.
        # In a workspace, its commit says what changed (see _with_workspace).
        snapshot = git_snapshot if self.workspace is None else _no_snapshot
        before = asyncio.ensure_future(asyncio.to_thread(snapshot, self.cwd))
        try:
            first = await self._attempt(1, argv)
        except BaseException:
            before.cancel()
            raise
        if not self._should_retry(first) or opts.retries == 0:
            return await self._recorded(
                await self._with_git_files(await self._result(first), before)
            )
        from cc_executor._run._retry import retried  # only now: tenacity costs 5 ms

        numbers = iter(range(2, opts.retries + 2))
        waiting_after = first

        async def announce(failed: _Attempt, delay: float) -> None:
            nonlocal waiting_after
            waiting_after = failed
            await self.emit(
                RetryEvent(
                    t=time.monotonic(),
                    attempt=failed.number + 1,
                    delay_s=delay,
                    reason=failed.outcome.error or failed.outcome.status.value,
                )
            )

        final = await retried(
            first,
            lambda: self._attempt(next(numbers), argv),
            should_retry=self._should_retry,
            attempts=opts.retries + 1,
            initial_delay=opts.retry_initial_delay,
            max_delay=opts.retry_max_delay,
            remaining=self._remaining,
            before_sleep=announce,
            note=self.warnings.append,
            sleep=lambda delay: self._back_off(delay, waiting_after),
            stopped=lambda: self.stop_requested,
        )
        result = await self._result(final)
        if self.stop_requested and result.status not in STOPPED:
            # Stopped between two attempts: cancelled, and the failure that was being
            # retried stays in the error (and api_error_status).
            result.status = RunStatus.CANCELLED
            result.partial = True
            result.result = _replay_text(final.process, self.cwd, self.adapter)
            result.error = (
                f"cancelled while waiting to retry (after attempt {final.number}, which "
                f"failed: {result.error})"
            )
        return await self._recorded(await self._with_git_files(result, before))

    async def _make_clone(self) -> RunResult | None:
        """Clone ``repo`` at ``ref`` into the run folder and move the run into it; a
        ``spawn_failed`` result saying why when it cannot be cloned."""
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._repo import CLONE_NAME, clone_repo

        opts = self.options
        assert opts.repo is not None
        clone = str(self.run_dir / CLONE_NAME)
        try:
            await asyncio.to_thread(clone_repo, opts.repo, opts.ref, clone)
        except (WorkspaceError, OSError, ValueError) as exc:
            return RunResult(
                run_id=self.run_id,
                status=RunStatus.SPAWN_FAILED,
                error=f"repo {opts.repo}: {exc}",
                duration_s=time.monotonic() - self.started,
                run_dir=str(self.run_dir),
                warnings=self.warnings,
            )
        self.cwd = clone
        self.record.cwd = clone
        if opts.repo_continue and opts.repo_branch is not None:
            from cc_executor._run._repo import fetch_continuation

            try:
                found = await asyncio.to_thread(fetch_continuation, clone, opts.repo_branch)
            except (WorkspaceError, OSError) as exc:
                found, why = None, f"its branch {opts.repo_branch} could not be read: {exc}"
            else:
                why = f"{opts.repo} has no branch {opts.repo_branch}"
            if found is None:
                self.warnings.append(f"nothing to go on from ({why}): the run starts from its ref")
            self._continue_from = found
        return None

    async def _make_workspace(self) -> RunResult | None:
        """Make the run's workspace and move the run into it; a ``spawn_failed`` result
        saying why when it cannot be made."""
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._workspace import create_workspace

        opts = self.options
        assert opts.workspace is not None
        tip, base = self._continue_from or (None, opts.workspace_base)
        try:
            ws = await asyncio.to_thread(
                create_workspace,
                opts.workspace,
                self.cwd,
                self.run_id,
                str(self.run_dir),
                base=base,
                carry=opts.carry_changes,
                branch=opts.repo_branch,
                continue_from=tip,
            )
        except (WorkspaceError, OSError) as exc:
            return RunResult(
                run_id=self.run_id,
                status=RunStatus.SPAWN_FAILED,
                error=f"workspace {opts.workspace}: {exc}",
                duration_s=time.monotonic() - self.started,
                run_dir=str(self.run_dir),
                warnings=self.warnings,
            )
        self.workspace = ws
        self.cwd = ws.cwd
        self.record.cwd = ws.cwd
        if opts.repo is not None and opts.repo_branch is not None:
            from cc_executor._run._repo import Checkpoints

            async def pushed(commit: str) -> None:
                status = f"checkpoint_pushed: {commit} ({ws.branch})"
                await self.emit(StatusEvent(t=time.monotonic(), status=status))

            self.checkpoints = Checkpoints(ws, opts.repo, pushed)
        return None

    async def _finish_workspace(self, status: str) -> str | None:
        """Commit the workspace's changes (once, whatever the status); a warning saying why
        when they could not be."""
        ws = self.workspace
        if ws is None or ws.receipt is not None:
            return None
        if self.checkpoints is not None:
            await self.checkpoints.stop()
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._workspace import finish_workspace

        try:
            task = asyncio.ensure_future(asyncio.to_thread(finish_workspace, ws, status))
            await asyncio.shield(task)  # a cancel of the caller does not lose the commit
        except (WorkspaceError, OSError) as exc:
            return f"the workspace's changes could not be committed on {ws.branch}: {exc}"
        if self.options.repo is not None:
            return await self._push_workspace(ws, self.options.repo)
        return None

    async def _push_workspace(self, ws: Workspace, url: str) -> str | None:
        """Push the workspace's branch to the repo it was cloned from (whatever the run's
        status: its work comes back); the receipt says whether it was, a warning why not."""
        from cc_executor._errors import WorkspaceError
        from cc_executor._run._repo import push_branch, push_receipt
        from cc_executor._run._workspace import RECEIPT_NAME, write_receipt

        problem = None
        try:
            await asyncio.shield(
                asyncio.ensure_future(asyncio.to_thread(push_branch, ws.repo, url, ws.branch))
            )
        except (WorkspaceError, OSError) as exc:
            problem = str(exc)
        assert ws.receipt is not None
        ws.receipt = push_receipt(ws.receipt, url, problem)
        await asyncio.to_thread(
            write_receipt, str(self.run_dir / RECEIPT_NAME), ws.run_id, ws.receipt
        )
        if problem is not None:
            return f"the workspace's branch {ws.branch} could not be pushed to {url}: {problem}"
        return None

    async def _with_git_files(
        self,
        result: RunResult,
        before: asyncio.Future[tuple[str, dict[str, str]] | str | None],
    ) -> RunResult:
        """Add to ``result.files`` what ``git status`` shows changed during the run (a Bash
        command's files, which no tool event names), when the cwd is in a git work tree. A
        file that was already changed before the run and changed again is not seen."""
        start = await before
        end = await asyncio.to_thread(git_snapshot, self.cwd) if isinstance(start, tuple) else None
        problem = next((s for s in (start, end) if isinstance(s, str)), None)
        if problem is not None:
            result.warnings.append(f"files changed outside tool calls not listed: {problem}")
            return result
        if not isinstance(start, tuple) or not isinstance(end, tuple):
            return result
        for path, code in end[1].items():
            if start[1].get(path) != code and path not in result.files:
                result.files.append(path)
        for path in start[1].keys() - end[1].keys():
            if path not in result.files:  # reverted or deleted during the run
                result.files.append(path)
        return result

    async def _back_off(self, delay: float, failed: _Attempt) -> None:
        """Wait ``delay`` s before the next attempt; at once when a stop is requested.
        Heartbeats go on meanwhile (a back-off can last a minute)."""
        end = time.monotonic() + delay
        interval = self.options.heartbeat_s
        while not self.stop_requested:
            left = end - time.monotonic()
            if left <= 0:
                return
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(
                    self._stop_event.wait(), min(left, interval) if interval > 0 else left
                )
            left = end - time.monotonic()
            if interval > 0 and not self.stop_requested and left > 0:
                await self._heartbeat(
                    failed.state, f"waiting {left:.0f} s to retry (attempt {failed.number} failed)"
                )

    async def _recorded(self, result: RunResult) -> RunResult:
        """Record the end of the run in the history (best effort) and return ``result``."""
        if self._undelivered:
            result.warnings.append(
                f"{self._undelivered} event(s) were not passed to on_event: once the run was "
                "stopped or its time was up, the callback had used the time it is given "
                "(max(grace, 2 s)); the event log has them"
            )
        if self.stop_reason is not None and result.status is RunStatus.CANCELLED:
            result.error = self.stop_reason + (f" ({result.error})" if result.error else "")
        if self.workspace is not None:
            problem = await self._finish_workspace(result.status.value)
            if problem is not None:
                result.warnings.append(problem)
            receipt = self.workspace.receipt
            if receipt is not None:
                result.warnings.extend(self.workspace.warnings())
                result.workspace = receipt
                top = self.workspace.path
                for change in receipt["changes"]:
                    path = os.path.join(top, change["path"])
                    if path not in result.files:
                        result.files.append(path)
        record = self.record
        record.ended_at = time.time()
        record.status = result.status.value
        record.exit_code = result.exit_code
        record.signal = result.process.signal if result.process else None
        record.session_id = result.session_id
        record.cost_usd = result.cost_usd
        record.cost_estimated = result.cost_estimated
        record.peak_memory_bytes = result.peak_memory_bytes
        record.cpu_time_s = result.cpu_time_s
        record.input_tokens = _int_or_none(result.usage.get("input_tokens"))
        record.output_tokens = _int_or_none(result.usage.get("output_tokens"))
        record.turns = result.num_turns
        record.duration_s = result.duration_s
        record.result_preview = preview(result.result)
        record.error = redact_text(result.error) if result.error else None
        record.model = result.model or record.model
        record.warnings = [redact_text(w) for w in dict.fromkeys(result.warnings)]
        record.artifacts = self._receipts(result.process)
        self._record_finished = True
        await asyncio.shield(asyncio.ensure_future(asyncio.to_thread(self._finish_record, record)))
        result.warnings.extend(self.recorder.warnings)
        return result

    def _receipts(self, last: ProcessResult | None) -> list[Artifact]:
        """Receipts of the run's files: the prompt, the last attempt's logs, and those of
        the attempts before it (retried ones)."""
        artifacts = [file_receipt("prompt", self.run_dir / "prompt.txt")]
        if last is not None:
            artifacts += process_receipts(last, stdout_name="events")
        for number, earlier in enumerate(self._processes, 1):
            if earlier is not last:
                artifacts += [
                    Artifact(
                        name=f"attempt-{number} {a.name}", path=a.path, size=a.size, sha256=a.sha256
                    )
                    for a in process_receipts(earlier, stdout_name="events")
                ]
        receipt = self.workspace.receipt if self.workspace is not None else None
        if receipt is not None:
            from cc_executor._run._workspace import RECEIPT_NAME

            artifacts.append(file_receipt("workspace patch", receipt["patch_path"]))
            artifacts.append(file_receipt("workspace", self.run_dir / RECEIPT_NAME))
        return [a for a in artifacts if a is not None]

    def _finish_record(self, record: RunRecord) -> None:
        self.recorder.finish(record)
        self.recorder.close()

    def _over_budget(self) -> bool:
        """Whether estimated costs reached ``max_budget_usd`` (an agent that reports its cost
        stops itself at it)."""
        cap = self.options.max_budget_usd
        return self._estimated and cap is not None and sum(self._costs) >= cap

    def _should_retry(self, attempt: _Attempt) -> bool:
        if self.stop_requested or not attempt.outcome.retryable:
            return False
        if self._over_budget():
            self.warnings.append(
                f"not retried: the estimated cost ${sum(self._costs):.4f} reached "
                f"max_budget_usd ${self.options.max_budget_usd:g}"
            )
            return False
        if attempt.state.tool_calls:
            self.warnings.append("not retried: a tool already ran; resume the session to continue")
            return False
        return True

    async def _attempt(self, number: int, argv: list[str]) -> _Attempt:
        opts = self.options
        state = _AttemptState(cwd=self.cwd, adapter=self.adapter)
        parser = self.adapter.parser()
        # Longer lines are read back from the event log instead of being assembled in
        # memory by the framer (a 20 MB answer arrives as two ~20 MB lines).
        max_line_memory = self.adapter.max_line_memory
        run_dir = self.run_dir if number == 1 else self.run_dir / f"attempt-{number}"
        launched = self.launched if number == 1 else None
        # An adopted CLI's clock started at its launch, as the run's did: the whole timeout.
        remaining = opts.timeout if launched is not None else self._remaining()
        proc = SupervisedProcess(
            argv,
            # The saved prompt when there is one (see _save_prompt); else the bytes, piped.
            stdin=None if launched is not None else (self._prompt_file or self.prompt),
            cwd=self.cwd,
            # One home for every attempt: a later resume finds the session of any of them.
            extra_env=process_env(opts, home=self.home),
            timeout=max(remaining, 0.001) if remaining is not None else None,
            idle_timeout=opts.idle_timeout,
            first_output_timeout=opts.first_output_timeout,
            grace=opts.grace,
            run_id=self.run_id if number == 1 else f"{self.run_id}-{number}",
            run_dir=run_dir,
            max_line_memory=max_line_memory,
            # A CLI that only says it is reconnecting is waiting, not working.
            quiet_line=self.adapter.quiet_line,
            # The event log on disk is the record; memory only buffers what is in flight.
            memory_budget=max_line_memory,
            queue_budget=4 * max_line_memory,
            # Like ``claude -p > file``: the CLI writes its event log itself and never
            # waits on a pipe (measured: a pipe costs it 4% on a 20 MB answer).
            stdout_to_file=True,
            launched=launched,
            # A cgroup of the run's own when a limit needs one (see _engine/_cgroup).
            limits=limits_of(opts),
            # The first attempt's start may be lost to a SIGKILL before it is recorded.
            marker=run_marker(opts) if number == 1 and opts.record else None,
        )
        await proc.start()
        self.process = proc
        if self._broker is not None and proc.pid is not None:
            self._broker.cli_started()
        if remaining is not None:
            self._set_deadline(time.monotonic() + max(remaining, 0))
        if self.stop_requested:
            self.request_stop()
        if proc.pid is not None:
            self.record.pid = proc.pid
            self.record.pid_started = proc.start_ticks
            self.record.tree_token = proc.tree_token
            self._record_start = asyncio.ensure_future(
                asyncio.to_thread(self.recorder.start, self.record)
            )
            await asyncio.shield(self._record_start)
        heartbeat: asyncio.Task[None] | None = None
        try:
            # Spawned, not "still running": a fast CLI may have finished while the start
            # was being recorded; its output is queued and must still be read.
            if proc.pid is not None:
                await self.emit(
                    RunStartedEvent(
                        t=time.monotonic(),
                        run_id=self.run_id,
                        attempt=number,
                        pid=proc.pid,
                        argv=tuple(argv),
                    )
                )
                if opts.heartbeat_s > 0:
                    heartbeat = asyncio.ensure_future(self._heartbeats(state))
                async for item in proc.events(lifecycle=False):
                    assert isinstance(item, OutputEvent)
                    await self._consume(item, parser, state)
            process = await proc.wait()
            self._processes.append(process)
        finally:
            try:
                if heartbeat is not None:
                    heartbeat.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await heartbeat
            finally:
                await proc.aclose()
        if self._callback_error is not None:
            raise self._callback_error
        if state.result is not None and state.result.cost_usd is not None:
            self._costs.append(state.result.cost_usd)
        elif state.result is not None:
            from cc_executor._agents._prices import estimate_cost

            model = (state.init.model if state.init else None) or opts.model
            estimate = estimate_cost(state.result.usage, model)
            if estimate is not None:
                self._costs.append(estimate)
                self._estimated = True
        return _Attempt(number, process, state, self.adapter.outcome(process, state.result))

    async def _consume(self, item: OutputEvent, parser: StreamParser, state: _AttemptState) -> None:
        if item.stream == "stderr":
            text = item.text.rstrip()
            if text:
                await self._deliver(StderrEvent(t=item.t, text=text))
            return
        for event in parser.parse_output(item):
            state.apply(event)
            if self.checkpoints is not None and isinstance(event, ToolResultEvent):
                self.checkpoints.poke()
            await self._deliver(event)

    def _set_deadline(self, at: float) -> None:
        if self._deadline is None or at < self._deadline:
            self._deadline = at

    async def _deliver(self, event: AgentEvent) -> None:
        """:meth:`emit` for the CLI's output. Once the run's time is up or it was stopped,
        the callback gets at most ``max(grace, 2 s)`` more of its own time (an async one
        still running then is cancelled); the events after that are only counted, and a
        warning on the result says how many. A fast callback loses nothing."""
        if self.on_event is None:
            return
        if self._deadline is None or time.monotonic() <= self._deadline:
            await self.emit(event)
            return
        left = max(self.options.grace, 2.0) - self._late_spent
        if left <= 0:
            self._undelivered += 1
            return
        began = time.monotonic()
        try:
            await asyncio.wait_for(self.emit(event), left)
        except asyncio.TimeoutError:
            self._undelivered += 1
        finally:
            self._late_spent += time.monotonic() - began

    async def _heartbeats(self, state: _AttemptState) -> None:
        interval = self.options.heartbeat_s
        try:
            while True:
                await asyncio.sleep(interval)
                await self._heartbeat(state, state.last_activity)
        except Exception as exc:  # the caller's callback: raised once the run has stopped
            self._callback_error = exc
            self.request_stop()

    async def _heartbeat(self, state: _AttemptState, activity: str) -> None:
        now = time.monotonic()
        await self.emit(
            HeartbeatEvent(
                t=now,
                elapsed_s=now - self.started,
                idle_s=now - state.last_t,
                turns=len(state.message_ids),
                tool_calls=state.tool_calls,
                output_tokens=state.output_tokens,
                last_activity=activity,
            )
        )

    async def _result(self, attempt: _Attempt) -> RunResult:
        opts = self.options
        state, process, outcome = attempt.state, attempt.process, attempt.outcome
        final = state.result
        status = outcome.status
        partial = status in STOPPED or (status is RunStatus.CRASHED and final is None)
        # A resource limit that stopped the tree after the final line keeps that answer.
        limit = status in (RunStatus.OOM_KILLED, RunStatus.LIMIT_EXCEEDED)
        if final is not None and final.result is not None and (not partial or limit):
            text = final.result
        else:
            text = _replay_text(process, self.cwd, self.adapter)
        denials = list(final.permission_denials) if final is not None else []
        error = outcome.error
        if (
            error is not None
            and process.timed_out == "total"
            and opts.timeout is not None
            and process.timeout_after is not None
        ):
            # The attempt was given what was left of the run's time (a retry, or a start
            # that took a moment): the message names the run's limit, as timeout_after does.
            error = error.replace(f"{process.timeout_after:g} s", f"{opts.timeout:g} s", 1)
        result = RunResult(
            run_id=self.run_id,
            status=status,
            result=text,
            partial=partial,
            timeout_after=(opts.timeout if process.timed_out == "total" else process.timeout_after),
            session_id=(final.session_id if final else None)
            or (state.init.session_id if state.init else None),
            cost_usd=sum(self._costs) if self._costs else None,
            cost_estimated=self._estimated,
            usage=dict(final.usage) if final else {},
            num_turns=final.num_turns if final else len(state.message_ids) or None,
            duration_s=time.monotonic() - self.started,
            exit_code=process.exit_code,
            error=error,
            api_error_status=outcome.api_error_status
            or (final.api_error_status if final else None),
            files=list(state.files),
            permission_denials=denials,
            tool_calls=state.tool_calls,
            model=state.init.model if state.init else None,
            attempts=attempt.number,
            event_log=process.stdout_path,
            run_dir=str(self.run_dir),
            stderr_tail=process.stderr_tail,
            warnings=[*self.warnings, *process.warnings, *(final.warnings if final else ())],
            peak_memory_bytes=process.peak_memory_bytes,
            cpu_time_s=process.cpu_time_s,
            process=process,
        )
        if self._over_budget():
            result.warnings.append(
                f"the estimated cost ${sum(self._costs):.4f} passed max_budget_usd "
                f"${opts.max_budget_usd:g}: {self.adapter.title} reports its token counts only "
                "when an attempt ends, so it could not be stopped at the cap"
            )
        if state.api_retries and status in (RunStatus.TIMEOUT, RunStatus.IDLE_TIMEOUT):
            # Said at once: the reason it "did nothing" was the API, not the agent.
            result.warnings.append(
                f"{self.adapter.title} was still retrying the model API when it was stopped "
                f"({state.api_retries} retry notice(s); the last: {state.last_retry})"
            )
        for earlier in (*self._processes, process):
            for path in earlier.incomplete_files:
                if path not in result.incomplete_files:
                    result.incomplete_files.append(path)
        # Output that could not be kept whole: the result says so whatever the status, and
        # the status too when it would otherwise be ok.
        result.partial = result.partial or bool(result.incomplete_files)
        if result.incomplete_files and result.status is RunStatus.OK:
            result.status = RunStatus.LIMIT_EXCEEDED
            result.error = result.error or (
                f"the output could not be kept whole ({', '.join(result.incomplete_files)}): "
                "see the warnings"
            )
        if denials:
            tools = sorted({str(d.get("tool_name", "?")) for d in denials})
            names = ", ".join(tools)
            result.warnings.append(f"permission denied for: {names}")
            if status is RunStatus.OK and not opts.accept_denials:
                # The agent answered as if it had done the work its refused calls were for.
                result.status = RunStatus.DENIED
                # An agent whose tools are not granted one by one says how (Gemini CLI).
                hint = next((str(d["hint"]) for d in denials if d.get("hint")), None)
                grant = hint or (
                    f"grant them with allowed_tools (--allowed-tools {','.join(tools)})"
                )
                result.error = (
                    f"{len(denials)} tool call(s) were denied ({names}), so the work they were "
                    f"for was not done: {grant}, or pass accept_denials (--accept-denials) "
                    "when denials are expected"
                )
        if status is RunStatus.OK and process.exit_code not in (0, None):
            result.warnings.append(
                f"{self.adapter.title} exited with code {process.exit_code} despite a clean result"
            )
        if opts.json_mode or opts.json_schema is not None:
            await self._apply_json(result, final)
        return result

    async def _apply_json(self, result: RunResult, final: ResultEvent | None) -> None:
        opts = self.options
        if final is not None and final.structured_output is not None:
            result.json = final.structured_output
            return
        from cc_executor._run._jsonmode import extract_from_answer_async

        # In a thread: a huge answer takes seconds, and other runs share this event loop.
        extraction, warning = await extract_from_answer_async(
            result.result, schema=opts.json_schema, stopped=result.partial
        )
        if warning:
            result.warnings.append(warning)
        result.json = extraction.value if extraction.found else None
        result.json_error = extraction.error
        if result.status is RunStatus.OK and extraction.error:
            # The caller asked for JSON: an answer without (valid) JSON is not a success.
            result.status = RunStatus.ERROR
            result.error = f"json_mode: {extraction.error}"


class RunHandle:
    """A run in progress, for callers that need to control it (the servers, the CLI).

    Create with :func:`start_run`. ``cancel()`` ends the run with status ``cancelled`` and
    its partial result (unlike cancelling the task, which raises); ``pause()``/``resume()``
    stop and continue the CLI's whole process tree.
    """

    #: Set by :meth:`cancel`: this handle's holder stopped the run (the console's
    #: Ctrl-C), not someone else (``cc-executor cancel``, the service): the exit code differs.
    cancelled_by_caller = False

    def __init__(self, run: _Run, task: asyncio.Task[RunResult]) -> None:
        self._run = run
        self._task = task

    @property
    def run_id(self) -> str:
        """The run's id (also the name of its folder)."""
        return self._run.run_id

    @property
    def done(self) -> bool:
        """True once the result is ready."""
        return self._task.done()

    def cancel(self) -> None:
        """Ask the run to stop; ``await wait()`` then returns the ``cancelled`` result."""
        self.cancelled_by_caller = True
        self._run.request_stop()

    def pause(self) -> bool:
        """SIGSTOP the CLI's process tree; False if nothing is running or already paused."""
        proc = self._run.process
        return proc is not None and proc.pause()

    def resume(self) -> bool:
        """SIGCONT the CLI's process tree; False if it was not paused."""
        proc = self._run.process
        return proc is not None and proc.resume()

    async def wait(self) -> RunResult:
        """The result, once the run is over."""
        return await asyncio.shield(self._task)


def _check_decider(on_permission: Decider | None, options: dict[str, Any]) -> None:
    """``ValueError`` for an ``on_permission`` of the caller's own with no policy to ask it:
    it would never be called, and the calls it was meant to decide silently denied."""
    if on_permission is not None and not options.get("permission_policy"):
        raise ValueError(
            "on_permission decides what a permission_policy's ask rules ask, and no "
            "permission_policy is given: pass permission_policy=FILE (a file with "
            "'default: ask' asks about every tool call; docs/permissions.md), or leave "
            "on_permission out"
        )


def start_run(
    prompt: str | bytes,
    *,
    on_event: EventCallback | None = None,
    on_permission: Decider | None = None,
    launched: Launched | None = None,
    fleet: str | None = None,
    queue: str | None = None,
    _decider_name: str = "callback",
    _policy: Policy | None = None,
    **options: Any,
) -> RunHandle:
    """Start a run in the background of the running event loop and return its handle.
    Options as for :func:`run`; invalid ones raise here, before anything starts.

    ``fleet``: queue the run on the fleet at this URL (``redis://``, ``rediss://``,
    ``unix:///path``; docs/fleet.md) instead of running it here; the handle is then a
    :class:`~cc_executor._run._fleet.FleetRunHandle`, following the run on its worker.
    ``queue``: the fleet's queue to put it on (default ``"default"``); only with ``fleet``.

    ``on_permission``: the decider of the ``permission_policy``'s ``ask`` rules, as for
    :func:`run`. On a fleet, the policy goes with the run to its worker, which applies
    its rules there and asks ``on_permission`` here (over the fleet) for each ``ask``; the
    worker denies a call whose answer does not come within the policy's ``ask_timeout_s``.

    ``launched``: the CLI, already started by ``cc_executor._engine._launch.launch`` with
    this prompt (saved in its run folder) as stdin and the argv these options give (the
    console command does this to hide its imports behind the CLI's start-up). The first
    attempt adopts it; the run's id, folder, cwd and clock are the launch's.
    """
    if _decider_name == "callback" and _policy is None:
        _check_decider(on_permission, options)
    if fleet is not None:
        if launched is not None:
            raise ValueError("a fleet run is started by its worker: it cannot adopt a launch")
        if _policy is not None:
            raise ValueError("a fleet run's policy is its permission_policy file")
        from cc_executor._run._fleet import start_fleet_run

        return start_fleet_run(
            prompt,
            fleet,
            on_event,
            options,
            queue,
            on_permission=on_permission,
            decider_name=_decider_name,
        )
    if queue is not None:
        raise ValueError("queue names a fleet's queue: give fleet= too")
    try:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "start_run needs a running event loop (call it from async code, or use run_sync)"
            ) from None
        job = _Run(
            prompt,
            RunOptions.from_kwargs(options),
            on_event,
            launched,
            on_permission=on_permission,
            decider_name=_decider_name,
            policy=_policy,
        )
    except BaseException:
        if launched is not None:
            launched.abandon()
        raise
    return RunHandle(job, asyncio.ensure_future(job.run()))


async def run(
    prompt: str | bytes,
    *,
    on_event: EventCallback | None = None,
    on_permission: Decider | None = None,
    **options: Any,
) -> RunResult:
    """Run the agent CLI (``agent``, Claude Code by default) headlessly on ``prompt`` and
    return a typed :class:`RunResult`.

    The prompt goes on stdin (no shell, no argv size limit). ``on_event`` (sync or async)
    receives every typed event as it happens, plus heartbeats every ``heartbeat_s``
    seconds. Options: see :class:`RunOptions`; an unknown or invalid option raises
    ``TypeError``/``ValueError`` before anything runs. Everything else (CLI missing, API
    errors, timeouts, crashes) comes back as a result with a ``status`` and a specific
    ``error``. Cancelling the awaiting task terminates the CLI's whole process tree, then
    re-raises ``CancelledError``.

    There is no default timeout: without ``timeout`` (or ``idle_timeout``), a run lasts as
    long as the agent CLI does. Give one whenever nobody watches the run
    (:func:`~cc_executor.run_many` requires it).
    """
    _check_decider(on_permission, options)
    return await _Run(
        prompt, RunOptions.from_kwargs(options), on_event, on_permission=on_permission
    ).run()


def run_sync(prompt: str | bytes, **options: Any) -> RunResult:
    """:func:`run` for synchronous code. It also works inside a running event loop (the
    run then goes on in a thread of its own), but it blocks that loop until the run ends,
    Ctrl-C included: from async code, ``await run(...)``."""
    return run_coroutine_sync(run(prompt, **options))


async def stream(prompt: str | bytes, **options: Any) -> AsyncIterator[AgentEvent | RunResult]:
    """Iterate over the run's events as they happen; the last item is the :class:`RunResult`.

    Leaving the iteration early (``break``, an exception) cancels the run and terminates the
    CLI's process tree once the generator is closed: at once with
    ``async with contextlib.aclosing(stream(...)) as events:``, otherwise when Python
    finalizes it (about a second later, or never while a reference to it is kept). The
    consumer may be slow: the CLI's output waits on disk, not in memory; but once the run
    is stopped or its time is up, the events still queued are delivered only within the
    limit :func:`run` gives ``on_event`` (the result's warnings say how many were not).
    """
    queue: asyncio.Queue[AgentEvent] = asyncio.Queue(maxsize=1024)
    task = asyncio.ensure_future(run(prompt, on_event=queue.put, **options))
    try:
        while True:
            getter = asyncio.ensure_future(queue.get())
            await asyncio.wait({getter, task}, return_when=asyncio.FIRST_COMPLETED)
            if getter.done():
                yield getter.result()
                continue
            getter.cancel()
            while not queue.empty():
                yield queue.get_nowait()
            yield task.result()
            return
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
