"""Owning a whole process tree: finding every descendant, signalling it without PID races.

Why this mechanism (Linux):

* The child starts in a session of its own (``setsid``), so its process group holds the
  ordinary descendants and ``killpg`` reaches them in one call.
* Descendants can leave the group (``setsid``/double fork, the way daemons and some MCP
  servers start). Ancestry cannot find them afterwards: an orphan is re-parented to init.
  Every child is therefore started with a random *tree token* in its environment
  (``CC_EXECUTOR_TREE``); descendants inherit it through ``fork``/``exec`` whatever group,
  session or parent they end up with, and a sweep of ``/proc/*/environ`` finds them. This is
  the approach Jenkins' ProcessTreeKiller has used for years. Tokens accumulate
  (``outer,inner``) so a cc-executor running inside a supervised tree stays findable by the
  outer supervisor. The sweep also matches the child's session id, which catches a process
  that scrubbed its environment but stayed in the session.
* Signals go through a pidfd opened *before* re-checking that the process still carries the
  token, so a PID recycled between the sweep and the signal is never hit.
* cgroups would be stronger, but need delegation (root or systemd) and are v1-only on many
  machines; they are not required for any of the guarantees above.

* A descendant that both scrubs its environment and leaves the session (``env -i setsid
  ...``) carries neither mark; the sweep also takes the descendants of every member, by
  parent PID, so it is found while its parent (or any ancestor up to a member) lives. A
  process that supervises one run only (``cc-executor run`` and ``exec``) also calls
  :func:`adopt_orphans`: it becomes a child subreaper (``PR_SET_CHILD_SUBREAPER``), so
  orphans of its tree are re-parented to it instead of init, and the sweep takes its own
  children outside its session (but the watchdog) as members.

What it still cannot see: in a process supervising runs as a library, or several at once
(the service, batches, task lists), a descendant that scrubs its environment, leaves the
session *and* is orphaned (a double fork) before the sweep: it is re-parented to init, and
making the caller's process a subreaper would hand it zombies it does not expect and could
not attribute to a run. Such a process is only bounded by the parent-death signal of the
child and the drain timeout of the supervisor.
"""

from __future__ import annotations

import os
import time

# ``signal`` and ``contextlib`` are imported where used: the console imports this module
# before it starts Claude Code, and they cost milliseconds (``signal`` builds enum classes).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

TREE_ENV = "CC_EXECUTOR_TREE"

_HAVE_PIDFD = hasattr(os, "pidfd_open")


def new_tree_token() -> str:
    """A random token that marks every process of one supervised tree."""
    return "cct" + os.urandom(12).hex()


def child_tree_env(parent_env_value: str | None, token: str) -> str:
    """The ``CC_EXECUTOR_TREE`` value for a new child: inherited tokens plus ``token``."""
    return f"{parent_env_value},{token}" if parent_env_value else token


def _read(path: str) -> bytes | None:
    # Raw os.open/os.read: a sweep reads two small files per process, and the buffered
    # io.open machinery would cost several times more than the system calls themselves.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        data = os.read(fd, 65536)
        if len(data) < 65536:
            return data
        parts = [data]
        while data:
            data = os.read(fd, 65536)
            parts.append(data)
        return b"".join(parts)
    except OSError:
        return None
    finally:
        os.close(fd)


def _is_zombie(pid: int) -> bool:
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return True
    # The command name may hold spaces and parentheses; fields resume after the last ')'.
    return stat[stat.rfind(b")") + 2 : stat.rfind(b")") + 3] in (b"Z", b"X")


def _is_member(pid: int, needles: Iterable[bytes], sid: int | None) -> bool:
    if sid is not None and sid > 1:
        # getsid is one system call; reading /proc/PID/stat for every process costs more.
        try:
            if os.getsid(pid) == sid and not _is_zombie(pid):
                return True
        except OSError:
            return False
    env = _read(f"/proc/{pid}/environ")
    return env is not None and any(n in env for n in needles)


def start_ticks(pid: int, *, zombie: bool = False) -> int | None:
    """When ``pid`` started, in clock ticks since boot (None if it is gone or, unless
    ``zombie``, a zombie). With the PID it identifies a process: a recycled PID has another
    start time. ``zombie``: for our own child not reaped yet, whose PID cannot be reused,
    a quick exit must not lose its start time."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        gone = fields[0] == b"X" or (fields[0] == b"Z" and not zombie)
        return None if gone else int(fields[19])
    except (IndexError, ValueError):
        return None


#: The process that adopts the orphans of the tree it supervises (:func:`adopt_orphans`),
#: by PID: a child forked from it (the watchdog) is no subreaper.
_ADOPTER: set[int] = set()
_PR_SET_CHILD_SUBREAPER = 36


def adopt_orphans() -> bool:
    """Make this process a child subreaper, so that the orphans of the trees it supervises
    are re-parented to it (not to init) and :func:`find_tree` counts its children outside
    its own session (but the watchdog) as members. Only for a process supervising one
    run at a time, whose children are all that run's (``cc-executor run``, ``exec``).
    True if it took effect (Linux only); the setting lasts for the life of the process."""
    if os.getpid() in _ADOPTER:
        return True
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    _ADOPTER.add(os.getpid())
    return True


def _parent(pid: int) -> tuple[int, int] | None:
    """The parent PID and start time of a live process (None: a zombie, or gone)."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return None if fields[0] in (b"Z", b"X") else (int(fields[1]), int(fields[19]))
    except (IndexError, ValueError):
        return None


