"""The interface every agent adapter implements.

An adapter knows one agent CLI: where its executable is, the command line and environment
a run's options ask for (the prompt always goes on stdin), how to turn the CLI's output
into the typed events of :mod:`cc_executor._agents._types`, how to decide a run's outcome
from its result event, its exit and our own timeouts, which files a tool call changed, and
how to resume a session. The run layer (``cc_executor._run``) drives any agent through this
interface alone; the process engine underneath knows nothing of agents.

Options are passed as :class:`~cc_executor._run._options.RunOptions` or any object with its
attributes (the console's early start uses a plain namespace).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any, BinaryIO, Protocol

from cc_executor._agents._types import AgentEvent, Outcome, ResultEvent, ToolUseEvent
from cc_executor._engine import OutputEvent, ProcessResult


class StreamParser(Protocol):
    """Turns an agent's stdout into events, one line at a time; holds the little state a
    stream needs. One parser per attempt."""

    def parse_output(self, item: OutputEvent) -> list[AgentEvent]:
        """Events for one stdout line as the engine delivers it (possibly file-backed)."""

    def parse_log(self, log: BinaryIO) -> Iterator[AgentEvent]:
        """Every event of a whole event log (an open binary file), never a huge line whole."""

    def parse(self, line: bytes | str, t: float) -> list[AgentEvent]:
        """Events for one line held in memory."""


class AgentAdapter(Protocol):
    """One agent CLI (see the module docstring)."""

    #: The ``agent`` option's value for this agent.
    name: str
    #: The agent's name for people ("Claude Code").
    title: str
    #: The variable naming the CLI's home (config, login, sessions) when a run gets a home
    #: of its own per session (``CODEX_HOME``); None: the CLI always uses the caller's.
    home_variable: str | None

    @property
    def max_line_memory(self) -> int:
        """Output lines longer than this are read back from the event log, not held in
        memory."""

    @property
    def quiet_line(self) -> Callable[[bytes], bool] | None:
        """A cheap predicate telling the stdout lines that only say the CLI is waiting (a
        reconnect notice): the engine does not count them as output for the idle and
        first-output timeouts, so a CLI retrying forever is still stopped. None: every line
        counts."""

    def locate(self, explicit: Any, env: Mapping[str, str]) -> str:
        """The executable: ``explicit`` (the ``agent_path`` option) if given, else found
        through the agent's own variable, ``PATH`` and the usual install places; raises
        :class:`~cc_executor._errors.AgentNotFound` saying where it looked and how to
        install it."""

    def check(self, options: Any) -> None:
        """``ValueError``/``TypeError`` for option values the CLI would refuse or misread
        (types and ranges are checked before, from the option declarations)."""

    def command(self, executable: str, options: Any) -> list[str]:
        """The argv of a headless run whose prompt comes on stdin."""

    def process_env(self, options: Any) -> dict[str, str]:
        """Variables the agent's own options need in its environment (beyond ``env``)."""

    def home_env(self, options: Any, home: str) -> dict[str, str]:
        """Variables giving the CLI the agent home ``home`` (a folder in a run folder, see
        :mod:`cc_executor._run._homes`): created here with what a fresh home needs (never
        the user's login) when it does not exist yet, reused as it is when a session is
        resumed. Called only for agents with a ``home_variable``."""

    def holds_session(self, home: str, session_id: str) -> bool:
        """Whether the agent home ``home`` holds session ``session_id`` (for a resume whose
        run ended before its session id was recorded); False for agents without homes."""

    def parser(self) -> StreamParser:
        """A fresh parser for one attempt's output."""

    def outcome(self, process: ProcessResult, result: ResultEvent | None) -> Outcome:
        """How one attempt ended, from the supervised process and the agent's result
        event (None when it printed none)."""

    def changed_file(self, use: ToolUseEvent, cwd: str) -> str | None:
        """The absolute path a successful tool call created or changed, if it names one."""

    def resume_options(self, session_id: str, *, fork: bool = False) -> dict[str, Any]:
        """The run options that continue session ``session_id``; with ``fork``, in a new
        session that starts from it (the original stays as it was). ``ValueError`` if the
        agent cannot do that."""
