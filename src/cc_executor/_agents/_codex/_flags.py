"""From run options to Codex CLI's command line (``codex exec --json``), importable without
the rest of the adapter (the console starts the CLI before it imports anything else).

Every value goes in one ``--flag=value`` argument, so no value can be read as a flag, and
``-c`` overrides are TOML values written with ``json.dumps`` (a valid TOML basic string).
"""

from __future__ import annotations

import json
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Codex's sandbox modes; ``read-only`` is the default, as Claude Code's headless denials are.
SANDBOX_MODES = ("read-only", "workspace-write", "danger-full-access")
DEFAULT_SANDBOX = "read-only"
#: The custom model provider declared for ``base_url`` (Codex ignores OPENAI_BASE_URL).
PROVIDER = "cc_executor"


def check_flags(o: Any) -> None:
    """Raise ``ValueError`` for options Codex CLI would misread or refuse."""
    sandbox = getattr(o, "sandbox", None)
    if sandbox is not None and sandbox not in SANDBOX_MODES:
        raise ValueError(f"sandbox must be one of {', '.join(SANDBOX_MODES)}, got {sandbox!r}")
    for name in ("resume", "model"):
        value = getattr(o, name, None)
        if value is not None and (
            not isinstance(value, str) or not value or value.startswith("-") or "\0" in value
        ):
            raise ValueError(f"{name} must be a session id or a model name, got {value!r}")
    if getattr(o, "resume", None) and getattr(o, "add_dirs", ()):
        raise ValueError("add_dirs cannot be given when resuming a Codex session")


def _config(key: str, value: str) -> str:
    return f"--config={key}={json.dumps(value)}"


def build_command(executable: str, options: Any) -> list[str]:
    """The argv of a headless run whose prompt comes on stdin (the ``-`` argument)."""
    o = options
    resume = getattr(o, "resume", None)
    argv = [executable, "exec"]
    if resume:
        argv.append("resume")
    argv += ["--json", "--skip-git-repo-check"]
    if o.model:
        argv.append(f"--model={o.model}")
    argv.append(_config("sandbox_mode", getattr(o, "sandbox", None) or DEFAULT_SANDBOX))
    base_url = getattr(o, "base_url", None)
    if base_url:
        provider = f"model_providers.{PROVIDER}"
        argv += [
            _config("model_provider", PROVIDER),
            _config(f"{provider}.name", PROVIDER),
            _config(f"{provider}.base_url", base_url),
            _config(f"{provider}.wire_api", "responses"),
            _config(f"{provider}.env_key", "OPENAI_API_KEY"),
            # Our own retry policy decides about another attempt: bounded time on errors.
            f"--config={provider}.request_max_retries=0",
            f"--config={provider}.stream_max_retries=0",
        ]
    for folder in getattr(o, "add_dirs", ()):
        argv.append(f"--add-dir={os.fspath(folder)}")
    argv += list(o.extra_args)
    if resume:
        argv.append(resume)
    argv.append("-")
    return argv
