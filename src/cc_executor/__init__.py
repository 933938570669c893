"""cc-executor: run coding-agent CLIs (and any command) headlessly, supervised and bounded.

The public API is re-exported here and loaded lazily on first use, so importing the
package (and ``cc-executor --version``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from cc_executor._version import __version__

if TYPE_CHECKING:
    from cc_executor._engine import (
        LifecycleEvent,
        OutputEvent,
        ProcessEvent,
        ProcessResult,
        ProcessStatus,
        SupervisedProcess,
        open_process,
        run_process,
        run_process_sync,
    )

_EXPORTS = {
    "LifecycleEvent": "cc_executor._engine",
    "OutputEvent": "cc_executor._engine",
    "ProcessEvent": "cc_executor._engine",
    "ProcessResult": "cc_executor._engine",
    "ProcessStatus": "cc_executor._engine",
    "SupervisedProcess": "cc_executor._engine",
    "open_process": "cc_executor._engine",
    "run_process": "cc_executor._engine",
    "run_process_sync": "cc_executor._engine",
}

__all__ = [
    "LifecycleEvent",
    "OutputEvent",
    "ProcessEvent",
    "ProcessResult",
    "ProcessStatus",
    "SupervisedProcess",
    "__version__",
    "open_process",
    "run_process",
    "run_process_sync",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'cc_executor' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
