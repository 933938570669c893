"""From run options to Gemini CLI's command line (``gemini --prompt= --output-format
stream-json``), importable without the rest of the adapter. The prompt comes on stdin: an
empty ``--prompt=`` makes the run headless, and the CLI prepends what stdin holds."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

#: Gemini CLI's ``--approval-mode`` values. Headless, ``default`` offers no tool that needs
#: an approval (no shell, no writes); ``auto_edit`` adds the edit tools, ``yolo`` all.
APPROVAL_MODES = ("default", "auto_edit", "yolo", "plan")
#: A session id as Gemini CLI writes it (a UUID): ``--resume`` also takes ``latest`` and
#: list indexes, which must never be reached through an id.
_SESSION_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def check_flags(o: Any) -> None:
    """Raise ``ValueError`` for options Gemini CLI would misread or refuse."""
    mode = getattr(o, "permission_mode", None)
    if mode is not None and mode not in APPROVAL_MODES:
        raise ValueError(
            f"permission_mode for Gemini CLI must be one of {', '.join(APPROVAL_MODES)} "
            f"(its --approval-mode), got {mode!r}"
        )
    resume = getattr(o, "resume", None)
    if resume is not None and not _SESSION_ID.fullmatch(resume):
        raise ValueError(f"resume for Gemini CLI must be a session id (a UUID), got {resume!r}")
    model = getattr(o, "model", None)
    if model is not None and (not model or model.startswith("-") or "\0" in model):
        raise ValueError(f"model must be a model name, got {model!r}")


def build_command(executable: str, options: Any) -> list[str]:
    """The argv of a headless run whose prompt comes on stdin; one argument per flag."""
    o = options
    argv = [executable, "--prompt=", "--output-format=stream-json", "--skip-trust"]
    if o.model:
        argv.append(f"--model={o.model}")
    if o.permission_mode:
        argv.append(f"--approval-mode={o.permission_mode}")
    if o.resume:
        argv.append(f"--resume={o.resume}")
    argv += list(o.extra_args)
    return argv
