"""Sending: from the sender's repository (and history) to one new file in the target's
inbox, written atomically and never over an existing file."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cc_executor.notify._errors import DeliveryError, GitStateError, InvalidMessage
from cc_executor.notify._evidence import run_evidence
from cc_executor.notify._git import head_sha, repo_state, require_committed_and_pushed, toplevel
from cc_executor.notify._message import (
    INBOX,
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    Fix,
    build_message,
    file_name,
    project_name,
)

# Hard links are how we publish without replacing; these errors mean the file system has none.
_NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.EXDEV}
_NAME_ATTEMPTS = 100


@dataclass(frozen=True, slots=True)
class Delivery:
    """One sent (or, with ``dry_run``, prepared) message: where it is (or would be) and
    what it says."""

    path: Path
    message: dict[str, Any]
    dry_run: bool


def write_new_file(folder: Path, names: Iterable[str], data: bytes) -> Path:
    """Write ``data`` into ``folder`` under the first of ``names`` that does not exist yet,
    and return that path.

    The content goes to a hidden temporary file (``.cc-executor-*.tmp``) in the same folder
    first and is published with a hard link, which fails rather than replace an existing
    file: readers see either no file or the whole content, and any number of writers, in
    the same second or not, never clobber each other or anybody else's file. On a file
    system without hard links the final name is created exclusively (``O_EXCL``) and
    written in place: still never replacing, but a reader may see it half-written.
    Raises :class:`DeliveryError` when every name is taken or the file system refuses.
    """
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".cc-executor-", suffix=".tmp")
    except OSError as exc:
        raise DeliveryError(f"cannot write in {folder}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        # mkstemp makes the file private; a message is meant to be read by the receiver.
        os.chmod(tmp, 0o644)
        candidates = iter(names)
        for name in candidates:
            final = folder / name
            try:
                os.link(tmp, final, follow_symlinks=False)
            except FileExistsError:
                continue
            except OSError as exc:
                if exc.errno in _NO_HARD_LINKS:
                    return _write_exclusive(folder, [name, *candidates], data)
                raise DeliveryError(f"cannot write {final}: {exc.strerror}") from None
            _sync_folder(folder)
            return final
    except OSError as exc:
        raise DeliveryError(f"cannot write in {folder}: {exc.strerror}") from None
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    raise DeliveryError(f"every candidate file name in {folder} was taken")


def _write_exclusive(folder: Path, names: Iterable[str], data: bytes) -> Path:
    for name in names:
        final = folder / name
        try:
            fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        except FileExistsError:
            continue
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        _sync_folder(folder)
        return final
    raise DeliveryError(f"every candidate file name in {folder} was taken")


def _sync_folder(folder: Path) -> None:
    # The new name must survive a crash as well as the content does.
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _inside(path: Path, root: Path) -> bool:
    return path.resolve().is_relative_to(root.resolve())


def inbox_folder(root: Path, *, create: bool) -> Path:
    """``root/.github/ISSUES/inbox``, created when ``create`` is set. Raises
    :class:`DeliveryError` when ``root`` is not a directory or the folder would resolve
    outside ``root`` (a symbolic link on the way): a message is never written elsewhere."""
    if not root.is_dir():
        raise DeliveryError(f"{root} is not a directory")
    folder = root / INBOX
    if not _inside(folder, root):
        raise DeliveryError(f"{folder} leads outside {root} (a symbolic link); not writing there")
    if create:
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(f"cannot create {folder}: {exc.strerror}") from None
        if not _inside(folder, root):
            raise DeliveryError(f"{folder} leads outside {root}; not writing there")
    return folder


def deliver(
    message: dict[str, Any], target: Path, *, dry_run: bool = False, sent_at: float | None = None
) -> Delivery:
    """Write the (already validated) ``message`` as a new file in ``target``'s inbox (see
    :func:`write_new_file`); with ``dry_run``, only choose the path. The file is pure
    ASCII JSON, so even printing it raw to a terminal is harmless. Raises
    :class:`DeliveryError` (e.g. a message over 1 MiB, which receivers would refuse).
    ``sent_at`` (default: now) gives the Unix seconds in the file name."""
    data = (json.dumps(message, indent=2, ensure_ascii=True) + "\n").encode("ascii")
    if len(data) > MAX_MESSAGE_BYTES:
        raise DeliveryError(
            f"the message is {len(data)} bytes; receivers refuse files over {MAX_MESSAGE_BYTES}"
        )
    folder = inbox_folder(target, create=not dry_run)
    sent = time.time() if sent_at is None else sent_at

    def names() -> Iterator[str]:
        for _ in range(_NAME_ATTEMPTS):
            yield file_name(message["type"], message["from"], sent)

    if dry_run:
        return Delivery(folder / next(names()), message, dry_run=True)
    return Delivery(write_new_file(folder, names(), data), message, dry_run=False)


def _unique(items: Iterable[int | str]) -> list[int | str]:
    seen: list[int | str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def notify(
    to: str | os.PathLike[str],
    *,
    project: str | os.PathLike[str] | None = None,
    type: str = "issue_fixed",
    issues: Sequence[int | str] = (),
    fixes: Sequence[Fix] = (),
    message: str | None = None,
    verification_steps: Sequence[str] = (),
    from_run: str | None = None,
    allow_unpushed: bool = False,
    in_reply_to: str | None = None,
    dry_run: bool = False,
) -> Delivery:
    """Send one notification from ``project`` (default: the current directory; its git
    top level when inside a repository) to the project at ``to``, into
    ``to/.github/ISSUES/inbox/``.

    ``commit_sha`` is HEAD of the sender's repository, read from git. For ``issue_fixed``
    the sender must be a git repository whose tracked files are all committed and whose
    HEAD is on a remote-tracking branch when a remote exists (``allow_unpushed`` lifts
    the latter), else :class:`GitStateError`; ``issue_numbers`` joins ``issues`` and the
    fixes' issues, and each issue without a ``Fix`` gets one with an empty description.
    ``from_run`` fills every fix's ``test_result`` from that run of the history
    (:class:`RunEvidenceError` if it did not pass or its files were altered). Other types
    carry HEAD when there is one, and refuse ``fixes`` and ``from_run``
    (:class:`InvalidMessage`). ``reply_to`` is set to the sender's root so the receiver
    can confirm it for a reply. Raises :class:`DeliveryError` when ``to`` is not a
    directory. Nothing is written before every check has passed.
    """
    if type not in MESSAGE_TYPES:
        raise InvalidMessage(f"unknown message type {type!r} (one of {', '.join(MESSAGE_TYPES)})")
    if type != "issue_fixed" and (fixes or from_run):
        raise InvalidMessage("fixes and test runs belong to issue_fixed messages only")
    start = Path(project if project is not None else os.getcwd()).resolve()
    repo = toplevel(start)
    commit: str | None
    if type == "issue_fixed":
        if repo is None:
            raise GitStateError(
                f"{start} is not inside a git repository: issue_fixed names the fix's commit"
            )
        state = repo_state(repo)
        require_committed_and_pushed(state, allow_unpushed=allow_unpushed)
        commit = state.head
    else:
        commit = head_sha(repo) if repo is not None else None
    root = repo or start
    target = Path(to).resolve()
    if not target.is_dir():
        raise DeliveryError(f"{target} is not a directory (--to names the receiving project)")
    fix_list: list[Fix] | None = None
    if type == "issue_fixed":
        fix_list = list(fixes)
        covered = {fix.issue for fix in fix_list}
        fix_list += [Fix(issue=i, description="") for i in _unique(issues) if i not in covered]
        if from_run is not None:
            evidence = run_evidence(from_run, require_ok=True)
            fix_list = [replace(fix, test_result=evidence) for fix in fix_list]
    now = time.time()
    issue_numbers = _unique([*issues, *(fix.issue for fix in fix_list or [])])
    built = build_message(
        type=type,
        sender=project_name(root),
        target=project_name(target),
        issue_numbers=issue_numbers if issue_numbers or type == "issue_fixed" else None,
        commit_sha=commit,
        fixes=fix_list,
        verification_steps=list(verification_steps),
        message=message,
        reply_to=str(root),
        in_reply_to=in_reply_to,
        sent_at=now,
    )
    return deliver(built, target, dry_run=dry_run, sent_at=now)
