"""`cc-executor tasks` through the console script, the real Claude Code CLI and the scripted
model server."""

from __future__ import annotations

import json
import signal
import subprocess
import textwrap
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor._store import Query, open_store
from cc_executor.testing import HttpErrorReply, Reply, Rule, Script, Text, ToolUse, Usage
from tests._pty import run_on_pty
from tests._wait import wait_for
from tests.tasks.conftest import CLI, Served

Serve = Callable[[Script], Served]


def write(served: Served, name: str, text: str) -> Path:
    path = served.work / name
    path.write_text(textwrap.dedent(text))
    return path


def as_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(lines[0])
    return data


def test_results_of_earlier_tasks_reach_later_prompts(serve: Serve) -> None:
    served = serve(
        Script(
            [
                # The answer holds template syntax: it must reach task 3 as plain text.
                Rule(match="^Research", answers=[Reply([Text("R-42 {{ 6 * 7 }}")])]),
                Rule(
                    match="^Build",
                    answers=[
                        Reply([ToolUse("Write", {"file_path": "out.txt", "content": "x\n"})]),
                        Reply([Text('Done: {"version": "1.2.3"}')]),
                    ],
                ),
                Rule(match="^Report", answers=[Reply([Text("Final report.")])]),
            ]
        )
    )
    write(
        served,
        "tasks.md",
        """\
        ---
        defaults:
          allowed_tools: Write
        ---
        # Release

        ## Task 1: Research
        Research the API.

        ## Task 2: Build
        ```yaml
        json_mode: true
        ```
        Build it using {{ tasks.research.result }}.

        ## Task 3: Report
        Report: {{ tasks.research.result }} / {{ tasks.build.result }}
        v{{ tasks.build.json.version }} / {{ tasks.build.files }}
        """,
    )
    done = served.cli("tasks", "run", "tasks.md", "--json")
    assert done.returncode == 0, done.stderr
    result = as_json(done)
    assert result["status"] == "ok"
    assert list(result["tasks"]) == ["research", "build", "report"]
    out_txt = str(served.work / "out.txt")
    assert served.prompts() == [
        "Research the API.",
        "Build it using R-42 {{ 6 * 7 }}.",
        "Build it using R-42 {{ 6 * 7 }}.",  # the turn after the Write tool call
        'Report: R-42 {{ 6 * 7 }} / Done: {"version": "1.2.3"}\nv1.2.3 / ' + out_txt,
    ]
    build = result["tasks"]["build"]
    assert build["json"] == {"version": "1.2.3"}
    assert build["files"] == [out_txt]
    assert result["cost_usd"] == pytest.approx(sum(t["cost_usd"] for t in result["tasks"].values()))

    # The list and each task run are in the history, the runs with the list as parent.
    store = open_store()
    try:
        record = store.get(result["list_id"])
        children = store.query(Query(parent_id=result["list_id"]))
    finally:
        store.close()
    assert record is not None
    assert (record.kind, record.status) == ("tasks", "ok")
    assert sorted(r.id for r in children) == sorted(t["run_id"] for t in result["tasks"].values())
    assert all(r.kind == "run" and r.status == "ok" for r in children)

    shown = served.cli("tasks", "show", result["list_id"][:10], "--json")
    assert shown.returncode == 0, shown.stderr
    assert as_json(shown)["tasks"]["report"]["result"] == "Final report."
    plain = served.cli("tasks", "show", result["list_id"])
    assert plain.stdout.splitlines()[1].split()[:2] == ["ok", "research"]


FAILING_LIST = """\
max_parallel: 1
defaults:
  on_error: {on_error}
tasks:
  - id: fails
    prompt: Fail now
    depends_on: []
  - id: after_fails
    prompt: Needs the failed one
    depends_on: [fails]
  - id: after_that
    prompt: Needs the skipped one
    depends_on: [after_fails]
  - id: independent
    prompt: Independent work
    depends_on: []
"""


