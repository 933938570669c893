"""Real git repositories in temporary folders, and the installed ``cc-executor`` command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CLI = str(Path(sys.executable).parent / "cc-executor")


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip()


def cc(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def commit(repo: Path, name: str, text: str) -> str:
    (repo / name).write_text(text)
    git(repo, "add", name)
    git(repo, "commit", "-q", "-m", f"change {name}")
    return git(repo, "rev-parse", "HEAD")


def inbox_files(repo: Path) -> list[Path]:
    return sorted((repo / ".github" / "ISSUES" / "inbox").glob("*.json"))


def read_json(path: Path) -> Any:
    return json.loads(path.read_text())


MakeRepo = Callable[..., Path]


@pytest.fixture
def make_repo(tmp_path: Path) -> MakeRepo:
    """``make_repo(name, remote=False)``: a git repository with one commit, its own
    user.name/email, and with ``remote`` a bare repository as ``origin``, pushed."""

    def make(name: str, *, remote: bool = False) -> Path:
        repo = tmp_path / name
        repo.mkdir()
        git(repo, "init", "-q", "-b", "main")
        git(repo, "config", "user.name", f"{name} tester")
        git(repo, "config", "user.email", f"{name}@example.invalid")
        git(repo, "config", "commit.gpgsign", "false")
        commit(repo, "README", f"{name}\n")
        if remote:
            bare = tmp_path / f"{name}-remote.git"
            subprocess.run(["git", "init", "-q", "--bare", str(bare)], check=True, timeout=30)
            git(repo, "remote", "add", "origin", str(bare))
            git(repo, "push", "-q", "-u", "origin", "main")
        return repo

    return make


@pytest.fixture
def env() -> dict[str, str]:
    return dict(os.environ)
