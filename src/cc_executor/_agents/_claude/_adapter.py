"""Claude Code as an agent adapter (see :class:`~cc_executor._agents._base.AgentAdapter`).

The console's early start uses ``locate``, ``check``, ``command`` and ``process_env``
before anything else is imported, so this module imports only the light ``_locate`` and
``_flags`` at load time; the parser and the outcome rules are loaded on first use.
"""

from __future__ import annotations

import os

from cc_executor._agents._claude._flags import build_command, check_flags
from cc_executor._agents._claude._locate import locate_claude

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cc_executor._agents._base import StreamParser
    from cc_executor._agents._types import Outcome, ResultEvent, ToolUseEvent
    from cc_executor._engine import ProcessResult

#: Tools whose input names the file they create or change, and that input's key.
_FILE_TOOLS = {
    "Write": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "NotebookEdit": "notebook_path",
}


class ClaudeAdapter:
    """Claude Code (``claude -p --output-format=stream-json``)."""

    name = "claude"
    title = "Claude Code"
    home_variable: str | None = None

    @property
    def max_line_memory(self) -> int:
        # The parser's own limit: a longer stream-json line is parsed in pieces from the log.
        from cc_executor._agents._claude._parse import LARGE_LINE

        return LARGE_LINE

    @property
    def quiet_line(self) -> None:
        return None

    def locate(self, explicit: Any, env: Mapping[str, str]) -> str:
        return locate_claude(explicit, env)

    def check(self, options: Any) -> None:
        check_flags(options)

    def command(self, executable: str, options: Any) -> list[str]:
        return build_command(executable, options)

    def process_env(self, options: Any) -> dict[str, str]:
        env: dict[str, str] = {}
        base_url = getattr(options, "base_url", None)
        if base_url:
            env["ANTHROPIC_BASE_URL"] = base_url
        # Claude Code honours CLAUDE_CODE_MAX_CONTEXT_TOKENS only with compaction off.
        tokens = getattr(options, "max_context_tokens", None)
        if tokens is not None:
            env.update(CLAUDE_CODE_MAX_CONTEXT_TOKENS=str(tokens), DISABLE_COMPACT="1")
        return env

    def home_env(self, options: Any, home: str) -> dict[str, str]:
        return {}

    def holds_session(self, home: str, session_id: str) -> bool:
        return False

    def parser(self) -> StreamParser:
        from cc_executor._agents._claude._parse import ClaudeStreamParser

        return ClaudeStreamParser()

    def outcome(self, process: ProcessResult, result: ResultEvent | None) -> Outcome:
        from cc_executor._agents._claude._outcome import decide_outcome

        return decide_outcome(process, result)

    def changed_file(self, use: ToolUseEvent, cwd: str) -> str | None:
        key = _FILE_TOOLS.get(use.name)
        value = use.input.get(key) if key else None
        if isinstance(value, str) and value:
            return os.path.normpath(os.path.join(cwd, value))
        return None

    def resume_options(self, session_id: str, *, fork: bool = False) -> dict[str, Any]:
        return {"resume": session_id, "fork_session": True} if fork else {"resume": session_id}
