"""Prompt templates: earlier tasks' results in later prompts, through a sandboxed Jinja2.

Templates are written by the list's author; the values put into them (model answers, file
names, JSON) are untrusted data. So rendering uses Jinja2's immutable sandbox (no access to
Python internals, no mutation of the values), ``StrictUndefined`` (a typo is an error, never
an empty string), and a rendered value is never itself rendered again: an answer that
contains ``{{ ... }}`` reaches the next prompt as those characters.

References are found before anything runs by walking the parsed template's syntax tree for
``tasks.<id>`` and ``tasks["<id>"]``; only those tasks are visible when the template renders.

A template cannot cost more than a bounded amount of work. It renders in a child process
(:mod:`cc_executor.tasks._template_child`) limited to :data:`MAX_MEMORY` bytes of memory
(``RLIMIT_AS``) and :data:`MAX_CPU_SECONDS` of CPU (``RLIMIT_CPU``), killed after
:data:`MAX_WALL_SECONDS` or when the task is cancelled: a value doubled by ``~`` or ``+``,
a filter that builds in C code, or ``lipsum(30000)`` fail the task, never the service. In the
child, the earlier counts still give the precise messages: rendering counts the steps of the
template's own code (:data:`MAX_STEPS`), its output stops at :data:`MAX_OUTPUT` characters,
and ``*``/``**`` cannot build a value larger than that.
"""

from __future__ import annotations

import asyncio
import functools
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cc_executor._errors import TemplateProblem as TemplateProblem

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment

#: What a template can read of an earlier task: ``{{ tasks.<id>.<field> }}``.
TASK_FIELDS = (
    "result",
    "files",
    "json",
    "session_id",
    "cost_usd",
    "num_turns",
    "run_id",
    "status",
    "title",
    "id",
)

_MARKERS = ("{{", "{%", "{#")

#: The most steps (lines of the compiled template executed) one rendering may take.
MAX_STEPS = 2_000_000
#: The most characters a rendered prompt may have (and a value ``*``/``**`` may build).
MAX_OUTPUT = 8 << 20
#: The most paragraphs ``lipsum()`` may make.
MAX_LIPSUM = 100
#: The most memory (bytes of address space past its start) the rendering process may use.
MAX_MEMORY = 256 << 20
#: The most CPU seconds one rendering may take (past the 2,000,000 steps' need, with room).
MAX_CPU_SECONDS = 10
#: The most wall-clock seconds one rendering may take (the CPU may be shared) before it is killed.
MAX_WALL_SECONDS = 60


@dataclass(frozen=True, slots=True)
class Reference:
    """A ``tasks.<task>[.<field>]`` reference found in a template (``line``: 1-based)."""

    task: str
    field: str | None
    line: int


def has_markup(text: str) -> bool:
    """Whether ``text`` contains any Jinja2 markup at all (else it is used as it is)."""
    return any(marker in text for marker in _MARKERS)


