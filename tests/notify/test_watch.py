"""``inbox watch``: entries that arrive after it started, through inotify or polling."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from cc_executor.notify import INBOX, INCOMING, InboxProblem, Message, notify, watch
from tests.notify.conftest import CLI, MakeRepo


def start_watch(project: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [CLI, "inbox", "watch", "--project", str(project), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert proc.stderr is not None
    ready = proc.stderr.readline()
    assert "watching" in ready, ready
    return proc, ready


@pytest.mark.slow  # seconds of work: out of the fast tier
@pytest.mark.parametrize("mode", ["events", "polling"])
def test_watch_sees_a_message_dropped_after_it_started(make_repo: MakeRepo, mode: str) -> None:
    sender = make_repo("sender")
    receiver = make_repo("receiver")
    before = notify(receiver, project=sender, type="question", message="already there")
    extra = ["--poll"] if mode == "polling" else []
    proc, ready = start_watch(receiver, "--json", "--max-events", "2", "--timeout", "30", *extra)
    if mode == "polling":
        assert "PollingObserver" in ready
    try:
        sent = notify(receiver, project=sender, type="question", message="new \x1b[2J one")
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the message is reported before the issue arrives
        issue = receiver / INCOMING / "late.md"
        issue.parent.mkdir(parents=True)
        issue.write_text("---\ntitle: Arrived later\n---\n")
        rest, err = proc.communicate(timeout=30)
        out = first + rest
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "\x1b" not in out
    events = [json.loads(line) for line in out.splitlines()]
    assert [e["id"] for e in events] == [sent.path.name, "late.md"]
    assert events[0]["message"]["message"] == "new \x1b[2J one"
    assert events[1]["title"] == "Arrived later"
    assert before.path.name not in out


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_watch_timeout_without_events_exits_124(tmp_path: Path) -> None:
    started = time.monotonic()
    done = subprocess.run(
        [CLI, "inbox", "watch", "--project", str(tmp_path), "--timeout", "0.5",
         "--max-events", "1"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert done.returncode == 124
    assert done.stdout == ""
    # Liveness, not speed: it ends at its 0.5 s timeout, not at --max-events (20x slack for load).
    assert time.monotonic() - started < 10
    assert (tmp_path / INBOX).is_dir()
    plain = subprocess.run(
        [CLI, "inbox", "watch", "--project", str(tmp_path), "--timeout", "0.3"],
        capture_output=True, text=True, timeout=30, check=False,
    )  # fmt: skip
    assert plain.returncode == 0


@pytest.mark.slow  # over 0.3 s: cc-executor processes
def test_watch_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    proc, _ = start_watch(tmp_path)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err


@pytest.mark.slow
def test_watch_waits_for_a_file_still_being_written(tmp_path: Path) -> None:
    folder = tmp_path / INBOX
    complete = {"type": "question", "from": "x", "to": "y", "timestamp": "2026-01-01T00:00:00Z"}

    def slow_writer() -> None:
        # A sender that writes in place, not atomically: half a message first, the rest
        # after a pause (the pause is the behaviour under test).
        partial = folder / "slow_writer.json"
        partial.write_text('{"type": "question", ')
        time.sleep(0.5)
        partial.write_text(json.dumps(complete))

    def ready(watched: Path, mechanism: str) -> None:
        threading.Thread(target=slow_writer).start()

    events = []
    for event in watch(tmp_path, timeout=20, max_events=2, on_ready=ready):
        events.append(event)
        if len(events) == 1:  # the message is in: now a file that stays broken
            (folder / "garbage.json").write_text("not json, and it stays that way")
    assert isinstance(events[0], Message)
    assert events[0].id == "slow_writer.json"
    assert events[0].data == complete
    # A file that stays broken is reported once it has settled.
    assert isinstance(events[1], InboxProblem)
    assert events[1].id == "garbage.json"
    assert "invalid JSON" in events[1].reason


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_watch_reports_a_hostile_file_and_goes_on(tmp_path: Path) -> None:
    """One file PyYAML cannot build (H1) is reported as a problem; the next one still is."""
    proc, _ = start_watch(tmp_path, "--json", "--max-events", "3", "--timeout", "60")
    try:
        incoming = tmp_path / INCOMING
        incoming.mkdir()
        (incoming / "feb30.md").write_text("---\ntitle: x\ndate: 2024-02-30\n---\n")
        (incoming / "bigint.md").write_text("---\ntitle: x\nn: " + "9" * 4301 + "\n---\n")
        (incoming / "after.md").write_text("---\ntitle: After them\n---\n")
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    events = {e["id"]: e for e in map(json.loads, out.splitlines())}
    assert set(events) == {"feb30.md", "bigint.md", "after.md"}
    assert events["after.md"]["title"] == "After them"
    for name in ("feb30.md", "bigint.md"):
        assert events[name]["kind"] == "problem"
        assert events[name]["reason"].startswith("invalid YAML front matter"), events[name]


@pytest.mark.slow  # seconds of work: out of the fast tier
@pytest.mark.parametrize("mode", ["events", "polling"])
def test_watch_never_follows_a_link_planted_in_the_inbox(tmp_path: Path, mode: str) -> None:
    """M9: a link to / in the inbox is not walked, and --timeout ends the watch."""
    folder = tmp_path / INBOX
    folder.mkdir(parents=True)
    (folder / "root").symlink_to("/")
    (folder / "root.json").symlink_to("/etc/passwd")
    extra = ["--poll"] if mode == "polling" else []
    # The hang guard only: the watch itself must end at its own --timeout.
    done = subprocess.run(
        [CLI, "inbox", "watch", "--project", str(tmp_path), "--timeout", "1", *extra],
        capture_output=True, text=True, timeout=300, check=False, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    assert "Traceback" not in done.stderr


@pytest.mark.slow  # seconds of work: out of the fast tier
def test_watch_reports_a_broken_file_dated_in_the_future(tmp_path: Path) -> None:
    """L16: settling is judged by the file staying the same, not by its mtime."""
    folder = tmp_path / INBOX

    def drop_broken(watched: Path, mechanism: str) -> None:
        path = folder / "future.json"
        path.write_text("not json")
        day_ahead = time.time() + 86_400
        os.utime(path, (day_ahead, day_ahead))

    events = list(watch(tmp_path, timeout=60, max_events=1, on_ready=drop_broken))
    assert len(events) == 1
    assert isinstance(events[0], InboxProblem)
    assert events[0].id == "future.json"
    assert "invalid JSON" in events[0].reason
