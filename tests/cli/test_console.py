"""The console script itself: exit codes and quiet ends when its output goes nowhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CLI = str(Path(sys.executable).parent / "cc-executor")


@pytest.mark.parametrize("closed", [1, 2])
def test_a_closed_output_descriptor_is_not_a_crash(closed: int) -> None:
    """Started with stdout or stderr closed (``>&-``), a command still ends with its own
    exit code, not with a traceback about the missing stream."""
    code = f"import os; os.close({closed}); os.execv({CLI!r}, [{CLI!r}, '--version'])"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done
    assert b"Traceback" not in done.stderr


def test_version_and_exit_code_of_a_usage_error() -> None:
    done = subprocess.run([CLI, "--version"], capture_output=True, timeout=60, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith(b"cc-executor ")
    bad = subprocess.run([CLI, "run"], capture_output=True, timeout=60, check=False)
    assert bad.returncode == 2
    assert b"the following arguments are required" in bad.stderr


def test_the_early_start_path_stays_light() -> None:
    """What the console imports before it starts Claude Code: none of the modules whose
    import costs milliseconds (the point of the early start). A heavy import added to this
    path would silently slow every run down."""
    code = (
        "import sys\n"
        "import cc_executor._cli, cc_executor._cli._early\n"
        "from cc_executor._agents._claude import _flags, _locate\n"
        "from cc_executor._engine import _launch\n"
        "from cc_executor import _ids, _paths\n"
        "from cc_executor._run import _prepare\n"
        "from cc_executor._cli._args import quick_parse, run_options\n"
        "run_options(quick_parse(['hi', '--timeout', '5', '--env', 'A=1', '--json']))\n"
        "heavy = ['argparse', 'asyncio', 'typing', 'dataclasses', 'enum', 're', 'pathlib',\n"
        "         'subprocess', 'contextlib', 'signal', 'json', 'shutil', 'threading']\n"
        "print(' '.join(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == []


def test_the_early_start_stays_light_with_a_config_file(tmp_path: Path) -> None:
    """With a config file, the early start parses it once (tomllib and what it imports);
    after that, while the file is unchanged, its kept copy is read without them."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "config.toml").write_text("[defaults]\nmax_turns = 3\ntimeout = 60\n")
    code = (
        "import sys\n"
        "from cc_executor._run._config import quick_defaults\n"
        "from cc_executor._cli._args import quick_parse, run_options\n"
        "defaults = quick_defaults()\n"
        "options = run_options(quick_parse(['hi', '--timeout', '5'], defaults), defaults)\n"
        "heavy = ['tomllib', 'typing', 're', 'datetime', 'argparse', 'dataclasses', 'json']\n"
        "loaded = [m for m in heavy if m in sys.modules]\n"
        "print(options['max_turns'], options['timeout'], *loaded)\n"
    )
    env = {**os.environ, "CC_EXECUTOR_HOME": str(home)}
    env.pop("CC_EXECUTOR_CONFIG", None)
    first, second = (
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=False
        )
        for _ in range(2)
    )
    assert first.returncode == 0, first.stderr
    assert "tomllib" in first.stdout.split()
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == ["3", "5.0"]
