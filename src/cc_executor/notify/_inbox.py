"""Receiving: reading a project's inbox (JSON notifications) and incoming issues (Markdown
with YAML front matter) as untrusted input, finding an entry, acknowledging it.

Every file is judged on its own: a file that is too large, a symbolic link, not a regular
file, badly named, not UTF-8, not JSON, not matching the schema, or with bad front matter
becomes an :class:`InboxProblem` with the reason, and the rest of the listing goes on. Nothing
in a file is executed, imported, evaluated or followed; parsing is bounded in size and nesting
(:data:`MAX_DEPTH`), NaN and infinite numbers are refused (so the JSON output stays standard),
and folders are listed without following symbolic links.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cc_executor._errors import CCExecutorError
from cc_executor._lazy import renamed
from cc_executor.notify._errors import DeliveryError, EntryNotFound
from cc_executor.notify._frontmatter import MAX_DEPTH, load_front_matter
from cc_executor.notify._message import (
    INBOX,
    INCOMING,
    MAX_MESSAGE_BYTES,
    PROCESSED,
    is_safe_name,
    schema_problems,
)
from cc_executor.notify._send import Delivery, notify

_MAX_FRONT_MATTER = 64 * 1024
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# A FIFO dropped into the inbox must not block the reader.
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)


@dataclass(frozen=True, slots=True)
class Message:
    """A valid notification from ``inbox/``. ``id`` is the file name, ``received_at`` its
    modification time; ``data`` matched the schema when read, and unknown fields are kept.
    Everything in ``data`` is untrusted text."""

    id: str
    path: Path
    received_at: float
    data: dict[str, Any]

    @property
    def kind(self) -> str:
        """``"message"``."""
        return "message"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "received_at": self.received_at,
            "message": self.data,
        }


@dataclass(frozen=True, slots=True)
class Issue:
    """An issue file from ``incoming/``: its front matter's ``title``, ``labels`` (a list,
    or a comma-separated string) and ``priority``, and the Markdown ``body`` after it."""

    id: str
    path: Path
    received_at: float
    title: str
    labels: tuple[str, ...] = ()
    priority: str | None = None
    body: str = ""

    @property
    def kind(self) -> str:
        """``"issue"``."""
        return "issue"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "received_at": self.received_at,
            "title": self.title,
            "labels": list(self.labels),
            "priority": self.priority,
            "body": self.body,
        }


@dataclass(frozen=True, slots=True)
class InboxProblem:
    """A file of the inbox or incoming folder that was not accepted, and why (formerly
    ``Problem``, a deprecated alias). ``id`` is the raw file name (it may itself be hostile:
    display it neutralised)."""

    id: str
    path: Path
    reason: str
    received_at: float | None = None

    @property
    def kind(self) -> str:
        """``"problem"``."""
        return "problem"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "id": self.id,
            "kind": self.kind,
            "path": str(self.path),
            "received_at": self.received_at,
            "reason": self.reason,
        }


#: An accepted inbox item: a notification or an issue file.
Entry = Message | Issue


@dataclass(slots=True)
class Inbox:
    """One reading of a project's inbox: the accepted entries and the problems, each in
    arrival order (modification time, then name)."""

    root: Path
    entries: list[Entry] = field(default_factory=list)
    problems: list[InboxProblem] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "project": str(self.root),
            "entries": [e.to_dict() for e in self.entries],
            "problems": [p.to_dict() for p in self.problems],
        }


class _Rejected(CCExecutorError):
    """A file is not accepted, for ``reason`` (internal: :func:`load` turns it into an
    :class:`InboxProblem`)."""

    def __init__(self, reason: str, received_at: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.received_at = received_at


def project_root(project: str | os.PathLike[str] | None = None) -> Path:
    """The project whose inbox to read: ``project`` as given, else the nearest folder
    from the current directory upwards that holds ``.git`` (found by looking, without
    running git), else the current directory."""
    if project is not None:
        return Path(project).resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / ".git").exists():
            return folder
    return here


def _read_limited(path: Path) -> tuple[bytes, float]:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise _Rejected(f"cannot be examined: {exc.strerror}") from None
    if stat.S_ISLNK(st.st_mode):
        raise _Rejected("a symbolic link (links are never followed)", st.st_mtime)
    if not stat.S_ISREG(st.st_mode):
        raise _Rejected("not a regular file", st.st_mtime)
    if st.st_size > MAX_MESSAGE_BYTES:
        raise _Rejected(
            f"too large: {st.st_size} bytes (the limit is {MAX_MESSAGE_BYTES})", st.st_mtime
        )
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _NOFOLLOW | _NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        # Replaced by a link between the lstat and the open.
        if exc.errno == errno.ELOOP:
            raise _Rejected("a symbolic link (links are never followed)", st.st_mtime) from None
        raise _Rejected(f"cannot be read: {exc.strerror}", st.st_mtime) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
            raise _Rejected("not a regular file", st.st_mtime)
        try:
            data = f.read(MAX_MESSAGE_BYTES + 1)
        except OSError as exc:
            # A damaged disk (EIO) is this file's problem, not the listing's.
            raise _Rejected(f"cannot be read: {exc.strerror}", st.st_mtime) from None
    if len(data) > MAX_MESSAGE_BYTES:
        raise _Rejected(f"too large: over {MAX_MESSAGE_BYTES} bytes", st.st_mtime)
    return data, st.st_mtime


def _decode(data: bytes, received_at: float) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Rejected(f"not valid UTF-8 (at byte {exc.start})", received_at) from None


def _refuse_constant(text: str) -> None:
    raise ValueError(f"not a finite number: {text}")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text[:40]}")
    return value


def _deeper_than(value: object, limit: int) -> bool:
    # Iterative: the check itself must not recurse as deep as the data.
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            item = list(item.values())
        if isinstance(item, list):
            if depth > limit:
                return True
            stack.extend((child, depth + 1) for child in item)
    return False


def _message(name: str, path: Path) -> Message:
    data, received_at = _read_limited(path)
    text = _decode(data, received_at)
    try:
        # NaN and infinities are not JSON: accepting them would make our output non-standard.
        loaded = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError:
        raise _Rejected("invalid JSON: nested too deeply", received_at) from None
    except ValueError as exc:
        raise _Rejected(f"invalid JSON: {exc}", received_at) from None
    if _deeper_than(loaded, MAX_DEPTH):
        raise _Rejected(f"nested deeper than {MAX_DEPTH} levels", received_at)
    problems = schema_problems(loaded)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise _Rejected(f"does not match the schema: {problems[0]}{more}", received_at)
    return Message(id=name, path=path, received_at=received_at, data=loaded)


def _yaml_reason(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None) or "not valid YAML"
    mark = getattr(exc, "problem_mark", None)
    # +2: the file's first line is the opening '---', and marks count from zero.
    where = f" at line {mark.line + 2}" if mark is not None else ""
    return f"invalid YAML front matter: {problem}{where}"


def _labels(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return tuple(part.strip() for part in value.split(",") if part.strip())
    if isinstance(value, list) and all(isinstance(v, str | int) for v in value):
        return tuple(str(v) for v in value)
    raise ValueError("'labels' must be a list of strings or a comma-separated string")


def _issue(name: str, path: Path) -> Issue:
    data, received_at = _read_limited(path)
    text = _decode(data, received_at)
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        raise _Rejected("no YAML front matter (the first line must be '---')", received_at)
    end = next(
        (i for i, line in enumerate(lines[1:], 1) if line.rstrip("\r\n") in ("---", "...")), None
    )
    if end is None:
        raise _Rejected("the YAML front matter is not closed by a '---' line", received_at)
    block = "".join(lines[1:end])
    if len(block) > _MAX_FRONT_MATTER:
        raise _Rejected(f"front matter over {_MAX_FRONT_MATTER} characters", received_at)
    try:
        front = load_front_matter(block)
    except yaml.YAMLError as exc:
        raise _Rejected(_yaml_reason(exc), received_at) from None
    if not isinstance(front, dict):
        raise _Rejected(
            "the front matter must be a mapping (title:, labels:, priority:)", received_at
        )
    title = front.get("title")
    if not isinstance(title, str) or not title.strip():
        raise _Rejected("the front matter needs a non-empty 'title' string", received_at)
    priority = front.get("priority")
    if priority is not None and (isinstance(priority, bool) or not isinstance(priority, str | int)):
        raise _Rejected("'priority' must be a string or a number", received_at)
    try:
        labels = _labels(front.get("labels"))
    except ValueError as exc:
        raise _Rejected(str(exc), received_at) from None
    return Issue(
        id=name,
        path=path,
        received_at=received_at,
        title=title.strip(),
        labels=labels,
        priority=None if priority is None else str(priority),
        body="".join(lines[end + 1 :]),
    )


def load(path: Path) -> Entry | InboxProblem | None:
    """Read one file: a ``.json`` notification or a ``.md`` issue. Returns the entry, a
    :class:`InboxProblem` saying why it was not accepted, or None when the file vanished
    meanwhile (acknowledged by someone else)."""
    name = path.name
    try:
        if not is_safe_name(name):
            received_at = os.lstat(path).st_mtime
            raise _Rejected(
                "unsafe file name (only letters, digits and ._+- are accepted; no '..', no "
                "leading dot or dash)",
                received_at,
            )
        if name.endswith(".json"):
            return _message(name, path)
        return _issue(name, path)
    except FileNotFoundError:
        return None
    except _Rejected as exc:
        return InboxProblem(id=name, path=path, reason=exc.reason, received_at=exc.received_at)


def candidates(folder: Path, suffix: str) -> list[str] | InboxProblem:
    """The sorted names in ``folder`` ending in ``suffix`` (none when it is missing), or
    the problem when it cannot be listed or is a symbolic link (never followed)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC | _NOFOLLOW)
    except FileNotFoundError:
        return []
    except OSError as exc:
        reason = (
            "a symbolic link (links are never followed)"
            if os.path.islink(folder)
            else f"cannot list: {exc.strerror}"
        )
        return InboxProblem(id=str(folder), path=folder, reason=reason)
    try:
        with os.scandir(fd) as it:
            # Hidden temporary files of writers end in .tmp and are skipped with the rest.
            return sorted(e.name for e in it if e.name.endswith(suffix))
    except OSError as exc:
        return InboxProblem(id=str(folder), path=folder, reason=f"cannot list: {exc.strerror}")
    finally:
        os.close(fd)


