"""Finding the Gemini CLI executable."""

from __future__ import annotations

import os

from cc_executor._agents._locate import locate_npm_cli

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def locate_gemini(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The ``gemini`` executable (see :func:`~cc_executor._agents._locate.locate_npm_cli`)."""
    return locate_npm_cli(
        explicit,
        env,
        title="Gemini CLI",
        binary="gemini",
        variable="CC_EXECUTOR_GEMINI",
        cache_folder="gemini-cli",
        package="@google/gemini-cli",
    )
