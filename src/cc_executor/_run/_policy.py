"""Permission policies: ordered ``allow``/``deny``/``ask`` rules for an agent's tool calls.

A policy file (``--permission-policy FILE``, option ``permission_policy``) is YAML::

    ask_timeout_s: 60        # an unanswered ``ask`` is denied after this long
    default: ask             # what a call no rule matches gets (allow, deny or ask)
    rules:
      - allow: Bash(git log:*)
      - deny: Bash
      - ask: Edit(src/**)

Rules are tried in order and the first that matches decides. A rule is written in Claude
Code's permission-rule syntax (the syntax of ``--allowedTools``):

- ``Tool`` matches every call of that tool (``Bash``, ``Write``, ``mcp__server__tool``;
  ``mcp__server`` matches every tool of that server; ``*`` matches any tool).
- ``Bash(git log:*)``: the command starts with ``git log`` (a word boundary after it);
  ``Bash(npm test)``: exactly that command; ``*`` elsewhere is a wildcard. An ``allow``
  or ``ask`` rule never matches a command that chains or redirects (``;``, ``&&``, ``|``,
  ``>``, ``$(``, a backquote, a newline): ``git log; rm -rf ~`` is not ``git log``. A
  ``deny`` rule matches when any part of such a command matches.
- ``Edit(src/**)``, ``Write(...)``, ``Read(...)`` (and the other file tools): a glob on
  the file's path, relative to the run's cwd; ``//abs/path`` is absolute, ``~/`` the
  home folder. ``**`` crosses folders, ``*`` does not.
- ``WebFetch(domain:example.com)``: the URL's host is that domain or under it.

The module is pure: no I/O but :func:`load_policy`'s read of the file.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shlex
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

#: What a rule may do with a call.
ACTIONS = ("allow", "deny", "ask")
#: Seconds an ``ask`` waits for a decision when the policy does not say.
DEFAULT_ASK_TIMEOUT_S = 60.0

#: The file tools whose rule pattern is a path glob, and the input key holding the path.
_PATH_KEYS = {
    "Read": "file_path",
    "Edit": "file_path",
    "MultiEdit": "file_path",
    "Write": "file_path",
    "NotebookEdit": "notebook_path",
    "Glob": "path",
    "Grep": "path",
}
#: Tools Claude Code 2.1.330 runs without asking (inside its folder): a deny rule for them
#: must reach the CLI as ``--disallowedTools`` (docs/permissions.md).
_SELF_ALLOWED = frozenset({"Read", "Grep", "Glob", "LS", "NotebookRead"})
#: The file tools that read a whole folder's tree (their path: where the search starts).
_SEARCHES = frozenset({"Grep", "Glob"})
#: Claude Code's ``Edit(...)`` rules cover every tool that edits files.
_EDIT_FAMILY = {"Edit": ("Edit", "MultiEdit", "Write", "NotebookEdit")}
_RULE = re.compile(r"^(?P<tool>[A-Za-z0-9_*.-]+)(?:\((?P<arg>.*)\))?$", re.DOTALL)
#: What makes a shell command more than one simple command.
_SHELL_JOINS = re.compile(r"(?:;|&&|\|\||\||&|\n|>|<|`|\$\()")
#: Where a deny or ask rule splits a command into the parts it checks one by one.
_SHELL_PARTS = re.compile(r";|&&|\|\||\||&|\n|`|\$\(|<\(|>\(|\(|\)|\{|\}|<|>")
#: Words that run the command after them (shell keywords, wrappers): a deny rule looks past
#: them, so ``then rm x``, ``sudo rm x`` or ``env A=1 rm x`` is still ``rm``.
_RUNS_NEXT = frozenset(
    [
        "if",
        "then",
        "else",
        "elif",
        "do",
        "while",
        "until",
        "!",
        "time",
        "exec",
        "command",
        "builtin",
        "nohup",
        "env",
        "sudo",
        "nice",
        "ionice",
        "stdbuf",
        "timeout",
        "xargs",
        "setsid",
        "chroot",
        "doas",
    ]
)
#: Shells whose ``-c`` argument, and ``eval``'s words, are commands checked as well.
_SHELLS = frozenset(["sh", "bash", "dash", "zsh", "ksh", "ash", "busybox"])


@dataclass(frozen=True, slots=True)
class Rule:
    """One policy rule: ``action`` (allow, deny or ask) for calls matching ``pattern``."""

    action: str
    pattern: str
    tool: str = ""
    argument: str | None = None

    def __str__(self) -> str:
        return f"{self.action} {self.pattern}"


@dataclass(frozen=True, slots=True)
class Policy:
    """An ordered list of rules, the action for calls none matches, and how long an
    ``ask`` waits for its decider before the call is denied."""

    rules: tuple[Rule, ...] = ()
    default: str = "ask"
    ask_timeout_s: float = DEFAULT_ASK_TIMEOUT_S
    source: str = field(default="", compare=False)

    @property
    def asks(self) -> bool:
        """Whether any call can end up asking a decider."""
        return self.default == "ask" or any(r.action == "ask" for r in self.rules)

    def to_dict(self) -> dict[str, Any]:
        """The policy as the data of its file (what :func:`parse_policy` reads back): a
        fleet run carries it in its message, for a worker that cannot read the file."""
        return {
            "ask_timeout_s": self.ask_timeout_s,
            "default": self.default,
            "rules": [{rule.action: rule.pattern} for rule in self.rules],
        }

    def with_tool_lists(self, allowed: Sequence[str], disallowed: Sequence[str]) -> Policy:
        """This policy with ``--disallowed-tools`` then ``--allowed-tools`` as deny and allow
        rules ahead of its own (the CLI enforces those lists itself, before asking)."""
        extra = [parse_rule("deny", t) for t in disallowed]
        extra += [parse_rule("allow", t) for t in allowed]
        return Policy((*extra, *self.rules), self.default, self.ask_timeout_s, self.source)

    def cli_denials(self) -> list[str]:
        """The deny rules the CLI can enforce itself (``--disallowedTools``): those no
        earlier rule of the same tool could have allowed. The CLI never asks about the
        calls it allows on its own (reading files in its folder, for one), so a deny rule
        for those works only this way."""
        out: list[str] = []
        seen: set[str] = set()
        for rule in self.rules:
            if rule.action == "deny" and rule.tool not in seen and rule.tool in _SELF_ALLOWED:
                out.append(rule.pattern)
            seen.add(rule.tool)
        return out

    def decide(
        self, tool_name: str, tool_input: Mapping[str, Any], cwd: str
    ) -> tuple[str, Rule | None]:
        """The action for one call and the rule that chose it (None: the default)."""
        for rule in self.rules:
            if matches(rule, tool_name, tool_input, cwd):
                return rule.action, rule
        return self.default, None


def parse_rule(action: str, pattern: object, where: str = "rule") -> Rule:
    """One rule, or ``ValueError`` saying what is wrong with it."""
    if action not in ACTIONS:
        raise ValueError(f"{where}: the action must be allow, deny or ask, got {action!r}")
    if not isinstance(pattern, str) or not pattern.strip():
        raise ValueError(f"{where}: {action} needs a rule such as Bash(git log:*), got {pattern!r}")
    found = _RULE.match(pattern.strip())
    if found is None:
        raise ValueError(
            f"{where}: {pattern!r} is not a permission rule (Tool or Tool(argument), "
            "e.g. Bash(git log:*) or Edit(src/**))"
        )
    arg = found["arg"]
    return Rule(action, pattern.strip(), found["tool"], arg if arg not in (None, "*") else None)


def parse_policy(data: object, source: str = "policy") -> Policy:
    """A policy from its parsed YAML, or ``ValueError`` naming the first problem."""
    if not isinstance(data, Mapping):
        raise ValueError(
            f"{source}: a permission policy is a mapping with rules, got {type(data).__name__}"
        )
    unknown = sorted(set(data) - {"rules", "default", "ask_timeout_s"})
    if unknown:
        raise ValueError(
            f"{source}: unknown key(s) {', '.join(map(str, unknown))} "
            "(known: rules, default, ask_timeout_s)"
        )
    default = data.get("default", "ask")
    if default not in ACTIONS:
        raise ValueError(f"{source}: default must be allow, deny or ask, got {default!r}")
    timeout = data.get("ask_timeout_s", DEFAULT_ASK_TIMEOUT_S)
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(
            f"{source}: ask_timeout_s must be a number of seconds above 0, got {timeout!r}"
        )
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list):
        raise ValueError(f"{source}: rules must be a list of {{allow|deny|ask: RULE}} entries")
    rules = []
    for n, entry in enumerate(raw_rules, 1):
        where = f"{source}: rule {n}"
        if not isinstance(entry, Mapping) or len(entry) != 1:
            raise ValueError(
                f"{where}: write one of allow: RULE, deny: RULE or ask: RULE, got {entry!r}"
            )
        ((action, pattern),) = entry.items()
        rules.append(parse_rule(str(action), pattern, where))
    return Policy(tuple(rules), str(default), float(timeout), source)


def load_policy(path: str | os.PathLike[str]) -> Policy:
    """Read a policy file (YAML, ``safe_load``); ``ValueError`` for a missing or bad one."""
    name = os.fspath(path)
    try:
        with open(name, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise ValueError(f"permission_policy: cannot read {name}: {exc.strerror}") from None
    from cc_executor._extras import require_extra

    require_extra("permissions", "permission policies")
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "invalid YAML"
        raise ValueError(f"permission_policy: {name} is not valid YAML: {first}") from None
    return parse_policy(data, name)


def matches(rule: Rule, tool_name: str, tool_input: Mapping[str, Any], cwd: str) -> bool:
    """Whether ``rule`` covers this call (see the module docstring for the syntax). A
    ``deny`` or ``ask`` rule also covers a call whose input it cannot read (the command or
    path missing, or not text): such a call is refused or asked, never let through."""
    if not _tool_matches(rule.tool, tool_name):
        return False
    if rule.argument is None:
        return True
    strict = rule.action != "allow"
    if tool_name == "Bash":
        command = tool_input.get("command")
        if not isinstance(command, str):
            return strict
        return _bash_matches(rule, command)
    if tool_name in _PATH_KEYS:
        path = tool_input.get(_PATH_KEYS[tool_name])
        if tool_name in _SEARCHES and strict:
            # A search reads everything under its path (the cwd when none is given): it
            # reaches a denied folder from any folder above it.
            where = path if isinstance(path, str) and path else "."
            return _path_matches(rule, where, cwd) or _search_reaches(rule.argument, where, cwd)
        if not isinstance(path, str):
            return strict
        return _path_matches(rule, path, cwd)
    if tool_name == "WebFetch" and rule.argument.startswith("domain:"):
        url = tool_input.get("url")
        host = _url_host(url) if isinstance(url, str) else None
        domain = rule.argument[len("domain:") :].lower().rstrip(".")
        if host is None:
            return strict
        return host == domain or host.endswith("." + domain)
    # Any other tool: the pattern is a glob on its input written as compact text.
    return any(
        isinstance(v, str) and fnmatch.fnmatchcase(v, rule.argument) for v in tool_input.values()
    )


def _search_reaches(argument: str, path: str, cwd: str) -> bool:
    """Whether a recursive search of ``path`` reaches files under the glob ``argument``:
    the folder before the glob's first wildcard is ``path`` or below it."""
    if argument.startswith("//"):
        pattern = argument[1:]
    elif argument.startswith("~/"):
        pattern = os.path.join(os.path.expanduser("~"), argument[2:])
    else:
        pattern = os.path.join(cwd, argument.lstrip("/"))
    literal = re.split(r"[*?\[]", pattern, maxsplit=1)[0]
    fixed = os.path.normpath(os.path.dirname(literal) if literal != pattern else literal)
    searched = os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
    return any(
        fixed == root or fixed.startswith(root.rstrip("/") + "/")
        for root in (searched, os.path.realpath(searched))
    )


