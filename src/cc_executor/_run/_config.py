"""The user config file: ``config.toml`` in the data folder (``$CC_EXECUTOR_HOME``), or the
file named by ``--config FILE`` / ``$CC_EXECUTOR_CONFIG``.

Its sections, each read by one function of :data:`SECTIONS` (a new section is one entry
there, plus its documentation in docs/config.md):

- ``[reserve_usd]``: what a run that sets no ``max_budget_usd`` reserves of a shared budget,
  per model (``"*"``: any other), as ``--reserve-usd MODEL=USD`` says on a command line;
- ``[defaults]``: default values of run options (:class:`~cc_executor._run._options.RunOptions`
  names), checked as the command line and the API check them. What could make a run remote
  or widen what it may do (``fleet``, server-only options, a server's ``--allow-dir``, its
  tokens) is refused there, each with its reason.

Whatever is given explicitly (a flag, an API argument) wins over the file, and the file over
the built-in defaults. The command line reads the file; the Python API reads it only when
asked (:meth:`UserConfig.load`): a library reading a user's file behind its caller's back
would make the same call behave differently on two machines.

No imports beyond the interpreter's start-up set until a file is actually read: the console's
early start loads the file, when there is one, before it starts the agent CLI.
"""

from __future__ import annotations

import os

from cc_executor._errors import ConfigError
from cc_executor._paths import data_home_path

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

#: The variable naming the config file (``/dev/null``: none).
CONFIG_ENV = "CC_EXECUTOR_CONFIG"
#: The file's name in the data folder.
FILE_NAME = "config.toml"
#: The console's copy of the last file's ``[defaults]`` as parsed, in the data folder.
CACHE_NAME = ".config-defaults.marshal"

#: Run options that belong to one run, not to every run: refused in ``[defaults]``.
_PER_RUN = ("resume", "continue_session", "session_id", "fork_session")

#: Keys refused in ``[defaults]`` although they are not run options (they are flags of
#: other commands), each with the reason: a file must never send a run elsewhere or grant
#: more than the command line does.
_REFUSED = {
    "fleet": "a run is sent to a fleet only by --fleet on the command line (or fleet= in "
    "the API), never by the config file",
    "queue": "a fleet's queue is chosen on the command line (--queue), not by the config file",
    "allow_dir": "--allow-dir widens what a server's callers may reach: give it to serve or "
    "worker on the command line, never in the config file",
    "allow_dirs": "--allow-dir widens what a server's callers may reach: give it to serve or "
    "worker on the command line, never in the config file",
    "token": "tokens are never read from the config file (use the server's token file or variable)",
    "tokens": "tokens are never read from the config file (use the server's token file or "
    "variable)",
}


def config_path() -> tuple[str, bool]:
    """The config file to read and whether it was named explicitly (``$CC_EXECUTOR_CONFIG``,
    which ``--config``/``--no-config`` set): a named file must exist, the default one
    (``config.toml`` in the data folder) may not."""
    named = os.environ.get(CONFIG_ENV)
    if named:
        return os.path.expanduser(named), True
    return os.path.join(data_home_path(), FILE_NAME), False


def quick_defaults() -> dict[str, Any] | None:
    """The config file's ``[defaults]`` for the console's early start, without importing
    ``tomllib`` (with ``typing``, ``re`` and ``datetime``: milliseconds before the agent
    CLI could start) when the file has not changed since it was last parsed: a copy of
    the values parsed and checked is kept beside it in the data folder (private), with
    ``marshal`` (built in), keyed by the file's path, inode, size and modification time.
    ``{}`` without a file; None when it cannot be used (the ordinary path reports why)."""
    path, explicit = config_path()
    try:
        st = os.stat(path)
    except OSError:
        return None if explicit else {}
    key = (os.path.abspath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    cache = os.path.join(data_home_path(), CACHE_NAME)
    import marshal

    try:
        with open(cache, "rb") as f:
            # Written by the lines below, in the data folder only this account may write
            # to (as the history is); loading builds values, it runs nothing.
            saved, defaults = marshal.load(f)  # noqa: S302
        if tuple(saved) == key and isinstance(defaults, dict) and _allowed(defaults):
            return defaults
    except (OSError, EOFError, ValueError, TypeError):
        pass  # no copy yet, or an unreadable one: parse the file
    try:
        defaults = UserConfig.load(path).defaults
    except ConfigError:
        return None
    partial = f"{cache}.{os.getpid()}"
    try:
        data = marshal.dumps((key, defaults))
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "wb") as f:
            f.write(data)
        os.replace(partial, cache)
    except (OSError, ValueError):
        # No data folder yet, a full disk, or a value marshal cannot keep (a TOML date in
        # json_schema): the file is parsed again next time.
        try:  # noqa: SIM105 - contextlib is not loaded on the early start's path
            os.unlink(partial)
        except OSError:
            pass
    return defaults


