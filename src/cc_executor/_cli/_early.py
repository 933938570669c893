"""Starting the agent CLI before the console imports everything else.

``cc-executor run`` needs about 100 ms of imports (the event loop, the parser of the CLI's
output, the history, the retry logic) before it can supervise anything, and Claude Code
needs about 400 ms to answer even a trivial prompt. So the console reads a plain command
line without argparse (:func:`~cc_executor._cli._args.quick_parse`), checks the options
and builds the argv with the same functions as the ordinary path (the option checks and
the agent's adapter), saves the prompt and
starts the CLI exactly as the engine would (:func:`~cc_executor._engine._launch.launch`),
and only then imports the rest while the CLI boots. The run then adopts the process.

Anything unusual (an option argparse must read, a missing CLI, a bad directory) starts
nothing here: the ordinary path runs and reports it. Only standard modules already loaded
at interpreter start-up, and the light modules below, are imported.
"""

from __future__ import annotations

import os
import sys

from cc_executor._cli._args import quick_parse, run_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from cc_executor._engine._launch import Launched


class EarlyStart:
    """A ``run`` whose CLI may already be running: its parsed options, its prompt (stdin
    is read here when the prompt is ``-``), and the launched process, if any."""

    __slots__ = ("held", "launched", "options", "prompt", "values")

    def __init__(
        self,
        values: dict[str, Any],
        prompt: bytes,
        options: dict[str, Any] | None,
        launched: Launched | None,
        held: list[int],
    ) -> None:
        self.values = values
        self.prompt = prompt
        self.options = options
        self.launched = launched
        #: Signals that came before the event loop could handle them.
        self.held = held

    def namespace(self) -> Any:
        """The command line as argparse's namespace would hold it (``quick_parse`` read
        it), with this start as ``early``."""
        from types import SimpleNamespace

        return SimpleNamespace(**self.values, early=self)

    def abandon(self) -> None:
        """Stop the launched CLI (if not adopted yet) and drop its run folder."""
        launched, self.launched = self.launched, None
        settle(launched)


def read_prompt(prompt: str) -> bytes:
    """The prompt's bytes: stdin's for ``-``, else the argument's exactly as given (argv
    undecodable as UTF-8 comes back byte for byte)."""
    if prompt == "-":
        if sys.stdin is None:
            raise ValueError("the prompt is '-' but stdin is closed")
        return sys.stdin.buffer.read()
    return prompt.encode("utf-8", "surrogateescape")


def discard_run_dir(run_dir: str) -> None:
    """Remove what a launch left in ``run_dir`` (prompt, output file) and the folder."""
    import contextlib

    for name in ("prompt.txt", "stdout.log", "spawn-marker"):
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(run_dir, name))
    with contextlib.suppress(OSError):
        os.rmdir(run_dir)


def launch_early(prompt: bytes, options: dict[str, Any]) -> Launched | None:
    """Start the agent CLI for a run with ``options`` (``start_run``'s keyword arguments)
    and ``prompt``. The same functions as the ordinary path check the options, build the
    argv, save the prompt (the CLI's stdin) and start the process; the runner then adopts
    it. Returns None, having started nothing, when anything is off."""
    from types import SimpleNamespace

    from cc_executor._agents import adapter_for
    from cc_executor._engine._launch import launch
    from cc_executor._engine._spawn import SpawnError
    from cc_executor._errors import AgentNotFound
    from cc_executor._ids import new_run_id
    from cc_executor._paths import runs_path
    from cc_executor._run._homes import own_home
    from cc_executor._run._prepare import (
        check_run_options,
        limits_of,
        process_env,
        run_marker,
        save_prompt,
    )

    if not prompt.strip():
        return None  # refused by the run itself, with the reason
    if options.get("permission_policy"):
        return None  # its permission channel is set up by the run, before the CLI
    values = dict(options)
    if values.get("timeout") == "auto":
        values["timeout"] = None  # resolved from the history once it is imported
    o: Any = SimpleNamespace(**values)
    run_dir = ""
    if getattr(o, "workspace", None) is not None:
        return None  # the CLI starts in the workspace, which the run makes first
    if getattr(o, "repo", None) is not None:
        return None  # the CLI starts in the clone, which the run makes first
    try:
        check_run_options(o)
        adapter = adapter_for(o)
        if getattr(o, "resume", None) and own_home(adapter, o):
            return None  # the session's home is looked up in the history, by the run
        executable = adapter.locate(o.agent_path, {**os.environ, **o.env})
        argv = adapter.command(executable, o)
        run_id = new_run_id()
        run_dir = os.path.join(runs_path(), run_id)
        stdin_path = save_prompt(run_dir, prompt)
        return launch(
            argv,
            cwd=o.cwd or os.getcwd(),
            run_id=run_id,
            run_dir=run_dir,
            stdin_path=stdin_path,
            extra_env=process_env(o, run_dir),
            marker=run_marker(o) if getattr(o, "record", True) else None,
            limits=limits_of(o),
        )
    except (ValueError, TypeError, AgentNotFound, SpawnError, OSError):
        if run_dir:
            discard_run_dir(run_dir)
        return None


