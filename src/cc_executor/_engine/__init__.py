"""The process engine: supervised child processes that never hang, lose output or leak.

It knows nothing of agents; the agent adapters build on it. The names below are loaded on
first use, so that the light modules of the package (``_launch``, ``_spawn``, ``_tree``)
can be imported without the event loop machinery.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

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

_EXPORTS = {
    "DEFAULT_GRACE": "_supervisor",
    "SupervisedProcess": "_supervisor",
    "open_process": "_supervisor",
    "run_process": "_supervisor",
    "run_process_sync": "_supervisor",
    "run_sync": "_supervisor",
    "LifecycleEvent": "_types",
    "OutputEvent": "_types",
    "ProcessEvent": "_types",
    "ProcessResult": "_types",
    "ProcessStatus": "_types",
    "StdinSource": "_types",
}

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


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
