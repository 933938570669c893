"""The watchdog process (see ``_watchdog``): kills every registered tree when the
supervising process dies.

Its own module, importing only ``os``, ``sys`` and the tree helpers, because a watchdog is
started next to every supervising process, often while the supervised CLI is booting.
"""

from __future__ import annotations

import os
import sys

from cc_executor._engine._tree import kill_pipe_holders, kill_tree, start_ticks


def _number(text: str) -> int | None:
    return int(text) if text.isdigit() else None


def _serve(stream: object) -> dict[str, tuple[int | None, int | None, int | None]]:
    live: dict[str, tuple[int | None, int | None, int | None]] = {}
    for raw in stream:  # type: ignore[attr-defined]
        line = raw.decode("ascii", "replace").strip()
        if line.startswith("+"):
            token, sid, ticks, pipe = ([*line[1:].split(" "), "", "", ""])[:4]
            live[token] = (_number(sid), _number(ticks), _number(pipe))
        elif line.startswith("-"):
            live.pop(line[1:], None)
    return live


def main() -> None:
    """Entry point of the watchdog process (see the module docstring).

    ``SCHED_BATCH``: the watchdog wakes when its supervisor exits (end of its stdin), and
    at normal policy that wake-up preempted the supervisor's own exit on the same core
    (measured: 2.5 ms later to end). Its nice value (10 at least, set by the supervisor)
    keeps its share when the supervisor has died and the CPU is busy."""
    import signal

    try:  # noqa: SIM105 - contextlib is not loaded in the watchdog
        os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    except (AttributeError, OSError):
        pass  # elsewhere than Linux, or refused: the normal policy
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    live = _serve(sys.stdin.buffer)
    for token, (sid, ticks, pipe) in live.items():
        if sid is None and pipe is not None:
            # Registered before its spawn, never confirmed: a child may exist that has not
            # exec'd yet (no token in its environment); it holds its stderr pipe.
            kill_pipe_holders(pipe)
        # Match by session only while its leader is still the child we were told about: a
        # session id whose leader is gone may belong to an unrelated process by now.
        same_leader = sid is not None and ticks is not None and start_ticks(sid) == ticks
        kill_tree([token], sid=sid if same_leader else None)
    # Nothing to flush or close: skip the interpreter's teardown (CPU taken from whoever
    # runs next, often the supervisor's parent).
    os._exit(0)


if __name__ == "__main__":
    main()