def read_inbox(project: str | os.PathLike[str] | None = None) -> Inbox:
    """Read every ``.github/ISSUES/inbox/*.json`` and ``.github/ISSUES/incoming/*.md`` of
    the project (see :func:`project_root`). Missing folders are an empty inbox; other
    files and the ``processed/`` folders are ignored. Never raises for a file's content."""
    inbox = Inbox(root=project_root(project))
    for folder, suffix in ((inbox.root / INBOX, ".json"), (inbox.root / INCOMING, ".md")):
        names = candidates(folder, suffix)
        if isinstance(names, InboxProblem):
            inbox.problems.append(names)
            continue
        for name in names:
            item = load(folder / name)
            if isinstance(item, InboxProblem):
                inbox.problems.append(item)
            elif item is not None:
                inbox.entries.append(item)
    inbox.entries.sort(key=lambda e: (e.received_at, e.id))
    inbox.problems.sort(key=lambda p: (p.received_at or 0.0, p.id))
    return inbox


def find(inbox: Inbox, ident: str) -> Entry | InboxProblem:
    """The entry (or problem file) whose id is ``ident``, or is ``ident`` plus ``.json``
    or ``.md``, or the only one starting with ``ident``. ``ident`` is only ever compared
    with names read from the folders, never joined to a path, so ``../x`` finds nothing.
    Raises :class:`EntryNotFound` when nothing or several match."""
    items: list[Entry | InboxProblem] = [*inbox.entries, *inbox.problems]
    for wanted in (ident, f"{ident}.json", f"{ident}.md"):
        exact = [item for item in items if item.id == wanted]
        if len(exact) == 1:
            return exact[0]
    matches = [item for item in items if ident and item.id.startswith(ident)]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise EntryNotFound(f"no inbox entry {ident!r} (see `cc-executor inbox list`)")
    names = ", ".join(sorted(item.id for item in matches)[:5])
    raise EntryNotFound(f"{ident!r} matches {len(matches)} entries: {names}")


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The result of :func:`acknowledge`: the entry, where it was moved, and the ``ack``
    sent back (None without ``reply_to``)."""

    entry: Entry | InboxProblem
    moved_to: Path
    reply: Delivery | None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samestat(os.lstat(a), os.lstat(b))
    except OSError:
        return False


def _move_aside(path: Path) -> Path:
    folder = path.parent / PROCESSED
    try:
        folder.mkdir(exist_ok=True)
    except OSError as exc:
        raise DeliveryError(f"cannot create {folder}: {exc.strerror}") from None
    # mkdir(exist_ok) accepts a symlink to a folder anywhere: an untrusted inbox could
    # redirect acknowledged files (e.g. into ~/.claude/commands). Open the folder itself
    # without following links and do every write relative to that descriptor, so it cannot
    # be swapped for a link between the check and the move either.
    try:
        dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise DeliveryError(
            f"{folder} is not a real folder ({exc.strerror}); refusing to move anything into it"
        ) from None
    try:
        return _move_into(path, folder, dir_fd)
    finally:
        os.close(dir_fd)


def _move_into(path: Path, folder: Path, dir_fd: int) -> Path:
    stem, dot, suffix = path.name.rpartition(".")
    for n in range(1000):
        name = path.name if n == 0 else f"{stem}.{n}{dot}{suffix}"
        dest = folder / name
        try:
            # A link, not a rename: rename would silently replace an earlier file of that name.
            os.link(path, name, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileExistsError:
            if _same_file(path, dest):
                # Another process is moving this very file: it wins, we keep no second copy.
                raise EntryNotFound(f"{path.name} was acknowledged meanwhile") from None
            continue
        except FileNotFoundError:
            raise EntryNotFound(f"{path.name} was acknowledged meanwhile") from None
        except OSError:
            # Directories (and file systems without links): rename, after checking the name.
            try:
                os.lstat(name, dir_fd=dir_fd)
                continue
            except FileNotFoundError:
                pass
            try:
                os.rename(path, name, dst_dir_fd=dir_fd)
            except OSError as exc:
                raise DeliveryError(f"cannot move {path.name}: {exc.strerror}") from None
            return dest
        try:
            os.unlink(path)
        except FileNotFoundError:
            # Another process acknowledged it at the same moment and kept its own copy.
            os.unlink(name, dir_fd=dir_fd)
            raise EntryNotFound(f"{path.name} was acknowledged meanwhile") from None
        return dest
    raise DeliveryError(f"no free name for {path.name} in {folder}")


def acknowledge(
    ident: str,
    *,
    project: str | os.PathLike[str] | None = None,
    reply_to: str | os.PathLike[str] | None = None,
    message: str | None = None,
) -> Acknowledgement:
    """Move the entry ``ident`` (see :func:`find`; problem files too, to clear them) into
    the ``processed/`` sub-folder of its folder, never replacing a file there.

    With ``reply_to`` (a directory the user names: a path inside a message is never
    used), first send an ``ack`` there from this project, naming the entry in
    ``in_reply_to`` and carrying its issue numbers; if that fails nothing is moved.
    Raises :class:`EntryNotFound`, or the errors of :func:`notify` and
    :class:`DeliveryError`."""
    inbox = read_inbox(project)
    entry = find(inbox, ident)
    reply = None
    if reply_to is not None:
        issues = entry.data.get("issue_numbers", []) if isinstance(entry, Message) else []
        reply = notify(
            reply_to,
            project=inbox.root,
            type="ack",
            issues=issues,
            message=message if message is not None else f"received {entry.id}",
            in_reply_to=entry.id[:255],
        )
    return Acknowledgement(entry=entry, moved_to=_move_aside(entry.path), reply=reply)


__getattr__ = renamed(__name__, {"Problem": "InboxProblem"}, globals())
