"""The watchdog process (see ``_watchdog``): kills every registered tree when the
supervising process dies.

Its own module, importing only ``os``, ``sys`` and the tree helpers, because a watchdog is
started next to every supervising process, often while the supervised CLI is booting.
"""

from __future__ import annotations

import os
import sys

from cc_executor._engine._tree import kill_tree, start_ticks


def _serve(stream: object) -> dict[str, tuple[int | None, int | None]]:
    live: dict[str, tuple[int | None, int | None]] = {}
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.decode("ascii", "replace").strip()
        if line.startswith("+"):
            token, sid, ticks = ([*line[1:].split(" "), "", ""])[:3]
            live[token] = (
                int(sid) if sid.isdigit() else None,
                int(ticks) if ticks.isdigit() else None,
            )
        elif line.startswith("-"):
            live.pop(line[1:], None)
    return live


def main() -> None:
    """Entry point of the watchdog process (see the module docstring).

    ``SCHED_BATCH``: the watchdog wakes when its supervisor exits (end of its stdin), and
    at normal policy that wake-up preempted the supervisor's own exit on the same core
    (measured: 2.5 ms later to end). Its nice value (10 at least) keeps its share when
    the supervisor has died and the CPU is busy."""
    import signal

    try:  # noqa: SIM105 - contextlib is not loaded in the watchdog
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # elsewhere than Linux, or refused: the normal policy
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    live = _serve(sys.stdin.buffer)
    for token, (sid, ticks) in live.items():
        # Match by session only while its leader is still the child we were told about: a
        # session id whose leader is gone may belong to an unrelated process by now.
        same_leader = sid is not None and ticks is not None and start_ticks(sid) == ticks
        kill_tree([token], sid=sid if same_leader else None)
    # Nothing to flush or close: skip the interpreter's teardown (CPU taken from whoever
    # runs next, often the supervisor's parent).
    os._exit(0)


if __name__ == "__main__":
    main()
