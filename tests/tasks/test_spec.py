"""Task list files: parsing (Markdown, YAML, JSON) and every validation error, with lines."""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import textwrap
from pathlib import Path

import pytest

from cc_executor.tasks import TaskListError, TaskListSpec, load_task_list, parse_task_list
from cc_executor.tasks._task_options import task_options
from tests.tasks.conftest import CLI

MARKDOWN = """\
---
name: release
max_parallel: 2
budget_usd: 1.5
defaults:
  model: sonnet
  timeout: 600
  env: {STAGE: test}
---
# Release plan

Anything before the first task is an introduction.

## Task 1: Research the API
```yaml
id: research
timeout: 300
env: {EXTRA: "1"}
```
Find out how the API works.

```python
## not a heading: inside a code block
```

## Task 2: Build it!
Use {{ tasks.research.result }} to build.

### A heading inside the prompt
more

## Task 3
Ship {{ tasks["build_it"].files }} and {{ tasks.research.session_id }}.
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(TaskListError) as caught:
        load_task_list(path)
    return str(caught.value).splitlines()


def test_markdown_sections_settings_and_front_matter(tmp_path: Path) -> None:
    spec = load_task_list(write(tmp_path, "plan.md", MARKDOWN))
    assert spec.name == "release"
    assert spec.max_parallel == 2
    assert spec.budget_usd == 1.5
    assert [t.id for t in spec.tasks] == ["research", "build_it", "task_3"]
    research, build, ship = spec.tasks
    assert research.title == "Research the API"
    assert research.prompt == (
        "Find out how the API works.\n\n```python\n## not a heading: inside a code block\n```"
    )
    assert research.options == {
        "model": "sonnet",
        "timeout": 300.0,
        "env": {"STAGE": "test", "EXTRA": "1"},
    }
    assert build.options["timeout"] == 600.0
    assert build.prompt.endswith("### A heading inside the prompt\nmore")
    # No task declares depends_on: each follows the previous one.
    assert spec.sequential
    assert [t.depends_on for t in spec.tasks] == [(), ("research",), ("build_it",)]
    assert (research.line, research.prompt_line) == (14, 20)
    assert (build.line, build.prompt_line) == (26, 27)
    assert [(r.task, r.field) for r in ship.references] == [
        ("build_it", "files"),
        ("research", "session_id"),
    ]


def test_yaml_and_json_give_the_same_spec(tmp_path: Path) -> None:
    document = {
        "max_parallel": 3,
        "defaults": {"allowed_tools": "Read, Write", "on_error": "continue"},
        "tasks": [
            {"id": "a", "prompt": "first", "depends_on": []},
            {"id": "b", "prompt": "second", "depends_on": "a", "retries": 2},
            {"title": "Third step", "prompt": "{{ tasks.b.result }}", "depends_on": ["a", "b"]},
        ],
    }
    import yaml

    from_yaml = load_task_list(write(tmp_path, "l.yaml", yaml.safe_dump(document)))
    from_json = load_task_list(write(tmp_path, "l.json", json.dumps(document, indent=2)))
    from_data = parse_task_list(document, base_dir=tmp_path)
    for spec in (from_json, from_data):
        assert [t.to_dict() | {"line": 0, "prompt_line": 0} for t in spec.tasks] == [
            t.to_dict() | {"line": 0, "prompt_line": 0} for t in from_yaml.tasks
        ]
    assert [t.id for t in from_yaml.tasks] == ["a", "b", "third_step"]
    assert from_yaml.tasks[0].options == {"allowed_tools": ["Read", "Write"]}
    assert from_yaml.tasks[1].on_error == "continue"
    assert from_yaml.tasks[1].retries == 2
    assert not from_yaml.sequential
    assert from_yaml.order() == ["a", "b", "third_step"]
    # The normalized spec (kept for resumes) reads back unchanged.
    assert TaskListSpec.from_dict(from_yaml.to_dict()) == from_yaml


def test_relative_cwd_is_relative_to_the_file(tmp_path: Path) -> None:
    spec = load_task_list(
        write(tmp_path, "l.yaml", "tasks:\n  - {id: a, prompt: x, cwd: sub, add_dirs: [../o]}\n")
    )
    assert spec.tasks[0].options["cwd"] == str(tmp_path / "sub")
    assert spec.tasks[0].options["add_dirs"] == [str(tmp_path / ".." / "o")]


def test_ids_derived_from_titles() -> None:
    spec = parse_task_list(
        {
            "tasks": [
                {"title": "Écrire le README", "prompt": "x"},
                {"title": "2024 report", "prompt": "x"},
                {"prompt": "x"},
                {"title": "!!!", "prompt": "x"},
            ]
        }
    )
    assert [t.id for t in spec.tasks] == [
        "ecrire_le_readme",
        "task_2024_report",
        "task_3",
        "task_4",
    ]


YAML_ERRORS = """\
name: broken
max_parallel: 0
budget_usd: free
defaults:
  modle: x
