"""Every run option, declared once.

Each option of :func:`cc_executor.run` is one line of :class:`RunOptions` below: its name
and type, its default, its range, its command-line flag (group, metavar, help), its key in
task lists, whether a remote caller may set it, and which agents support it. Everything
else is derived from these declarations: the checks of the options
(:func:`~cc_executor._run._prepare.check_run_options`), the ``cc-executor run`` parser and
the console's quick reader (``_cli/_args.py``), the task lists' fields
(``tasks/_fields.py``), the service's policy (``_service``) and the README's flag list.
Adding an option is one declaration here, plus its flag in the agent adapters that
support it.

No imports beyond the interpreter's start-up set: the console reads this table before it
starts the agent CLI (see ``_cli/_early.py``), which is also why :class:`RunOptions` is
not a dataclass (importing ``dataclasses`` costs the early start milliseconds).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Collection, Mapping, Sequence
    from typing import Any, ClassVar

    from typing_extensions import dataclass_transform
else:

    def dataclass_transform(**_: object) -> object:
        return lambda cls: cls


#: What values an option takes; the checks, the parsers and the task-list validators are
#: chosen by kind.
KINDS = (
    "text",
    "number",
    "integer",
    "size",
    "flag",
    "strings",
    "paths",
    "path",
    "mcp",
    "env",
    "json",
)

#: Where a flag is listed in ``cc-executor run --help``, in this order.
GROUPS = ("time", "agent", "environment", "resources", "answer and output")

#: Remote policies: ``allowed`` for anyone with the service's token; ``server_only`` for
#: options that choose what executes or where files go (set by the server's own defaults).
ALLOWED = "allowed"
SERVER_ONLY = "server_only"

#: What a fleet does with a run whose worker was lost (``on_worker_lost``).
ON_WORKER_LOST = ("resume", "restart", "fail")


_SIZE_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}


def parse_size(value: int | str, name: str = "size") -> int:
    """Bytes from an integer, or from text: a number with an optional binary unit (``K``,
    ``M``, ``G``, ``T``; ``512M``, ``1.5G``, ``2GiB``, ``300MB`` all count in 1024s, as
    cgroups, Docker and systemd do). ``ValueError`` naming ``name`` for anything else, or a
    value that is not positive."""
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a size in bytes (512M, 2G), got {value!r}")
    if isinstance(value, int):
        amount = value
    else:
        text = str(value).strip().lower()
        for suffix in ("ib", "b"):
            if text.endswith(suffix) and text[: -len(suffix)][-1:] in "kmgt":
                text = text[: -len(suffix)]
                break
        if text.endswith("b"):
            text = text[:-1]
        unit = text[-1:] if text[-1:] in "kmgt" else ""
        number = text[: len(text) - len(unit)].strip()
        try:
            amount = int(float(number) * _SIZE_UNITS[unit]) if number else -1
        except (ValueError, OverflowError):
            raise ValueError(f"{name} must be a size in bytes (512M, 2G), got {value!r}") from None
    if amount <= 0:
        raise ValueError(f"{name} must be a positive size, got {value!r}")
    return amount


class Option:
    """The declaration of one run option (see the module docstring).

    ``kind``: one of :data:`KINDS`; None is a valid value when it is the default; ``above`` /
    ``at_least``: the range of a number; ``flag``: the ``cc-executor run`` flag (None: the
    option has none), ``flag_aliases`` older spellings of it; ``commas``: a list given as
    one comma-separated string on the command line and in task lists; ``words``: words a
    number flag also takes (``--timeout auto``); ``task``: the key in task lists (None: not
    settable there); ``remote``: :data:`ALLOWED` or :data:`SERVER_ONLY`; ``agents``: the
    agents that support it (None: every agent); ``aliases``: older keyword names.
    """

    __slots__ = (
        "above",
        "agents",
        "aliases",
        "at_least",
        "commas",
        "default",
        "factory",
        "flag",
        "flag_aliases",
        "group",
        "help",
        "kind",
        "metavar",
        "name",
        "optional",
        "remote",
        "task",
        "words",
    )

    def __init__(
        self,
        kind: str,
        default: Any,
        factory: Callable[[], Any] | None,
        *,
        above: float | None = None,
        at_least: float | None = None,
        flag: str | None = None,
        flag_aliases: tuple[str, ...] = (),
        group: str = "agent",
        metavar: str | None = None,
        help: str | None = None,
        commas: bool = False,
        words: tuple[str, ...] = (),
        task: str | bool = True,
        remote: str = ALLOWED,
        agents: tuple[str, ...] | None = None,
        aliases: tuple[str, ...] = (),
    ) -> None:
        if kind not in KINDS or group not in GROUPS or remote not in (ALLOWED, SERVER_ONLY):
            raise ValueError(f"bad option declaration: {kind!r}, {group!r}, {remote!r}")
        self.name = ""  # set by RunOptions from the attribute's name
        self.kind = kind
        self.default = default
        self.factory = factory
        #: None is a valid value exactly when it is the default.
        self.optional = default is None and factory is None
        self.above = above
        self.at_least = at_least
        self.flag = flag
        self.flag_aliases = flag_aliases
        self.group = group
        self.metavar = metavar
        self.help = help
        self.commas = commas
        self.words = words
        self.task: str | bool | None = task
        self.remote = remote
        self.agents = agents
        self.aliases = aliases

    def initial(self) -> Any:
        """The default value (a fresh one for mutable defaults)."""
        return self.factory() if self.factory is not None else self.default

    @property
    def task_key(self) -> str | None:
        """The option's key in task lists, or None."""
        if self.task is True:
            return self.name
        return self.task or None

    def __repr__(self) -> str:
        return f"Option({self.name!r}, kind={self.kind!r})"