def hold_signals() -> tuple[list[int], Callable[[], None]]:
    """Until the event loop takes over the signals, note SIGINT/SIGTERM/SIGHUP instead of
    dying of them, so that a CLI just started is stopped the orderly way (partial result
    kept, nothing left running). A second SIGINT raises KeyboardInterrupt: the way out if
    the start itself hangs. Returns the list of signals noted and a function that puts
    the previous handlers back.

    Installed before the CLI is started, with ``_signal`` (``signal`` without the enum
    classes it builds on import); handlers do not survive ``exec``, so the CLI keeps its
    own dispositions.
    """
    import _signal  # type: ignore[import-not-found,unused-ignore]

    held: list[int] = []

    def note(signum: int, frame: object) -> None:
        held.append(signum)
        if held.count(_signal.SIGINT) >= 2:
            raise KeyboardInterrupt

    signals = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)
    previous = {sig: _signal.signal(sig, note) for sig in signals}

    def restore() -> None:
        for sig, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                _signal.signal(sig, handler)

    return held, restore


def launch_held(prompt: bytes, options: dict[str, Any]) -> tuple[Launched | None, list[int]]:
    """:func:`launch_early` with the signals held from just before the start (see
    :func:`hold_signals`); the list of signals noted comes back with the process. When
    nothing was started the handlers are put back, and a signal noted meanwhile is raised
    as KeyboardInterrupt."""
    held, restore = hold_signals()
    try:
        launched = launch_early(prompt, options)
    except BaseException:
        restore()
        raise
    if launched is None:
        restore()
        if held:
            raise KeyboardInterrupt
    return launched, held


def settle(launched: Launched | None) -> None:
    """Kill a launched CLI that nothing adopted, and drop its run folder (no run was
    recorded for it). Nothing happens once the run adopted it or the runner gave it up
    (the runner records the run)."""
    if launched is not None and launched.abandon():
        discard_run_dir(launched.run_dir)


def start_early(argv: list[str]) -> EarlyStart | None:
    """Read ``run``'s command line (``argv``: what follows ``run``) and start the CLI; None
    when the command line needs argparse (nothing read, nothing started)."""
    from cc_executor._run._config import quick_defaults

    defaults = quick_defaults()
    if defaults is None:
        return None  # a bad config file: the ordinary path reports it
    values = quick_parse(argv, defaults)
    if values is None:
        return None
    try:
        prompt = read_prompt(values["prompt"])
    except ValueError:
        return None  # reported by the ordinary path
    try:
        options: dict[str, Any] | None = run_options(values, defaults)
    except ValueError:
        options = None  # reported by the ordinary path
    if options is None:
        return EarlyStart(values, prompt, None, None, [])
    launched, held = launch_held(prompt, options)
    return EarlyStart(values, prompt, options, launched, held)
