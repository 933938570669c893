"""The test bed's guard of the worker's process state (tests/conftest.py): what a test
leaves changed is named, and put back so that only that test fails."""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

from tests.conftest import _ProcessState, remove_new_leftovers, sandbox_leftovers


def test_each_leak_is_named_and_put_back(tmp_path: Path) -> None:
    before = _ProcessState.now()
    old_mask = os.umask(0o177)
    os.environ["CC_EXECUTOR_GUARD_PROBE"] = "1"
    os.chdir(tmp_path)
    signal.signal(signal.SIGUSR1, signal.SIG_IGN)
    sys.path.append(str(tmp_path))
    logging.getLogger().setLevel(logging.DEBUG)
    said = before.changes(_ProcessState.now())
    before.restore()
    assert said == [
        f"the process umask at 0o177 (it was {old_mask:#o})",
        f"the working directory at {tmp_path} (it was {before.cwd})",
        "the environment variables CC_EXECUTOR_GUARD_PROBE changed",
        "the handler of SIGUSR1 at <Handlers.SIG_IGN: 1>",
        "sys.path changed",
        f"the root logger changed ({before.logging} -> {_logging_at(logging.DEBUG, before)})",
    ]
    assert before.changes(_ProcessState.now()) == []


def test_an_added_root_handler_is_named_and_removed() -> None:
    before = _ProcessState.now()
    handler = logging.StreamHandler()
    logging.getLogger().addHandler(handler)
    assert before.changes(_ProcessState.now())[0].startswith("the root logger changed")
    before.restore()
    assert handler not in logging.getLogger().handlers
    assert before.changes(_ProcessState.now()) == []


def _logging_at(level: int, state: _ProcessState) -> tuple[int, list[logging.Handler], int]:
    return (level, state.logging[1], state.logging[2])


def test_a_sandbox_leftover_is_named_and_removed_when_empty(tmp_path: Path) -> None:
    """What Codex's sandbox leaves in /tmp when its command is killed, removed at the end of
    the session (here in a folder of the test's own)."""
    (tmp_path / ".aws").mkdir()
    before = sandbox_leftovers(str(tmp_path))
    (tmp_path / ".git").mkdir()
    (tmp_path / ".codex").mkdir()
    (tmp_path / ".codex" / "kept").touch()
    appeared = remove_new_leftovers(before, str(tmp_path))
    assert appeared == [f"{tmp_path}/.codex", f"{tmp_path}/.git"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".aws", ".codex"]  # not empty: kept
