"""Names a package exports but loads on first use (PEP 562), so that importing the package
costs nothing until a name is used: console commands start fast, and the light modules of a
package import without its heavy ones."""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str], namespace: dict[str, Any]
) -> Callable[[str], Any]:
    """The module ``__getattr__`` of ``package``: ``exports`` maps each name to the module
    (absolute) that defines it; a loaded name is kept in ``namespace`` (the package's
    ``globals()``), so it is looked up only once."""

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        import importlib

        value = getattr(importlib.import_module(module), name)
        namespace[name] = value
        return value

    return __getattr__


def renamed(
    package: str,
    aliases: dict[str, str],
    namespace: dict[str, Any],
    fallback: Callable[[str], Any] | None = None,
) -> Callable[[str], Any]:
    """A module ``__getattr__`` that keeps old names working after a rename: ``aliases``
    maps each old name to its new one. Using an old name warns (``DeprecationWarning``, at
    the caller's line, on every use) and returns the object of the new name, from
    ``namespace`` or else from ``fallback`` (e.g. a :func:`lazy_exports` ``__getattr__``).
    Other names go to ``fallback``, or raise ``AttributeError`` without one."""

    def __getattr__(name: str) -> Any:
        new = aliases.get(name)
        if new is not None:
            # ``from package import name`` asks twice (importlib's hasattr check, then the
            # import itself): only the import warns, at the caller's line.
            if sys._getframe(1).f_globals.get("__name__") != "importlib._bootstrap":
                import warnings

                warnings.warn(
                    f"{package}.{name} is deprecated; use {package}.{new}",
                    DeprecationWarning,
                    stacklevel=2,
                )
            if new in namespace:
                return namespace[new]
            name = new
        if fallback is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return fallback(name)

    return __getattr__
