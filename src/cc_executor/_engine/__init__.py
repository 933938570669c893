"""The process engine: supervised child processes that never hang, lose output or leak.

It knows nothing of agents; the agent adapters build on it.
"""

from cc_executor._engine._supervisor import (
    DEFAULT_GRACE,
    SupervisedProcess,
    open_process,
    run_process,
    run_process_sync,
    run_sync,
)
from cc_executor._engine._types import (
    LifecycleEvent,
    OutputEvent,
    ProcessEvent,
    ProcessResult,
    ProcessStatus,
    StdinSource,
)

__all__ = [
    "DEFAULT_GRACE",
    "LifecycleEvent",
    "OutputEvent",
    "ProcessEvent",
    "ProcessResult",
    "ProcessStatus",
    "StdinSource",
    "SupervisedProcess",
    "open_process",
    "run_process",
    "run_process_sync",
    "run_sync",
]
