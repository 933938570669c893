"""Watching an inbox: entries that arrive after the watch began, as they arrive.

File-system events (inotify on Linux, through watchdog) only wake the watcher up; what is
new is always decided by listing the folders, so a missed or merged event costs latency,
never a message. Where events are unavailable (no inotify, its limits reached) watchdog's
polling observer takes over. Only the two folders (and ``.github/ISSUES`` itself, to see
``incoming/`` appear) are watched, never recursively, and nothing is followed through a
symbolic link: a link planted in the inbox cannot make the watcher walk the file system.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from cc_executor.notify._inbox import Entry, InboxProblem, candidates, load, project_root
from cc_executor.notify._message import INBOX, INCOMING
from cc_executor.notify._send import inbox_folder

# A listing also runs this often without any event, in case one was lost.
_RESCAN_S = 2.0
# A file that fails to parse may still be being written (by a sender that does not publish
# atomically): it is reported once it has stayed the same for this long on our own clock.
_SETTLE_S = 1.0
_PENDING_RECHECK_S = 0.2
_POLL_S = 0.5


class _Watcher:
    """A watchdog observer over the folders of one project, each watched on its own."""

    def __init__(self, wake: threading.Event, polling: bool) -> None:
        from watchdog.events import FileSystemEvent, FileSystemEventHandler

        class Wake(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                wake.set()

        self._handler = Wake()
        self._polling = polling
        self._watched: set[Path] = set()
        self.observer: Any = None
        # No real folder to observe (links only): the periodic listing is all there is.
        self.mechanism = "listing"

    def _start(self, first: Path) -> None:
        from watchdog.observers import Observer
        from watchdog.observers.polling import PollingObserverVFS

        if not self._polling:
            observer = Observer()
            try:
                observer.schedule(self._handler, str(first), recursive=False)
                observer.start()
            except OSError:
                # No inotify here, or its instance/watch limits are reached: poll instead.
                pass
            else:
                self.observer, self.mechanism = observer, type(observer).__name__
                return
        # lstat, not stat: the snapshot must not look through a link.
        poller = PollingObserverVFS(stat=os.lstat, listdir=os.scandir, polling_interval=_POLL_S)
        poller.schedule(self._handler, str(first), recursive=False)
        poller.start()
        self.observer, self.mechanism = poller, type(poller).__name__

    def add(self, folder: Path) -> None:
        """Watch ``folder`` too if it is a real folder (not a link) not watched yet."""
        if folder in self._watched or not _is_real_folder(folder):
            return
        if self.observer is None:
            self._start(folder)
        else:
            # Out of inotify watches: the periodic listing still sees the folder.
            with contextlib.suppress(OSError):
                self.observer.schedule(self._handler, str(folder), recursive=False)
        self._watched.add(folder)

    def stop(self) -> None:
        if self.observer is not None:
            self.observer.stop()
            self.observer.join(timeout=5)


def _is_real_folder(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False


def _listing(root: Path) -> set[Path]:
    found: set[Path] = set()
    for folder, suffix in ((root / INBOX, ".json"), (root / INCOMING, ".md")):
        names = candidates(folder, suffix)
        if not isinstance(names, InboxProblem):
            found.update(folder / name for name in names)
    return found


def _signature(path: Path) -> tuple[int, ...] | None:
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def watch(
    project: str | os.PathLike[str] | None = None,
    *,
    timeout: float | None = None,
    max_events: int | None = None,
    polling: bool = False,
    on_ready: Callable[[Path, str], None] | None = None,
) -> Generator[Entry | InboxProblem, None, None]:
    """Yield each entry (or :class:`InboxProblem`) that appears in the project's inbox or
    incoming folder after the watch began, once, in arrival order. Files present at the
    start are not reported; a name that disappears and comes back is reported again. A
    file that fails to parse is reported once it has stayed unchanged for a second
    (whatever its modification time says).

    The inbox folder is created if missing; ``incoming/`` may appear later (the watch
    covers ``.github/ISSUES`` too). ``on_ready(folder, mechanism)`` is called once the
    watch is in place and the existing files are known: a file created after that is
    reported. ``polling`` forces the polling observer (otherwise it is only the fallback).
    Ends after ``timeout`` seconds (counted from the call) or ``max_events`` items,
    whichever comes first, or never without either. Closing the generator (or an
    exception, e.g. KeyboardInterrupt, while it waits) stops the observer thread.
    Raises :class:`DeliveryError` when the inbox folder cannot be created.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    root = project_root(project)
    watched = inbox_folder(root, create=True).parent
    wake = threading.Event()
    watcher = _Watcher(wake, polling)
    try:
        for folder in (watched, root / INBOX, root / INCOMING):
            watcher.add(folder)
        seen = _listing(root)
        if on_ready is not None:
            on_ready(watched, watcher.mechanism)
        count = 0
        # Broken files waiting to settle: their signature and when it was last seen change.
        pending: dict[Path, tuple[tuple[int, ...] | None, float]] = {}
        while max_events is None or count < max_events:
            wait = _PENDING_RECHECK_S if pending else _RESCAN_S
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            wake.wait(wait)
            wake.clear()
            watcher.add(root / INCOMING)
            present = _listing(root)
            seen &= present
            pending = {path: value for path, value in pending.items() if path in present}
            for path in sorted(present - seen, key=lambda p: (_mtime(p), p.name)):
                if deadline is not None and time.monotonic() >= deadline:
                    return
                item = load(path)
                if item is None:
                    continue
                if isinstance(item, InboxProblem) and not _settled(path, pending):
                    continue
                pending.pop(path, None)
                seen.add(path)
                yield item
                count += 1
                if max_events is not None and count >= max_events:
                    return
    finally:
        watcher.stop()


def _settled(path: Path, pending: dict[Path, tuple[tuple[int, ...] | None, float]]) -> bool:
    now = time.monotonic()
    signature = _signature(path)
    known = pending.get(path)
    if known is None or known[0] != signature:
        pending[path] = (signature, now)
        return False
    return now - known[1] >= _SETTLE_S


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