@pytest.mark.parametrize("on_error", ["stop", "continue"])
def test_stop_or_continue_after_a_failure(serve: Serve, on_error: str) -> None:
    served = serve(
        Script(
            [
                Rule(match="^Fail", answers=[HttpErrorReply(400, message="scripted bad request")]),
                Rule(answers=[Reply([Text("fine")])]),
            ]
        )
    )
    write(served, "list.yaml", FAILING_LIST.format(on_error=on_error))
    done = served.cli("tasks", "run", "list.yaml", "--json")
    assert done.returncode == 1, done.stderr
    tasks = as_json(done)["tasks"]
    assert tasks["fails"]["status"] == "failed"
    assert "400" in tasks["fails"]["error"]
    assert tasks["after_fails"]["skipped_reason"] == 'dependency "fails" failed'
    assert tasks["after_that"]["skipped_reason"] == 'dependency "after_fails" was skipped'
    assert served.count("Needs") == 0
    if on_error == "stop":
        assert tasks["independent"]["status"] == "skipped"
        assert tasks["independent"]["skipped_reason"] == (
            'not started: task "fails" failed and its on_error is stop'
        )
        assert served.count("Independent") == 0
    else:
        assert tasks["independent"]["status"] == "ok"
        assert served.count("Independent") == 1
    assert "resume with: cc-executor tasks resume" in done.stderr


def run_caps(list_id: str) -> dict[str, str]:
    """The ``--max-budget-usd`` each task's run gave Claude Code, from the history."""
    store = open_store()
    try:
        runs = store.query(Query(parent_id=list_id))
    finally:
        store.close()
    caps = {}
    for record in runs:
        flag = "--max-budget-usd="
        (cap,) = [arg.removeprefix(flag) for arg in record.argv if arg.startswith(flag)]
        caps[record.prompt_preview or ""] = cap
    return caps


# 1,000 input + 1,000 output tokens: Claude Code prices them at $0.024 for this model.
PRICED = Reply([Text("done")], usage=Usage(input_tokens=1000, output_tokens=1000))


def test_each_run_gets_the_remaining_budget_as_its_cap(serve: Serve) -> None:
    """Tasks without a cap reserve the whole remainder: each run is given it as its
    max_budget_usd, so the list's budget is a ceiling, not a threshold checked between
    tasks (task two was started with $0.006 left and allowed to spend without limit)."""
    served = serve(Script([Rule(answers=[PRICED])]))
    write(
        served,
        "budget.yaml",
        """\
        budget_usd: 0.03
        tasks:
          - {id: one, prompt: Step one}
          - {id: two, prompt: Step two}
          - {id: three, prompt: Step three}
        """,
    )
    done = served.cli("tasks", "run", "budget.yaml", "--json")
    assert done.returncode == 1, done.stderr
    result = as_json(done)
    tasks = result["tasks"]
    assert tasks["one"]["cost_usd"] == pytest.approx(0.024)
    # Claude Code stops a run after the turn that went past its cap: task two spent
    # $0.024 of the $0.006 it was given, and ended budget_exceeded.
    assert [tasks[t]["status"] for t in ("one", "two", "three")] == ["ok", "failed", "skipped"]
    assert tasks["two"]["run_status"] == "budget_exceeded"
    assert [r["reserved_usd"] for r in tasks["two"]["runs"]] == [pytest.approx(0.006)]
    assert result["status"] == "budget_exceeded"
    assert result["budget_usd"] == 0.03
    assert result["budget_spent_usd"] == pytest.approx(0.048)
    assert run_caps(result["list_id"]) == {"Step one": "0.03", "Step two": "0.006"}
    assert served.count("Step three") == 0