def find_tree(tokens: Iterable[str], sid: int | None = None, *, own: bool = False) -> list[int]:
    """PIDs of live processes carrying any of ``tokens`` or in session ``sid``, and their
    descendants (by parent PID: one that scrubbed its environment and left the session is
    still the child of a member). With ``own`` (the tree this process supervises) in a
    process that :func:`adopt_orphans`, its own children outside its session (orphans of
    the tree re-parented to it) but the watchdog count too; never for another tree (crash
    recovery sweeping a dead run's token must not take this process's live run).

    Zombies have no environment left and are not returned: they are already dead. The
    calling process is never returned.
    """
    marked, descendants = _sweep(tokens, sid, own=own)
    return [*marked, *descendants]


def _sweep(
    tokens: Iterable[str], sid: int | None, *, own: bool = False
) -> tuple[list[int], dict[int, int]]:
    """The members carrying a mark (token or session), and the descendants found only by
    parent PID, with their start times (a pidfd check before signalling one)."""
    needles = [t.encode() for t in tokens]
    me = os.getpid()
    found = []
    others: list[int] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return [], {}
    for name in names:
        if not name.isdigit():
            continue
        pid = int(name)
        if pid == me:
            continue
        if _is_member(pid, needles, sid):
            found.append(pid)
        else:
            others.append(pid)
    adopting = own and me in _ADOPTER
    roots = set(found)
    if adopting:
        roots.add(me)
    descendants: dict[int, int] = {}
    if not roots or not others:
        return found, descendants
    children: dict[int, list[tuple[int, int]]] = {}
    for pid in others:
        parent = _parent(pid)
        if parent is not None:
            children.setdefault(parent[0], []).append((pid, parent[1]))
    if adopting:
        from cc_executor._engine._watchdog import watchdog

        # Our own helpers (git) stay in our session and the watchdog is known; an orphan
        # re-parented to us left it (or it would be in the child's session, a member).
        keeper, ours = watchdog().pid, os.getsid(0)
        children[me] = [
            child
            for child in children.get(me, ())
            if child[0] != keeper and _session(child[0]) not in (ours, None)
        ]
    queue = list(roots)
    while queue:
        for pid, started in children.pop(queue.pop(), ()):
            descendants[pid] = started
            queue.append(pid)
    return found, descendants


def _session(pid: int) -> int | None:
    try:
        return os.getsid(pid)
    except OSError:
        return None


def _signal_descendant(pid: int, started: int, sig: int) -> bool:
    """Send ``sig`` to ``pid`` if it is still the process the sweep saw (same start time,
    checked through a pidfd that pins it); True if sent."""
    return _signal_if(pid, sig, lambda: start_ticks(pid) == started)


def _signal_if(pid: int, sig: int, still: Callable[[], bool]) -> bool:
    """Send ``sig`` to ``pid`` if ``still()`` holds once the process is pinned by a pidfd
    (so a recycled PID is never signalled by mistake); True if sent."""
    import signal

    if not (_HAVE_PIDFD and hasattr(signal, "pidfd_send_signal")):
        if not still():
            return False
        try:
            os.kill(pid, sig)
        except OSError:
            return False
        return True
    try:
        fd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if not still():
            return False
        signal.pidfd_send_signal(fd, sig)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def signal_member(pid: int, sig: int, tokens: Iterable[str], sid: int | None = None) -> bool:
    """Send ``sig`` to ``pid`` if it is still a member of the tree; True if sent.

    The pidfd pins the process before membership is re-checked, so a recycled PID cannot be
    signalled by mistake.
    """
    needles = [t.encode() for t in tokens]
    return _signal_if(pid, sig, lambda: _is_member(pid, needles, sid))


def signal_tree(
    tokens: Iterable[str],
    sig: int,
    *,
    sid: int | None = None,
    pgid: int | None = None,
    known: dict[int, int] | None = None,
    own: bool = False,
) -> int:
    """Send ``sig`` to the process group ``pgid`` (if given) and every tree member.

    Returns how many members the sweep found (``known`` ones still alive included).
    ``known``: descendants found by parent PID in earlier sweeps (PID: start time), updated
    in place; each is signalled again while it is the same process, since one that outlived
    its parent is re-parented to init and no later sweep can find it. The caller must
    guarantee that ``pgid`` is still ours (its leader not yet reaped), since group ids are
    not pinned by a pidfd.
    """
    import contextlib

    tokens = list(tokens)
    # Sweep first: a descendant found only by its parent is lost to init once that dies.
    members, descendants = _sweep(tokens, sid, own=own)
    if known is not None:
        known.update(descendants)
        descendants = {pid: t for pid, t in known.items() if start_ticks(pid) == t}
    if pgid is not None:
        with contextlib.suppress(OSError):
            os.killpg(pgid, sig)
    for pid in members:
        signal_member(pid, sig, tokens, sid)
    for pid, started in descendants.items():
        _signal_descendant(pid, started, sig)
    return len(members) + len(descendants)