tasks:
  - id: build
    prompt: build it
    dependson: [x]
  - id: build
    prompt: again
  - id: a
    prompt: "{{ tasks.c.result }}"
    depends_on: [b]
  - id: b
    depends_on: []
    prompt: |
      line one
      {{ tasks.zz.reslt }}
  - id: c
    prompt: "x"
    timeout: -3
    env: {A: [1]}
    on_error: retyr
    allowed_tools: 7
  - id: d
    prompt: "{{ tasks.c.rsult }}"
    depends_on: c
    resume_from: a
  - id: e
    prompt: "{% for t in tasks %}{% endfor %}"
    depends_on: nothere
  - id: f
    prompt: "{{ tasks.c.json.x }} {{ broken"
  - id: "bad id!"
    prompt: ""
  - id: g
    depends_on: [g]
"""


def test_every_yaml_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "tasks.yaml", YAML_ERRORS)
    p = str(path)
    assert problems(path) == [
        f"{p}:2: max_parallel: expected an integer >= 1, got 0",
        f"{p}:3: budget_usd: expected a number, got a string",
        f'{p}:5: unknown field "modle" (did you mean model?)',
        f'{p}:9: task "build": unknown field "dependson" (did you mean depends_on?)',
        f'{p}:10: duplicate id "build" (first used at line 7); give one of them a distinct id',
        f'{p}:13: task "a": template refers to tasks.c, which is not an ancestor of this task '
        '(add "c" to depends_on)',
        f'{p}:19: task "b": template refers to unknown task tasks.zz',
        f'{p}:19: task "b": template: tasks.zz.reslt: unknown field (did you mean result?) '
        "(known: result, files, json, session_id, cost_usd, num_turns, run_id, status, title, id)",
        f'{p}:22: task "c": timeout: expected a number > 0, got -3',
        f'{p}:23: task "c": env: A: expected a string, got a list',
        f"{p}:24: task \"c\": on_error: expected one of stop, continue, retry, got 'retyr'",
        f'{p}:25: task "c": allowed_tools: expected a list of strings (or one comma-separated '
        "string), got a number (7)",
        f'{p}:26: task "d": resume_from: "a" is not an ancestor of this task (add it to '
        "depends_on): its session must be finished first",
        f'{p}:27: task "d": template: tasks.c.rsult: unknown field (did you mean result?) '
        "(known: result, files, json, session_id, cost_usd, num_turns, run_id, status, title, id)",
        f'{p}:30: task "e": depends on unknown task "nothere"',
        f'{p}:31: task "e": use "tasks" only as tasks.<id> or tasks["<id>"] (the tasks a prompt '
        "reads must be known before the run)",
        f'{p}:34: task "f": template syntax error: unexpected end of template, expected '
        "'end of print statement'.",
        f"{p}:35: id: expected letters, digits, _ . - (starting with a letter, digit or _), "
        "got 'bad id!'",
        f'{p}:36: task "task_9": empty prompt',
        f'{p}:37: task "g": missing "prompt"',
        f'{p}:37: task "g": depends on itself',
    ]


def test_cycles_are_named(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "cycle.yaml",
        """\
        tasks:
          - id: a
            prompt: x
            depends_on: [c]
          - id: b
            prompt: x
            depends_on: [a]
          - id: c
            prompt: x
            depends_on: [b]
          - id: d
            prompt: x
        """,
    )
    assert problems(path) == [f'{path}:2: task "a": dependency cycle: a -> c -> b -> a']


def test_a_cycle_through_the_implicit_wait_for_the_previous_task_says_so(
    tmp_path: Path,
) -> None:
    # The user wrote only "a waits for b"; b waits for a because it comes after it.
    path = write(
        tmp_path, "m.md", "## Task 1: A\n\n```yaml\ndepends_on: [b]\n```\nx\n\n## Task 2: B\n\ny\n"
    )
    assert problems(path) == [
        f'{path}:1: task "a": dependency cycle: a -> b -> a (task "b" names no depends_on, '
        "so it waits for the task before it: give it depends_on, [] for none)"
    ]


MARKDOWN_ERRORS = """\
---
max_paralel: 2
defaults:
  retries: many
---
Intro.

## Task 1: Research
```yaml
id: research
dependson: nothing
prompt: not here
```
Research {{ tasks.report.result }}.

