"""`cc-executor batch` through the console script, the real Claude Code CLI and the scripted
model server."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from cc_executor._store import Query, open_store
from cc_executor.testing import HttpErrorReply, ModelServer, Reply, Rule, Script, Text
from tests._means import claude_path, uses_cli
from tests._wait import wait_for
from tests.tasks.conftest import CLI, Served

SCRIPT = Script(
    [
        Rule(match="^fail", answers=[HttpErrorReply(400, message="scripted bad request")]),
        # About 100 s: these are always interrupted.
        Rule(match="^slow", answers=[Reply([Text("s" * 4000)], chunk_size=2, delay=0.05)]),
        *(Rule(match=f"^doc {n}$", answers=[Reply([Text(f"answer {n}")])]) for n in range(1, 6)),
    ]
)


@pytest.fixture
@uses_cli
def served(tmp_path: Path) -> Iterator[Served]:
    claude = claude_path()
    assert claude is not None  # the cli marker's probe skipped the test otherwise
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    with ModelServer(SCRIPT) as server:
        yield Served(server, work, home, claude)


def one_json(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout + done.stderr
    data: dict[str, Any] = json.loads(lines[0])
    return data


def records(batch_id: str) -> list[Any]:
    store = open_store()
    try:
        return store.query(Query(batch_id=batch_id))
    finally:
        store.close()


def test_a_file_of_prompts_and_its_rerun(served: Served) -> None:
    """Results in line order with their run ids; a re-run with the batch id runs only the
    line that did not end ok; progress is on stderr, one line per start and end."""
    (served.work / "prompts.txt").write_text("doc 1\n\ndoc 2\nfail now\ndoc 3\n")
    done = served.cli(
        "batch", "prompts.txt", "--timeout", "120", "--concurrency", "2", "--batch-id", "b1",
        "--json",
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    first = one_json(done)
    assert [r["status"] for r in first["results"]] == ["ok", "ok", "error", "ok"]
    assert [r["result"] for r in first["results"][:2]] == ["answer 1", "answer 2"]
    assert first["batch_id"] == "b1"
    assert first["counts"] == {"ok": 3, "error": 1}
    ids = [r["run_id"] for r in first["results"]]
    assert sorted(r.id for r in records("b1")) == sorted(ids)
    for run_id in ids:  # each start and end, naming the run
        assert done.stderr.count(f"run {run_id}") == 2, done.stderr
    assert "line 4: error" in done.stderr
    assert "run again with --batch-id b1" in done.stderr

    again = served.cli("batch", "prompts.txt", "--timeout", "120", "--batch-id", "b1")
    assert again.returncode == 1, again.stderr
    assert [served.count(p) for p in ("doc 1", "doc 2", "doc 3")] == [1, 1, 1]
    table = again.stdout.splitlines()
    assert table[0].split() == ["LINE", "STATUS", "RUN", "ID", "COST", "ANSWER"]
    assert table[1].split()[:3] == ["1", "ok*", ids[0]]
    assert table[3].split()[:2] == ["4", "error"]
    assert table[3].split()[2] != ids[2]  # run again
    assert "3 reused" in again.stderr
    assert len(records("b1")) == 5
    listed = served.cli("history", "--batch", "b1", "--json")
    assert len(json.loads(listed.stdout)) == 5


def test_jsonl_keys_options_and_relative_paths(served: Served) -> None:
    sub = served.work / "sub"
    sub.mkdir()
    (served.work / "docs.jsonl").write_text(
        json.dumps({"prompt": "doc 4", "key": "four", "options": {"cwd": "sub"}})
        + "\n"
        + json.dumps({"prompt": "doc 5"})
        + "\n"
    )
    done = served.cli("batch", "docs.jsonl", "--timeout", "120", "--json", "--quiet")
    assert done.returncode == 0, done.stderr
    result = one_json(done)
    assert done.stderr == ""
    assert result["results"][0]["key"] == "four"
    assert result["results"][1]["key"].startswith("sha256:")
    (four,) = [r for r in records(result["batch_id"]) if r.batch_key == "four"]
    assert four.cwd == str(sub)


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_bad_files_and_flags_are_one_line_usage_errors(tmp_path: Path) -> None:
    """Nothing runs: each problem is one line naming the file's line or the flag."""
    good = tmp_path / "good.txt"
    good.write_text("hello\n")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "a"}\n\n{"prompt": "b", "options": {"max_turns": 0}}\n')
    broken = tmp_path / "broken.jsonl"
    broken.write_text('{"prompt": "a"}\nnot json\n')
    unknown = tmp_path / "unknown.jsonl"
    unknown.write_text('{"prompt": "a", "prmopt": "b"}\n')
    empty = tmp_path / "empty.txt"
    empty.write_text("\n \n")
    for args, says in (
        ([str(good)], "the following arguments are required: --timeout"),
        ([str(tmp_path / "nope.txt"), "--timeout", "5"], "No such file or directory"),
        ([str(empty), "--timeout", "5"], f"{empty} holds no prompt"),
        ([str(bad), "--timeout", "5"], f"{bad}:3: max_turns must be >= 1"),
        ([str(broken), "--timeout", "5"], f"{broken}:2: not a JSON object"),
        ([str(unknown), "--timeout", "5"], f"{unknown}:1: unknown field(s) prmopt"),
        ([str(good), "--timeout", "5", "--concurrency", "0"], "--concurrency must be"),
        ([str(good), "--timeout", "5", "--budget-usd", "-1"], "--budget-usd must be"),
        ([str(good), "--timeout", "5", "--max-turns", "0"], "--max-turns must be >= 1"),
    ):
        done = subprocess.run(
            [CLI, "batch", *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 2, (args, done.stderr)
        assert says in done.stderr, (args, done.stderr)
        assert done.stderr.count("\n") == 1, done.stderr
        assert "Traceback" not in done.stderr
    done = subprocess.run(
        [CLI, "batch", str(bad), "--timeout", "5", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(done.stdout)["status"] == "usage_error"


def claude_processes(work: Path) -> list[psutil.Process]:
    found = []
    for proc in psutil.process_iter(["cwd", "cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if proc.info.get("cwd") == str(work) and any("claude" in part for part in cmdline[:2]):
            found.append(proc)
    return found


def test_ctrl_c_stops_every_run_and_keeps_the_finished_ones(served: Served) -> None:
    """SIGINT while three runs answer: exit 130, no CLI left alive, the finished runs
    recorded ok, the interrupted ones cancelled, the last line never started."""
    lines = ["doc 1", "doc 2", "slow a", "slow b", "slow c", "slow d"]
    (served.work / "prompts.txt").write_text("\n".join(lines) + "\n")
    proc = served.popen(
        "batch", "prompts.txt", "--timeout", "300", "--concurrency", "3", "--batch-id", "ctrl-c"
    )

    def answering() -> bool:
        asked = [served.count(p) for p in ("slow a", "slow b", "slow c")]
        return asked == [1, 1, 1] and len(claude_processes(served.work)) == 3

    wait_for(answering, timeout=120, what="three slow runs answering")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    wait_for(lambda: not claude_processes(served.work), what="no CLI left")
    by_prompt = {r.prompt_preview: r for r in records("ctrl-c")}
    assert {p: by_prompt[p].status for p in by_prompt} == {
        "doc 1": "ok",
        "doc 2": "ok",
        "slow a": "cancelled",
        "slow b": "cancelled",
        "slow c": "cancelled",
    }
    assert served.count("slow d") == 0
    rows = [line.split() for line in out.splitlines()[1:]]
    assert [row[1] for row in rows] == [
        "ok",
        "ok",
        "cancelled",
        "cancelled",
        "cancelled",
        "skipped",
    ]
    assert "interrupted: 1 document(s) not started" in err