def kill_tree(
    tokens: Iterable[str],
    *,
    sid: int | None = None,
    pgid: int | None = None,
    rounds: int = 50,
    own: bool = False,
) -> int:
    """SIGKILL the tree until a sweep finds nobody; returns the number of sweeps that found
    someone. A member forking during the kill shows up in the next sweep, and a killed
    process cannot fork again, so this converges in a few rounds. ``own``: as for
    :func:`find_tree`."""
    import signal

    tokens = list(tokens)
    busy = 0
    known: dict[int, int] = {}
    for _ in range(rounds):
        if signal_tree(tokens, signal.SIGKILL, sid=sid, pgid=pgid, known=known, own=own) == 0:
            break
        busy += 1
        # Give the kernel a moment to turn the killed processes into zombies.
        time.sleep(0.002)
    return busy


def _holds_pipe(pid: int, link: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}") == link:
                return True
        except OSError:
            continue
    return False


def kill_pipe_holders(inode: int, rounds: int = 50) -> int:
    """SIGKILL every process (but this one) holding the pipe ``inode`` open, until none
    does; returns how many were signalled. The pipe is one this tree's supervisor made for
    its child: whoever holds it is that child (before or after its exec) or a descendant.
    Signalled through a pidfd after re-checking, so a recycled PID is never hit."""
    import signal

    link = f"pipe:[{inode}]"
    me = os.getpid()
    killed = 0
    for _ in range(rounds):
        try:
            names = os.listdir("/proc")
        except OSError:
            return killed
        holders = [int(n) for n in names if n.isdigit() and int(n) != me]
        holders = [pid for pid in holders if _holds_pipe(pid, link)]
        if not holders:
            break
        for pid in holders:
            try:
                fd = os.pidfd_open(pid)
            except (AttributeError, OSError):
                continue
            try:
                if _holds_pipe(pid, link):
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
                    killed += 1
            except OSError:
                pass
            finally:
                os.close(fd)
        time.sleep(0.002)  # killed processes let go of their descriptors as they exit
    return killed


def kill_orphaned_tree(pid: int | None, pid_started: int | None, token: str | None) -> None:
    """SIGKILL what is left of a tree whose supervisor died: the child ``pid`` only if it is
    still the same process (it started at ``pid_started`` clock ticks), and every process
    carrying ``token`` (if it is a tree token at all: see :func:`is_tree_token`). Does
    nothing for what is gone already; ``None`` skips that part."""
    import signal

    if pid is not None and pid_started is not None and start_ticks(pid) == pid_started:
        # signal_member re-checks membership; the session check covers the leader.
        signal_member(pid, signal.SIGKILL, [], sid=pid)
    if token and is_tree_token(token):
        kill_tree([token])


def is_tree_token(token: str) -> bool:
    """True when ``token`` has the form of :func:`new_tree_token`'s: a token read back from
    a file (a damaged or planted history row or spawn marker) could otherwise be any text
    found in every environment (``PATH``), and its sweep would kill every process."""
    return (
        len(token) == 27
        and token.startswith("cct")
        and all(c in "0123456789abcdef" for c in token[3:])
    )


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_usage(pid: int) -> tuple[int, int] | None:
    """Resident bytes and CPU ticks (its reaped children's included) of ``pid``."""
    stat = _read(f"/proc/{pid}/stat")
    if not stat:
        return None
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        # utime, stime, cutime, cstime (fields 14-17), rss in pages (field 24).
        return int(fields[21]) * _PAGE_SIZE, sum(int(f) for f in fields[11:15])
    except (IndexError, ValueError):
        return None


def tree_usage(pid: int) -> tuple[int, float] | None:
    """Resident memory (bytes) and CPU time (seconds, reaped children included) of ``pid``
    and its descendants now, from ``/proc``: what a run without a cgroup samples. Walks
    ``/proc/PID/task/TID/children`` from ``pid`` (only the tree's own files are read, so a
    sample costs the tree's size, not the machine's). A lower bound: a descendant orphaned
    to init, or one that ended unreaped between two samples, is not counted. None when
    ``pid`` is gone or ``/proc`` has no ``children`` files."""
    rss = ticks = 0
    seen: set[int] = set()
    todo = [pid]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        usage = _stat_usage(current)
        if usage is None:
            if current == pid:
                return None
            continue
        rss += usage[0]
        ticks += usage[1]
        try:
            threads = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for tid in threads:
            children = _read(f"/proc/{current}/task/{tid}/children")
            if children is None:
                if current == pid and tid == str(pid):
                    return None  # no children files on this kernel
                continue
            todo.extend(int(c) for c in children.split())
    return rss, ticks / _TICKS
