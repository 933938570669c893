"""Build a process tree that resists termination, then idle.

Usage: tree.py PIDFILE [--ignore-term] [--escape] [--group-child]

--ignore-term  this process ignores SIGTERM
--escape       double-fork a grandchild into its own session (setsid) that ignores SIGTERM
--group-child  fork a plain child that stays in our process group and ignores SIGTERM
Every process appends its PID to PIDFILE (one per line) once it is set up; this process
prints "ready" when all are written.
"""

import os
import signal
import sys
import time

pidfile = sys.argv[1]
flags = set(sys.argv[2:])


def record() -> None:
    with open(pidfile, "a") as f:
        f.write(f"{os.getpid()}\n")


def idle_forever() -> None:
    while True:
        time.sleep(3600)


if "--escape" in flags:
    r, w = os.pipe()
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)
            os.close(r)
            record()
            os.write(w, b"x")
            os.close(w)
            # Keep stdout/stderr open, like a careless daemon: the pipes stay held.
            idle_forever()
        os._exit(0)
    os.close(w)
    os.read(r, 1)
    os.close(r)

if "--group-child" in flags:
    r, w = os.pipe()
    if os.fork() == 0:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        record()
        os.write(w, b"x")
        idle_forever()
    os.close(w)
    os.read(r, 1)

if "--ignore-term" in flags:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
record()
print("ready", flush=True)
idle_forever()