def test_budget_reservations_start_only_the_tasks_that_fit(serve: Serve) -> None:
    """Budget $0.10, six parallel tasks each reserving $0.03 and costing $0.024: three run
    (at most three reservations fit at once, and what is left after them, $0.028, covers
    no other); the rest end budget_exceeded without starting, saying why, a task depending
    on one of them is skipped, and the total stays within the budget."""
    served = serve(Script([Rule(answers=[PRICED])]))
    write(
        served,
        "fleet.yaml",
        """\
        budget_usd: 0.1
        parallel: true
        reserve_usd: {"*": 0.03}
        tasks:
          - {id: t0, prompt: Step 0}
          - {id: t1, prompt: Step 1}
          - {id: t2, prompt: Step 2}
          - {id: t3, prompt: Step 3}
          - {id: t4, prompt: Step 4}
          - {id: t5, prompt: Step 5, model: opus}
          - {id: t6, prompt: Step 6, depends_on: [t5]}
        """,
    )
    done = served.cli(
        "tasks", "run", "fleet.yaml", "--max-parallel", "4", "--reserve-usd", "opus=0.05"
    )
    assert done.returncode == 1, done.stderr
    assert "budget: $0.0720 of $0.1 spent (the total can exceed the budget by what" in done.stdout
    shown = as_json(served.cli("tasks", "show", done.stderr.split("list ")[1].split()[0], "--json"))
    tasks = shown["tasks"]
    assert [tasks[f"t{i}"]["status"] for i in range(7)] == ["ok"] * 3 + ["budget_exceeded"] * 3 + [
        "skipped"
    ]
    left = "is more than the $0.0280 left of budget_usd $0.1"
    assert tasks["t3"]["error"] == f"not started: its reservation $0.0300 {left}"
    assert tasks["t5"]["error"] == f"not started: its reservation $0.0500 {left}"
    assert tasks["t5"]["runs"] == []
    assert tasks["t5"]["run_id"] is None
    assert tasks["t6"]["skipped_reason"] == 'dependency "t5" ended budget_exceeded'
    assert "budget_exceeded  t3" in done.stdout
    assert left in done.stdout
    assert shown["status"] == "budget_exceeded"
    assert shown["cost_usd"] == pytest.approx(0.072)
    assert shown["budget_spent_usd"] == pytest.approx(0.072)
    assert run_caps(shown["list_id"]) == {f"Step {i}": "0.03" for i in range(3)}
    assert served.count("Step 3") == served.count("Step 4") == served.count("Step 5") == 0
    bad = served.cli("tasks", "run", "fleet.yaml", "--reserve-usd", "opus=free")
    assert bad.returncode == 2
    assert "--reserve-usd: expected USD or MODEL=USD with USD > 0, got 'opus=free'" in bad.stderr


def test_the_config_files_reservation_decides_whether_a_run_starts(
    serve: Serve, cc_home: Path
) -> None:
    """$CC_EXECUTOR_HOME/config.toml reserves $0.06 a run: a $0.05 budget cannot cover it,
    so the task does not start; the list's own reserve_usd, or --reserve-usd, wins over the
    file, and the same task starts with that cap."""
    served = serve(Script([Rule(answers=[PRICED])]))
    cc_home.mkdir(exist_ok=True)
    (cc_home / "config.toml").write_text('[reserve_usd]\n"*" = 0.06\n')
    write(served, "one.yaml", "tasks:\n  - {id: one, prompt: Step one}\n")
    refused = served.cli("tasks", "run", "one.yaml", "--budget-usd", "0.05", "--json")
    assert refused.returncode == 1, refused.stderr
    task = as_json(refused)["tasks"]["one"]
    assert task["status"] == "budget_exceeded"
    assert task["error"] == (
        "not started: its reservation $0.0600 is more than the $0.0500 left of budget_usd $0.05"
    )
    assert served.count("Step") == 0
    write(
        served,
        "own.yaml",
        """\
        reserve_usd: {"*": 0.03}
        tasks:
          - {id: two, prompt: Step two}
        """,
    )
    for args in (["own.yaml"], ["one.yaml", "--reserve-usd", "0.03"]):
        done = served.cli("tasks", "run", *args, "--budget-usd", "0.05", "--json")
        assert done.returncode == 0, done.stderr
        result = as_json(done)
        assert [t["status"] for t in result["tasks"].values()] == ["ok"]
        assert list(run_caps(result["list_id"]).values()) == ["0.03"]
    assert served.count("Step") == 2


