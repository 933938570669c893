"""The notification format: its JSON Schema (shipped as a data file), validation, building a
message, and the names of the folders and files it travels in."""

from __future__ import annotations

import json
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from cc_executor.notify._errors import InvalidMessage

#: The four kinds of message, in the ``type`` field and at the start of the file name.
MESSAGE_TYPES: tuple[str, ...] = ("issue_fixed", "issue_report", "question", "ack")
#: Files above this size are reported, never read.
MAX_MESSAGE_BYTES = 1 << 20
#: Where a project receives notifications (JSON) and issue files (Markdown), relative to
#: its root, and the sub-folder ``ack`` moves handled files into.
INBOX = Path(".github", "ISSUES", "inbox")
INCOMING = Path(".github", "ISSUES", "incoming")
PROCESSED = "processed"

# A received file's name must stay a plain name: no separators of any platform, no "..",
# no leading dot or dash, nothing a terminal or a shell would interpret.
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,199}")
_NAME_PART = re.compile(r"[^A-Za-z0-9.-]+")
_MAX_REASON = 300


def is_safe_name(name: str) -> bool:
    """True when ``name`` is a plain file name: letters, digits and ``._+-`` only, starting
    with a letter or digit, at most 200 characters, without ``..``."""
    return bool(_SAFE_NAME.fullmatch(name)) and ".." not in name


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    """The notification JSON Schema (draft 2020-12), loaded from the package data."""
    text = (
        resources.files("cc_executor.notify")
        .joinpath("schema")
        .joinpath("notification.schema.json")
        .read_text(encoding="utf-8")
    )
    loaded: dict[str, Any] = json.loads(text)
    return loaded


@lru_cache(maxsize=1)
def _validator() -> Any:
    # jsonschema ships no type information; it is only used through these two functions.
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    return Draft202012Validator(schema())


def schema_problems(data: object) -> list[str]:
    """Every way ``data`` violates the schema, most relevant first, each as
    ``"at <path>: <what>"`` (at most 300 characters; the offending value is cut short);
    empty when it is valid."""
    from jsonschema.exceptions import relevance  # type: ignore[import-untyped]

    errors = sorted(_validator().iter_errors(data), key=relevance)
    problems = []
    for error in errors:
        where = "/".join(str(part) for part in error.absolute_path) or "top level"
        text = f"at {where}: {error.message}"
        problems.append(text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…")
    return problems


def validate(data: object) -> None:
    """Raise :class:`InvalidMessage` (naming the first problem) unless ``data`` matches
    the schema."""
    problems = schema_problems(data)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise InvalidMessage(f"the message does not match the schema: {problems[0]}{more}")


def project_name(root: Path) -> str:
    """A project's name: the name of its root folder (the git top level for the sender).

    The folder name is what other projects see on disk and pass as ``--to``; it exists for
    every project, Python or not, and needs no file of the project to be read."""
    return root.resolve().name or str(root.resolve())


def issue_id(text: str) -> int | str:
    """An issue id as given on the command line: digits become an int (``"5"`` -> 5), a
    leading ``#`` is dropped, anything else stays a string. Raises ValueError when empty."""
    text = text.strip().removeprefix("#").strip()
    if not text:
        raise ValueError("an issue id cannot be empty")
    return int(text) if text.isdigit() else text


@dataclass(frozen=True, slots=True)
class Fix:
    """One entry of ``fixes_implemented``. ``test_result`` is None when no test result
    was recorded, or the evidence of a run from the history (see ``run_evidence``)."""

    issue: int | str
    description: str
    status: str = "fixed"
    test_result: dict[str, Any] | str | None = None

    @classmethod
    def parse(cls, text: str) -> Fix:
        """``"ID: description"`` (the description may be empty: ``"7"`` or ``"7:"``).
        Raises ValueError for an empty id."""
        ident, _, description = text.partition(":")
        return cls(issue=issue_id(ident), description=description.strip())

    def to_dict(self) -> dict[str, Any]:
        """The entry as it appears in the message."""
        return {
            "issue": self.issue,
            "status": self.status,
            "description": self.description,
            "test_result": self.test_result,
        }


def utc_timestamp(seconds: float) -> str:
    """``seconds`` since the epoch as UTC ISO-8601 to the second, e.g.
    ``2026-11-24T10:00:00Z``."""
    return datetime.fromtimestamp(int(seconds), tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def build_message(
    *,
    type: str,
    sender: str,
    target: str,
    issue_numbers: list[int | str] | None = None,
    commit_sha: str | None = None,
    fixes: list[Fix] | None = None,
    verification_steps: list[str] | None = None,
    message: str | None = None,
    reply_to: str | None = None,
    in_reply_to: str | None = None,
    sent_at: float | None = None,
) -> dict[str, Any]:
    """A notification as a dict, validated. Optional fields left None are omitted, except
    that ``issue_fixed`` always carries ``issue_numbers`` and ``fixes_implemented``.
    Raises :class:`InvalidMessage` when the result does not match the schema (e.g.
    ``issue_fixed`` without a commit or an issue)."""
    data: dict[str, Any] = {
        "type": type,
        "from": sender,
        "to": target,
        "timestamp": utc_timestamp(time.time() if sent_at is None else sent_at),
    }
    if issue_numbers is not None or type == "issue_fixed":
        data["issue_numbers"] = list(issue_numbers or [])
    if commit_sha is not None:
        data["commit_sha"] = commit_sha
    if fixes is not None or type == "issue_fixed":
        data["fixes_implemented"] = [fix.to_dict() for fix in fixes or []]
    if verification_steps:
        data["verification_steps"] = list(verification_steps)
    optional = {"message": message, "reply_to": reply_to, "in_reply_to": in_reply_to}
    data.update({key: value for key, value in optional.items() if value is not None})
    validate(data)
    return data


def file_name(type: str, sender: str, seconds: float) -> str:
    """``<type>_<sender>_<unix-seconds>_<short-id>.json``; the sender is reduced to
    ``[A-Za-z0-9.-]`` (``_`` separates the parts) and the short id is 8 random hex digits,
    so two senders in the same second get different names."""
    part = re.sub(r"\.{2,}", ".", _NAME_PART.sub("-", sender)).strip(".-")[:60] or "unknown"
    return f"{type}_{part}_{int(seconds)}_{secrets.token_hex(4)}.json"
