"""What a remote caller may run: the checks every run started through the service passes.

A run stays inside what the server was started to allow: its ``cwd`` (and ``add_dirs``)
inside the allowed roots, no server-only option, only the environment variables an agent
is configured with (an allowlist: nothing that loads code into the CLI or picks another
executable), and commands only from the exec allowlist, whose entries may pin the
arguments, with no environment at all unless the server allows a variable by name. A
refusal raises :class:`Forbidden`; a malformed value :class:`InvalidRequest`.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cc_executor._errors import Forbidden, InvalidRequest
from cc_executor._run._options import SERVER_ONLY, RunOptions
from cc_executor._run._prepare import check_option

#: Run options a remote caller may not set (declared ``server_only``): they choose what
#: executes (``agent_path``, ``mcp_config``, ``extra_args``) or where files go (``run_dir``,
#: ``run_id``). Older names of those options are refused alike.
SERVER_ONLY_OPTIONS = frozenset(
    name for o in RunOptions.options if o.remote == SERVER_ONLY for name in (o.name, *o.aliases)
)

#: The environment variables a remote caller may set for an agent run: what configures an
#: agent CLI (its API, model, limits, feature switches, proxy, locale), by name or by a
#: prefix whose variables only hold values. Anything else is refused: a denylist missed
#: BUN_OPTIONS (Claude Code is a Bun binary: ``--preload FILE`` runs code inside it), and
#: Claude Code alone reads over a thousand ``CLAUDE_*`` variables, some naming a program to
#: run (``CLAUDE_CODE_SHELL_PREFIX``, ``CLAUDE_CODE_PROCESS_WRAPPER``). A server adds names
#: with ``--allow-env``.
_AGENT_ENV_PREFIXES = (
    "ANTHROPIC_", "CLAUDE_CODE_DISABLE_", "CLAUDE_CODE_MAX_", "CLAUDE_CODE_USE_",
    "DISABLE_", "VERTEX_REGION_", "LC_",
)  # fmt: skip
_AGENT_ENV = frozenset(
    {
        "LANG", "LANGUAGE", "TZ", "TERM", "NO_COLOR", "FORCE_COLOR", "IS_SANDBOX",
        "MAX_THINKING_TOKENS", "MAX_MCP_OUTPUT_TOKENS", "MCP_TIMEOUT", "MCP_TOOL_TIMEOUT",
        "BASH_DEFAULT_TIMEOUT_MS", "BASH_MAX_TIMEOUT_MS", "BASH_MAX_OUTPUT_LENGTH",
        "SLASH_COMMAND_TOOL_CHAR_BUDGET", "USE_BUILTIN_RIPGREP",
        "CLAUDE_BASH_MAINTAIN_PROJECT_WORKING_DIR", "CLAUDE_CODE_API_KEY_HELPER_TTL_MS",
        "CLAUDE_CODE_SUBAGENT_MODEL", "CLAUDE_CODE_EFFORT_LEVEL", "CLAUDE_CODE_ENABLE_TELEMETRY",
        "CLAUDE_CODE_SKIP_BEDROCK_AUTH", "CLAUDE_CODE_SKIP_VERTEX_AUTH",
        "CLAUDE_CODE_SKIP_FOUNDRY_AUTH", "CLAUDE_CODE_IDE_SKIP_AUTO_INSTALL",
        "CLAUDE_CODE_EXTRA_BODY", "CLAUDE_CODE_CLIENT_KEY_PASSPHRASE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE", "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_BEARER_TOKEN_BEDROCK",
        "CLOUD_ML_REGION", "GOOGLE_CLOUD_PROJECT",
        "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    }
)  # fmt: skip
#: Words that make a variable name a place or a program (``CLAUDE_CONFIG_DIR``,
#: ``AWS_CONFIG_FILE``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``ANTHROPIC_UNIX_SOCKET``,
#: ``HOME``): a file there (a settings file with hooks, ``credential_process`` in an AWS
#: config, a ``.gitconfig`` under ``HOME``) can run commands, so such a name needs
#: ``--allow-env NAME`` even where its prefix is allowed.
_PLACE_WORDS = frozenset(
    {
        "FILE", "FILES", "DIR", "DIRS", "DIRECTORY", "PATH", "PATHS", "HOME", "ROOT",
        "FOLDER", "CONFIG", "SETTINGS", "CREDENTIALS", "CREDS", "BUNDLE", "CERT", "CERTS",
        "CERTIFICATE", "SOCKET", "SOCK", "BIN", "BINARY", "EXEC", "EXECUTABLE",
        "EXECUTABLES", "COMMAND", "CMD", "SCRIPT", "SHELL", "HELPER", "WRAPPER", "LAUNCHER",
        "PROGRAM", "PRELOAD", "PLUGIN", "PLUGINS", "SERVERS",
    }
)  # fmt: skip
#: Named files with no place word in their name: the client certificate's private key.
_PLACE_NAMES = frozenset({"CLAUDE_CODE_CLIENT_KEY"})

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Remote callers get heartbeats no more often than this (a tiny interval spins the loop).
_MIN_REMOTE_HEARTBEAT_S = 0.5

#: Options of a command run (``argv``): the process options of a run (checked by their
#: declarations), plus ``stdin``.
_EXEC_OPTIONS = ("cwd", "env", "timeout", "idle_timeout", "first_output_timeout", "grace")


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


class RunPolicy:
    """The checks of one server: ``allow_dirs`` are the roots a run's ``cwd`` must be inside
    (after resolving symlinks; none: the server's working directory), ``exec_allowlist``
    the executables a caller may run as commands (names looked up on the server's ``PATH``
    now, or absolute paths; none: commands are refused). Raises ``ValueError`` for an
    allowlisted name not on ``PATH``."""

    def __init__(
        self,
        allow_dirs: Sequence[str | os.PathLike[str]],
        exec_allowlist: Sequence[str],
        *,
        allow_env: Sequence[str] = (),
        exec_env: Sequence[str] = (),
    ) -> None:
        self._roots = [_resolved(d) for d in allow_dirs] or [_resolved(os.getcwd())]
        self._exec: dict[str, str] = {}
        #: The argument prefixes each allowlisted program may be run with (``()``: any).
        self._prefixes: dict[str, list[tuple[str, ...]]] = {}
        for entry in exec_allowlist:
            words = shlex.split(entry)
            if not words:
                raise ValueError("--allow-exec: an empty entry")
            name, pinned = words[0], tuple(words[1:])
            found = shutil.which(name)
            if found is None:
                raise ValueError(f"--allow-exec {name}: no such executable on PATH")
            # Run it by the path found, not its real path: a multi-call binary (busybox)
            # picks its applet from argv[0], and must see the allowlisted name, not
            # "busybox" (which would make argv[1] the applet: any applet, a shell included).
            self._exec[name] = os.path.abspath(found)
            self._prefixes.setdefault(name, []).append(pinned)
        for flag, names in (("--allow-env", allow_env), ("--allow-exec-env", exec_env)):
            for name in names:
                if not _VARIABLE_NAME.fullmatch(name):
                    raise ValueError(f"{flag} {name!r}: not an environment variable name")
        self._allow_env = frozenset(allow_env)
        self._exec_env = frozenset(exec_env)

    @property
    def exec_allowed(self) -> bool:
        """True when commands may be run (an allowlist was given)."""
        return bool(self._exec)

    def check_cwd(self, cwd: Any) -> str:
        """The resolved ``cwd`` (None: the first allowed root), a directory inside a root."""
        if cwd is None:
            return str(self._roots[0])
        if not isinstance(cwd, str) or not cwd or "\0" in cwd:
            raise InvalidRequest("cwd must be a non-empty string without NUL bytes")
        if not os.path.isabs(cwd):
            raise InvalidRequest(f"cwd must be an absolute path, got {cwd!r}")
        resolved = _resolved(cwd)
        for root in self._roots:
            if resolved == root or root in resolved.parents:
                if not resolved.is_dir():
                    raise InvalidRequest(f"cwd {cwd!r} is not a directory")
                return str(resolved)
        raise Forbidden(
            f"cwd {cwd!r} (resolved: {resolved}) is outside the allowed directories "
            "(start the server with --allow-dir to allow more)"
        )

    def check_env(self, env: Any, *, command: bool = False) -> dict[str, str]:
        """``env`` (None: empty) as a dict, when it sets only variables a caller may set:
        for an agent run, those that configure an agent (see ``_AGENT_ENV``) or that the
        server allows (``--allow-env``); for a command, only those the server allows for
        commands (``--allow-exec-env``): any variable can change what a program does."""
        if env is None:
            return {}
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise InvalidRequest("env must map strings to strings")
        for key in env:
            if command and key not in self._exec_env:
                raise Forbidden(
                    f"env {key} cannot be set for a command by a remote caller (the server "
                    "allows a variable with --allow-exec-env NAME)"
                )
            if not command and key not in self._allow_env:
                self._check_agent_variable(key)
        return dict(env)

    @staticmethod
    def _check_agent_variable(key: str) -> None:
        if key in _PLACE_NAMES or not _PLACE_WORDS.isdisjoint(key.upper().split("_")):
            raise Forbidden(
                f"env {key} cannot be set by a remote caller: it names a file, folder or "
                f"program (the server allows it with --allow-env {key})"
            )
        if key not in _AGENT_ENV and not key.startswith(_AGENT_ENV_PREFIXES):
            raise Forbidden(
                f"env {key} cannot be set by a remote caller (agent runs take the variables "
                "that configure an agent: ANTHROPIC_*, CLAUDE_CODE_DISABLE_*, proxies, "
                f"locale...; the server allows more with --allow-env {key})"
            )

    def check_agent_options(self, options: Mapping[str, Any], where: str) -> None:
        """Check the options of an agent run (or a task's, ``where`` naming it in messages)."""
        refused = sorted(SERVER_ONLY_OPTIONS & set(options))
        if refused:
            raise Forbidden(f"{where}option(s) set by the server only: {', '.join(refused)}")
        if "cwd" in options:
            self.check_cwd(options["cwd"])
        self.check_env(options.get("env"))
        self.check_add_dirs(options.get("add_dirs"), where)
        heartbeat = options.get("heartbeat_s")
        if isinstance(heartbeat, (int, float)) and 0 < heartbeat < _MIN_REMOTE_HEARTBEAT_S:
            raise InvalidRequest(
                f"{where}heartbeat_s must be 0 (off) or at least {_MIN_REMOTE_HEARTBEAT_S} s"
            )

    def check_add_dirs(self, add_dirs: Any, where: str = "") -> None:
        """Check that every one of ``add_dirs`` (a list, or None) is inside a root."""
        if add_dirs is None:
            return
        if not isinstance(add_dirs, list) or not all(isinstance(d, str) for d in add_dirs):
            raise InvalidRequest(f"{where}add_dirs must be a list of absolute paths")
        for extra in add_dirs:
            self.check_cwd(extra)

    def executable(self, argv: Any) -> str:
        """The path to run for command ``argv`` (its ``argv[0]`` on the allowlist, by name or
        as one of the allowlisted paths)."""
        if not self._exec:
            raise Forbidden(
                "running commands is disabled on this server (start it with --allow-exec NAME)"
            )
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and "\0" not in a for a in argv)
        ):
            raise InvalidRequest("argv must be a non-empty list of strings")
        executable = self._exec.get(argv[0])
        if executable is None and os.path.isabs(argv[0]):
            # An absolute path is allowed when it is one of the allowlisted paths itself.
            requested = os.path.abspath(argv[0])
            executable = requested if requested in self._exec.values() else None
        if executable is None:
            raise Forbidden(
                f"{argv[0]!r} is not on this server's exec allowlist "
                f"({', '.join(sorted(self._exec))})"
            )
        allowed = [
            (name, pinned)
            for name, path in self._exec.items()
            if path == executable
            for pinned in self._prefixes[name]
        ]
        if not any(tuple(argv[1 : 1 + len(pinned)]) == pinned for _, pinned in allowed):
            shown = " | ".join(shlex.join([name, *pinned]) for name, pinned in allowed)
            raise Forbidden(
                f"{shlex.join(argv)[:200]!r} does not start with an allowed command ({shown})"
            )
        return executable

    def check_exec_options(self, options: Mapping[str, Any]) -> None:
        """Check the options of a command run: the process options, and ``stdin``."""
        for key, value in options.items():
            if key == "stdin":
                if not isinstance(value, str):
                    raise InvalidRequest(f"stdin must be a string, got {value!r}")
                continue
            if key not in _EXEC_OPTIONS:
                known = ", ".join(sorted((*_EXEC_OPTIONS, "stdin")))
                raise InvalidRequest(f"unknown command option {key!r} (known: {known})")
            try:
                check_option(key, value)
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(str(exc)) from None
