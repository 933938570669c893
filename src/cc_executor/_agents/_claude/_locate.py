"""Finding the Claude Code executable."""

from __future__ import annotations

import os

from cc_executor._errors import ClaudeNotFound as ClaudeNotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping

INSTALL_HINT = (
    "install it with `npm install -g @anthropic-ai/claude-code` (or, in this repository, "
    "`bash scripts/install-claude-code`), or point CC_EXECUTOR_CLAUDE at the executable"
)


def _candidates(home: str) -> list[str]:
    cache = os.environ.get("CC_EXECUTOR_CACHE") or os.path.join(home, ".cache", "cc-executor")
    places = [
        os.path.join(home, ".claude", "local", "claude"),
        os.path.join(home, ".local", "bin", "claude"),
        os.path.join(home, ".npm-global", "bin", "claude"),
        os.path.join(home, ".volta", "bin", "claude"),
        "/usr/local/bin/claude",
        "/opt/homebrew/bin/claude",
    ]
    # Versions installed by scripts/install-claude-code, newest first.
    import glob

    places += sorted(
        glob.glob(os.path.join(cache, "claude-code", "*", "bin", "claude")), reverse=True
    )
    return places


def locate_claude(
    explicit: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> str:
    """The path of the ``claude`` executable.

    Looks, in order, at ``explicit``, ``$CC_EXECUTOR_CLAUDE``, ``claude`` on ``PATH``, then
    the usual install places (``~/.claude/local``, ``~/.local/bin``, npm global folders,
    ``/usr/local/bin``, and the cache of ``scripts/install-claude-code``). Raises
    :class:`ClaudeNotFound` with the places tried and an install hint.
    """
    env = os.environ if env is None else env
    tried = []
    for source, value in (
        ("argument", os.fspath(explicit) if explicit is not None else None),
        ("CC_EXECUTOR_CLAUDE", env.get("CC_EXECUTOR_CLAUDE")),
    ):
        if value:
            if os.path.isfile(value) and os.access(value, os.X_OK):
                return os.path.abspath(value)
            if os.path.isfile(value):
                raise ClaudeNotFound(
                    f"Claude Code at {value} (from {source}) is not executable: "
                    f"chmod +x it, or point {source} at the executable"
                )
            raise ClaudeNotFound(
                f"Claude Code not found at {value} (from {source}); {INSTALL_HINT}"
            )
    import shutil

    on_path = shutil.which("claude", path=env.get("PATH", os.defpath))
    if on_path:
        return on_path
    tried.append("PATH")
    # This process's homes, never the run's HOME: a remote caller allowed to set it (third
    # pass, T10) must not choose the executable, which agent_path being server-only forbids.
    homes = dict.fromkeys(h for h in (os.path.expanduser("~"), _account_home()) if h)
    for place in (p for home in homes for p in _candidates(home)):
        if os.path.isfile(place) and os.access(place, os.X_OK):
            return place
        tried.append(place)
    raise ClaudeNotFound(
        f"Claude Code CLI (`claude`) not found (looked on PATH and in {', '.join(tried[1:4])}, "
        f"...); {INSTALL_HINT}"
    )


def _account_home() -> str | None:
    """The user's home from the account database: still the right place when ``HOME``
    points elsewhere (``cc-executor testing serve`` prints a throwaway ``HOME`` to export)."""
    try:
        import pwd

        return pwd.getpwuid(os.getuid()).pw_dir
    except (ImportError, KeyError):
        return None
