"""The public surface: what README documents is importable from ``cc_executor``."""

from __future__ import annotations

import subprocess
import sys

import cc_executor


def test_exports_resolve() -> None:
    for name in cc_executor.__all__:
        assert getattr(cc_executor, name) is not None


def test_importing_the_package_stays_light() -> None:
    code = "import sys, cc_executor; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_all_lists_every_export() -> None:
    assert set(cc_executor.__all__) == {"__version__", *cc_executor._EXPORTS}
