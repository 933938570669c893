"""Task lists: many steps, each a fresh Claude Code run with a full context window, where a
step can use what earlier steps produced; ordered or parallel; durable and resumable.

```python
from cc_executor.tasks import run_tasks, resume_tasks

result = await run_tasks("tasks.md", max_parallel=4, on_event=lambda tid, ev: ...)
print(result.status, result.cost_usd, result.tasks["build"].result)
result = await resume_tasks(result.list_id)  # after a crash, Ctrl-C or a failure
```

Files: Markdown (``## Task N: title`` sections, optional settings in a ```yaml block at the
top of a section, list settings in front matter), YAML or JSON (``tasks: [...]``). See
:func:`load_task_list` and the README for the fields, ``docs/tasks.md`` for the rules of
order, retries, budget and paths.
"""

# ruff: noqa: E402
# (the extra is checked before the imports that need it)
from cc_executor._extras import require_extra
from cc_executor._lazy import renamed

require_extra("tasks", "cc_executor.tasks")

from cc_executor.tasks._errors import (
    TaskListBusy,
    TaskListError,
    TaskListNotFound,
    TaskListProblem,
)
from cc_executor.tasks._load import load_task_list, parse_task_list
from cc_executor.tasks._result import (
    ListStatus,
    TaskAttempt,
    TaskListResult,
    TaskResult,
    TaskStateEvent,
    TaskStatus,
)
from cc_executor.tasks._runner import (
    DEFAULT_MAX_PARALLEL,
    TaskListHandle,
    get_task_list,
    resume_tasks,
    resume_tasks_sync,
    run_tasks,
    run_tasks_sync,
    start_resume,
    start_tasks,
)
from cc_executor.tasks._scheduler import TaskDecider, TaskEventCallback
from cc_executor.tasks._spec import TaskListSpec, TaskSpec

__all__ = [
    "DEFAULT_MAX_PARALLEL",
    "ListStatus",
    "TaskAttempt",
    "TaskDecider",
    "TaskEventCallback",
    "TaskListBusy",
    "TaskListError",
    "TaskListHandle",
    "TaskListNotFound",
    "TaskListProblem",
    "TaskListResult",
    "TaskListSpec",
    "TaskResult",
    "TaskSpec",
    "TaskStateEvent",
    "TaskStatus",
    "get_task_list",
    "load_task_list",
    "parse_task_list",
    "resume_tasks",
    "resume_tasks_sync",
    "run_tasks",
    "run_tasks_sync",
    "start_resume",
    "start_tasks",
]

__getattr__ = renamed(__name__, {"Problem": "TaskListProblem"}, globals())
