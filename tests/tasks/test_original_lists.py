"""The original cc_executor's task lists, read unchanged: ``### Task N`` headings with
sections of notes around them, ``{"task_list": ...}`` JSON, ``"timeout": null``."""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from cc_executor.tasks import TaskListError, load_task_list, parse_task_list

# The shape of the original's examples/basic/task_list.md.
ORIGINAL_MARKDOWN = """\
# TODO API - Basic Usage Example

This task list demonstrates sequential execution.

## Tasks

### Task 1: Create API
Create folder todo_api/ with main.py.

#### Details
Use in-memory storage.

### Task 2: Write Tests
Create todo_api/test_api.py.

## Notes

- Each task runs in a fresh process

### 1. Not a task
Notes, not a prompt.
"""


def test_markdown_with_level_three_task_headings(tmp_path: Path) -> None:
    path = tmp_path / "task_list.md"
    path.write_text(ORIGINAL_MARKDOWN)
    spec = load_task_list(path)
    assert [t.title for t in spec.tasks] == ["Create API", "Write Tests"]
    first, second = spec.tasks
    assert first.prompt == (
        "Create folder todo_api/ with main.py.\n\n#### Details\nUse in-memory storage."
    )
    # the ## Notes section after the tasks is not part of the last prompt
    assert second.prompt == "Create todo_api/test_api.py."
    assert second.depends_on == (first.id,)


def test_markdown_heading_levels_are_not_mixed() -> None:
    text = "### Task 1: a\nDo a.\n\n## Task 2: b\nDo b.\n"
    with pytest.raises(TaskListError) as caught:
        parse_task_list(text, format="markdown", source="l.md")
    assert str(caught.value) == (
        'l.md:4: "## Task 2: b": the tasks of this list are "### Task N: title" sections; '
        "use one heading level for all"
    )
    # Same level, not a task, inside a task's section: still refused, at its level.
    text = "### Task 1: a\nDo a.\n\n### Setup\nmore\n"
    with pytest.raises(TaskListError, match=r'"### Setup" is not a task heading: tasks are'):
        parse_task_list(text, format="markdown", source="l.md")


def test_level_two_lists_read_as_before() -> None:
    text = "# Plan\n\n## Task 1: a\nDo a.\n\n### Inside\nstill a.\n\n## Task 2: b\nDo b.\n"
    spec = parse_task_list(text, format="markdown")
    assert [t.prompt for t in spec.tasks] == ["Do a.\n\n### Inside\nstill a.", "Do b."]


@pytest.mark.parametrize("wrapped", ["list", "mapping"])
def test_json_task_list_shapes_and_null_timeout(tmp_path: Path, wrapped: str) -> None:
    """``{"task_list": [...]}`` and the original's ``{"task_list": {"name", "description",
    "tasks"}}``; ``name`` is the title, ``command`` the prompt, ``"timeout": null`` the
    default, ``category`` dropped and ``success_criteria`` appended to the prompt."""
    tasks = [
        {
            "id": "task_001",
            "name": "Project Structure",
            "prompt": "Create the folders.",
            "success_criteria": ["Uses Path.mkdir", "Handles existing folders"],
            "timeout": None,
            "category": "setup",
        },
        {"id": "task_002", "name": "Health", "command": "Add /health.", "timeout": 90},
    ]
    inner = (
        tasks
        if wrapped == "list"
        else {"name": "Web Project", "description": "for people", "tasks": tasks}
    )
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"task_list": inner}, indent=2))
    spec = load_task_list(path)
    first, second = spec.tasks
    assert first.id == "task_001"
    assert first.title == "Project Structure"
    assert first.prompt == (
        "Create the folders.\n\nSuccess criteria:\n- Uses Path.mkdir\n- Handles existing folders"
    )
    assert "timeout" not in first.options
    assert second.prompt == "Add /health."
    assert second.options["timeout"] == 90
    assert spec.name == (None if wrapped == "list" else "Web Project")


def test_null_means_the_default_in_every_format() -> None:
    text = textwrap.dedent(
        """\
        defaults:
          timeout: 60
        tasks:
          - prompt: a
            timeout: null
            model: null
        """
    )
    (task,) = parse_task_list(text, format="yaml").tasks
    assert task.options["timeout"] == 60
    assert "model" not in task.options


def test_original_json_problems_keep_their_lines() -> None:
    text = '{\n  "task_list": [\n    {"name": "a", "timeout": "soon", "prompt": "x"}\n  ]\n}\n'
    with pytest.raises(TaskListError) as caught:
        parse_task_list(text, format="json", source="t.json")
    assert "t.json:3" in str(caught.value)
    assert "timeout: expected a number" in str(caught.value)


def test_the_migration_guide_examples_read_as_it_says() -> None:
    """docs/compat.md: its Markdown and JSON task lists parse, with the tasks it describes."""
    doc = Path(__file__).resolve().parents[2] / "docs" / "compat.md"
    blocks = re.findall(r"^```(markdown|json)\n(.*?)^```$", doc.read_text(), re.M | re.S)
    markdown = [body for kind, body in blocks if kind == "markdown"]
    lists = [body for kind, body in blocks if kind == "json" and '"task_list"' in body]
    assert len(markdown) == 1
    assert len(lists) == 1
    spec = parse_task_list(markdown[0], format="markdown")
    assert [t.title for t in spec.tasks] == ["Create API", "Write Tests"]
    assert "Notes" not in spec.tasks[-1].prompt
    spec = parse_task_list(lists[0], format="json")
    assert [t.title for t in spec.tasks] == ["Project Structure", "Health"]
    assert spec.tasks[0].prompt.endswith("- Handles existing folders")
    assert spec.tasks[1].options["timeout"] == 180