SLOW_LIST = """\
tasks:
  - {id: first, prompt: First step}
  - {id: second, prompt: Second step}
  - {id: slow, prompt: Slow step}
  - {id: last, prompt: "Last step after {{ tasks.slow.result }}"}
"""


def claude_processes(work: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("cwd") == str(work) and any("claude" in part for part in cmdline[:2]):
            found.append(proc)
    return found


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_list_resumes_without_rerunning_completed_tasks(
    serve: Serve, sig: signal.Signals
) -> None:
    """SIGKILL (a crash: the watchdog kills the CLI's tree) or Ctrl-C (an orderly cancel,
    exit 130) in the middle of task 3; `tasks resume` then runs neither task 1 nor 2 again,
    continues task 3's Claude session, and finishes the list."""
    served = serve(
        Script(
            [
                Rule(
                    match="^Slow",
                    answers=[
                        Reply([Text("s" * 300)], chunk_size=2, delay=0.05),  # ~8 s
                        Reply([Text("slow done")]),  # the continued session's next turn
                    ],
                ),
                Rule(answers=[Reply([Text("quick")])]),
            ]
        )
    )
    write(served, "slow.yaml", SLOW_LIST)
    proc = served.popen("tasks", "run", "slow.yaml")
    assert proc.stderr is not None
    header = proc.stderr.readline()
    list_id = header.split("list ")[1].split()[0]
    folder = Path(header.split("folder ")[1].strip())
    state = folder / "tasks" / "slow.json"

    def slow_has_session() -> bool:
        try:
            runs = json.loads(state.read_text())["runs"]
        except (OSError, ValueError):
            return False
        return bool(runs and runs[-1]["session_id"]) and served.count("Slow") == 1

    wait_for(slow_has_session, what="the slow task's session")
    time.sleep(0.5)  # a moment inside the ~8 s answer: where the interrupt is under test
    assert claude_processes(served.work)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=60)
    session = json.loads(state.read_text())["runs"][-1]["session_id"]
    wait_for(lambda: not claude_processes(served.work), what="no CLI left")

    shown = as_json(served.cli("tasks", "show", list_id, "--json"))
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
        assert (shown["status"], shown["tasks"]["slow"]["status"]) == ("interrupted",) * 2
    else:
        assert proc.returncode == 130, err
        assert (shown["status"], shown["tasks"]["slow"]["status"]) == ("cancelled",) * 2
        assert "cancelled" in out
        assert f"resume with: cc-executor tasks resume {list_id}" in err
    assert [shown["tasks"][t]["status"] for t in ("first", "second", "last")] == [
        "ok",
        "ok",
        "pending",
    ]

    done = served.cli("tasks", "resume", list_id, "--json")
    assert done.returncode == 0, done.stderr
    result = as_json(done)
    assert result["status"] == "ok"
    assert [served.count(p) for p in ("First", "Second", "Slow", "Last")] == [1, 1, 2, 1]
    slow = result["tasks"]["slow"]
    assert [r["resumed_session"] for r in slow["runs"]] == [None, session]
    assert slow["result"] == "slow done"
    assert served.prompts()[-1] == "Last step after slow done"
    assert result["tasks"]["first"]["attempts"] == 1

    again = served.cli("tasks", "resume", list_id)  # nothing left to do
    assert again.returncode == 0, again.stderr
    assert served.count("Last") == 1


def test_unknown_list_and_invalid_file(serve: Serve) -> None:
    served = serve(Script([Rule(answers=[Reply([Text("x")])])]))
    done = served.cli("tasks", "resume", "01nosuchlist")
    assert done.returncode == 2
    assert "no task list run '01nosuchlist'" in done.stderr
    write(served, "bad.yaml", "tasks:\n  - {id: a, prompt: x, timeout: soon}\n")
    done = served.cli("tasks", "run", "bad.yaml")
    assert done.returncode == 2
    assert done.stderr == 'bad.yaml:2: task "a": timeout: expected a number, got a string\n'
    assert served.prompts() == []


