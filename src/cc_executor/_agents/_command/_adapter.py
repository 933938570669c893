"""Any agent CLI, described by a spec file (see :mod:`._spec` and docs/agents/command.md)."""

from __future__ import annotations

import os

from cc_executor._agents._command._spec import AgentSpec, load_spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

    from cc_executor._agents._base import StreamParser
    from cc_executor._agents._types import Outcome, ResultEvent, ToolUseEvent
    from cc_executor._engine import ProcessResult


def _spec(options: Any) -> AgentSpec:
    return load_spec(getattr(options, "agent_spec", None))


def _error_text(result: ResultEvent) -> str:
    """A stream-json result's error message: its text, else its ``error.message`` (Qwen Code
    puts it there)."""
    error = result.raw.get("error") if result.raw is not None else None
    message = error.get("message") if isinstance(error, dict) else None
    return result.result or (message if isinstance(message, str) else "")


class CommandAdapter:
    """An agent CLI run from a spec file: argv, prompt on stdin, outcome from its exit.

    The registered instance reads the spec from the options it is given (``check``,
    ``command``, ``process_env``); a run works with the instance :meth:`bind` returns for
    its options, which knows the spec for the rest (``locate``, ``parser``, ``outcome``,
    ``changed_file``): two runs with two specs never share one.
    """

    name = "command"
    title = "command agent"
    home_variable: str | None = None

    def __init__(self, spec: AgentSpec | None = None) -> None:
        self._spec = spec

    def bind(self, options: Any) -> CommandAdapter:
        """This adapter for the spec that ``options`` name."""
        return CommandAdapter(_spec(options))

    @property
    def max_line_memory(self) -> int:
        from cc_executor._agents._jsonl import LARGE_LINE

        return LARGE_LINE

    @property
    def quiet_line(self) -> None:
        return None

    def locate(self, explicit: Any, env: Mapping[str, str]) -> str:
        import shutil

        from cc_executor._errors import AgentNotFound

        program = os.fspath(explicit) if explicit is not None else None
        if program is None:
            if self._spec is None:
                raise AgentNotFound(
                    "the command agent needs agent_spec, a TOML file describing its CLI"
                )
            program = self._spec.command[0]
        if os.sep in program:
            if os.path.isfile(program) and os.access(program, os.X_OK):
                return os.path.abspath(program)
            raise AgentNotFound(f"{program} (the agent spec's command) is not an executable file")
        found = shutil.which(program, path=env.get("PATH", os.defpath))
        if found is None:
            raise AgentNotFound(f"{program} (the agent spec's command) is not on PATH")
        return found

    def check(self, options: Any) -> None:
        spec = _spec(options)
        model = getattr(options, "model", None)
        if isinstance(model, str) and model.startswith("-"):
            # With model_arg = ["-m", "{model}"] the value would be an argument of its own.
            raise ValueError(f"model must be a model name, got {model!r}")
        if model and not spec.model_arg:
            raise ValueError(f"model: the agent spec {spec.path} has no model_arg to pass it")
        if getattr(options, "base_url", None) and not spec.base_url_env:
            raise ValueError(f"base_url: the agent spec {spec.path} has no base_url_env to pass it")
        # Without a way to pass it, a resume would silently start a new session.
        if getattr(options, "resume", None) and not spec.resume_arg:
            raise ValueError(f"resume: the agent spec {spec.path} has no resume_arg to pass it")
        from cc_executor._agents._prices import check_budget

        check_budget(options, spec.name)

    def command(self, executable: str, options: Any) -> list[str]:
        spec = _spec(options)
        argv = [executable, *spec.command[1:]]
        model = getattr(options, "model", None)
        if model:
            argv += [a.replace("{model}", model) for a in spec.model_arg]
        resume = getattr(options, "resume", None)
        if resume:
            argv += [a.replace("{session_id}", resume) for a in spec.resume_arg]
        return argv + list(options.extra_args)

    def process_env(self, options: Any) -> dict[str, str]:
        spec = _spec(options)
        env = dict(spec.env)
        base_url = getattr(options, "base_url", None)
        if base_url and spec.base_url_env:
            env[spec.base_url_env] = base_url
        return env

    def home_env(self, options: Any, home: str) -> dict[str, str]:
        return {}

    def holds_session(self, home: str, session_id: str) -> bool:
        return False

    def parser(self) -> StreamParser:
        spec = self._spec
        if spec is not None and spec.output == "claude-stream-json":
            from cc_executor._agents._claude._parse import ClaudeStreamParser
            from cc_executor._agents._kinds import spec_kind

            return ClaudeStreamParser(spec_kind(spec.tool_kinds, spec.file_tools))
        from cc_executor._agents._command._parse import JsonlParser, TextParser

        if spec is not None and spec.jsonl is not None:
            return JsonlParser(spec.jsonl)
        return TextParser()

    def outcome(self, process: ProcessResult, result: ResultEvent | None) -> Outcome:
        spec = self._spec
        if spec is not None and spec.output == "claude-stream-json":
            from cc_executor._agents._claude._outcome import decide_outcome as claude_outcome

            outcome = claude_outcome(process, result)
            if result is not None and result.is_error and spec.api_status:
                from cc_executor._agents._command._outcome import api_status_outcome

                found = api_status_outcome(spec, _error_text(result))
                if found is not None:
                    return found
            return type(outcome)(
                outcome.status,
                outcome.error.replace("Claude Code", spec.name) if outcome.error else None,
                outcome.retryable,
                outcome.api_error_status,
            )
        from cc_executor._agents._command._outcome import decide_outcome

        return decide_outcome(process, spec)

    def changed_file(self, use: ToolUseEvent, cwd: str) -> str | None:
        spec = self._spec
        key = spec.file_tools.get(use.name) if spec is not None else None
        value = use.input.get(key) if key else None
        if isinstance(value, str) and value:
            return os.path.normpath(os.path.join(cwd, value))
        return None

    def resume_options(self, session_id: str, *, fork: bool = False) -> dict[str, Any]:
        spec = self._spec
        if spec is None or not spec.resume_arg:
            where = f"the agent spec {spec.path}" if spec is not None else "the command agent"
            raise ValueError(f"{where} has no resume_arg: it cannot resume a session")
        if fork:
            raise ValueError(f"{spec.name} (the command agent) cannot fork a session")
        return {"resume": session_id}
