"""The result of an agent run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cc_executor._agents._types import RunStatus
from cc_executor._engine import ProcessResult
from cc_executor._payload import payload

#: Statuses where cc-executor (or the kernel, for a resource limit) stopped the run before
#: the agent finished.
STOPPED = frozenset(
    {
        RunStatus.TIMEOUT,
        RunStatus.IDLE_TIMEOUT,
        RunStatus.CANCELLED,
        RunStatus.OOM_KILLED,
        RunStatus.LIMIT_EXCEEDED,
    }
)


@dataclass(slots=True, kw_only=True)
class RunResult:
    """Everything known about an agent run once it is over.

    ``result`` is the final answer; when the run was stopped early (timeout, cancel) or the
    CLI died without a result line, it is the assistant text produced so far, assembled from
    the token-level stream, and ``partial`` is True. ``session_id`` lets a stopped run be
    resumed (``resume=session_id``). ``error`` is specific (API status, stderr tail, the
    limit that stopped it). ``event_log`` is the CLI's full stream-json output; ``process``
    is the supervised process of the last attempt. ``cost_usd`` is the sum over the attempts
    that reported a cost, None when none did; for an agent that reports tokens but no cost
    (Codex, Gemini, ...), the cost of its tokens at the dated price table of
    docs/agents/prices.md, and ``cost_estimated`` is True (None without a price, never 0).
    ``files``: the absolute paths the agent's file tools (Write, Edit, ...) changed, plus,
    when the cwd is inside a git work tree, those whose ``git status`` changed during the
    run (what a Bash command wrote); outside git, the tool events only.
    ``workspace``: with the ``workspace`` option, the change receipt (``mode``, ``branch``,
    ``commit``, ``base``, ``patch_path``, ``changes`` as ``{"path", "kind", "old_path"?}``
    relative to the repository, ``path`` of the workspace, ``repo``; docs/workspaces.md).
    ``incomplete_files``: output files of the run that could not be written to the end (disk
    full, file size limit); they hold only the output's first bytes, their receipts say so,
    and ``partial`` is True.
    ``peak_memory_bytes`` and ``cpu_time_s``: what the run's whole process tree used (the
    last attempt's), from its cgroup when it had one, else sampled from ``/proc`` (a lower
    bound); None when nothing could be measured.
    """

    run_id: str
    status: RunStatus
    # Not in repr: an answer can be tens of MB (asyncio formats results in some paths).
    result: str = field(default="", repr=False)
    partial: bool = False
    timeout_after: float | None = None
    session_id: str | None = None
    cost_usd: float | None = None
    cost_estimated: bool = False
    usage: Mapping[str, Any] = field(default_factory=dict)
    num_turns: int | None = None
    duration_s: float = 0.0
    exit_code: int | None = None
    error: str | None = None
    api_error_status: int | None = None
    json: Any = field(default=None, repr=False)
    json_error: str | None = None
    files: list[str] = field(default_factory=list)
    permission_denials: list[Mapping[str, Any]] = field(default_factory=list)
    tool_calls: int = 0
    model: str | None = None
    attempts: int = 1
    event_log: str | None = None
    run_dir: str | None = None
    stderr_tail: str = ""
    warnings: list[str] = field(default_factory=list)
    incomplete_files: list[str] = field(default_factory=list)
    workspace: Mapping[str, Any] | None = None
    peak_memory_bytes: int | None = None
    cpu_time_s: float | None = None
    process: ProcessResult | None = field(default=None, repr=False)

    @property
    def ok(self) -> bool:
        """True when ``status`` is ``ok``."""
        return self.status is RunStatus.OK

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of the public fields (``process`` summarised by its receipts),
        with ``schema_version``."""
        proc = self.process
        data = payload(self, skip=("process",))
        data["stdout_sha256"] = proc.stdout_sha256 if proc else None
        data["stderr_sha256"] = proc.stderr_sha256 if proc else None
        return data


def join_texts(texts: Sequence[str]) -> str:
    """Assistant text blocks as one answer."""
    return "\n\n".join(t for t in texts if t)
