"""Every exception cc-executor raises, in one tree under :class:`CCExecutorError`.

``except cc_executor.CCExecutorError`` catches all of them. A class that derived from a
builtin before this tree existed keeps that base too (shown in brackets), so handlers of
``ValueError``, ``LookupError`` or ``RuntimeError`` written against it keep working. The
public classes are also importable from the module that raises them, as before
(``cc_executor.tasks.TaskListError``, ``cc_executor.notify.NotifyError``, ...)::

    CCExecutorError
    ├── AgentNotFound [LookupError]     an agent CLI cannot be found (locate_*)
    │   └── ClaudeNotFound              ... the Claude Code CLI
    ├── SpawnError                      the engine cannot start a child (a spawn_failed result)
    ├── HistoryError                    the run history cannot be read or written
    ├── TaskListError [ValueError]      a task list is invalid or cannot be read
    ├── TaskListNotFound [LookupError]  no task list run has this id
    ├── TaskListBusy [RuntimeError]     another live process runs the list
    ├── TemplateProblem                 a task's prompt template cannot be used
    ├── NotifyError                     notify refused a message or could not deliver it
    │   ├── GitStateError
    │   ├── RunEvidenceError
    │   ├── InvalidMessage
    │   ├── DeliveryError
    │   └── EntryNotFound
    ├── ServiceError                    the service refuses a request (HTTP status, code)
    │   ├── InvalidRequest              400 invalid_request
    │   ├── Forbidden                   403 forbidden
    │   ├── NotFound                    404 not_found
    │   ├── Conflict                    409 conflict
    │   ├── QueueFull                   429 queue_full
    │   ├── ShuttingDown                503 shutting_down
    │   ├── FleetUnavailable            503 fleet_unavailable
    │   └── Unavailable                 501 not_available
    ├── ExecPolicyError [ValueError]    an --exec-policy file is invalid or cannot be read
    ├── ConfigError [ValueError]        the user config file is invalid or cannot be read
    ├── FleetError                      a bad fleet URL, or the fleet's broker failed
    │   └── RunRefused                  a fleet worker refused a run (its policy)
    ├── ToolFailure                     an MCP tool call cannot be done
    ├── WorkspaceError                  a run's workspace cannot be made, merged or found
    │   └── WorkspaceConflict           merging it conflicts (the files named, tree untouched)
    ├── ScriptError [ValueError]        a scripted model server's script is malformed
    ├── MissingExtra [ImportError]      a feature's optional dependencies are not installed
    └── CCExecuteError [RuntimeError]   cc_execute(): a run failed other than by a timeout

Internal signals, defined beside their only user and caught there, also derive from the
base but never reach a caller: ``NotHandled`` [ValueError] (``_agents/_bigjson``: a large
line the piecewise parser leaves to the whole-line one), ``BadValue`` (``tasks/_fields``: one
bad value, collected as a problem by ``tasks/_validate``), ``_NonFinite`` [ValueError]
(``_run/_jsonmode``: a JSON span holding NaN or Infinity, refused), ``_Rejected``
(``notify/_inbox``: a file not accepted, listed as an ``InboxProblem``), ``_Failed``
(``_cli/_doctor_checks``: a failed check), ``_RpcError`` (``_service/_ws``: a JSON-RPC
error reply) and ``_Exit`` (``_cli/_fleet``: a command's early end, its line printed).
One does not derive from the base: ``_Refused`` (``_run/_permission_server``: a JSON-RPC
error reply), because that server runs as a script with ``python -I -S`` and imports only
the standard library (a folder an agent writes to must not change what it imports).

Outside the tree on purpose: bad arguments to the Python API (an unknown option, a value
of the wrong type or range) raise the builtin ``TypeError``/``ValueError`` before anything
runs, and a run that starts but fails is a result with a status, not an exception.

This module imports nothing: the console's early start loads it before anything else.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence

    from cc_executor._run._result import RunResult
    from cc_executor.tasks._errors import TaskListProblem


class CCExecutorError(Exception):
    """Base of every exception cc-executor raises on purpose (see the tree above)."""


class AgentNotFound(CCExecutorError, LookupError):
    """An agent CLI's executable could not be found; the message says where it was looked
    for and how to install it.

    Raised by an agent's locate function (:func:`locate_claude` for Claude Code). The run
    API does not raise it: ``run()``, ``stream()``, ``start_run()``, task lists and the
    servers report a missing CLI as a result with status ``spawn_failed`` and this message
    in ``error`` (the compat client's ``cc_execute`` then raises :class:`CCExecuteError`).
    """


class ClaudeNotFound(AgentNotFound):
    """The Claude Code CLI could not be found; the message says where we looked and how to
    install it.

    Raised by :func:`cc_executor._agents._claude.locate_claude` only: when an explicit path
    (``claude_path`` or ``CC_EXECUTOR_CLAUDE``) is not an executable file, or when neither
    ``PATH`` nor the usual install places hold ``claude``. ``run()`` and the rest of the run
    API never raise it (see :class:`AgentNotFound`); ``cc-executor doctor`` reports it as a
    failed ``claude`` check.
    """


class SpawnError(CCExecutorError):
    """The child could not be started; the message says why in plain words (missing or
    non-executable program, unusable working directory or stdin file, exec failure).

    Raised by the engine's spawn helpers; :func:`cc_executor.run_process` and ``run()``
    turn it into a result with status ``spawn_failed``, so it does not reach their callers.
    """


class HistoryError(CCExecutorError):
    """The history could not be read or written; the message names the file and the reason.

    Raised by the history store (opening, querying, exporting, verifying). Recording never
    lets this reach a run: the run completes and carries a warning."""


class HistoryUnreachable(HistoryError):
    """The history's database could not be reached (down, cut off, refusing the
    connection), as opposed to one that answered and refused (a newer schema). A process
    with a local history beside it keeps recording there meanwhile."""


class TaskListError(CCExecutorError, ValueError):
    """A task list is invalid (raised before anything runs) or cannot be found or read.

    Raised by ``load_task_list``, ``parse_task_list`` and ``run_tasks``. ``problems`` lists
    everything found, sorted by line; the message has one per line, as
    ``tasks.yaml:14: task "build": unknown field "dependson" (did you mean depends_on?)``.
    """

    def __init__(self, problems: Sequence[TaskListProblem]) -> None:
        # The same reference twice on a line is one problem, not two.
        unique = list(dict.fromkeys(problems))
        self.problems = sorted(unique, key=lambda p: (p.line is None, p.line or 0))
        super().__init__("\n".join(str(p) for p in self.problems))


class TaskListNotFound(CCExecutorError, LookupError):
    """No task list run has this id (or unique id prefix), or its folder is gone.

    Raised by ``get_task_list``, ``resume_tasks`` and ``start_resume``."""


class TaskListBusy(CCExecutorError, RuntimeError):
    """The task list is being run by another live process (it holds the list's lock).

    Raised by ``resume_tasks`` and ``start_resume``."""


class TemplateProblem(CCExecutorError):
    """A task's prompt template cannot be used; ``line`` is 1-based within the template.

    Raised while a list is checked (syntax, references) and when a prompt is rendered;
    the task list reports it as a :class:`TaskListError` problem or a failed task."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class NotifyError(CCExecutorError):
    """Base of every error raised by :mod:`cc_executor.notify`. The message is a sentence
    meant for the user; it may quote untrusted text, so display it neutralised."""


class GitStateError(NotifyError):
    """Sending ``issue_fixed`` was refused because of the sender's repository: not a git
    repository, no commit yet, uncommitted changes to tracked files, or HEAD not pushed
    to any remote-tracking branch while a remote exists."""


class RunEvidenceError(NotifyError):
    """``from_run`` names a run that is missing from the history, did not pass, or whose
    output files no longer match their receipts."""


class InvalidMessage(NotifyError):
    """A message does not match the notification schema (raised before anything is
    written; received files that do not match are reported, not raised)."""


class DeliveryError(NotifyError):
    """The message could not be written: the target is not a directory, its inbox would
    resolve outside it (a symbolic link), or the file system refused."""


class EntryNotFound(NotifyError):
    """No inbox entry has this id, or a prefix matches several."""


class ServiceError(CCExecutorError):
    """A request the run manager of ``cc-executor serve``/``mcp`` refuses; ``status`` is the
    HTTP status that fits, ``code`` a short machine-readable name. The HTTP and WebSocket
    servers answer with both; the MCP server turns it into a :class:`ToolFailure`."""

    status = 400
    code = "invalid_request"


class InvalidRequest(ServiceError):
    """Bad input: unknown or invalid options, a missing prompt, a malformed spec."""


class NotFound(ServiceError):
    """No run with that id, live or in the history."""

    status = 404
    code = "not_found"


class Forbidden(ServiceError):
    """The request is well formed but not allowed by the server's policy (exec disabled,
    executable not on the allowlist, cwd outside the allowed roots, server-only option)."""

    status = 403
    code = "forbidden"


class Conflict(ServiceError):
    """The run is not in a state that allows the action (pause a finished run, ...)."""

    status = 409
    code = "conflict"


class QueueFull(ServiceError):
    """``max_queued`` runs are already waiting for a slot."""

    status = 429
    code = "queue_full"


class ShuttingDown(ServiceError):
    """The service is stopping (draining its runs) and takes no new run, or it cannot save
    the queued run's request; retry against the next server."""

    status = 503
    code = "shutting_down"


class FleetUnavailable(ServiceError):
    """The fleet of ``serve --fleet`` does not answer: the run is refused, not queued (a
    submission is never retried); submit it again once the fleet answers."""

    status = 503
    code = "fleet_unavailable"


class Unavailable(ServiceError):
    """The feature is not available in this version or configuration."""

    status = 501
    code = "not_available"


class ExecPolicyError(CCExecutorError, ValueError):
    """The service's exec policy file (``serve --exec-policy FILE``) cannot be read or is
    invalid; the one-line message names the file and the entry (``policy.toml: [[exec]]
    #2 (git): ...``). Raised when the server starts, before it serves anything."""


class ConfigError(CCExecutorError, ValueError):
    """The user config file (``$CC_EXECUTOR_HOME/config.toml``, ``--config FILE``,
    ``$CC_EXECUTOR_CONFIG``) cannot be read or is invalid; the one-line message names the
    file, the line and key when known, and the problem (``config.toml:4: [defaults]
    max_turns: must be an integer, got 'ten'``). Raised when it is loaded, before anything
    runs (docs/config.md)."""


class FleetError(CCExecutorError):
    """Fleet mode (docs/fleet.md) cannot go on: the fleet URL is invalid or holds a password
    on a command line, or the broker (Redis) refused or dropped a request."""


class RunRefused(FleetError):
    """The fleet worker that received a run refused it: its policy does not allow what the
    run asks (a ``cwd`` outside its ``--allow-dir``, another agent, a server-only option).
    Raised by the handle's ``wait()``; the message names the worker and the reason."""


class ToolFailure(CCExecutorError):
    """An MCP tool call that cannot be done; raised by the MCP server's tools, and the
    message (``code: reason``) is shown to the calling model."""


class WorkspaceError(CCExecutorError):
    """A run's workspace (``workspace="worktree"|"copy"``) cannot be made, or a workspace
    command (list, diff, merge, discard, prune) cannot be done; the message says why."""


class WorkspaceConflict(WorkspaceError):
    """Merging a run's workspace into the user's tree conflicts: ``files`` are the
    conflicting paths, and the tree was left exactly as it was."""

    def __init__(self, message: str, files: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.files = list(files)


class ScriptError(CCExecutorError, ValueError):
    """A script of the scripted model server is malformed.

    Raised by the constructors of the script classes, by ``parse_script`` and by
    ``load_script``. The message starts with the location of the problem: the file (if
    any) and the path inside the document, e.g. ``write.yaml: rules[0].answers[1]: ...``.
    """


class CCExecuteError(CCExecutorError, RuntimeError):
    """A run of the compat client (``cc_execute``, ``cc_execute_list``) failed for a reason
    other than a timeout or a cancel (those return the partial answer), or ``json_mode``
    found no JSON in the answer; ``result`` holds everything known (status ``spawn_failed``
    when the CLI cannot be found). ``cc_execute_list(sequential=False)`` adds
    ``outcomes``, every task's answer or exception."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(f"{result.status}: {result.error}")
        self.result = result


class MissingExtra(CCExecutorError, ImportError):
    """A feature was used whose extra is not installed. The message is one line naming the
    feature, the missing module and the ``pip install 'cc-executor[EXTRA]'`` to run."""

    def __init__(self, feature: str, extra: str, module: str) -> None:
        super().__init__(
            f"{feature} needs the {extra} extra ({module} is not installed): "
            f"pip install 'cc-executor[{extra}]'",
            name=module,
        )
        self.feature = feature
        self.extra = extra
