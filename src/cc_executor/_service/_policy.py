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
from collections.abc import Mapping, Sequence
from difflib import get_close_matches
from pathlib import Path
from typing import Any

from cc_executor._agents import agent_names
from cc_executor._errors import Forbidden, InvalidRequest
from cc_executor._run._options import SERVER_ONLY, RunOptions
from cc_executor._run._prepare import COMMAND_OPTIONS, check_option
from cc_executor._service._exec_policy import ExecRule, allow_exec_rule, load_exec_policy

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
        "OPENAI_API_KEY", "CODEX_API_KEY",
        "GEMINI_API_KEY", "GOOGLE_API_KEY", "GEMINI_MODEL", "GEMINI_DEFAULT_AUTH_TYPE",
        "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_GENAI_USE_GCA", "GOOGLE_GENAI_API_VERSION",
        "GOOGLE_CLOUD_LOCATION", "GOOGLE_CLOUD_REGION",
    }
)  # fmt: skip
#: Words that make a variable name a place, a program or an endpoint (``CLAUDE_CONFIG_DIR``,
#: ``AWS_CONFIG_FILE``, ``GOOGLE_APPLICATION_CREDENTIALS``, ``ANTHROPIC_UNIX_SOCKET``,
#: ``HOME``, ``ANTHROPIC_BASE_URL``): a file there (a settings file with hooks,
#: ``credential_process`` in an AWS config, a ``.gitconfig`` under ``HOME``) can run
#: commands, and an endpoint receives the server's API key (why ``base_url`` is
#: server-only), so such a name needs ``--allow-env NAME`` even where its prefix is allowed.
_PLACE_WORDS = frozenset(
    {
        "FILE", "FILES", "DIR", "DIRS", "DIRECTORY", "PATH", "PATHS", "HOME", "ROOT",
        "FOLDER", "CONFIG", "SETTINGS", "CREDENTIALS", "CREDS", "BUNDLE", "CERT", "CERTS",
        "CERTIFICATE", "SOCKET", "SOCK", "BIN", "BINARY", "EXEC", "EXECUTABLE",
        "EXECUTABLES", "COMMAND", "CMD", "SCRIPT", "SHELL", "HELPER", "WRAPPER", "LAUNCHER",
        "PROGRAM", "PRELOAD", "PLUGIN", "PLUGINS", "SERVERS", "URL", "URI", "HOST", "HOSTS",
        "ENDPOINT", "DOMAIN",
    }
)  # fmt: skip
#: Named files with no place word in their name: the client certificate's private key.
_PLACE_NAMES = frozenset({"CLAUDE_CODE_CLIENT_KEY"})

#: The agent a server allows when its operator names none: Claude Code, as before other
#: agents existed (another agent runs other code, with other keys, at other endpoints).
DEFAULT_AGENT = RunOptions.by_name["agent"].default

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

#: Remote callers get heartbeats no more often than this (a tiny interval spins the loop).
_MIN_REMOTE_HEARTBEAT_S = 0.5


def _resolved(path: str | os.PathLike[str]) -> Path:
    return Path(os.path.realpath(os.fspath(path)))


