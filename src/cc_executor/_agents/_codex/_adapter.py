"""Codex CLI as an agent adapter (see :class:`~cc_executor._agents._base.AgentAdapter`).

Like the Claude Code adapter, only the light ``_locate`` and ``_flags`` load with the
module; the parser and the outcome rules load on first use.
"""

from __future__ import annotations

import os

from cc_executor._agents._codex._flags import build_command, check_flags
from cc_executor._agents._codex._locate import locate_codex

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from cc_executor._agents._base import StreamParser
    from cc_executor._agents._types import Outcome, ResultEvent, ToolUseEvent
    from cc_executor._engine import ProcessResult


class CodexAdapter:
    """OpenAI's Codex CLI (``codex exec --json``)."""

    name = "codex"
    title = "Codex CLI"
    home_variable: str | None = "CODEX_HOME"

    @property
    def max_line_memory(self) -> int:
        from cc_executor._agents._jsonl import LARGE_LINE

        return LARGE_LINE

    @property
    def quiet_line(self) -> Callable[[bytes], bool]:
        from cc_executor._agents._codex._parse import is_reconnect_line

        return is_reconnect_line

    def locate(self, explicit: Any, env: Mapping[str, str]) -> str:
        return locate_codex(explicit, env)

    def check(self, options: Any) -> None:
        from cc_executor._agents._prices import check_budget

        check_flags(options)
        check_budget(options, "Codex CLI")

    def command(self, executable: str, options: Any) -> list[str]:
        return build_command(executable, options)

    def process_env(self, options: Any) -> dict[str, str]:
        return {}

    def home_env(self, options: Any, home: str) -> dict[str, str]:
        # Nothing to write: the API key comes from OPENAI_API_KEY (the --base-url provider's
        # env_key, and what the built-in provider reads); the rest Codex makes itself.
        os.makedirs(home, mode=0o700, exist_ok=True)
        return {"CODEX_HOME": home}

    def holds_session(self, home: str, session_id: str) -> bool:
        # Codex keeps sessions/YYYY/MM/DD/rollout-<time>-<thread id>.jsonl; compared as
        # names, never as a pattern (the id is the caller's).
        suffix = f"-{session_id}.jsonl"
        for folder, _dirs, files in os.walk(os.path.join(home, "sessions")):
            if folder.count(os.sep) - home.count(os.sep) > 4:
                continue
            if any(f.startswith("rollout-") and f.endswith(suffix) for f in files):
                return True
        return False

    def parser(self) -> StreamParser:
        from cc_executor._agents._codex._parse import CodexStreamParser

        return CodexStreamParser()

    def outcome(self, process: ProcessResult, result: ResultEvent | None) -> Outcome:
        from cc_executor._agents._codex._outcome import decide_outcome

        return decide_outcome(process, result)

    def changed_file(self, use: ToolUseEvent, cwd: str) -> str | None:
        path = use.input.get("path") if use.name == "file_change" else None
        if isinstance(path, str) and path:
            return os.path.normpath(os.path.join(cwd, path))
        return None

    def resume_options(self, session_id: str, *, fork: bool = False) -> dict[str, Any]:
        if fork:
            raise ValueError("Codex CLI cannot fork a session; resume it instead")
        return {"resume": session_id}
