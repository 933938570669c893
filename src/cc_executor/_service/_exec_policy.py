"""The commands a remote caller may run: ``--allow-exec`` entries and ``--exec-policy FILE``.

Each allowed command is an :class:`ExecRule`: a program (a name looked up on the server's
``PATH`` when the server starts, or an absolute path), the arguments a command must start
with, either literally (``prefix``) or as one shell-style pattern per argument (``match``,
:func:`fnmatch.fnmatchcase`: ``*`` and ``?`` match any characters, ``/`` and a leading
``-`` included), what the arguments after those must be (``rest``: a pattern each must
match; a prefix takes any by default, a match none), and the environment variables a caller
may set for it (``env``). A policy file is TOML::

    [[exec]]
    prefix = ["pytest", "-q"]         # pytest -q, then any arguments
    env = ["PYTEST_ADDOPTS"]

    [[exec]]
    match = ["git", "diff", "--stat", "[!-]*"]   # exactly four arguments
    rest = "[!-]*"                               # then more, none an option

A file that cannot be read or holds anything else raises :class:`ExecPolicyError` with one
line naming the file and the entry.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from cc_executor._errors import ExecPolicyError

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_PATTERN_CHARS = frozenset("*?[")
_ENTRY_KEYS = ("prefix", "match", "rest", "env")


@dataclass(frozen=True, slots=True)
class ExecRule:
    """One allowed command: ``program`` as written, ``path`` the file it runs, ``args`` the
    leading arguments (literal, or patterns when ``patterns``), ``rest`` the pattern every
    further argument must match (None: no further argument), ``env`` the variables a caller
    may set for it, ``source`` where it was declared (for messages)."""

    program: str
    path: str
    args: tuple[str, ...]
    patterns: bool
    rest: str | None
    env: frozenset[str]
    source: str

    def allows(self, args: Sequence[str]) -> bool:
        """Whether a command with these arguments (``argv[1:]``) is allowed by this rule."""
        head, tail = args[: len(self.args)], args[len(self.args) :]
        if len(head) < len(self.args):
            return False
        if self.patterns:
            if not all(fnmatchcase(a, p) for a, p in zip(head, self.args, strict=True)):
                return False
        elif tuple(head) != self.args:
            return False
        if self.rest is None:
            return not tail
        return all(fnmatchcase(a, self.rest) for a in tail)

    def describe(self) -> str:
        """The rule as a person reads it: ``pytest -q ...``, ``git diff '[!-]*'``."""
        shown = shlex.join([self.program, *self.args])
        if self.rest == "*":
            return f"{shown} ..."
        if self.rest is not None:
            return f"{shown} [{self.rest}...]"
        return shown


def resolve_program(program: str, where: str) -> str:
    """The path ``program`` runs: an absolute path as given, a name as found on ``PATH``.
    Run by that path, not its real path: a multi-call binary (busybox) picks its applet
    from argv[0] and must see the allowed name, not "busybox" (which would make argv[1]
    the applet: any applet, a shell included)."""
    found = shutil.which(program)
    if found is None:
        raise ExecPolicyError(f"{where}: no such executable on PATH")
    return os.path.abspath(found)


def allow_exec_rule(entry: str) -> ExecRule:
    """The rule of one ``--allow-exec`` value: a program and the arguments a command must
    start with, split like a shell would (``'pytest -q'``); any arguments may follow."""
    try:
        words = shlex.split(entry)
    except ValueError as exc:
        raise ExecPolicyError(f"--allow-exec {entry!r}: {exc}") from None
    if not words:
        raise ExecPolicyError("--allow-exec: an empty entry")
    source = f"--allow-exec {words[0]}"
    path = resolve_program(words[0], source)
    return ExecRule(words[0], path, tuple(words[1:]), False, "*", frozenset(), source)


def load_exec_policy(path: str | os.PathLike[str]) -> list[ExecRule]:
    """The rules of the policy file ``path`` (see the module docstring), in file order.
    Raises :class:`ExecPolicyError` naming the file, and the entry, of the first problem."""
    name = os.fspath(path)
    try:
        with open(name, "rb") as file:
            data = tomllib.load(file)
    except OSError as exc:
        raise ExecPolicyError(f"--exec-policy {name}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ExecPolicyError(f"{name}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "not TOML"
        raise ExecPolicyError(f"{name}: not valid TOML: {first}") from None
    unknown = sorted(set(data) - {"exec"})
    if unknown:
        raise ExecPolicyError(
            f"{name}: unknown key {unknown[0]!r} (a policy holds [[exec]] entries only)"
        )
    entries = data.get("exec")
    if not isinstance(entries, list) or not entries:
        raise ExecPolicyError(f"{name}: no [[exec]] entry (each allows one command)")
    return [_entry(entry, f"{name}: [[exec]] #{i}") for i, entry in enumerate(entries, 1)]


def _entry(entry: Any, where: str) -> ExecRule:
    if not isinstance(entry, Mapping):
        raise ExecPolicyError(f"{where}: must be a table ([[exec]] with keys)")
    unknown = sorted(set(entry) - set(_ENTRY_KEYS))
    if unknown:
        raise ExecPolicyError(
            f"{where}: unknown key {unknown[0]!r} (known: {', '.join(_ENTRY_KEYS)})"
        )
    kinds = [k for k in ("prefix", "match") if k in entry]
    if len(kinds) != 1:
        raise ExecPolicyError(f"{where}: give exactly one of prefix (literal) or match (patterns)")
    kind = kinds[0]
    words = entry[kind]
    if not isinstance(words, list) or not words or not all(isinstance(w, str) for w in words):
        raise ExecPolicyError(f"{where}: {kind} must be a non-empty list of strings")
    program = words[0]
    where = f"{where} ({program})"
    if not program or _PATTERN_CHARS & set(program):
        raise ExecPolicyError(
            f"{where}: {kind}[0] must name the program, not a pattern or an empty string"
        )
    for i, word in enumerate(words):
        if "\0" in word:
            raise ExecPolicyError(f"{where}: {kind}[{i}] contains a NUL byte")
    rest = entry.get("rest", "*" if kind == "prefix" else None)
    if "rest" in entry and (not isinstance(rest, str) or "\0" in rest):
        raise ExecPolicyError(f"{where}: rest must be a pattern (a string without NUL bytes)")
    env = entry.get("env", [])
    if not isinstance(env, list) or not all(isinstance(v, str) for v in env):
        raise ExecPolicyError(f"{where}: env must be a list of variable names")
    for variable in env:
        if not _VARIABLE_NAME.fullmatch(variable):
            raise ExecPolicyError(f"{where}: env {variable!r} is not a variable name")
    path = resolve_program(program, where)
    return ExecRule(program, path, tuple(words[1:]), kind == "match", rest, frozenset(env), where)
