"""cc-executor: run coding-agent CLIs (and any command) headlessly, supervised and bounded.

The public API is re-exported here and loaded lazily on first use, so importing the
package (and ``cc-executor --version``) stays fast.
"""

from __future__ import annotations

from cc_executor._lazy import lazy_exports
from cc_executor._version import __version__

# Not ``typing.TYPE_CHECKING``: importing typing costs milliseconds that every console
# command would pay before it starts anything. Type checkers treat this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from cc_executor._agents._types import (
        AgentEvent,
        ApiRetryEvent,
        HeartbeatEvent,
        InitEvent,
        LimitWaitEvent,
        NoiseEvent,
        PermissionDecisionEvent,
        PermissionDeniedEvent,
        PermissionRequestEvent,
        RateLimitEvent,
        ResultEvent,
        RetryEvent,
        RunStartedEvent,
        RunStatus,
        StatusEvent,
        StderrEvent,
        StreamEvent,
        TextDeltaEvent,
        TextEvent,
        ThinkingEvent,
        ToolKind,
        ToolResultEvent,
        ToolUseEvent,
        UnknownEvent,
    )
    from cc_executor._engine import (
        LifecycleEvent,
        Limits,
        OutputEvent,
        ProcessEvent,
        ProcessResult,
        ProcessStatus,
        SupervisedProcess,
        open_process,
        run_process,
        run_process_sync,
    )
    from cc_executor._errors import (
        AgentNotFound,
        CCExecutorError,
        ClaudeNotFound,
        FleetError,
        RunRefused,
        WorkspaceConflict,
        WorkspaceError,
    )
    from cc_executor._run._batch import (
        BatchEvent,
        BatchHandle,
        BatchResult,
        batch_history,
        run_many,
        run_many_sync,
        start_many,
    )
    from cc_executor._run._options import (
        RunOptions,
    )
    from cc_executor._run._permissions import PermissionDecision, PermissionRequest
    from cc_executor._run._result import (
        RunResult,
    )
    from cc_executor._run._runner import (
        RunHandle,
        run,
        run_sync,
        start_run,
        stream,
    )
    from cc_executor._run._workspace import (
        workspace_diff,
        workspace_discard,
        workspace_list,
        workspace_merge,
        workspace_prune,
    )
    from cc_executor._status import Status
    from cc_executor.client.cc_execute import (
        CCExecutorConfig,
        cc_execute,
        cc_execute_task_list,
    )

