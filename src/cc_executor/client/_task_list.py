"""The original's ``cc_execute_task_list``: a list of prompts, one fresh run each, every
outcome reported in its shape (a failure does not stop the later tasks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cc_executor.client.cc_execute import CCExecutorConfig


async def cc_execute_task_list(
    tasks: Sequence[str], config: CCExecutorConfig | None = None, **kwargs: Any
) -> list[dict[str, Any]]:
    """Run ``tasks`` one after another with :func:`~cc_executor.client.cc_execute` (a fresh
    Claude Code process each) and return one dict per task, in order, as the original
    did: ``{"task_num": N, "task": <prompt>, "output": <answer>, "success": bool,
    "error": <message or None>}``. A task that fails (:class:`CCExecuteError`) is reported
    with ``success: False`` and the next one still runs; a bad argument (``TypeError``,
    ``ValueError``) raises before anything runs again. ``**kwargs``: the other parameters
    of ``cc_execute`` (``json_mode``, ``return_dict``, run options, ...)."""
    from cc_executor._errors import CCExecuteError
    from cc_executor.client.cc_execute import cc_execute

    if isinstance(tasks, str) or not all(isinstance(t, str) for t in tasks):
        raise TypeError("cc_execute_task_list: tasks must be a list of prompts (strings)")
    results: list[dict[str, Any]] = []
    for number, task in enumerate(tasks, 1):
        try:
            output = await cc_execute(task, config, **kwargs)
        except CCExecuteError as exc:
            results.append(
                {
                    "task_num": number,
                    "task": task,
                    "output": None,
                    "success": False,
                    "error": str(exc),
                }
            )
        else:
            results.append(
                {"task_num": number, "task": task, "output": output, "success": True, "error": None}
            )
    return results
