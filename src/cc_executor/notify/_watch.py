"""Watching an inbox: entries that arrive after the watch began, as they arrive.

File-system events (inotify on Linux, through watchdog) only wake the watcher up; what is
new is always decided by listing the folders, so a missed or merged event costs latency,
never a message. Where events are unavailable (no inotify, its limits reached) watchdog's
polling observer takes over.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Generator
from pathlib import Path
from typing import Any

from cc_executor.notify._inbox import Entry, InboxProblem, load, project_root
from cc_executor.notify._message import INBOX, INCOMING
from cc_executor.notify._send import inbox_folder

# A listing also runs this often without any event, in case one was lost.
_RESCAN_S = 2.0
# A file that fails to parse while it is this fresh may still be being written (by a sender
# that does not publish atomically); it is looked at again before being reported.
_SETTLE_S = 1.0
_PENDING_RECHECK_S = 0.2


def _start_observer(folder: Path, wake: threading.Event, polling: bool) -> tuple[Any, str]:
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer
    from watchdog.observers.polling import PollingObserver

    class Wake(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            wake.set()

    if not polling:
        observer = Observer()
        try:
            observer.schedule(Wake(), str(folder), recursive=True)
            observer.start()
        except OSError:
            # No inotify here, or its instance/watch limits are reached: poll instead.
            pass
        else:
            return observer, type(observer).__name__
    poller = PollingObserver(timeout=0.5)
    poller.schedule(Wake(), str(folder), recursive=True)
    poller.start()
    return poller, type(poller).__name__


def _listing(root: Path) -> set[Path]:
    found: set[Path] = set()
    for folder, suffix in ((root / INBOX, ".json"), (root / INCOMING, ".md")):
        try:
            with os.scandir(folder) as it:
                found.update(folder / e.name for e in it if e.name.endswith(suffix))
        except OSError:
            continue
    return found


def _fresh(path: Path) -> bool:
    try:
        return time.time() - os.lstat(path).st_mtime < _SETTLE_S
    except OSError:
        return False


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
    start are not reported; a name that disappears and comes back is reported again.

    The inbox folder is created if missing (the watch covers ``.github/ISSUES``
    recursively, so ``incoming/`` may appear later). ``on_ready(folder, mechanism)`` is
    called once the watch is in place and the existing files are known: a file created
    after that is reported. ``polling`` forces the polling observer (otherwise it is only
    the fallback). Ends after ``timeout`` seconds or ``max_events`` items, whichever
    comes first, or never without either. Closing the generator (or an exception, e.g.
    KeyboardInterrupt, while it waits) stops the observer thread.
    Raises :class:`DeliveryError` when the inbox folder cannot be created.
    """
    root = project_root(project)
    watched = inbox_folder(root, create=True).parent
    wake = threading.Event()
    observer, mechanism = _start_observer(watched, wake, polling)
    try:
        seen = _listing(root)
        if on_ready is not None:
            on_ready(watched, mechanism)
        deadline = None if timeout is None else time.monotonic() + timeout
        count = 0
        pending = False
        while max_events is None or count < max_events:
            wait = _PENDING_RECHECK_S if pending else _RESCAN_S
            if deadline is not None:
                wait = min(wait, deadline - time.monotonic())
                if wait <= 0:
                    return
            wake.wait(wait)
            wake.clear()
            present = _listing(root)
            seen &= present
            pending = False
            for path in sorted(present - seen, key=lambda p: (_mtime(p), p.name)):
                item = load(path)
                if item is None:
                    continue
                if isinstance(item, InboxProblem) and _fresh(path):
                    pending = True
                    continue
                seen.add(path)
                yield item
                count += 1
                if max_events is not None and count >= max_events:
                    return
    finally:
        observer.stop()
        observer.join(timeout=5)


def _mtime(path: Path) -> float:
    try:
        return os.lstat(path).st_mtime
    except OSError:
        return 0.0