## Notes

## Task 2: Build
```yaml
resume_from: report
```
Build {{ tasks.research.reslt }} and {{ tasks.research.json.x }}

## Task 3: Report
```yaml
timeout: soon
depends_on: [research, buld]
```

## Task 4: Unclosed
```yaml
model: x
"""


def test_every_markdown_error_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "plan.md", MARKDOWN_ERRORS)
    p = str(path)
    assert problems(path) == [
        f'{p}:2: unknown field "max_paralel" (did you mean max_parallel?)',
        f"{p}:4: retries: expected an integer, got a string",
        f'{p}:11: task "research": unknown field "dependson" (did you mean depends_on?)',
        f'{p}:12: "prompt" cannot be set in a Markdown task: the section\'s text is the prompt',
        f'{p}:14: task "research": template refers to tasks.report, which is not an ancestor '
        'of this task (add "report" to depends_on)',
        f'{p}:16: "## Notes" is not a task heading: tasks are "## Task N: title" sections '
        "(use ### or deeper for headings inside a prompt)",
        f'{p}:18: task "build": resume_from: "report" is not an ancestor of this task (add it '
        "to depends_on): its session must be finished first",
        # Task 3 declares depends_on; task 2 still follows task 1, so it may read it.
        f'{p}:22: task "build": template: tasks.research.reslt: unknown field (did you mean '
        "result?) (known: result, files, json, session_id, cost_usd, num_turns, run_id, "
        "status, title, id)",
        f'{p}:24: task "report": empty prompt',
        f'{p}:24: task "report": depends on unknown task "buld" (did you mean build?)',
        f'{p}:26: task "report": timeout: expected a number, got a string',
        f'{p}:30: task "unclosed": empty prompt',
        f"{p}:31: settings block (```yaml) is not closed",
    ]


def test_invalid_yaml_syntax_has_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "t.yaml", "tasks:\n  - id: a\n    prompt: [unclosed\n")
    (line,) = problems(path)
    assert line.startswith(f"{path}:4: invalid YAML:")
    md = write(tmp_path, "t.md", "## Task 1: A\n```yaml\ntimeout: [1\n```\nDo it.\n")
    (line,) = problems(md)
    assert line.startswith(f"{md}:3: invalid YAML:")


def test_json_errors_have_lines_too(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "t.json",
        '{\n  "tasks": [\n    {"id": "a", "prompt": "x"},\n    {"id": "b", "promt": "y"}\n  ]\n}\n',
    )
    assert problems(path) == [
        f'{path}:4: task "b": unknown field "promt" (did you mean prompt?)',
        f'{path}:4: task "b": missing "prompt"',
    ]
    broken = write(tmp_path, "u.json", '{\n  "tasks": [\n')
    (line,) = problems(broken)
    assert line.startswith(f"{broken}:3: invalid JSON:")


def test_file_problems(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope.yaml") == [
        f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory"
    ]
    assert problems(write(tmp_path, "x.txt", "")) == [
        f"{tmp_path / 'x.txt'}: unknown format: name the file .md, .yaml, .yml or .json"
    ]
    # A folder and bytes that are not UTF-8 are named as such (they were "unknown
    # format", and a decoder's message followed by the folder it "looked in").
    (tmp_path / "dir.yaml").mkdir()
    for folder in (tmp_path, tmp_path / "dir.yaml"):
        assert problems(folder) == [
            f"{folder}: is a folder: give a task list file (.md, .yaml or .json)"
        ]
    latin = tmp_path / "latin.yaml"
    latin.write_bytes(b"tasks:\n  - {prompt: caf\xe9}\n")
    assert problems(latin) == [f"{latin}: cannot read: not UTF-8 text (byte 0xe9 at offset 23)"]
    assert problems(write(tmp_path, "e.md", "# Just a title\n")) == [
        f'{tmp_path / "e.md"}:1: no tasks: expected "## Task 1: <title>" '
        '(or "### Task 1: <title>") sections'
    ]
    assert problems(write(tmp_path, "e.yaml", "tasks: []\n")) == [
        f"{tmp_path / 'e.yaml'}:1: tasks: the list is empty"
    ]


def test_python_data_problems_name_the_place() -> None:
    with pytest.raises(TaskListError) as caught:
        parse_task_list({"tasks": [{"id": "a", "prompt": "x", "timeout": "1h"}]})
    assert (
        str(caught.value)
        == '<spec>: tasks[0].timeout: task "a": timeout: expected a number, got a string'
    )


