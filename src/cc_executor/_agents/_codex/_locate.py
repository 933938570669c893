"""Finding the Codex CLI executable."""

from __future__ import annotations

import os

from cc_executor._errors import AgentNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

INSTALL_HINT = (
    "install it with `npm install -g @openai/codex` (or, in this repository, "
    "`scripts/install-agents codex`), or point CC_EXECUTOR_CODEX at the executable"
)


def locate_codex(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The path of the ``codex`` executable: ``explicit``, ``$CC_EXECUTOR_CODEX``, ``codex``
    on ``PATH``, the npm global folders, then the cache of ``scripts/install-agents``
    (newest version first). Raises :class:`AgentNotFound` saying where it looked."""
    env = os.environ if env is None else env
    for source, value in (
        ("argument", os.fspath(explicit) if explicit is not None else None),
        ("CC_EXECUTOR_CODEX", env.get("CC_EXECUTOR_CODEX")),
    ):
        if value:
            if os.path.isfile(value) and os.access(value, os.X_OK):
                return os.path.abspath(value)
            what = "is not executable" if os.path.isfile(value) else "not found"
            raise AgentNotFound(f"Codex CLI at {value} (from {source}) {what}; {INSTALL_HINT}")
    import glob
    import shutil

    on_path = shutil.which("codex", path=env.get("PATH", os.defpath))
    if on_path:
        return on_path
    home = env.get("HOME") or os.path.expanduser("~")
    cache = env.get("CC_EXECUTOR_CACHE") or os.path.join(home, ".cache", "cc-executor")
    places = [
        os.path.join(home, ".npm-global", "bin", "codex"),
        os.path.join(home, ".local", "bin", "codex"),
        "/usr/local/bin/codex",
        *sorted(glob.glob(os.path.join(cache, "codex", "*", "bin", "codex")), reverse=True),
    ]
    for place in places:
        if os.path.isfile(place) and os.access(place, os.X_OK):
            return place
    raise AgentNotFound(
        f"Codex CLI (`codex`) not found (looked on PATH, in {', '.join(places[:3])} and "
        f"{os.path.join(cache, 'codex')}); {INSTALL_HINT}"
    )