def test_live_view_on_a_terminal(serve: Serve) -> None:
    served = serve(
        Script(
            [
                Rule(match="^Evil", answers=[Reply([Text("x \x1b]0;pwned\x07 \x1b[2J y")])]),
                Rule(answers=[Reply([Text("fine")])]),
            ]
        )
    )
    write(
        served,
        "view.md",
        """\
        ## Task 1: Evil
        Evil answer please.

        ## Task 2: Show
        Show {{ tasks.evil.result }}
        """,
    )
    returncode, screen = run_on_pty(
        [CLI, "tasks", "run", "view.md"],
        cwd=served.work,
        env={**served.env, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "30"},
    )
    assert returncode == 0, screen.decode(errors="replace")
    for column in (b"task", b"state", b"elapsed", b"turns", b"cost", b"activity"):
        assert column in screen
    assert b"2/2" in screen  # the overall bar's count
    assert b"\x1b]0;pwned" not in screen
    assert b"\x1b[2J y" not in screen
    assert served.prompts()[-1] == "Show x \x1b]0;pwned\x07 \x1b[2J y"  # data reaches the model


def test_a_warning_is_printed_once(serve: Serve) -> None:
    """A history that cannot be opened is reported by every task's run and by the list's
    own record in the same words: the command prints it once (it printed it twice)."""
    served = serve(Script([Rule(answers=[Reply([Text("fine")])])]))
    (Path(served.env["CC_EXECUTOR_HOME"]) / "history.sqlite3").mkdir(parents=True)
    write(served, "list.yaml", "tasks:\n  - id: one\n    prompt: One\n")
    done = served.cli("tasks", "run", "list.yaml", "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("warning: history not recorded") == 1, done.stderr
    as_object = as_json(served.cli("tasks", "run", "list.yaml", "--json", "--quiet"))
    assert len(as_object["warnings"]) == len(set(as_object["warnings"])) == 1


def test_max_parallel_on_a_list_that_runs_one_at_a_time_says_so(serve: Serve) -> None:
    served = serve(Script([Rule(answers=[Reply([Text("fine")])])]))
    write(served, "chain.md", "## Task 1: One\nStep one.\n\n## Task 2: Two\nStep two.\n")
    done = served.cli("tasks", "run", "chain.md", "--max-parallel", "3", "--json")
    assert done.returncode == 0, done.stderr
    note = (
        "max_parallel 3: this list runs one task at a time (each task waits for the one "
        "before it); to run tasks at once, give them depends_on or parallel: true (or "
        "parallel: true on the list)"
    )
    assert f"cc-executor tasks: note: {note}\n" in done.stderr
    assert done.stderr.count(note) == 1  # shown at the start, not again at the end
    assert note in as_json(done)["warnings"]
    write(served, "both.md", "---\nparallel: true\n---\n" + (served.work / "chain.md").read_text())
    done = served.cli("tasks", "run", "both.md", "--max-parallel", "3", "--json")
    assert done.returncode == 0, done.stderr
    assert "note:" not in done.stderr
    assert not [w for w in as_json(done)["warnings"] if "one task at a time" in w]


def test_the_progress_says_which_attempt_runs_and_why(serve: Serve) -> None:
    served = serve(
        Script(
            [
                Rule(
                    answers=[
                        Reply(
                            [Text("second time lucky")],
                            # Claude Code sends a request that got a 400 six times in all.
                            errors_before=[HttpErrorReply(400, message="scripted bad request")] * 6,
                        )
                    ]
                )
            ]
        )
    )
    write(served, "retry.yaml", "tasks:\n  - {id: flaky, prompt: Flaky, retries: 1}\n")
    done = served.cli("tasks", "run", "retry.yaml")
    assert done.returncode == 0, done.stderr
    assert "flaky: running (attempt 1 of 2, run " in done.stderr
    assert "flaky: retrying · attempt 1 of 2 ended error: " in done.stderr
    assert "; attempt 2 starts afresh" in done.stderr
    assert "flaky: running (attempt 2 of 2 after error, run " in done.stderr