@functools.cache
def _env() -> ImmutableSandboxedEnvironment:
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        """The immutable sandbox, with ``*`` and ``**`` refused past :data:`MAX_OUTPUT`
        (``"x" * 10**9`` would otherwise take a gigabyte before any output bound saw it)."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "*" and _repeats_past(left, right):
                raise TemplateProblem(_too_big("a repeated value"))
            # About MAX_OUTPUT digits: log2(10) is about 3.3 bits a digit.
            if (
                operator == "**"
                and isinstance(left, int)
                and isinstance(right, int)
                and left.bit_length() * right > MAX_OUTPUT * 4
            ):
                raise TemplateProblem(_too_big("a power"))
            return super().call_binop(context, operator, left, right)

        def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
            # str methods that build a large string from small arguments, in C, before any
            # output bound could see it: "a".center(10**9), "{:>999999999}".format(1).
            owner = getattr(__obj, "__self__", None)
            if isinstance(owner, str) and _grows_past(
                owner, getattr(__obj, "__name__", ""), args, kwargs
            ):
                raise TemplateProblem(_too_big(f"str.{__obj.__name__}()"))
            return super().call(__context, __obj, *args, **kwargs)

        def wrap_str_format(self, value: Any) -> Any:
            # str.format and format_map are wrapped by the sandbox when they are read, and
            # so never reach call(): "{:>999999999}".format(1).
            owner = getattr(value, "__self__", None)
            if isinstance(owner, str) and _huge_number_in(owner):

                def refuse(*args: Any, **kwargs: Any) -> str:
                    raise TemplateProblem(_too_big("str.format()"))

                return refuse
            return super().wrap_str_format(value)

    env = Bounded(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)
    lipsum: Any = env.globals["lipsum"]

    def bounded_lipsum(n: int = 5, *args: Any, **kwargs: Any) -> Any:
        # Built in library code, which the step count does not see: lipsum(30000) is 19 s.
        if not isinstance(n, int) or n > MAX_LIPSUM:
            raise TemplateProblem(f"template error: lipsum() over {MAX_LIPSUM} paragraphs")
        return lipsum(n, *args, **kwargs)

    env.globals["lipsum"] = bounded_lipsum
    for name in ("center", "format", "indent", "replace", "join"):
        env.filters[name] = _bounded_filter(name, env.filters[name])
    # Prompts are plain text: no HTML escaping; the trailing newline is the author's.
    return env


def _grows_past(text: str, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """Whether ``text.method(*args, **kwargs)`` would build more than :data:`MAX_OUTPUT`
    characters (judged from the arguments, before it is called)."""
    if method in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        return args[0] > MAX_OUTPUT
    if method == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        return text.count("\t") * size > MAX_OUTPUT
    if method in ("format", "format_map", "__mod__"):
        return _huge_number_in(text)
    if method == "replace" and len(args) >= 2 and all(isinstance(a, str) for a in args[:2]):
        old, new = args[0], args[1]
        times = text.count(old) if old else len(text) + 1
        return len(text) + times * (len(new) - len(old)) > MAX_OUTPUT
    if method == "join" and args:
        return _join_size(text, args[0]) > MAX_OUTPUT
    return False


def _huge_number_in(fmt: str) -> bool:
    """Whether a format string holds a number (a width, a precision) over
    :data:`MAX_OUTPUT`: ``%100000000d``, ``{:>100000000}``."""
    digits = 0
    for char in fmt + " ":
        if char.isdigit():
            digits += 1
            continue
        if digits > len(str(MAX_OUTPUT)) - 1:
            return True
        digits = 0
    return False


def _join_size(separator: str, items: Any) -> int:
    values = [str(v) for v in items] if isinstance(items, (list, tuple)) else []
    return sum(map(len, values)) + len(separator) * max(len(values) - 1, 0)


def _bounded_filter(name: str, original: Any) -> Any:
    """Jinja2's filter ``name``, refusing beforehand what would build more than
    :data:`MAX_OUTPUT` characters (``"a"|center(10**9)``, ``"%99999999d"|format(1)``)."""

    def bounded(*args: Any, **kwargs: Any) -> Any:
        values = [a for a in args if not hasattr(a, "environment")]  # the context/env first
        value, rest = (values[0], values[1:]) if values else (None, [])
        if name == "center" and rest and isinstance(rest[0], int) and rest[0] > MAX_OUTPUT:
            raise TemplateProblem(_too_big("center"))
        if name == "format" and isinstance(value, str) and _huge_number_in(value):
            raise TemplateProblem(_too_big("format"))
        if name == "indent" and isinstance(value, str):
            width = rest[0] if rest else kwargs.get("width", 4)
            unit = width if isinstance(width, int) else len(str(width))
            if len(value) + (value.count("\n") + 1) * unit > MAX_OUTPUT:
                raise TemplateProblem(_too_big("indent"))
        if name == "replace" and isinstance(value, str):
            old, new = [*rest, "", ""][:2]
            if _grows_past(value, "replace", (str(old), str(new)), {}):
                raise TemplateProblem(_too_big("replace"))
        if name == "join" and value is not None:
            items = list(value)
            separator = rest[0] if rest else kwargs.get("d", "")
            if _join_size(str(separator), items) > MAX_OUTPUT:
                raise TemplateProblem(_too_big("join"))
            args = tuple(items if a is value else a for a in args)
        return original(*args, **kwargs)

    for attribute in ("jinja_pass_arg",):  # how Jinja2 knows to pass the context/env
        if hasattr(original, attribute):
            setattr(bounded, attribute, getattr(original, attribute))
    return bounded


def _repeats_past(left: Any, right: Any) -> bool:
    """Whether ``left * right`` repeats a sequence past :data:`MAX_OUTPUT` items."""
    for seq, times in ((left, right), (right, left)):
        if isinstance(seq, (str, list, tuple)) and isinstance(times, int):
            return len(seq) * times > MAX_OUTPUT
    return False


def _too_big(what: str) -> str:
    return f"template error: {what} over {MAX_OUTPUT:,} characters"


class _StepBudget:
    """A trace function that counts the lines the compiled template executes and stops the
    rendering past :data:`MAX_STEPS` (library code is not counted, nor traced)."""

    __slots__ = ("left",)

    def __init__(self) -> None:
        self.left = MAX_STEPS

    def call(self, frame: Any, event: str, arg: Any) -> Any:
        return self.line if frame.f_code.co_filename == "<template>" else None

    def line(self, frame: Any, event: str, arg: Any) -> Any:
        if event == "line":
            self.left -= 1
            if self.left < 0:
                raise TemplateProblem(
                    f"template error: it takes more than {MAX_STEPS:,} steps to render "
                    "(nested loops over large ranges?)"
                )
        return self.line


def _walk(node: Any, parent: Any, parents: dict[int, Any]) -> Iterator[Any]:
    stack = [(node, parent)]
    while stack:
        current, up = stack.pop()
        parents[id(current)] = up
        yield current
        # Reversed, so nodes come out in source order (a stack pops the last first).
        stack.extend(reversed([(child, current) for child in current.iter_child_nodes()]))


def references(source: str) -> list[Reference]:
    """The task references of a template, in order of appearance.

    Raises :class:`TemplateProblem` for a syntax error, and for any use of ``tasks`` other
    than ``tasks.<id>`` or ``tasks["<id>"]`` (a loop over it, a computed key): which tasks a
    prompt reads must be known before the run, to check they are ancestors.
    """
    if not has_markup(source):
        return []
    from jinja2 import TemplateSyntaxError, nodes

    try:
        tree = _env().parse(source)
    except TemplateSyntaxError as exc:
        raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from None
    parents: dict[int, Any] = {}
    found: list[Reference] = []
    for node in _walk(tree, None, parents):
        if not (isinstance(node, nodes.Name) and node.name == "tasks" and node.ctx == "load"):
            continue
        up = parents.get(id(node))
        task = _key_of(up, node)
        if task is None:
            raise TemplateProblem(
                'use "tasks" only as tasks.<id> or tasks["<id>"] (the tasks a prompt reads '
                "must be known before the run)",
                node.lineno,
            )
        found.append(Reference(task, _key_of(parents.get(id(up)), up), node.lineno))
    found.sort(key=lambda r: r.line)
    return found


def _key_of(node: Any, child: Any) -> str | None:
    """``X`` when ``node`` is ``child.X`` or ``child["X"]``, else None."""
    from jinja2 import nodes

    if isinstance(node, nodes.Getattr) and node.node is child:
        return str(node.attr)
    if (
        isinstance(node, nodes.Getitem)
        and node.node is child
        and isinstance(node.arg, nodes.Const)
        and isinstance(node.arg.value, str)
    ):
        return node.arg.value
    return None


class _Lines(list[str]):
    """File lists render one path per line."""

    def __str__(self) -> str:
        return "\n".join(self)


class _JsonDict(dict[str, Any]):
    """JSON objects render as JSON, not as Python's repr."""

    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