_EXPORTS = {
    "AgentEvent": "cc_executor._agents._types",
    "AgentNotFound": "cc_executor._errors",
    "ApiRetryEvent": "cc_executor._agents._types",
    "BatchEvent": "cc_executor._run._batch",
    "BatchHandle": "cc_executor._run._batch",
    "BatchResult": "cc_executor._run._batch",
    "CCExecutorConfig": "cc_executor.client",
    "CCExecutorError": "cc_executor._errors",
    "ClaudeNotFound": "cc_executor._errors",
    "FleetError": "cc_executor._errors",
    "HeartbeatEvent": "cc_executor._agents._types",
    "InitEvent": "cc_executor._agents._types",
    "LifecycleEvent": "cc_executor._engine",
    "LimitWaitEvent": "cc_executor._agents._types",
    "Limits": "cc_executor._engine",
    "NoiseEvent": "cc_executor._agents._types",
    "OutputEvent": "cc_executor._engine",
    "PermissionDecision": "cc_executor._run._permissions",
    "PermissionDecisionEvent": "cc_executor._agents._types",
    "PermissionDeniedEvent": "cc_executor._agents._types",
    "PermissionRequest": "cc_executor._run._permissions",
    "PermissionRequestEvent": "cc_executor._agents._types",
    "ProcessEvent": "cc_executor._engine",
    "ProcessResult": "cc_executor._engine",
    "ProcessStatus": "cc_executor._engine",
    "RateLimitEvent": "cc_executor._agents._types",
    "ResultEvent": "cc_executor._agents._types",
    "RetryEvent": "cc_executor._agents._types",
    "RunHandle": "cc_executor._run._runner",
    "RunRefused": "cc_executor._errors",
    "RunOptions": "cc_executor._run._options",
    "RunResult": "cc_executor._run._result",
    "RunStartedEvent": "cc_executor._agents._types",
    "RunStatus": "cc_executor._agents._types",
    "Status": "cc_executor._status",
    "StatusEvent": "cc_executor._agents._types",
    "StderrEvent": "cc_executor._agents._types",
    "StreamEvent": "cc_executor._agents._types",
    "SupervisedProcess": "cc_executor._engine",
    "TextDeltaEvent": "cc_executor._agents._types",
    "TextEvent": "cc_executor._agents._types",
    "ThinkingEvent": "cc_executor._agents._types",
    "ToolKind": "cc_executor._agents._types",
    "ToolResultEvent": "cc_executor._agents._types",
    "ToolUseEvent": "cc_executor._agents._types",
    "UnknownEvent": "cc_executor._agents._types",
    "WorkspaceConflict": "cc_executor._errors",
    "WorkspaceError": "cc_executor._errors",
    "batch_history": "cc_executor._run._batch",
    "cc_execute": "cc_executor.client",
    "cc_execute_task_list": "cc_executor.client",
    "open_process": "cc_executor._engine",
    "run": "cc_executor._run._runner",
    "run_process": "cc_executor._engine",
    "run_many": "cc_executor._run._batch",
    "run_many_sync": "cc_executor._run._batch",
    "run_process_sync": "cc_executor._engine",
    "run_sync": "cc_executor._run._runner",
    "start_many": "cc_executor._run._batch",
    "start_run": "cc_executor._run._runner",
    "stream": "cc_executor._run._runner",
    "workspace_diff": "cc_executor._run._workspace",
    "workspace_discard": "cc_executor._run._workspace",
    "workspace_list": "cc_executor._run._workspace",
    "workspace_merge": "cc_executor._run._workspace",
    "workspace_prune": "cc_executor._run._workspace",
}

__all__ = [
    "AgentEvent",
    "AgentNotFound",
    "ApiRetryEvent",
    "BatchEvent",
    "BatchHandle",
    "BatchResult",
    "CCExecutorConfig",
    "CCExecutorError",
    "ClaudeNotFound",
    "FleetError",
    "HeartbeatEvent",
    "InitEvent",
    "LifecycleEvent",
    "LimitWaitEvent",
    "Limits",
    "NoiseEvent",
    "OutputEvent",
    "PermissionDecision",
    "PermissionDecisionEvent",
    "PermissionDeniedEvent",
    "PermissionRequest",
    "PermissionRequestEvent",
    "ProcessEvent",
    "ProcessResult",
    "ProcessStatus",
    "RateLimitEvent",
    "ResultEvent",
    "RetryEvent",
    "RunHandle",
    "RunOptions",
    "RunRefused",
    "RunResult",
    "RunStartedEvent",
    "RunStatus",
    "Status",
    "StatusEvent",
    "StderrEvent",
    "StreamEvent",
    "SupervisedProcess",
    "TextDeltaEvent",
    "TextEvent",
    "ThinkingEvent",
    "ToolKind",
    "ToolResultEvent",
    "ToolUseEvent",
    "UnknownEvent",
    "WorkspaceConflict",
    "WorkspaceError",
    "__version__",
    "batch_history",
    "cc_execute",
    "cc_execute_task_list",
    "open_process",
    "run",
    "run_many",
    "run_many_sync",
    "run_process",
    "run_process_sync",
    "run_sync",
    "start_many",
    "start_run",
    "stream",
    "workspace_diff",
    "workspace_discard",
    "workspace_list",
    "workspace_merge",
    "workspace_prune",
]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())


def __dir__() -> list[str]:
    return sorted(__all__)