def test_options_checked_against_run_options(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "o.yaml",
        """\
        tasks:
          - id: a
            prompt: x
            permission_mode: yolo
          - id: b
            prompt: "{{ tasks.a.json.version }}"
        """,
    )
    spec = load_task_list(path)
    with pytest.raises(TaskListError) as caught:
        task_options(spec, {})
    lines = str(caught.value).splitlines()
    assert lines[0].startswith(f'{path}:2: task "a": permission_mode must be one of')
    assert lines[1] == (
        f'{path}:6: task "b": template reads tasks.a.json, but task "a" sets neither '
        "json_mode nor json_schema (its json would be null)"
    )


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_cli_validate(tmp_path: Path) -> None:
    good = write(tmp_path, "plan.md", MARKDOWN)
    done = subprocess.run(
        [CLI, "tasks", "validate", str(good)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{good}: valid · 3 tasks · one at a time · max_parallel 2 · budget $1.5",
        "  wave 1  research · Research the API",
        "  wave 2  build_it · Build it!  (after research)",
        "  wave 3  task_3  (after build_it)",
    ]
    done = subprocess.run(
        [CLI, "tasks", "validate", str(good), "--json"], capture_output=True, text=True, check=False
    )
    assert json.loads(done.stdout)["tasks"][0]["id"] == "research"
    assert json.loads(done.stdout)["waves"] == [["research"], ["build_it"], ["task_3"]]
    bad = write(tmp_path, "tasks.yaml", YAML_ERRORS)
    done = subprocess.run(
        [CLI, "tasks", "validate", str(bad)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.splitlines() == problems(bad)


ORDER_MARKDOWN = """\
## Task 1: Fetch
Fetch the data.

## Task 2: Clean
Clean it.

## Task 3: Lint
```yaml
depends_on: []
```
Lint the repository.

## Task 4: Docs
```yaml
parallel: true
```
Write the docs.

## Task 5: Report
Report on {{ tasks.docs.result }}.
"""


def test_document_order_is_the_default_in_every_format(tmp_path: Path) -> None:
    """One task declaring depends_on (or parallel) leaves the others in document order: it
    made every other task parallel, so task 5 could read task 2 before it had run."""
    import yaml

    document = {
        "tasks": [
            {"id": "fetch", "prompt": "Fetch the data."},
            {"id": "clean", "prompt": "Clean it."},
            {"id": "lint", "prompt": "Lint the repository.", "depends_on": []},
            {"id": "docs", "prompt": "Write the docs.", "parallel": True},
            {"id": "report", "prompt": "Report on {{ tasks.docs.result }}."},
        ]
    }
    specs = [
        load_task_list(write(tmp_path, "order.md", ORDER_MARKDOWN)),
        load_task_list(write(tmp_path, "order.yaml", yaml.safe_dump(document))),
        load_task_list(write(tmp_path, "order.json", json.dumps(document))),
        parse_task_list(document),
    ]
    for spec in specs:
        assert [t.id for t in spec.tasks] == ["fetch", "clean", "lint", "docs", "report"]
        assert [t.depends_on for t in spec.tasks] == [
            (),
            ("fetch",),
            (),
            (),
            ("docs",),
        ]
        assert spec.waves() == [["fetch", "lint", "docs"], ["clean", "report"]]
        assert not spec.one_at_a_time
    # Reading a task that is not an ancestor is reported, never a race at run time.
    report = {"id": "report", "prompt": "Report on {{ tasks.clean.result }}."}
    with pytest.raises(TaskListError, match=r"template refers to tasks\.clean, which is not an"):
        parse_task_list({"tasks": [*document["tasks"][:-1], report]})


def test_parallel_on_the_list_removes_the_implicit_order(tmp_path: Path) -> None:
    spec = parse_task_list(
        {
            "parallel": True,
            "tasks": [
                {"id": "a", "prompt": "x"},
                {"id": "b", "prompt": "x"},
                {"id": "c", "prompt": "x", "parallel": False},
                {"id": "d", "prompt": "x", "depends_on": ["a", "c"]},
            ],
        }
    )
    assert [t.depends_on for t in spec.tasks] == [(), (), ("b",), ("a", "c")]
    assert spec.waves() == [["a", "b"], ["c"], ["d"]]
    chain = parse_task_list({"tasks": [{"id": "a", "prompt": "x"}, {"id": "b", "prompt": "x"}]})
    assert chain.one_at_a_time
    assert chain.sequential
    path = write(
        tmp_path,
        "p.yaml",
        "parallel: yes please\ndefaults:\n  parallel: true\ntasks:\n"
        "  - {id: a, prompt: x, parallel: 1}\n",
    )
    assert problems(path) == [
        f"{path}:1: parallel: expected true or false, got a string",
        f'{path}:3: unknown field "parallel" (set it on the list or on a task)',
        f'{path}:5: task "a": parallel: expected true or false, got a number (1)',
    ]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_cli_validate_shows_the_waves(tmp_path: Path) -> None:
    path = write(tmp_path, "order.md", ORDER_MARKDOWN)
    done = subprocess.run(
        [CLI, "tasks", "validate", str(path)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        f"{path}: valid · 5 tasks · 2 waves",
        "  wave 1  fetch · Fetch",
        "          lint · Lint",
        "          docs · Docs",
        "  wave 2  clean · Clean  (after fetch)",
        "          report · Report  (after docs)",
    ]


def test_validate_counts_one_task_and_one_wave_in_the_singular(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # It said "1 tasks" and "1 waves".
    from cc_executor._cli._tasks import _validate

    one = write(tmp_path, "one.yaml", "tasks:\n  - {id: a, prompt: x}\n")
    both = write(
        tmp_path, "both.yaml", "parallel: true\ntasks:\n  - {prompt: x}\n  - {prompt: y}\n"
    )
    for path in (one, both):
        assert _validate(argparse.Namespace(file=str(path), json=False)) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if "valid" in line]
    assert printed == [
        f"{one}: valid · 1 task · one at a time",
        f"{both}: valid · 2 tasks · 1 wave",
    ]


async def test_the_header_of_a_one_task_list_says_one_task(tmp_path: Path) -> None:
    # It said "1 tasks". The task's cwd does not exist: it ends at once, nothing started.
    from cc_executor._cli._tasks import TaskListView
    from cc_executor.tasks import start_tasks

    handle = start_tasks({"tasks": [{"prompt": "x", "cwd": str(tmp_path / "missing")}]})
    shown = io.StringIO()
    TaskListView(shown, tty=False, quiet=True).attach(handle)
    await handle.wait()
    assert f"list {handle.list_id} · 1 task · folder " in shown.getvalue()


async def test_a_list_stopped_by_spent_retries_says_so(tmp_path: Path) -> None:
    # It said 'task "a" failed and its on_error is retry', as if no retry had been made.
    # The task's cwd does not exist: each attempt ends at once, nothing started.
    from cc_executor.tasks import run_tasks

    spec = {"tasks": [{"id": "a", "prompt": "x", "cwd": str(tmp_path / "missing"),
                       "on_error": "retry", "retries": 1}]}  # fmt: skip
    result = await run_tasks(spec)
    assert result.tasks["a"].attempts == 2
    assert result.stopped_reason == 'task "a" failed on each of its 2 attempt(s) (on_error: retry)'


def test_reserve_usd_is_a_number_or_a_map_of_models(tmp_path: Path) -> None:
    spec = parse_task_list({"budget_usd": 2, "reserve_usd": 0.5, "tasks": [{"prompt": "x"}]})
    assert spec.reserve_usd == {"*": 0.5}
    spec = parse_task_list({"reserve_usd": {"opus": 2, "*": 1}, "tasks": [{"prompt": "x"}]})
    assert spec.reserve_usd == {"opus": 2.0, "*": 1.0}
    assert TaskListSpec.from_dict(spec.to_dict()) == spec
    path = write(tmp_path, "r.yaml", "reserve_usd: {opus: 0}\ntasks:\n  - {prompt: x}\n")
    assert problems(path) == [f"{path}:1: reserve_usd: opus: expected a number > 0, got 0"]


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_the_examples_of_docs_tasks_md_hold(tmp_path: Path) -> None:
    """docs/tasks.md: its Markdown list validates to the schedule the page prints, and its
    YAML list is valid with the reservations the page describes."""
    import re

    import yaml

    page = (Path(__file__).parents[2] / "docs" / "tasks.md").read_text()
    markdown = re.search(r"````markdown[^\n]*\n(.*?)````", page, re.S)  # info: file=order.md
    shown = re.search(r"\$ cc-executor tasks validate order\.md\n(.*?)```", page, re.S)
    assert markdown is not None
    assert shown is not None
    (tmp_path / "order.md").write_text(markdown.group(1))
    done = subprocess.run(
        [CLI, "tasks", "validate", "order.md"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == shown.group(1)
    (budget,) = [
        block for block in re.findall(r"```yaml\n(.*?)```", page, re.S) if "reserve_usd" in block
    ]
    spec = parse_task_list(yaml.safe_load(budget))
    assert spec.reserve_usd == {"*": 0.25, "opus": 0.6}
    assert spec.waves() == [["a", "b", "c", "d"]]