def _allowed(defaults: dict[Any, Any]) -> bool:
    """Whether every key of a kept copy of ``[defaults]`` is one the file may set (the
    values are checked with the run's options)."""
    from cc_executor._run._options import SERVER_ONLY, RunOptions

    for name in defaults:
        declared = RunOptions.by_name.get(name)
        if declared is None or declared.remote == SERVER_ONLY or name in _PER_RUN:
            return False
    return True


class UserConfig:
    """A parsed config file (see the module docstring): ``path`` the file read (None when
    there is none: every section empty), ``reserve_usd`` its ``[reserve_usd]`` (model ->
    USD, ``"*"`` any other model), ``defaults`` its ``[defaults]`` (run option -> value,
    checked, relative paths made absolute from the file's folder).

    Python callers opt in: ``run(prompt, **UserConfig.load().run_options(timeout=60))``."""

    __slots__ = ("defaults", "path", "reserve_usd")

    def __init__(
        self,
        path: str | None = None,
        *,
        reserve_usd: Mapping[str, float] | None = None,
        defaults: Mapping[str, Any] | None = None,
    ) -> None:
        self.path = path
        self.reserve_usd: dict[str, float] = dict(reserve_usd or {})
        self.defaults: dict[str, Any] = dict(defaults or {})

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> UserConfig:
        """Read ``path``, else the file :func:`config_path` names. A default file that does
        not exist is no config (an empty one); a named one that does not exist, a file that
        is not TOML, an unknown section or key, a refused key or a bad value raise
        :class:`~cc_executor.ConfigError` with one line naming the file, the line and key
        when known, and the problem."""
        if path is not None:
            where, explicit = os.path.expanduser(os.fspath(path)), True
        else:
            where, explicit = config_path()
        try:
            with open(where, "rb") as f:
                raw = f.read()
        except FileNotFoundError:
            if explicit:
                raise ConfigError(f"{where}: no such config file") from None
            return cls()
        except OSError as exc:
            raise ConfigError(f"{where}: cannot read the config file: {exc.strerror}") from None
        return cls.parse(raw, where)

    @classmethod
    def parse(cls, raw: bytes | str, path: str) -> UserConfig:
        """The config in ``raw`` (the text of the file ``path``, which errors name and
        relative paths start from); :class:`~cc_executor.ConfigError` as :meth:`load`."""
        import sys

        if sys.version_info >= (3, 11):
            import tomllib
        else:  # pragma: no cover - Python 3.10
            import tomli as tomllib

        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
        except UnicodeDecodeError as exc:
            raise ConfigError(f"{path}: not UTF-8 text ({exc.reason})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from None
        found = _Located(path, text)
        values: dict[str, Any] = {}
        for section, table in data.items():
            read = SECTIONS.get(section)
            if read is None:
                known = ", ".join(f"[{s}]" for s in SECTIONS)
                raise found.error(section, None, f"unknown section (known: {known})")
            if not isinstance(table, dict):
                raise found.error(section, None, f"expected a [{section}] table")
            values[section] = read(table, found)
        return cls(path, **values)

    def run_options(self, **given: Any) -> dict[str, Any]:
        """Run options: ``[defaults]`` under ``given`` (an explicit value wins, ``env`` is
        merged variable by variable)."""
        out = {**self.defaults, **given}
        if "env" in self.defaults and "env" in given:
            out["env"] = {**self.defaults["env"], **given["env"]}
        return out

    def reservations(self, given: Mapping[str, float] | None = None) -> dict[str, float]:
        """Reservations per model: ``[reserve_usd]`` under ``given`` (a model given wins)."""
        return {**self.reserve_usd, **(given or {})}

    def __repr__(self) -> str:
        return (
            f"UserConfig(path={self.path!r}, reserve_usd={self.reserve_usd!r}, "
            f"defaults={self.defaults!r})"
        )


class _Located:
    """The file's path and text, to name the line of a section's key in an error."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.text = text

    @property
    def folder(self) -> str:
        return os.path.dirname(os.path.abspath(self.path))

    def line_of(self, section: str, key: str | None) -> int | None:
        """The line of ``key = ...`` in ``[section]`` (of the ``[section]`` header when
        ``key`` is None); None when it is written otherwise (a dotted key, an inline
        table): the error then names the key alone."""
        current = None
        for number, line in enumerate(self.text.splitlines(), 1):
            stripped = line.strip()
            if stripped.startswith("[") and not stripped.startswith("[["):
                current = stripped[1 : stripped.find("]")].strip().strip("\"'")
                if key is None and current == section:
                    return number
                continue
            if current != section or key is None:
                continue
            name = stripped.partition("=")[0].strip().strip("\"'")
            if "=" in stripped and name == key:
                return number
        return None

    def error(self, section: str, key: str | None, problem: str) -> ConfigError:
        line = self.line_of(section, key)
        where = f"{self.path}:{line}" if line is not None else self.path
        what = f"[{section}]" + (f" {key}" if key is not None else "")
        return ConfigError(f"{where}: {what}: {problem}")


def _read_reserve(table: dict[str, Any], found: _Located) -> dict[str, float]:
    """``[reserve_usd]``: model name (``"*"``: any other) -> USD > 0."""
    out = {}
    for model, usd in table.items():
        if not model.strip():
            raise found.error("reserve_usd", model, "a model name cannot be empty")
        if isinstance(usd, bool) or not isinstance(usd, (int, float)):
            raise found.error("reserve_usd", model, f"expected USD (a number), got {usd!r}")
        if not 0 < usd < float("inf"):
            raise found.error("reserve_usd", model, f"expected USD > 0, got {usd!r}")
        out[model] = float(usd)
    return out


def _read_defaults(table: dict[str, Any], found: _Located) -> dict[str, Any]:
    """``[defaults]``: run option -> value, each checked as the API checks it (its kind
    and range); a run checks them together with the rest of its options."""
    from cc_executor._run._options import SERVER_ONLY, RunOptions
    from cc_executor._run._prepare import anchor_paths, check_option

    out: dict[str, Any] = {}
    for key, given in table.items():
        value = given
        name = RunOptions.alias_of.get(key, key)
        declared = RunOptions.by_name.get(name)
        if key in _REFUSED:
            raise found.error("defaults", key, f"not allowed here: {_REFUSED[key]}")
        if declared is None:
            raise found.error("defaults", key, f"unknown run option{_suggest(key)}")
        if declared.remote == SERVER_ONLY:
            raise found.error(
                "defaults",
                key,
                "not allowed here: it chooses what executes or where files go (a "
                "server-only option); give it on the command line or in the API call",
            )
        if name in _PER_RUN:
            raise found.error("defaults", key, "not allowed here: it is chosen for one run")
        if declared.kind in ("strings", "paths") and isinstance(value, str) and declared.commas:
            value = [part.strip() for part in value.split(",") if part.strip()]
        if declared.kind == "json" and not isinstance(value, dict):
            raise found.error("defaults", key, "expected a table (the JSON Schema itself)")
        try:
            check_option(name, value)
        except (TypeError, ValueError) as exc:
            problem = str(exc).removeprefix(f"{name} ")
            raise found.error("defaults", key, problem) from None
        out[name] = value
    return anchor_paths(out, found.folder)


def _suggest(key: str) -> str:
    import difflib

    from cc_executor._run._options import RunOptions

    close = difflib.get_close_matches(key, [o.name for o in RunOptions.options], n=1)
    return f" (did you mean {close[0]}?)" if close else ""


#: The file's sections and the function reading each (its table -> its value).
SECTIONS: dict[str, Callable[[dict[str, Any], _Located], Any]] = {
    "reserve_usd": _read_reserve,
    "defaults": _read_defaults,
}