def _tool_matches(pattern: str, tool_name: str) -> bool:
    if pattern in ("*", tool_name):
        return True
    if tool_name in _EDIT_FAMILY.get(pattern, ()):
        return True
    # mcp__server covers every tool of that server.
    return (
        pattern.startswith("mcp__")
        and pattern.count("__") == 1
        and tool_name.startswith(pattern + "__")
    )


def _bash_matches(rule: Rule, command: str) -> bool:
    assert rule.argument is not None
    command = command.strip()
    if rule.action == "allow":
        if _SHELL_JOINS.search(command):
            return False  # a chained command is never allowed by a rule for one of its parts
        return _one_command_matches(rule.argument, command)
    # deny and ask: any part matches, each part read as the shell reads it (quotes,
    # backslashes, tabs, a path to the program, wrappers and keywords before it), so that
    # neither a deny nor an ask (and with it a person's look) is skipped by a spelling.
    return any(_one_command_matches(rule.argument, p) for p in _spellings(command, 0))


def _spellings(command: str, depth: int) -> list[str]:
    """Each simple command of ``command`` as written and as the shell would run it."""
    out: list[str] = []
    for raw in _SHELL_PARTS.split(command):
        part = raw.strip()
        if not part:
            continue
        out.append(part)
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and (words[0] in _RUNS_NEXT or re.match(r"^[A-Za-z_]\w*=", words[0])):
            words = words[1:]
            # a wrapper's own options and numbers (sudo -u root, nice -n 5, timeout 5)
            while words and (words[0].startswith("-") or words[0].isdigit()):
                words = words[2:] if words[0] in ("-u", "-n", "-g", "-s") else words[1:]
        if not words:
            continue
        words[0] = os.path.basename(words[0]) or words[0]
        out.append(" ".join(words))
        if depth < 3:
            if words[0] == "eval":
                out += _spellings(" ".join(words[1:]), depth + 1)
            elif words[0] in _SHELLS and "-c" in words[1:-1]:
                out += _spellings(words[words.index("-c", 1) + 1], depth + 1)
    return out