class RunPolicy:
    """The checks of one server: ``allow_dirs`` are the roots a run's ``cwd`` must be inside
    (after resolving symlinks; none: the server's working directory); the commands a caller
    may run are the ``exec_allowlist`` entries (a program, by name on the server's ``PATH``
    or by absolute path, and the arguments a command must start with) and the entries of
    the ``exec_policy`` file (see :mod:`cc_executor._service._exec_policy`); none: commands
    are refused. Raises :class:`ExecPolicyError` (a ``ValueError``) for a program not on
    ``PATH`` or a bad policy file, ``ValueError`` for a bad variable name or an
    ``allow_dirs`` entry that is not a directory. ``agents`` are
    the agents a caller may run (the first: the one a run naming none runs), ``ValueError``
    for an unknown one."""

    def __init__(
        self,
        allow_dirs: Sequence[str | os.PathLike[str]],
        exec_allowlist: Sequence[str],
        *,
        allow_env: Sequence[str] = (),
        exec_env: Sequence[str] = (),
        exec_policy: str | os.PathLike[str] | None = None,
        agents: Sequence[str] = (DEFAULT_AGENT,),
        allow_repos: Sequence[str] = (),
        host: str = "server",
    ) -> None:
        if not agents:
            raise ValueError("at least one agent must be allowed")
        for name in agents:
            if name not in agent_names():
                raise ValueError(f"agent {name!r} is unknown (known: {', '.join(agent_names())})")
        self.agents = tuple(dict.fromkeys(agents))
        for folder in allow_dirs:
            # A root that is no folder would refuse every run, each saying "outside".
            if not os.path.isdir(folder):
                why = "not a directory" if os.path.exists(folder) else "no such directory"
                raise ValueError(f"--allow-dir {os.fspath(folder)}: {why}")
        self._roots = [_resolved(d) for d in allow_dirs] or [_resolved(os.getcwd())]
        self._rules = [allow_exec_rule(entry) for entry in exec_allowlist]
        if exec_policy is not None:
            self._rules += load_exec_policy(exec_policy)
        #: The path each allowed program name runs.
        self._exec = {rule.program: rule.path for rule in self._rules}
        for flag, names in (("--allow-env", allow_env), ("--allow-exec-env", exec_env)):
            for name in names:
                if not _VARIABLE_NAME.fullmatch(name):
                    raise ValueError(f"{flag} {name!r}: not an environment variable name")
        self._allow_env = frozenset(allow_env)
        #: Patterns of the git URLs a run's ``repo`` may name (none: no repo is cloned).
        self.allow_repos = tuple(allow_repos)
        self._exec_env = frozenset(exec_env)
        #: What a refusal calls the process whose flags allow more: "server" or "worker".
        self.host = host

    @property
    def exec_allowed(self) -> bool:
        """True when commands may be run (an allowlist or a policy was given)."""
        return bool(self._rules)

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
            f"(start the {self.host} with --allow-dir to allow more)"
        )

    def inside(self, path: str | os.PathLike[str] | None) -> bool:
        """True when ``path`` (a folder a run used, as the history holds it) resolves inside
        an allowed root: what of the history a remote caller may see and resume."""
        if not path:
            return False
        resolved = _resolved(path)
        return any(resolved == root or root in resolved.parents for root in self._roots)

    def check_resume(self, session_id: Any, folders: Sequence[str | None]) -> None:
        """Refuse to resume ``session_id`` unless one of the runs the history holds for it
        (their ``folders``) ran inside an allowed root: the resumed run would get the whole
        conversation of a session held in another folder."""
        if not any(self.inside(folder) for folder in folders):
            raise Forbidden(
                f"resume {str(session_id)[:100]!r}: not the session of a run in the allowed "
                "directories (a remote caller resumes only those)"
            )

    def check_env(self, env: Any, *, command: Sequence[str] | None = None) -> dict[str, str]:
        """``env`` (None: empty) as a dict, when it sets only variables a caller may set:
        for an agent run, those that configure an agent (see ``_AGENT_ENV``) or that the
        server allows (``--allow-env``); for the command ``command`` (an argv already
        allowed by :meth:`executable`), only those the server allows for commands
        (``--allow-exec-env``) and those of one exec policy entry allowing it: any variable
        can change what a program does."""
        if env is None:
            return {}
        if not isinstance(env, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()
        ):
            raise InvalidRequest("env must map strings to strings")
        if command is not None:
            self._check_command_env(set(env) - self._exec_env, command)
        else:
            for key in env:
                if key not in self._allow_env:
                    self._check_agent_variable(key)
        return dict(env)

    def _check_command_env(self, wanted: set[str], argv: Sequence[str]) -> None:
        if not wanted:
            return
        rules = [rule for rule in self._rules_for(argv) if rule.allows(argv[1:])]
        if any(wanted <= rule.env for rule in rules):
            return
        allowed = frozenset().union(*(rule.env for rule in rules))
        missing = sorted(wanted - allowed)
        if missing:
            raise Forbidden(
                f"env {missing[0]} cannot be set for this command by a remote caller (the "
                f"{self.host} allows a variable with --allow-exec-env NAME, or in the env of an "
                "--exec-policy entry)"
            )
        raise Forbidden(
            f"env {', '.join(sorted(wanted))}: no one --exec-policy entry allowing this "
            "command allows them all together"
        )

    def _check_agent_variable(self, key: str) -> None:
        if key in _PLACE_NAMES or not _PLACE_WORDS.isdisjoint(key.upper().split("_")):
            raise Forbidden(
                f"env {key} cannot be set by a remote caller: it names a file, folder, program "
                f"or endpoint (the {self.host} allows it with --allow-env {key})"
            )
        if key not in _AGENT_ENV and not key.startswith(_AGENT_ENV_PREFIXES):
            raise Forbidden(
                f"env {key} cannot be set by a remote caller (agent runs take the variables "
                "that configure an agent: ANTHROPIC_*, CLAUDE_CODE_DISABLE_*, API keys, proxies, "
                f"locale...; the {self.host} allows more with --allow-env {key})"
            )

    def agent_of(self, options: Mapping[str, Any], where: str = "") -> str:
        """The agent a run with ``options`` runs: its ``agent``, else the server's first; it
        must be one the server allows."""
        agent = options.get("agent", self.agents[0])
        if agent not in self.agents:
            if not isinstance(agent, str):
                raise InvalidRequest(f"{where}agent must be a string, got {agent!r}")
            raise Forbidden(
                f"{where}agent {agent[:100]!r} is not allowed on this {self.host} (it allows "
                f"{', '.join(self.agents)}; the {self.host} allows more with --agent NAME)"
            )
        return str(agent)

    def check_agent_options(self, options: Mapping[str, Any], where: str) -> None:
        """Check the options of an agent run (or a task's, ``where`` naming it in messages)."""
        refused = sorted(SERVER_ONLY_OPTIONS & set(options))
        if refused:
            raise Forbidden(f"{where}option(s) set by the {self.host} only: {', '.join(refused)}")
        if "agent" in options:
            self.agent_of(options, where)
        if "cwd" in options:
            self.check_cwd(options["cwd"])
        if options.get("repo") is not None:
            self.check_repo(options["repo"], where)
        self.check_env(options.get("env"))
        self.check_add_dirs(options.get("add_dirs"), where)
        heartbeat = options.get("heartbeat_s")
        if isinstance(heartbeat, (int, float)) and 0 < heartbeat < _MIN_REMOTE_HEARTBEAT_S:
            raise InvalidRequest(
                f"{where}heartbeat_s must be 0 (off) or at least {_MIN_REMOTE_HEARTBEAT_S} s"
            )

    def check_repo(self, url: Any, where: str = "") -> None:
        """A run's ``repo`` must be a URL a run may clone and match an ``--allow-repo``
        pattern (none given: every repo is refused)."""
        from cc_executor._run._repo import check_repo_url, repo_allowed

        try:
            check_repo_url(url)
        except ValueError as exc:
            raise InvalidRequest(f"{where}{exc}") from None
        if not repo_allowed(url, self.allow_repos):
            allowed = (
                f"it allows {', '.join(self.allow_repos)}" if self.allow_repos else "it allows none"
            )
            raise Forbidden(
                f"{where}repo {url[:200]!r} is not allowed here ({allowed}; a worker or "
                "serve started with --allow-repo PATTERN allows more)"
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
        """The path to run for command ``argv``: its ``argv[0]`` an allowed program (by name,
        or as one of the allowed paths) and its arguments allowed by one of its rules."""
        if not self._rules:
            raise Forbidden(
                f"running commands is disabled on this {self.host} (start it with --allow-exec "
                "NAME or --exec-policy FILE)"
            )
        if (
            not isinstance(argv, list)
            or not argv
            or not all(isinstance(a, str) and "\0" not in a for a in argv)
        ):
            raise InvalidRequest("argv must be a non-empty list of strings")
        rules = self._rules_for(argv)
        if not rules:
            raise Forbidden(
                f"{argv[0]!r} is not on this {self.host}'s exec allowlist "
                f"({', '.join(sorted(self._exec))})"
            )
        if not any(rule.allows(argv[1:]) for rule in rules):
            shown = " | ".join(rule.describe() for rule in rules)
            raise Forbidden(
                f"{shlex.join(argv)[:200]!r} does not start with an allowed command or match "
                f"an allowed pattern ({shown[:800]})"
            )
        return rules[0].path

    def _rules_for(self, argv: Sequence[str]) -> list[ExecRule]:
        """The rules of ``argv[0]``'s program (by name, or by one of the allowed paths)."""
        path = self._exec.get(argv[0])
        if path is None and os.path.isabs(argv[0]):
            path = os.path.abspath(argv[0])
        return [rule for rule in self._rules if rule.path == path]

    def check_exec_options(self, options: Mapping[str, Any]) -> None:
        """Check the options of a command run: the process options, and ``stdin``."""
        for key, value in options.items():
            if key == "stdin":
                if not isinstance(value, str):
                    raise InvalidRequest(f"stdin must be a string, got {value!r}")
                continue
            if key not in COMMAND_OPTIONS:
                known = ", ".join(sorted((*COMMAND_OPTIONS, "stdin")))
                raise InvalidRequest(f"unknown command option {key!r} (known: {known})")
            try:
                check_option(key, value)
            except (TypeError, ValueError) as exc:
                raise InvalidRequest(str(exc)) from None


def check_option_names(options: Mapping[str, Any]) -> None:
    """Refuse an option of an agent run that the options' JSON Schema does not list,
    naming those a remote caller may set and the closest to a misspelt one (a
    server-only option is left to :meth:`RunPolicy.check_agent_options`, which says
    so)."""
    from cc_executor._run._options_schema import options_json_schema

    settable = options_json_schema(remote=True)["properties"]
    unknown = sorted(set(options) - set(settable) - SERVER_ONLY_OPTIONS - set(RunOptions.alias_of))
    if unknown:
        hints = [
            m[0] if len(unknown) == 1 else f"{m[0]} for {u}"
            for u in unknown
            if (m := get_close_matches(u, settable, 1))
        ]
        hint = f" (did you mean {', '.join(hints)}?)" if hints else ""
        raise InvalidRequest(
            f"unknown run option(s) in options: {', '.join(unknown)}{hint}; "
            f"known: {', '.join(sorted(settable))}"
        )
