"""Agent adapters: one per agent CLI, each behind the
:class:`~cc_executor._agents._base.AgentAdapter` interface (find the executable, build its
command line, parse its output into the typed events, decide how a run ended). Nothing
above this package names an agent: it asks :func:`get_adapter` for the one a run's
``agent`` option names.

Importable without anything beyond the interpreter's start-up set: the console looks its
agent up before it starts the CLI.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from cc_executor._agents._base import AgentAdapter

#: Every agent: its name (the ``agent`` option's value) and the class implementing it.
ADAPTERS = {
    "claude": ("cc_executor._agents._claude._adapter", "ClaudeAdapter"),
    "codex": ("cc_executor._agents._codex._adapter", "CodexAdapter"),
    "gemini": ("cc_executor._agents._gemini._adapter", "GeminiAdapter"),
    "command": ("cc_executor._agents._command._adapter", "CommandAdapter"),
}

_loaded: dict[str, AgentAdapter] = {}


def agent_names() -> tuple[str, ...]:
    """The names the ``agent`` option accepts."""
    return tuple(ADAPTERS)


def adapter_for(options: Any) -> AgentAdapter:
    """The adapter a run with ``options`` works with: its agent's, bound to the options when
    the agent needs them beyond the calls that take them (the command agent's spec)."""
    adapter = get_adapter(options.agent)
    bind = getattr(adapter, "bind", None)
    return bind(options) if bind is not None else adapter


def get_adapter(name: str) -> AgentAdapter:
    """The adapter of agent ``name``; ``ValueError`` naming the known agents for any other."""
    adapter = _loaded.get(name)
    if adapter is not None:
        return adapter
    target = ADAPTERS.get(name) if isinstance(name, str) else None
    if target is None:
        raise ValueError(f"agent must be one of {', '.join(ADAPTERS)}, got {name!r}")
    import importlib

    module, cls = target
    made: AgentAdapter = getattr(importlib.import_module(module), cls)()
    _loaded[name] = made
    return made
