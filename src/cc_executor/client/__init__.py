"""Compatibility with the original cc_executor client API: ``from cc_executor.client import
cc_execute, CCExecutorConfig`` (see docs/compat.md).

Imported eagerly, not lazily: the function ``cc_execute`` shares its name with the module
``cc_executor.client.cc_execute``, and importing that module sets the package's attribute
to the module; binding the function here, after the import, is what keeps
``from cc_executor.client import cc_execute`` the function.
"""

from cc_executor.client.cc_execute import (
    CCExecuteError,
    CCExecutorConfig,
    cc_execute,
    cc_execute_list,
    cc_execute_sync,
    cc_execute_task_list,
    export_execution_history,
    export_history_sync,
)

__all__ = [
    "CCExecuteError",
    "CCExecutorConfig",
    "cc_execute",
    "cc_execute_list",
    "cc_execute_sync",
    "cc_execute_task_list",
    "export_execution_history",
    "export_history_sync",
]
