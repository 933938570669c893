"""The optional extras of the package and the error for a missing one.

The core install (``pip install cc-executor``) runs agents and commands (``run``, ``exec``,
the history, the run API). Each extra adds the libraries of one feature; a feature whose
extra is missing says which extra to install instead of failing on an import deep inside.
Checking looks the modules up without importing them, so it costs well under a millisecond.
"""

from __future__ import annotations

from cc_executor._errors import MissingExtra as MissingExtra

#: The importable top-level modules each extra provides (``pyproject.toml`` lists the
#: distributions). Nothing requires ``cli``: without it the live views print plain lines.
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "cli": ("rich",),
    "tasks": ("jinja2", "yaml"),
    "service": ("starlette", "uvicorn", "websockets", "mcp"),
    "notify": ("watchdog", "yaml"),
    "testing": ("starlette", "uvicorn", "yaml"),
    "fleet": ("dramatiq", "redis"),
    "permissions": ("yaml",),
    "postgres": ("psycopg", "psycopg_pool"),
}


def missing_module(extra: str) -> str | None:
    """The first module of ``extra`` that cannot be found, or None when all can (a module
    that is found but fails to import is left to fail with its own error)."""
    from importlib.util import find_spec

    for module in EXTRA_MODULES[extra]:
        if find_spec(module) is None:
            return module
    return None


def require_extra(extra: str, feature: str) -> None:
    """Raise :class:`MissingExtra` (an ``ImportError``) naming ``feature`` unless every module
    of ``extra`` can be found. Raises ``KeyError`` for an unknown extra."""
    module = missing_module(extra)
    if module is not None:
        raise MissingExtra(feature, extra, module)
