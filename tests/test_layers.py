"""The layer map of ARCHITECTURE.md, enforced: imports point down only.

The check is import-linter's layers contract in pyproject.toml; it counts imports inside
functions and in ``TYPE_CHECKING`` blocks like any other.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import cc_executor

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def lint_imports(config: Path, *, source: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the contracts of ``config``, on the package found in ``source``."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache", "--no-logo", str(config)],
        cwd=cwd,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(source)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow  # over 0.3 s: runs lint-imports
def test_imports_point_down_only() -> None:
    done = lint_imports(ROOT / "pyproject.toml", source=ROOT / "src", cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 kept, 0 broken" in done.stdout


@pytest.mark.slow  # over 0.3 s: runs lint-imports
def test_an_upward_import_fails_the_check(tmp_path: Path) -> None:
    """A copy of the package with two upward imports the check must see: one inside a
    function of the engine, one in a ``TYPE_CHECKING = False`` block of the store."""
    source = tmp_path / "src"
    shutil.copytree(
        Path(cc_executor.__file__).parent,
        source / "cc_executor",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (source / "cc_executor" / "_engine" / "_upward.py").write_text(
        "def late() -> object:\n    from cc_executor._run import _runner\n\n    return _runner\n"
    )
    (source / "cc_executor" / "_store" / "_upward.py").write_text(
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from cc_executor._cli import _live\n"
    )
    config = tmp_path / "pyproject.toml"
    shutil.copy(ROOT / "pyproject.toml", config)

    done = lint_imports(config, source=source, cwd=tmp_path)

    assert done.returncode == 1, done.stdout + done.stderr
    assert "0 kept, 1 broken" in done.stdout
    assert "cc_executor._engine._upward -> cc_executor._run._runner (l.2)" in done.stdout
    assert "cc_executor._store._upward -> cc_executor._cli._live (l.3)" in done.stdout
