"""Sending: the round trip between two real repositories, refusals, concurrency, evidence."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

from cc_executor.notify import (
    DeliveryError,
    Fix,
    InvalidMessage,
    build_message,
    read_inbox,
    schema,
    schema_problems,
    write_new_file,
)
from tests.notify.conftest import CLI, MakeRepo, cc, commit, git, inbox_files, read_json


def test_the_shipped_schema_is_a_valid_draft_2020_12_schema() -> None:
    from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

    Draft202012Validator.check_schema(schema())
    assert schema()["properties"]["type"]["enum"] == [
        "issue_fixed", "issue_report", "question", "ack",
    ]  # fmt: skip


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_round_trip_fix_then_ack_between_two_repositories(make_repo: MakeRepo) -> None:
    sender = make_repo("sender-proj", remote=True)
    receiver = make_repo("receiver-proj")
    head = commit(sender, "fix.py", "fixed = True\n")
    git(sender, "push", "-q")

    sent = cc(
        "notify", "--to", str(receiver), "--issue", "7", "--fix", "5: parser accepts CRLF",
        "--fix", "#6: no crash on empty input", "--verify-step", "pytest tests/test_parser.py",
        "--message", "Both fixed, please re-test.", "--json", cwd=sender,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stderr
    result = json.loads(sent.stdout)
    path = Path(result["path"])
    assert path.parent == receiver / ".github" / "ISSUES" / "inbox"
    kind, name, seconds, short_id = path.stem.rsplit("_", 3)
    assert (kind, name) == ("issue_fixed", "sender-proj")
    assert abs(int(seconds) - time.time()) < 60
    assert len(short_id) == 8
    message = read_json(path)
    assert message == result["message"]
    assert message["type"] == "issue_fixed"
    assert message["from"] == "sender-proj"
    assert message["to"] == "receiver-proj"
    assert message["commit_sha"] == head
    assert message["issue_numbers"] == [7, 5, 6]
    assert message["fixes_implemented"] == [
        {"issue": 5, "status": "fixed", "description": "parser accepts CRLF", "test_result": None},
        {"issue": 6, "status": "fixed", "description": "no crash on empty input",
         "test_result": None},
        {"issue": 7, "status": "fixed", "description": "", "test_result": None},
    ]  # fmt: skip
    assert message["verification_steps"] == ["pytest tests/test_parser.py"]
    assert message["timestamp"].endswith("Z")
    assert message["reply_to"] == str(sender)
    assert schema_problems(message) == []
    assert path.read_bytes().isascii()

    listed = cc("inbox", "list", "--json", cwd=receiver)
    assert listed.returncode == 0, listed.stderr
    inbox = json.loads(listed.stdout)
    assert inbox["problems"] == []
    assert [e["id"] for e in inbox["entries"]] == [path.name]
    assert inbox["entries"][0]["message"] == message
    shown = cc("inbox", "show", path.stem[:20], cwd=receiver)
    assert shown.returncode == 0, shown.stderr
    assert head in shown.stdout
    assert "parser accepts CRLF" in shown.stdout

    # The reply goes only where the user says, and the entry moves to processed/.
    acked = cc("inbox", "ack", path.name, "--reply-to", str(sender), "--json", cwd=receiver)
    assert acked.returncode == 0, acked.stderr
    ack = json.loads(acked.stdout)
    assert Path(ack["moved_to"]) == path.parent / "processed" / path.name
    assert Path(ack["moved_to"]).exists()
    assert not path.exists()
    [reply_path] = inbox_files(sender)
    assert Path(ack["reply"]) == reply_path
    reply = read_json(reply_path)
    assert reply["type"] == "ack"
    assert (reply["from"], reply["to"]) == ("receiver-proj", "sender-proj")
    assert reply["in_reply_to"] == path.name
    assert reply["issue_numbers"] == [7, 5, 6]
    assert reply["commit_sha"] == git(receiver, "rev-parse", "HEAD")
    assert json.loads(cc("inbox", "--json", cwd=receiver).stdout)["entries"] == []
    back = read_inbox(sender)
    assert [e.id for e in back.entries] == [reply_path.name]


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_refuses_a_fix_with_uncommitted_changes(make_repo: MakeRepo) -> None:
    sender = make_repo("dirty", remote=True)
    receiver = make_repo("target")
    (sender / "README").write_text("edited, not committed\n")
    done = cc("notify", "--to", str(receiver), "--issue", "1", cwd=sender)
    assert done.returncode == 1
    assert "uncommitted changes" in done.stderr
    assert "README" in done.stderr
    assert not (receiver / ".github").exists()
    # Staged but not committed is still not committed.
    git(sender, "add", "README")
    assert cc("notify", "--to", str(receiver), "--issue", "1", cwd=sender).returncode == 1
    git(sender, "commit", "-q", "-m", "commit it")
    git(sender, "push", "-q")
    # Untracked files are not part of the fix's commit either way; they do not block.
    (sender / "scratch.txt").write_text("untracked\n")
    done = cc("notify", "--to", str(receiver), "--issue", "1", cwd=sender)
    assert done.returncode == 0, done.stderr


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_refuses_an_unpushed_fix_unless_allowed(make_repo: MakeRepo) -> None:
    sender = make_repo("unpushed", remote=True)
    receiver = make_repo("target")
    head = commit(sender, "fix.py", "x = 1\n")
    done = cc("notify", "--to", str(receiver), "--issue", "3", cwd=sender)
    assert done.returncode == 1
    assert "not on any remote-tracking branch" in done.stderr
    assert "--allow-unpushed" in done.stderr
    assert inbox_files(receiver) == []
    done = cc("notify", "--to", str(receiver), "--issue", "3", "--allow-unpushed", cwd=sender)
    assert done.returncode == 0, done.stderr
    [path] = inbox_files(receiver)
    assert read_json(path)["commit_sha"] == head
    assert Path(done.stdout.strip()) == path


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_a_repository_without_remote_and_other_types(make_repo: MakeRepo, tmp_path: Path) -> None:
    sender = make_repo("local-only")
    receiver = make_repo("target")
    subdir = sender / "src"
    subdir.mkdir()
    # No remote: nothing to push to, so nothing is refused; the sender is the git top level.
    done = cc("notify", "--to", str(receiver), "--issue", "9", "--json", cwd=subdir)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["message"]["from"] == "local-only"
    # A question needs no commit and no clean tree; outside git it carries no commit at all.
    (sender / "README").write_text("dirty\n")
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    done = cc(
        "notify", "--to", str(receiver), "--type", "question", "--message", "Which API?",
        "--json", cwd=plain,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    message = json.loads(done.stdout)["message"]
    assert message["type"] == "question"
    assert message["from"] == "not-a-repo"
    assert "commit_sha" not in message
    assert "fixes_implemented" not in message
    # issue_fixed outside git, --fix on a question, an unknown project: refused, nothing written.
    before = inbox_files(receiver)
    assert cc("notify", "--to", str(receiver), "--issue", "1", cwd=plain).returncode == 1
    bad = cc("notify", "--to", str(receiver), "--type", "question", "--fix", "1: x", cwd=plain)
    assert bad.returncode == 1
    missing = cc("notify", "--to", str(tmp_path / "nowhere"), "--type", "question", cwd=plain)
    assert missing.returncode == 1
    assert "not a directory" in missing.stderr
    # issue_fixed without any issue does not match the schema.
    assert cc("notify", "--to", str(receiver), cwd=sender / "src").returncode == 1
    assert inbox_files(receiver) == before


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_dry_run_checks_and_writes_nothing(make_repo: MakeRepo) -> None:
    sender = make_repo("sender", remote=True)
    receiver = make_repo("target")
    done = cc("notify", "--to", str(receiver), "--issue", "2", "--dry-run", cwd=sender)
    assert done.returncode == 0, done.stderr
    assert "would write" in done.stdout
    assert not (receiver / ".github").exists()
    commit(sender, "x", "y")
    assert (
        cc("notify", "--to", str(receiver), "--issue", "2", "--dry-run", cwd=sender).returncode == 1
    )


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_never_writes_through_a_symlinked_inbox(make_repo: MakeRepo, tmp_path: Path) -> None:
    sender = make_repo("sender")
    receiver = make_repo("target")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (receiver / ".github").symlink_to(elsewhere)
    done = cc("notify", "--to", str(receiver), "--issue", "1", cwd=sender)
    assert done.returncode == 1
    assert "outside" in done.stderr
    assert list(elsewhere.rglob("*")) == []


@pytest.mark.slow
def test_twenty_concurrent_notifiers_never_clobber(make_repo: MakeRepo) -> None:
    sender = make_repo("busy", remote=True)
    receiver = make_repo("target")
    procs = [
        subprocess.Popen(
            [CLI, "notify", "--to", str(receiver), "--issue", str(n), "--message", f"n={n}"],
            cwd=sender,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for n in range(20)
    ]
    outputs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 20, [err for _, err in outputs]
    files = inbox_files(receiver)
    assert len(files) == 20
    assert sorted(Path(out.strip()) for out, _ in outputs) == files
    messages = sorted(read_json(f)["message"] for f in files)
    assert messages == sorted(f"n={n}" for n in range(20))
    # Many of them shared a second: the short id, not the time, keeps the names apart.
    seconds = Counter(f.stem.rsplit("_", 2)[1] for f in files)
    assert max(seconds.values()) >= 2
    # No temporary file is left behind.
    assert [p.name for p in files[0].parent.iterdir() if not p.name.endswith(".json")] == []


def test_write_new_file_never_replaces_and_races_are_safe(tmp_path: Path) -> None:
    (tmp_path / "taken.json").write_bytes(b"first")
    path = write_new_file(tmp_path, iter(["taken.json", "free.json"]), b"second")
    assert path == tmp_path / "free.json"
    assert (tmp_path / "taken.json").read_bytes() == b"first"
    assert path.read_bytes() == b"second"
    with pytest.raises(DeliveryError, match="taken"):
        write_new_file(tmp_path, iter(["taken.json", "free.json"]), b"third")

    # 16 threads competing for the same 16 names: each gets one, every content survives.
    names = [f"slot-{i}.json" for i in range(16)]
    results: list[Path] = []
    barrier = threading.Barrier(16)

    def writer(n: int) -> None:
        barrier.wait()
        results.append(write_new_file(tmp_path, iter(names), f"writer {n}".encode()))

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == sorted(tmp_path / n for n in names)
    assert sorted(p.read_text() for p in results) == sorted(f"writer {n}" for n in range(16))
    assert [p for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []


def test_build_message_validates_before_anything_is_written() -> None:
    with pytest.raises(InvalidMessage, match="commit_sha"):
        build_message(
            type="issue_fixed", sender="a", target="b", issue_numbers=[1],
            fixes=[Fix(issue=1, description="")],
        )  # fmt: skip
    with pytest.raises(InvalidMessage, match=r"at commit_sha: 'HEAD' does not match"):
        build_message(
            type="issue_fixed", sender="a", target="b", issue_numbers=[1],
            commit_sha="HEAD", fixes=[Fix(issue=1, description="")],
        )  # fmt: skip
    assert Fix.parse("#12:  trimmed ") == Fix(issue=12, description="trimmed")
    assert Fix.parse("ABC-3") == Fix(issue="ABC-3", description="")
    assert cc("notify", "--to", ".", "--fix", ": nothing").returncode == 2


def _exec(env_home: Path, *command: str) -> dict[str, object]:
    done = subprocess.run(
        [CLI, "exec", "--json", "--", *command], capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout)
    assert env_home.exists()
    return result


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_from_run_fills_status_and_receipts(make_repo: MakeRepo, cc_home: Path) -> None:
    sender = make_repo("tested", remote=True)
    receiver = make_repo("target")
    run = _exec(cc_home, "echo", "hi")
    assert run["status"] == "ok"
    done = cc(
        "notify", "--to", str(receiver), "--fix", "4: fixed", "--from-run", str(run["run_id"]),
        "--json", cwd=sender,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    [fix] = json.loads(done.stdout)["message"]["fixes_implemented"]
    evidence = fix["test_result"]
    assert evidence["run_id"] == run["run_id"]
    assert evidence["status"] == "ok"
    assert evidence["exit_code"] == 0
    assert evidence["argv"] == ["echo", "hi"]
    assert evidence["receipts_verified"] is True
    receipts = {a["name"]: a for a in evidence["artifacts"]}
    assert receipts["stdout"]["sha256"] == hashlib.sha256(b"hi\n").hexdigest()
    assert receipts["stdout"]["size"] == 3
    assert receipts["stderr"]["sha256"] == hashlib.sha256(b"").hexdigest()
    assert all("path" not in a for a in evidence["artifacts"])

    # The receiver, sharing the history, checks the claim against it.
    shown = cc("inbox", "show", "issue_fixed", "--verify-runs", "--json", cwd=receiver)
    assert shown.returncode == 0, shown.stderr
    [check] = json.loads(shown.stdout)["evidence_checks"]
    assert check["state"] == "verified"
    text = cc("inbox", "show", "issue_fixed", "--verify-runs", cwd=receiver).stdout
    assert "local history: verified" in text
    assert receipts["stdout"]["sha256"] in text

    # Altering the run's output afterwards breaks the claim, on both sides.
    Path(str(run["stdout_path"])).write_text("forged\n")
    shown = cc("inbox", "show", "issue_fixed", "--verify-runs", "--json", cwd=receiver)
    assert json.loads(shown.stdout)["evidence_checks"][0]["state"] == "altered"
    refused = cc("notify", "--to", str(receiver), "--fix", "4: ok",
                 "--from-run", str(run["run_id"]),
                 cwd=sender)  # fmt: skip
    assert refused.returncode == 1
    assert "altered" in refused.stderr


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_from_run_refuses_a_failed_or_unknown_run(make_repo: MakeRepo, cc_home: Path) -> None:
    sender = make_repo("tested", remote=True)
    receiver = make_repo("target")
    failed = _exec(cc_home, "false")
    assert failed["status"] == "failed"
    done = cc("notify", "--to", str(receiver), "--fix", "4: ok",
              "--from-run", str(failed["run_id"]), cwd=sender)  # fmt: skip
    assert done.returncode == 1
    assert "'failed', not 'ok'" in done.stderr
    unknown = "01nosuchrun000000000000000"
    done = cc(
        "notify", "--to", str(receiver), "--fix", "4: fixed", "--from-run", unknown, cwd=sender
    )
    assert done.returncode == 1
    assert "no run" in done.stderr
    assert inbox_files(receiver) == []


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_from_run_refuses_a_run_whose_record_was_edited(make_repo: MakeRepo, cc_home: Path) -> None:
    """Issue 18 L7: a failed run's status edited to ``ok`` in the history passed as
    evidence; the record's own receipt now shows the edit."""
    sender = make_repo("tested", remote=True)
    receiver = make_repo("target")
    failed = _exec(cc_home, "false")
    raw = sqlite3.connect(cc_home / "history.sqlite3")
    raw.execute("UPDATE runs SET status = 'ok', exit_code = 0 WHERE id = ?", (failed["run_id"],))
    raw.commit()
    raw.close()
    done = cc("notify", "--to", str(receiver), "--fix", "4: ok",
              "--from-run", str(failed["run_id"]), cwd=sender)  # fmt: skip
    assert done.returncode == 1
    assert "cannot serve as evidence" in done.stderr
    assert "the record was altered" in done.stderr
    assert inbox_files(receiver) == []


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_a_fix_needs_its_description_and_a_repository(make_repo: MakeRepo, tmp_path: Path) -> None:
    """``--fix`` without ``ID: text`` is a usage error naming the flag; a fix sent from
    outside a git repository is refused (there is no commit to name). Nothing is written."""
    sender = make_repo("sender")
    receiver = make_repo("receiver")
    for fix in ("nocolon", "12:", "12:   "):
        done = cc("notify", "--to", str(receiver), "--fix", fix, "--dry-run", cwd=sender)
        assert done.returncode == 2, done.stdout
        assert f"argument --fix: expected 'ID: description', got {fix!r}" in done.stderr
    plain = tmp_path / "not-a-repo"
    plain.mkdir()
    done = cc("notify", "--to", str(receiver), "--fix", "12: fixed the parser", cwd=plain)
    assert done.returncode == 1
    assert "is not inside a git repository" in done.stderr
    assert inbox_files(receiver) == []
