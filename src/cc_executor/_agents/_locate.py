"""Finding an agent CLI installed with npm (Codex CLI, Gemini CLI): one search order for all."""

from __future__ import annotations

import os

from cc_executor._errors import AgentNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping


def locate_npm_cli(
    explicit: str | os.PathLike[str] | None,
    env: Mapping[str, str] | None,
    *,
    title: str,
    binary: str,
    variable: str,
    cache_folder: str,
    package: str,
) -> str:
    """The path of an npm-installed agent CLI: ``explicit``, ``$VARIABLE``, ``binary`` on
    ``PATH``, the npm global folders and ``/usr/local/bin``, then the cache of
    ``scripts/install-agents`` (newest version first). Raises :class:`AgentNotFound` saying
    where it looked and how to install it."""
    env = os.environ if env is None else env
    hint = (
        f"install it with `npm install -g {package}` (or, in this repository, "
        f"`scripts/install-agents {binary}`), or point {variable} at the executable"
    )
    for source, value in (
        ("argument", os.fspath(explicit) if explicit is not None else None),
        (variable, env.get(variable)),
    ):
        if value:
            if os.path.isfile(value) and os.access(value, os.X_OK):
                return os.path.abspath(value)
            what = "is not executable" if os.path.isfile(value) else "not found"
            raise AgentNotFound(f"{title} at {value} (from {source}) {what}; {hint}")
    import glob
    import shutil

    on_path = shutil.which(binary, path=env.get("PATH", os.defpath))
    if on_path:
        return on_path
    # This process's home and cache, never the run's: a remote caller allowed to set HOME
    # (third pass, T10) must not choose the executable, which agent_path being server-only
    # forbids.
    home = os.path.expanduser("~")
    cache = os.environ.get("CC_EXECUTOR_CACHE") or os.path.join(home, ".cache", "cc-executor")
    places = [
        os.path.join(home, ".npm-global", "bin", binary),
        os.path.join(home, ".local", "bin", binary),
        f"/usr/local/bin/{binary}",
        *sorted(glob.glob(os.path.join(cache, cache_folder, "*", "bin", binary)), reverse=True),
    ]
    for place in places:
        if os.path.isfile(place) and os.access(place, os.X_OK):
            return place
    raise AgentNotFound(
        f"{title} (`{binary}`) not found (looked on PATH, in {', '.join(places[:3])} and "
        f"{os.path.join(cache, cache_folder)}); {hint}"
    )
