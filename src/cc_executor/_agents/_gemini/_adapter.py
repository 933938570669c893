"""Gemini CLI as an agent adapter (see :class:`~cc_executor._agents._base.AgentAdapter`)."""

from __future__ import annotations

import os

from cc_executor._agents._gemini._flags import build_command, check_flags
from cc_executor._agents._gemini._locate import locate_gemini

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cc_executor._agents._base import StreamParser
    from cc_executor._agents._types import Outcome, ResultEvent, ToolUseEvent
    from cc_executor._engine import ProcessResult

#: Gemini CLI's tools that name the file they create or change.
_FILE_TOOLS = ("write_file", "replace")
#: API-key auth (else exit 41), and one attempt per request: its own retries of a 429 or a
#: 5xx last about 230 s, so our retry policy (``retries``, ``retry_initial_delay``) decides.
_SETTINGS = (
    '{"security": {"auth": {"selectedType": "gemini-api-key"}}, "general": {"maxAttempts": 1}}\n'
)


class GeminiAdapter:
    """Google's Gemini CLI (``gemini --prompt= --output-format stream-json``)."""

    name = "gemini"
    title = "Gemini CLI"
    home_variable: str | None = "GEMINI_CLI_HOME"

    @property
    def max_line_memory(self) -> int:
        from cc_executor._agents._jsonl import LARGE_LINE

        return LARGE_LINE

    @property
    def quiet_line(self) -> None:
        return None

    def locate(self, explicit: Any, env: Mapping[str, str]) -> str:
        return locate_gemini(explicit, env)

    def check(self, options: Any) -> None:
        from cc_executor._agents._prices import check_budget

        check_flags(options)
        check_budget(options, "Gemini CLI")

    def command(self, executable: str, options: Any) -> list[str]:
        return build_command(executable, options)

    def process_env(self, options: Any) -> dict[str, str]:
        env = {
            # Otherwise it re-launches itself as a child with a bigger heap, and that child
            # outlives the SIGTERM its parent gets.
            "GEMINI_CLI_NO_RELAUNCH": "true",
        }
        base_url = getattr(options, "base_url", None)
        if base_url:
            env["GOOGLE_GEMINI_BASE_URL"] = base_url
        return env

    def home_env(self, options: Any, home: str) -> dict[str, str]:
        # Gemini CLI asks for a login unless its settings select an auth type: a fresh
        # home selects the API key of GEMINI_API_KEY, and holds nothing of the user's.
        settings = os.path.join(home, ".gemini", "settings.json")
        if not os.path.exists(settings):
            os.makedirs(os.path.dirname(settings), mode=0o700, exist_ok=True)
            with open(settings, "w", encoding="utf-8") as f:
                f.write(_SETTINGS)
        return {"GEMINI_CLI_HOME": home}

    def holds_session(self, home: str, session_id: str) -> bool:
        # Gemini CLI 0.61 keeps .gemini/tmp/<project>/chats/session-<time>-<id[:8]>.jsonl,
        # whose first line names the whole id; compared as text, never as a pattern.
        suffix = f"-{session_id[:8]}.jsonl"
        needle = f'"sessionId":"{session_id}"'.encode()
        projects = os.path.join(home, ".gemini", "tmp")
        try:
            names = os.listdir(projects)
        except OSError:
            return False
        for project in names:
            chats = os.path.join(projects, project, "chats")
            try:
                files = [f for f in os.listdir(chats) if f.endswith(suffix)]
            except OSError:
                continue
            for name in files:
                if needle in _head(os.path.join(chats, name)):
                    return True
        return False

    def parser(self) -> StreamParser:
        from cc_executor._agents._gemini._parse import GeminiStreamParser

        return GeminiStreamParser()

    def outcome(self, process: ProcessResult, result: ResultEvent | None) -> Outcome:
        from cc_executor._agents._gemini._outcome import decide_outcome

        return decide_outcome(process, result)

    def changed_file(self, use: ToolUseEvent, cwd: str) -> str | None:
        path = use.input.get("file_path") if use.name in _FILE_TOOLS else None
        if isinstance(path, str) and path:
            return os.path.normpath(os.path.join(cwd, path))
        return None

    def resume_options(self, session_id: str, *, fork: bool = False) -> dict[str, Any]:
        if fork:
            raise ValueError("Gemini CLI cannot fork a session; resume it instead")
        return {"resume": session_id}


def _head(path: str) -> bytes:
    """The first 4 KiB of a regular file (b"" for anything else: the agent could have made a
    FIFO there, and a blocking open would wait for a writer)."""
    import stat

    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return b""
    try:
        return os.read(fd, 4096) if stat.S_ISREG(os.fstat(fd).st_mode) else b""
    except OSError:
        return b""
    finally:
        os.close(fd)