class _JsonList(list[Any]):
    def __str__(self) -> str:
        return json.dumps(self, ensure_ascii=False)


def _wrap(value: Any) -> Any:
    if isinstance(value, Mapping):
        return _JsonDict({str(k): _wrap(v) for k, v in value.items()})
    if isinstance(value, list):
        return _JsonList(_wrap(v) for v in value)
    return value


def _readable(message: str) -> str:
    """Jinja's ``message`` with our wrapper types named as what they hold: "the JSON
    object", not "'cc_executor.tasks._template._JsonDict object'"."""
    for kind, what in ((_JsonDict, "the JSON object"), (_JsonList, "the JSON array"),
                       (_Lines, "the file list")):  # fmt: skip
        message = message.replace(f"'{kind.__module__}.{kind.__qualname__} object'", what)
    return message


class _Tasks:
    """``tasks`` in a template. Only dunder methods, so that no task id (``items``,
    ``keys``, ``get``) is shadowed by a method when written ``tasks.<id>``."""

    __slots__ = ("_views",)

    def __init__(self, views: Mapping[str, Mapping[str, Any]]) -> None:
        self._views = views

    def __getitem__(self, key: str) -> Mapping[str, Any]:
        return self._views[key]

    def __contains__(self, key: object) -> bool:
        return key in self._views


def view(values: Mapping[str, Any]) -> dict[str, Any]:
    """What a template sees of a finished task, from its result fields (``TASK_FIELDS``)."""
    out = {name: values.get(name) for name in TASK_FIELDS}
    out["files"] = _Lines(values.get("files") or [])
    out["json"] = _wrap(values.get("json"))
    out["result"] = values.get("result") or ""
    return out


def revive(values: Mapping[str, Any]) -> dict[str, Any]:
    """A :func:`view` again, after a trip through JSON (file lists and JSON values get
    back the types that render them as text)."""
    out = dict(values)
    out["files"] = _Lines(str(f) for f in out.get("files") or [])
    out["json"] = _wrap(out.get("json"))
    return out