def _one_command_matches(argument: str, command: str) -> bool:
    if argument.endswith(":*"):
        prefix = argument[:-2]
        return command == prefix or command.startswith(prefix + " ")
    if "*" in argument:
        return fnmatch.fnmatchcase(command, argument)
    return command == argument


def _path_matches(rule: Rule, path: str, cwd: str) -> bool:
    """Whether the file's path, as written and with its symlinks resolved, is under the
    rule's glob: an ``allow`` needs both (a link inside ``src/`` may point anywhere), a
    ``deny`` or ``ask`` either (a link outside ``secrets/`` may point into it)."""
    argument = rule.argument
    assert argument is not None
    if argument.startswith("//"):
        patterns = [argument[1:]]
    elif argument.startswith("~/"):
        patterns = [os.path.join(os.path.expanduser("~"), argument[2:])]
    else:
        rel = argument.lstrip("/")
        patterns = [os.path.join(cwd, rel), os.path.join(os.path.realpath(cwd), rel)]
    regexes = [_glob_regex(os.path.normpath(p)) for p in patterns]
    full = os.path.normpath(os.path.join(cwd, os.path.expanduser(path)))
    seen = [full, os.path.realpath(full)]
    hits = [any(r.fullmatch(f) for r in regexes) for f in seen]
    return all(hits) if rule.action == "allow" else any(hits)


def _url_host(url: str) -> str | None:
    """The host a WHATWG URL parser (the CLI's) reads in ``url``: it takes a backslash for
    a slash, drops tabs and newlines, decodes ``%XX`` and maps the name (NFKC, lower case,
    the ideographic full stops) and ignores a trailing dot; ``urlsplit`` alone does none of
    it, so ``http://evil.com\\@example.com`` would pass for ``example.com``."""
    text = re.sub(r"[\t\n\r]", "", url.strip()).replace("\\", "/")
    try:
        host = urlsplit(text).hostname
    except ValueError:
        return None
    if not host:
        return None
    host = unicodedata.normalize("NFKC", unquote(host)).lower()
    host = re.sub("[\u3002\uff0e\uff61]", ".", host).rstrip(".")
    return host or None


def _glob_regex(pattern: str) -> re.Pattern[str]:
    """``**`` any number of folders, ``*`` and ``?`` within one path component."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
            continue
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        out.append("[^/]*" if c == "*" else "[^/]" if c == "?" else re.escape(c))
        i += 1
    return re.compile("".join(out))
