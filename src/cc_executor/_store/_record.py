"""What the history keeps about a run, and the redaction of secrets before anything is kept."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from cc_executor._status import Status

#: Statuses a run record can have besides the engine's and the agents' own.
RUNNING = Status.RUNNING.value
INTERRUPTED = Status.INTERRUPTED.value

_SECRET_NAME = re.compile(
    r"(?i)(api[_-]?key|token|secret|pass(w(or)?d|phrase)?\b|auth|credential|bearer)"
)
#: An HTTP header that carries a credential, as curl's -H gives it.
_SECRET_HEADER = re.compile(r"(?i)^\s*((?:proxy-)?authorization|x-api-key|api-key|cookie)\s*:.*")
_SECRET_VALUE = re.compile(
    r"(sk-ant-[A-Za-z0-9_\-]{8,}|sk-[A-Za-z0-9]{20,}|gh[pousr]_[A-Za-z0-9]{20,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}|AKIA[0-9A-Z]{16}|eyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]+)"
)
REDACTED = "[REDACTED]"
#: ``scheme://user:password@host``: the password of a URL.
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]+:)([^\s@/]+)(@)")
#: ``scheme://TOKEN@host``: a user name alone is often a token (GitHub's x-access tokens).
_URL_USER = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)([^\s:/@]+)(@)")
#: Clients whose ``-pSECRET`` (attached) is a password; ``sshpass -p SECRET`` takes the next.
_ATTACHED_PASSWORD = {
    "mysql", "mysqldump", "mysqladmin", "mysqlimport", "mysqlshow", "mysqlcheck", "mariadb",
    "mariadb-dump", "mariadb-admin",
}  # fmt: skip
_NEXT_IS_PASSWORD = {
    "sshpass": ("-p",),
    "smbclient": ("-U",),
    "redis-cli": ("-a", "--pass"),
    "curl": ("-u", "--user"),
}


def redact_argv(argv: Sequence[str]) -> list[str]:
    """``argv`` with secrets replaced: values of ``--api-key X``/``--token=X``/
    ``--password X``-style flags, ``NAME=value`` arguments whose name looks secret, the
    password of a URL (``https://user:pw@host``) and a URL's lone user name
    (``https://TOKEN@host``), the ``-pSECRET`` of MySQL's clients, the ``-p SECRET`` of
    sshpass and the last argument of ``htpasswd -b``, and anything shaped like a known key
    (Anthropic, OpenAI, GitHub, Slack, AWS, JWT). The history keeps these previews:
    over-redacting an argument costs less than keeping a password."""
    out: list[str] = []
    hide_next = False
    program = os.path.basename(argv[0]) if argv else ""
    # ``htpasswd -b FILE USER PASSWORD``: with -b (alone or among other letters) the
    # password is the last argument.
    batch = program == "htpasswd" and any(
        a.startswith("-") and not a.startswith("--") and "b" in a for a in argv[1:]
    )
    if batch and len(argv) > 2:
        argv = [*argv[:-1], REDACTED]
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        if program in _ATTACHED_PASSWORD and arg.startswith("-p") and len(arg) > 2:
            out.append(f"-p{REDACTED}")
            continue
        if arg in _NEXT_IS_PASSWORD.get(program, ()):
            out.append(arg)
            hide_next = True
            continue
        if _SECRET_HEADER.match(arg):
            out.append(f"{arg.split(':', 1)[0]}: {REDACTED}")
            continue
        if arg.startswith("-") and _SECRET_NAME.search(arg):
            name, sep, _ = arg.partition("=")
            if sep:
                out.append(f"{name}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
            continue
        name, sep, _value = arg.partition("=")
        if sep and not arg.startswith("-") and _SECRET_NAME.search(name) and " " not in name:
            out.append(f"{name}={REDACTED}")
            continue
        out.append(redact_text(arg))
    return out


def redact_text(text: str) -> str:
    """``text`` with anything shaped like a known key, and the passwords of URLs,
    replaced."""
    text = _URL_PASSWORD.sub(rf"\1{REDACTED}\3", _SECRET_VALUE.sub(REDACTED, text))
    return _URL_USER.sub(rf"\1{REDACTED}\3", text)


@dataclass(slots=True, kw_only=True)
class Artifact:
    """One stored file of a run, with the receipt recorded when the run ended: the size and
    sha256 of what the file held then. ``unwritten``: how many more bytes of the output
    the file should have held but could not be written (disk full, file size limit)."""

    name: str
    path: str
    size: int
    sha256: str
    unwritten: int = 0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``unwritten`` only when the file is incomplete)."""
        data: dict[str, Any] = {
            "name": self.name,
            "path": self.path,
            "size": self.size,
            "sha256": self.sha256,
        }
        if self.unwritten:
            data["unwritten"] = self.unwritten
        return data


@dataclass(slots=True, kw_only=True)
class RunRecord:
    """One run in the history.

    ``status`` is ``running`` until the run ends, then its final status (``ok``,
    ``failed``, ``timeout``, ...), or ``interrupted`` when its supervisor died and a later
    opening of the store found it. ``supervisor_pid``/``supervisor_started`` and
    ``pid``/``pid_started`` (process start times, in clock ticks since boot) identify the
    processes without trusting a PID alone. ``artifacts`` are the receipts of its files.
    ``warnings``: the run's warnings as its result had them when it ended (redacted).
    ``record_receipt``: the digest of every other field as the history stores them (see
    ``_store/_receipt.py``), written by the store; ``verify`` checks it.
    ``batch_id``: the batch the run belongs to (``run_many``, ``cc-executor batch``), and
    ``batch_key`` the key of its document in that batch (a re-run skips a key already ok).
    ``peak_memory_bytes``, ``cpu_time_s``: what the run's whole process tree used (from
    its cgroup, or sampled from ``/proc``; see ``RunResult``).
    ``cost_estimated``: ``cost_usd`` was estimated from token counts and the price table
    (the agent reported no cost); not covered by the record's receipt (its fields are fixed).
    """

    id: str
    kind: str
    agent: str | None = None
    argv: list[str] = field(default_factory=list)
    cwd: str | None = None
    prompt_sha256: str | None = None
    prompt_preview: str | None = None
    started_at: float = 0.0
    ended_at: float | None = None
    status: str = RUNNING
    exit_code: int | None = None
    signal: str | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    turns: int | None = None
    duration_s: float | None = None
    result_preview: str | None = None
    error: str | None = None
    parent_id: str | None = None
    host: str | None = None
    run_dir: str | None = None
    pid: int | None = None
    pid_started: int | None = None
    supervisor_pid: int | None = None
    supervisor_started: int | None = None
    tree_token: str | None = None
    model: str | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    record_receipt: str | None = None
    batch_id: str | None = None
    batch_key: str | None = None
    cost_estimated: bool = False
    peak_memory_bytes: int | None = None
    cpu_time_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of every field."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["artifacts"] = [a.to_dict() for a in self.artifacts]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunRecord:
        """The inverse of :meth:`to_dict` (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["artifacts"] = [Artifact(**a) for a in data.get("artifacts") or []]
        return cls(**values)


def preview(text: str | None, limit: int = 200) -> str | None:
    """A one-line, redacted preview of ``text``."""
    if text is None:
        return None
    # Cut first: an answer can be 20 MB, and only its start is ever shown.
    flat = " ".join(text[: limit * 8].split())
    flat = redact_text(flat)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