def render_here(source: str, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    """``source`` rendered with ``tasks`` (id -> :func:`view`) as its only variable.

    Raises :class:`TemplateProblem` when rendering fails: an undefined name or field, a
    sandbox violation, an error raised by the template itself, or a template that would
    cost more than the counted bounds. In this process, without the memory and CPU limits:
    the child process of :func:`render` calls it.
    """
    if not has_markup(source):
        return source
    from jinja2 import TemplateError

    previous = sys.gettrace()
    sys.settrace(_StepBudget().call)
    try:
        parts: list[str] = []
        size = 0
        for part in _env().from_string(source).generate(tasks=_Tasks(tasks)):
            size += len(part)
            if size > MAX_OUTPUT:
                raise TemplateProblem(_too_big("the rendered prompt"))
            parts.append(part)
        return "".join(parts)
    except TemplateError as exc:
        raise TemplateProblem(f"template error: {_readable(str(exc))}") from None
    except RecursionError:
        raise TemplateProblem(
            f"template error: calls nested deeper than {sys.getrecursionlimit():,} "
            "(RecursionError: a macro calling itself?)"
        ) from None
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        # Errors raised inside the template's own expressions (``1/0``, ``"a" + 1``).
        raise TemplateProblem(f"template error: {type(exc).__name__}: {exc}") from None
    finally:
        sys.settrace(previous)


def _child_input(source: str, tasks: Mapping[str, Mapping[str, Any]]) -> bytes:
    views = {tid: dict(values) for tid, values in tasks.items()}
    # ASCII escapes: a lone surrogate in a result survives the pipe.
    return json.dumps({"source": source, "tasks": views}, default=str).encode()


def _child_command() -> list[str]:
    return [sys.executable, "-m", "cc_executor.tasks._template_child"]


def _child_env() -> dict[str, str]:
    """This environment, with this copy of cc_executor first on the child's path (it may
    have been imported from a checkout rather than installed)."""
    import site

    here = str(Path(__file__).resolve().parents[2])  # holds the cc_executor package
    installed = {str(Path(p).resolve()) for p in site.getsitepackages()}
    if here in installed:  # the child finds it as this process did, in its usual place
        return dict(os.environ)
    path = [here, *filter(None, os.environ.get("PYTHONPATH", "").split(os.pathsep))]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(path)}


def _outcome(returncode: int, out: bytes, err: bytes) -> str:
    """The rendered text from the child's answer, or :class:`TemplateProblem`."""
    if returncode == 0:
        try:
            answer = json.loads(out)
        except ValueError:
            answer = None
        if isinstance(answer, dict):
            if isinstance(answer.get("text"), str):
                return str(answer["text"])
            if isinstance(answer.get("error"), str):
                line = answer.get("line")
                raise TemplateProblem(answer["error"], line if isinstance(line, int) else None)
    killed = {-getattr(signal, name) for name in ("SIGXCPU", "SIGKILL") if hasattr(signal, name)}
    if returncode in killed:
        raise TemplateProblem(_too_slow(f"{MAX_CPU_SECONDS} s of CPU"))
    if b"MemoryError" in err:
        raise TemplateProblem(too_much_memory())
    last = err.decode(errors="replace").strip().splitlines()[-1:] or [f"exit {returncode}"]
    raise TemplateProblem(f"template error: the renderer failed ({last[0][:200]})")


def _too_slow(what: str) -> str:
    return f"template error: it takes more than {what} to render"


def too_much_memory() -> str:
    return f"template error: it needs more than {MAX_MEMORY >> 20} MiB of memory to render"


def render(source: str, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    """``source`` rendered with ``tasks`` (id -> :func:`view`) as its only variable.

    Raises :class:`TemplateProblem` when rendering fails: an undefined name or field, a
    sandbox violation, an error raised by the template itself, or a template that would
    cost more than the bounds (see the module docstring). Blocks until the child process
    ends (at most :data:`MAX_WALL_SECONDS`); :func:`render_async` on an event loop.
    """
    if not has_markup(source):
        return source
    try:
        done = subprocess.run(
            _child_command(),
            input=_child_input(source, tasks),
            capture_output=True,
            env=_child_env(),
            timeout=MAX_WALL_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:  # run() has killed the child
        raise TemplateProblem(_too_slow(f"{MAX_WALL_SECONDS} s")) from None
    return _outcome(done.returncode, done.stdout, done.stderr)


async def render_async(source: str, tasks: Mapping[str, Mapping[str, Any]]) -> str:
    """:func:`render`, awaited: the child is killed when the wall bound passes or the
    awaiting task is cancelled, so a stopped run leaves no rendering behind."""
    if not has_markup(source):
        return source
    data = _child_input(source, tasks)
    child = await asyncio.create_subprocess_exec(
        *_child_command(),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=_child_env(),
    )
    try:
        out, err = await asyncio.wait_for(child.communicate(data), MAX_WALL_SECONDS)
    except asyncio.TimeoutError:
        raise TemplateProblem(_too_slow(f"{MAX_WALL_SECONDS} s")) from None
    finally:
        if child.returncode is None:
            child.kill()
            await asyncio.shield(child.wait())
    return _outcome(child.returncode if child.returncode is not None else -1, out, err)