def option(
    *,
    kind: str,
    default: Any = None,
    default_factory: Callable[[], Any] | None = None,
    **declaration: Any,
) -> Any:
    """Declare a run option (a field of :class:`RunOptions`); see :class:`Option`."""
    return Option(kind, default, default_factory, **declaration)


@dataclass_transform(kw_only_default=True, frozen_default=True, field_specifiers=(option,))
class OptionRecord:
    """Base of :class:`RunOptions`: what a frozen, keyword-only dataclass gives (``__init__``
    from the declared fields, ``__eq__``, ``__repr__``, no assignment), built from the
    :class:`Option` declarations of the subclass. An unknown keyword is a ``TypeError``
    naming it and the known ones; an older alias of an option is accepted for it."""

    options: ClassVar[tuple[Option, ...]] = ()
    by_name: ClassVar[dict[str, Option]] = {}
    alias_of: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        declared = []
        for name, value in vars(cls).items():
            if isinstance(value, Option):
                value.name = name
                declared.append(value)
        cls.options = tuple(declared)
        cls.by_name = {o.name: o for o in declared}
        cls.alias_of = {alias: o.name for o in declared for alias in o.aliases}

    def __init__(self, **values: Any) -> None:
        cls = type(self)
        for alias, name in cls.alias_of.items():
            if alias in values:
                if name in values:
                    raise TypeError(f"{alias} and {name} are the same option: give one")
                values[name] = values.pop(alias)
        unknown = sorted(set(values) - set(cls.by_name))
        if unknown:
            known = ", ".join(sorted(cls.by_name))
            raise TypeError(f"unknown run option(s): {', '.join(unknown)} (known: {known})")
        for o in cls.options:
            object.__setattr__(self, o.name, values[o.name] if o.name in values else o.initial())
        self.__post_init__()

    def __post_init__(self) -> None:
        """Checks, run once every field is set."""

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: use replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, o.name) == getattr(other, o.name) for o in self.options)

    __hash__ = None  # type: ignore[assignment]  # mutable values (env) make it unhashable

    def __repr__(self) -> str:
        fields = ", ".join(f"{o.name}={getattr(self, o.name)!r}" for o in self.options)
        return f"{type(self).__name__}({fields})"

    def as_dict(self) -> dict[str, Any]:
        """Every option by name."""
        return {o.name: getattr(self, o.name) for o in self.options}

    def replace(self, **changes: Any) -> Any:
        """A copy with ``changes`` (checked like new options; an older name is taken for
        its option)."""
        named = {type(self).alias_of.get(k, k): v for k, v in changes.items()}
        return type(self)(**{**self.as_dict(), **named})


