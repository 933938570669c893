"""Finding a task list run by its id or a prefix of it (``tasks show``, ``tasks resume``)."""

from __future__ import annotations

import pytest

from cc_executor._paths import runs_dir
from cc_executor._store import RunRecord, open_store
from cc_executor.tasks import TaskListNotFound
from cc_executor.tasks._state import ListFolder, find_list


def make_list(list_id: str) -> ListFolder:
    folder = ListFolder(runs_dir() / list_id)
    folder.path.mkdir(parents=True)
    folder.spec_path.write_text("{}")
    return folder


def test_a_prefix_shared_with_a_task_run_still_finds_its_list() -> None:
    # A list's first task run starts within the same millisecond: the history found both
    # for "01abcdef", called it ambiguous, and `tasks show` said "no task list run".
    listed = make_list("01abcdefgh0000000000000000")
    store = open_store()
    try:
        store.start(RunRecord(id="01abcdefgh1111111111111111", kind="run", status="ok"))
        store.start(RunRecord(id=listed.path.name, kind="tasks", status="ok"))
    finally:
        store.close()
    assert find_list("01abcdef").path == listed.path
    make_list("01abcdefgh2222222222222222")
    with pytest.raises(TaskListNotFound, match="prefix '01abcdef' is ambiguous: it matches"):
        find_list("01abcdef")
    assert find_list("01abcdefgh0").path == listed.path
