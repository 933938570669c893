"""The process engine: supervised child processes that never hang, lose output or leak.

It knows nothing of agents; the agent adapters build on it. The names below are loaded on
first use, so that the light modules of the package (``_launch``, ``_spawn``, ``_tree``)
can be imported without the event loop machinery.
"""

from __future__ import annotations

from cc_executor._lazy import lazy_exports

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cc_executor._engine._cgroup import Limits
    from cc_executor._engine._supervisor import (
        DEFAULT_GRACE,
        SupervisedProcess,
        open_process,
        run_process,
        run_process_sync,
        run_sync,
    )
    from cc_executor._engine._tree import kill_orphaned_tree, start_ticks
    from cc_executor._engine._types import (
        LifecycleEvent,
        OutputEvent,
        ProcessEvent,
        ProcessResult,
        ProcessStatus,
        StdinSource,
    )

_EXPORTS = {
    "DEFAULT_GRACE": "cc_executor._engine._supervisor",
    "SupervisedProcess": "cc_executor._engine._supervisor",
    "open_process": "cc_executor._engine._supervisor",
    "run_process": "cc_executor._engine._supervisor",
    "run_process_sync": "cc_executor._engine._supervisor",
    "run_sync": "cc_executor._engine._supervisor",
    "LifecycleEvent": "cc_executor._engine._types",
    "Limits": "cc_executor._engine._cgroup",
    "OutputEvent": "cc_executor._engine._types",
    "ProcessEvent": "cc_executor._engine._types",
    "ProcessResult": "cc_executor._engine._types",
    "ProcessStatus": "cc_executor._engine._types",
    "StdinSource": "cc_executor._engine._types",
    "kill_orphaned_tree": "cc_executor._engine._tree",
    "start_ticks": "cc_executor._engine._tree",
}

__all__ = [
    "DEFAULT_GRACE",
    "LifecycleEvent",
    "Limits",
    "OutputEvent",
    "ProcessEvent",
    "ProcessResult",
    "ProcessStatus",
    "StdinSource",
    "SupervisedProcess",
    "kill_orphaned_tree",
    "open_process",
    "run_process",
    "run_process_sync",
    "run_sync",
    "start_ticks",
]


__getattr__ = lazy_exports(__name__, _EXPORTS, globals())