class RunOptions(OptionRecord):
    """Every option of :func:`cc_executor.run`; a wrong type or value raises
    ``TypeError``/``ValueError`` naming the option when it is made. The ``help`` of each
    declaration is its documentation (``cc-executor run --help`` shows it too)."""

    # -- the agent ---------------------------------------------------------------------
    agent: str = option(
        kind="text",
        default="claude",
        flag="--agent",
        metavar="NAME",
        help="the agent CLI to run (claude, codex, gemini, or command with --agent-spec)",
    )
    agent_path: str | os.PathLike[str] | None = option(
        kind="path",
        default=None,
        flag="--agent-path",
        flag_aliases=("--claude",),
        metavar="PATH",
        help="the agent's executable (default: found on PATH and in the usual places)",
        task=False,
        remote=SERVER_ONLY,
        aliases=("claude_path",),
    )
    base_url: str | None = option(
        kind="text",
        default=None,
        flag="--base-url",
        metavar="URL",
        remote=SERVER_ONLY,
        help="the model API endpoint the agent talks to (a gateway, a proxy, a scripted "
        "server); the API key comes from the agent's usual variable",
    )
    sandbox: str | None = option(
        kind="text",
        default=None,
        flag="--sandbox",
        metavar="MODE",
        agents=("codex",),
        help="Codex CLI's sandbox: read-only (default), workspace-write or danger-full-access",
    )
    agent_spec: str | os.PathLike[str] | None = option(
        kind="path",
        default=None,
        flag="--agent-spec",
        metavar="FILE",
        remote=SERVER_ONLY,
        agents=("command",),
        help="the command agent's spec: a TOML file naming its argv and how its output "
        "reads (see docs/agents/command.md)",
    )
    model: str | None = option(
        kind="text",
        default=None,
        flag="--model",
        metavar="M",
        help="the model (an alias or a full name)",
    )
    fallback_model: str | None = option(
        kind="text",
        default=None,
        flag="--fallback-model",
        metavar="M[,M]",
        help="models to fall back to when the main one is busy or unavailable, in order",
        agents=("claude",),
    )
    max_turns: int | None = option(
        kind="integer",
        default=None,
        at_least=1,
        flag="--max-turns",
        metavar="N",
        agents=("claude",),
        help="stop after N agent turns (status max_turns)",
    )
    max_budget_usd: float | None = option(
        kind="number",
        default=None,
        above=0,
        flag="--max-budget-usd",
        metavar="USD",
        help="stop once the run has cost USD (status budget_exceeded); for agents that "
        "report no cost, its estimate, checked as each attempt ends (docs/agents/prices.md)",
    )
    resume: str | None = option(
        kind="text",
        default=None,
        flag="--resume",
        metavar="SESSION_ID",
        help="continue that session",
        task=False,
    )
    continue_session: bool = option(
        kind="flag",
        default=False,
        flag="--continue",
        task=False,
        agents=("claude",),
        help="continue the most recent session in the cwd",
    )
    session_id: str | None = option(
        kind="text",
        default=None,
        flag="--session-id",
        metavar="UUID",
        task=False,
        agents=("claude",),
        help="the session id of a new session",
    )
    fork_session: bool = option(
        kind="flag",
        default=False,
        flag="--fork-session",
        task=False,
        agents=("claude",),
        help="with --resume or --continue: go on in a new session",
    )
    allowed_tools: Collection[str] = option(
        kind="strings",
        default=(),
        flag="--allowed-tools",
        metavar="T[,T]",
        commas=True,
        agents=("claude",),
        help="tools the agent may use without asking (comma-separated, repeatable)",
    )
    disallowed_tools: Collection[str] = option(
        kind="strings",
        default=(),
        flag="--disallowed-tools",
        metavar="T",
        commas=True,
        agents=("claude",),
        help="tools the agent may not use (comma-separated, repeatable)",
    )
    permission_policy: str | os.PathLike[str] | None = option(
        kind="path",
        default=None,
        flag="--permission-policy",
        metavar="FILE",
        remote=SERVER_ONLY,
        help="a YAML file of allow/deny/ask rules for tool calls, decided outside the model "
        "(docs/permissions.md)",
    )
    permission_mode: str | None = option(
        kind="text",
        default=None,
        flag="--permission-mode",
        metavar="MODE",
        agents=("claude", "gemini"),
        help="the agent's permission mode (Claude Code: acceptEdits, auto, "
        "bypassPermissions, manual, dontAsk, plan; Gemini CLI: default, auto_edit, yolo, plan)",
    )
    mcp_config: str | Mapping[str, Any] | None = option(
        kind="mcp",
        default=None,
        flag="--mcp-config",
        metavar="FILE|JSON",
        remote=SERVER_ONLY,
        agents=("claude",),
        help="MCP servers for the agent: a file or JSON text",
    )
    strict_mcp_config: bool = option(
        kind="flag",
        default=False,
        flag="--strict-mcp-config",
        agents=("claude",),
        help="use only the MCP servers of --mcp-config",
    )
    append_system_prompt: str | None = option(
        kind="text",
        default=None,
        flag="--append-system-prompt",
        metavar="TEXT",
        agents=("claude",),
        help="text appended to the agent's system prompt",
    )
    add_dirs: Sequence[str] = option(
        kind="paths",
        default=(),
        flag="--add-dir",
        metavar="DIR",
        agents=("claude", "codex"),
        help="another folder the agent may work in (repeatable)",
    )
    include_partial_messages: bool = option(
        kind="flag",
        default=True,
        flag="--no-partial-messages",
        help="do not ask for token-level streaming (partial text is then lost on a timeout)",
        agents=("claude",),
    )
    extra_args: Sequence[str] = option(
        kind="strings",
        default=(),
        flag="--extra-arg",
        metavar="ARG",
        help="a raw flag for the agent CLI, appended last (repeat for more)",
        remote=SERVER_ONLY,
    )
    max_context_tokens: int | None = option(
        kind="integer",
        default=None,
        above=0,
        flag="--max-context-tokens",
        metavar="N",
        help="the context window Claude Code should assume (it refuses longer prompts itself)",
        agents=("claude",),
    )

    # -- the process -------------------------------------------------------------------
    cwd: str | os.PathLike[str] | None = option(
        kind="path",
        default=None,
        flag="--cwd",
        metavar="DIR",
        group="environment",
        help="the folder the agent runs in (default: the current one)",
    )
    repo: str | None = option(
        kind="text",
        default=None,
        flag="--repo",
        metavar="URL",
        group="environment",
        help="run in a clone of this git repository (https://, ssh:// or file://), made in "
        "the run folder; with --workspace worktree the run's branch is pushed back to it "
        "(docs/fleet.md, Data movement)",
    )
    ref: str | None = option(
        kind="text",
        default=None,
        flag="--ref",
        metavar="REF",
        group="environment",
        help="with --repo: the branch, tag or commit to clone (default: its default branch)",
    )
    workspace: str | None = option(
        kind="text",
        default=None,
        flag="--workspace",
        metavar="worktree|copy",
        group="environment",
        help="run in a workspace of the run's own: a git worktree on the branch "
        "cc-executor/<run-id> (worktree), or a copy of a folder outside git (copy); the "
        "changes are committed there when the run ends (docs/workspaces.md)",
    )
    workspace_base: str | None = option(
        kind="text",
        default=None,
        flag="--workspace-base",
        metavar="REF",
        group="environment",
        help="with --workspace worktree: the commit the branch starts from (default: HEAD)",
    )
    carry_changes: bool = option(
        kind="flag",
        default=False,
        flag="--carry-changes",
        group="environment",
        help="with --workspace worktree: carry your uncommitted changes into the workspace "
        "(default: they stay out, and the run warns with their list)",
    )
    env: Mapping[str, str] = option(
        kind="env",
        default_factory=dict,
        flag="--env",
        metavar="KEY=VALUE",
        group="environment",
        help="a variable added to the agent's environment (repeat for more)",
    )
    # The operator's login pays, its config chooses what runs (MCP servers, hooks), and a
    # resume would reach every session of the operator's own: not a remote caller's choice.
    use_login: bool = option(
        kind="flag",
        default=False,
        flag="--use-login",
        group="environment",
        remote=SERVER_ONLY,
        help="run Codex or Gemini CLI with your own agent home and login (~/.codex, "
        "~/.gemini) instead of a home of the session's own in the run folder",
    )
    timeout: float | None = option(
        kind="number",
        default=None,
        above=0,
        flag="--timeout",
        metavar="S|auto",
        words=("auto",),
        group="time",
        help="total time limit; 'auto' derives it from similar past runs",
    )
    idle_timeout: float | None = option(
        kind="number",
        default=None,
        above=0,
        flag="--idle-timeout",
        metavar="S",
        group="time",
        help="stop after S s without output",
    )
    first_output_timeout: float | None = option(
        kind="number",
        default=None,
        above=0,
        flag="--first-output-timeout",
        metavar="S",
        group="time",
        help="stop if nothing is printed within S s of the start",
    )
    grace: float = option(
        kind="number",
        default=5.0,
        at_least=0,
        flag="--grace",
        metavar="S",
        group="time",
        help="SIGTERM->SIGKILL delay",
    )

    # -- resources (a cgroup of the run's own; output counted by the engine) -------------
    memory_max: int | str | None = option(
        kind="size",
        default=None,
        flag="--memory-max",
        metavar="BYTES",
        group="resources",
        help="memory limit of the run's whole process tree (512M, 2G); over it the kernel "
        "kills it (status oom_killed)",
    )
    cpus: float | None = option(
        kind="number",
        default=None,
        above=0,
        flag="--cpus",
        metavar="N",
        group="resources",
        help="CPU time of the run's whole process tree per second of wall time (0.5: half a CPU)",
    )
    pids_max: int | None = option(
        kind="integer",
        default=None,
        above=0,
        flag="--pids-max",
        metavar="N",
        group="resources",
        help="processes and threads the run's tree may have at once; a refused fork stops "
        "it (status limit_exceeded)",
    )
    max_output_bytes: int | str | None = option(
        kind="size",
        default=None,
        flag="--max-output-bytes",
        metavar="BYTES",
        group="resources",
        help="what the run may write to its stdout and stderr files together (10M); past it "
        "the tree is killed (status limit_exceeded), the output kept up to the limit",
    )

    # -- the answer --------------------------------------------------------------------
    json_mode: bool = option(
        kind="flag",
        default=False,
        flag="--json-mode",
        group="answer and output",
        help="extract a JSON value from the answer",
    )
    json_schema: Mapping[str, Any] | None = option(
        kind="json",
        default=None,
        flag="--json-schema",
        metavar="FILE|JSON",
        group="answer and output",
        help="validate the JSON against it",
    )
    structured_output: bool = option(
        kind="flag",
        default=False,
        flag="--structured-output",
        group="answer and output",
        help="also pass the schema to the CLI",
        agents=("claude",),
    )

    accept_denials: bool = option(
        kind="flag",
        default=False,
        flag="--accept-denials",
        group="answer and output",
        help="a run whose tool calls were denied may still end ok (status denied otherwise)",
    )

    # -- robustness --------------------------------------------------------------------
    retries: int = option(
        kind="integer",
        default=2,
        at_least=0,
        flag="--retries",
        metavar="N",
        group="answer and output",
        help="retries on rate limits, overload and 5xx while no tool has run",
        task="api_retries",
    )
    retry_initial_delay: float = option(
        kind="number",
        default=2.0,
        flag="--retry-initial-delay",
        metavar="S",
        group="answer and output",
        help="back-off before the first retry, doubled for each next one",
        task=False,
    )
    retry_max_delay: float = option(
        kind="number",
        default=60.0,
        flag="--retry-max-delay",
        metavar="S",
        group="answer and output",
        help="longest back-off between two attempts",
        task=False,
    )
    on_worker_lost: str = option(
        kind="text",
        default="resume",
        flag="--on-worker-lost",
        metavar="resume|restart|fail",
        group="answer and output",
        help="fleet runs: when the worker running it is lost, resume its session on another "
        "worker (restart when it cannot be carried), restart it from its prompt, or fail",
        task=True,
    )
    heartbeat_s: float = option(
        kind="number",
        default=10.0,
        at_least=0,
        flag="--heartbeat",
        metavar="S",
        group="answer and output",
        help="seconds between heartbeat events (0: none)",
        task=False,
    )

    # -- bookkeeping (no flag: the command records every run under a fresh id) ---------
    run_id: str | None = option(
        kind="text",
        default=None,
        task=False,
        remote=SERVER_ONLY,
        help="the run's id (default: a fresh one)",
    )
    run_dir: str | os.PathLike[str] | None = option(
        kind="path",
        default=None,
        task=False,
        remote=SERVER_ONLY,
        help="the run's folder (default: runs/<id> in the data folder)",
    )
    # The audit trail and its links are the server's to keep, not a remote caller's to
    # turn off or forge.
    record: bool = option(
        kind="flag",
        default=True,
        task=False,
        remote=SERVER_ONLY,
        help="keep the run in the history",
    )
    parent_id: str | None = option(
        kind="text",
        default=None,
        task=False,
        remote=SERVER_ONLY,
        help="the task list the run belongs to",
    )
    # A fleet worker's, for a repo run with a worktree: every attempt of the run pushes to
    # one branch, and an attempt after a lost worker goes on from what was pushed there.
    repo_branch: str | None = option(
        kind="text",
        default=None,
        task=False,
        remote=SERVER_ONLY,
        help="with repo and workspace worktree: the branch the run's work is pushed to "
        "(default: cc-executor/<run id>), with checkpoints while it runs (docs/fleet.md)",
    )
    repo_continue: bool = option(
        kind="flag",
        default=False,
        task=False,
        remote=SERVER_ONLY,
        help="with repo_branch: start from that branch as the remote has it (an earlier "
        "attempt's work), the change receipt's base staying the earlier attempt's",
    )

    def __post_init__(self) -> None:
        from cc_executor._run._prepare import check_run_options

        check_run_options(self)
        for o in self.options:
            value = getattr(self, o.name)
            if o.kind == "size" and isinstance(value, str):
                # Held as bytes: every view (JSON, history, the engine) sees one number.
                object.__setattr__(self, o.name, parse_size(value, o.name))

    @classmethod
    def from_kwargs(cls, options: Mapping[str, Any]) -> RunOptions:
        """Options from keyword arguments, with a clear error for an unknown name."""
        return cls(**options)

    @property
    def claude_path(self) -> str | os.PathLike[str] | None:
        """The older name of :attr:`agent_path`."""
        return self.agent_path

    def process_env(self, run_dir: str | None = None) -> dict[str, str]:
        """The variables added to the agent's environment: an agent home of the run's own
        in ``run_dir`` when the agent needs one, ``env``, plus what the agent's own options
        need (Claude Code: ``max_context_tokens``)."""
        from cc_executor._run._prepare import process_env

        return process_env(self, run_dir)
