"""Spawn failures come back as results with a specific error, never as tracebacks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from cc_executor._engine import ProcessStatus, run_process, run_process_sync


async def failure(argv: list[str], **options: object) -> str:
    result = await run_process(argv, **options)  # type: ignore[arg-type]
    assert result.status is ProcessStatus.SPAWN_FAILED
    assert result.exit_code is None
    assert result.pid is None
    assert not result.ok
    assert result.error
    return result.error


async def test_missing_executable_on_path() -> None:
    error = await failure(["definitely-not-a-program-xyz"])
    assert "executable not found on PATH: definitely-not-a-program-xyz" in error


async def test_missing_executable_by_path(tmp_path: Path) -> None:
    error = await failure([str(tmp_path / "nope")])
    assert error == f"executable not found: {tmp_path / 'nope'}"


async def test_not_executable(tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)
    if os.geteuid() == 0:
        # root may execute any file with at least one x bit; with none, execve refuses too.
        pass
    error = await failure([str(script)])
    assert "permission denied" in error
    assert "not executable" in error


async def test_executable_is_a_directory(tmp_path: Path) -> None:
    error = await failure([str(tmp_path)])
    assert "it is a directory" in error


async def test_exec_format_error(tmp_path: Path) -> None:
    """An executable file that is neither ELF nor #! is refused by execve, never handed to
    a shell."""
    junk = tmp_path / "junk"
    marker = tmp_path / "ran"
    junk.write_text(f"touch {marker}\n")
    junk.chmod(0o755)
    error = await failure([str(junk)])
    assert "Exec format error" in error
    assert not marker.exists()


async def test_missing_cwd(tmp_path: Path) -> None:
    error = await failure(["true"], cwd=tmp_path / "gone")
    assert error == f"working directory does not exist: {tmp_path / 'gone'}"


async def test_cwd_is_a_file(tmp_path: Path) -> None:
    f = tmp_path / "file"
    f.write_text("")
    error = await failure(["true"], cwd=f)
    assert error == f"working directory is not a directory: {f}"


async def test_missing_stdin_file(tmp_path: Path) -> None:
    error = await failure(["cat"], stdin=tmp_path / "absent.txt")
    assert error.startswith("cannot open stdin file")
    assert "No such file" in error


async def test_relative_program_is_resolved_against_cwd(tmp_path: Path) -> None:
    tool = tmp_path / "tool.sh"
    tool.write_text("#!/bin/sh\necho from-tool\n")
    tool.chmod(stat.S_IRWXU)
    result = await run_process(["./tool.sh"], cwd=tmp_path)
    assert result.ok
    assert result.stdout == b"from-tool\n"


def test_programming_errors_raise() -> None:
    with pytest.raises(ValueError, match="argv is empty"):
        run_process_sync([])
    with pytest.raises(TypeError, match="not a string"):
        run_process_sync("echo hi")
    with pytest.raises(ValueError, match="timeout must be positive"):
        run_process_sync(["true"], timeout=0)


def test_sync_api_from_inside_a_running_loop() -> None:
    import asyncio

    async def inside() -> bytes:
        return run_process_sync(["echo", "nested"]).stdout

    assert asyncio.run(inside()) == b"nested\n"


async def test_unusable_data_home_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data dir should be")
    monkeypatch.setenv("CC_EXECUTOR_HOME", str(blocker))
    result = await run_process(["echo", "still runs"])
    assert result.ok
    assert result.stdout == b"still runs\n"
    assert any("unusable" in w for w in result.warnings)
