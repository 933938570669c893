"""The example scripts shipped in the package (``examples/*.yaml``), found by name.

They ship in the wheel, so ``testing serve --script write_file`` works without a clone.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["example_names", "example_path", "resolve_script"]

_EXAMPLES = Path(__file__).resolve().parent / "examples"


def example_names() -> list[str]:
    """The names of the shipped examples (file names without ``.yaml``), sorted."""
    try:
        return sorted(name[:-5] for name in os.listdir(_EXAMPLES) if name.endswith(".yaml"))
    except OSError:  # a package installed without its data files
        return []


def example_path(name: str) -> Path | None:
    """The file of the example called ``name`` (with or without ``.yaml``), or None."""
    stem = name[:-5] if name.endswith(".yaml") else name
    return _EXAMPLES / f"{stem}.yaml" if stem in example_names() else None


def resolve_script(value: str) -> Path:
    """The script file ``value`` names: an existing file, else a shipped example's name.

    Raises :class:`FileNotFoundError` with a one-line message that lists the examples when
    ``value`` is neither.
    """
    given = Path(value).expanduser()
    if given.exists():
        return given
    example = example_path(value)
    if example is not None:
        return example
    names = ", ".join(example_names()) or "none installed"
    raise FileNotFoundError(f"no script file or example named {value!r} (examples: {names})")
