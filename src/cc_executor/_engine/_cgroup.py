"""Resource limits of a whole process tree: a control group of the run's own.

A run with a memory, CPU or process limit gets a cgroup made for it (``cc-executor/<run
id>`` under this process's own cgroup), its limits written there before the child runs
anything, and the child moved into it before it execs (see :data:`GATE`): every
descendant is born inside and cannot leave it without privileges. The kernel enforces the
limits; the engine reads the group's counters to say why a run ended (an OOM kill, a
refused fork) and what it used (peak memory, CPU time), then removes the group.

Both hierarchies are supported, detected by :func:`detect`:

- cgroup v2 (one unified tree): usable when this process's cgroup offers the ``memory``,
  ``pids`` and ``cpu`` controllers and may hand them to children: the root cgroup (a
  container's, as root), or a delegated cgroup that holds no process itself (the "no
  internal processes" rule of v2 forbids enabling controllers for the children of a cgroup
  that has members of its own).
- cgroup v1 (one tree per controller, and the hybrid layout where the v2 mount has no
  controller): usable when this process's group in the ``memory``, ``pids``, ``cpu`` and
  ``cpuacct`` trees is writable (root, usually).

Where neither is usable, :func:`detect` says why, and a run asking for a limit that needs
a cgroup fails to start with that reason rather than run unbounded. ``CC_EXECUTOR_CGROUP_ROOT``
names another mount point than ``/sys/fs/cgroup`` (for a container's own layout, and for
tests).

Only the standard library: the spawn path imports this module.
"""

from __future__ import annotations

import errno
import os
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable

#: The variable naming the cgroup file systems' mount point.
ROOT_ENV = "CC_EXECUTOR_CGROUP_ROOT"
DEFAULT_ROOT = "/sys/fs/cgroup"
#: The folder, under this process's cgroup, holding one cgroup per run.
PARENT_NAME = "cc-executor"
#: The controllers a limit needs, by limit.
CONTROLLER_OF = {"memory_max": "memory", "cpus": "cpu", "pids_max": "pids"}
#: cgroup v1 keeps CPU time in a controller of its own.
_V1_CONTROLLERS = ("memory", "pids", "cpu", "cpuacct")
_V2_CONTROLLERS = ("memory", "pids", "cpu")
_CPU_PERIOD_US = 100_000

#: The child's first program when it must join a cgroup before it runs anything: it waits
#: for the supervisor's go (a byte on descriptor ``argv[1]``, sent once the child is in its
#: cgroup), then execs the real program in place (same PID). No byte (the supervisor
#: failed, or died) and it exits without running anything. A Python one-liner rather than
#: a preexec_fn (not safe in a threaded process) or clone3's CLONE_INTO_CGROUP (v2 only,
#: not in the standard library); it costs one interpreter start, only for runs with limits.
GATE = (
    "import os,sys\n"
    "fd=int(sys.argv[1])\n"
    "go=os.read(fd,1)\n"
    "os.close(fd)\n"
    "if go!=b'g':os._exit(125)\n"
    "try:os.execv(sys.argv[2],sys.argv[2:])\n"
    "except OSError as e:\n"
    " os.write(2,('cannot start %s: %s\\n'%(sys.argv[2],e.strerror)).encode());os._exit(127)\n"
)


class Limits:
    """The resource limits of one run's whole process tree; None: no limit.

    ``memory_max``: bytes of memory (swap included where the kernel accounts it);
    ``cpus``: CPU time per wall-clock time (0.5: half of one CPU; 2: two CPUs);
    ``pids_max``: processes and threads at once; ``max_output_bytes``: bytes written to
    stdout and stderr together (enforced by the engine, no cgroup needed).
    """

    __slots__ = ("cpus", "max_output_bytes", "memory_max", "pids_max")

    def __init__(
        self,
        *,
        memory_max: int | None = None,
        cpus: float | None = None,
        pids_max: int | None = None,
        max_output_bytes: int | None = None,
    ) -> None:
        for name, value in (
            ("memory_max", memory_max),
            ("pids_max", pids_max),
            ("max_output_bytes", max_output_bytes),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value <= 0
            ):
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if cpus is not None and not (isinstance(cpus, (int, float)) and cpus > 0):
            raise ValueError(f"cpus must be positive, got {cpus!r}")
        self.memory_max = memory_max
        self.cpus = cpus
        self.pids_max = pids_max
        self.max_output_bytes = max_output_bytes

    @property
    def cgroup_limits(self) -> list[str]:
        """The names of the limits set here that need a cgroup."""
        return [name for name in CONTROLLER_OF if getattr(self, name) is not None]

    def __bool__(self) -> bool:
        return any(getattr(self, name) is not None for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in sorted(self.__slots__))
        return f"Limits({fields})"


class CgroupSupport:
    """What :func:`detect` found: ``version`` (2, 1, or None: no cgroup usable),
    ``parents`` (per controller, the folder under which run groups are made), and
    ``reason`` (why none is usable, or why a controller is missing)."""

    __slots__ = ("parents", "reason", "version")

    def __init__(self, version: int | None, parents: dict[str, str], reason: str) -> None:
        self.version = version
        self.parents = parents
        self.reason = reason

    @property
    def controllers(self) -> list[str]:
        """The controllers run groups get."""
        return sorted(self.parents)

    def describe(self) -> str:
        """One line for ``doctor``: the mechanism used, or why there is none."""
        if self.version is None:
            return f"not enforceable: {self.reason}"
        where = sorted(set(self.parents.values()))
        text = f"cgroup v{self.version} ({', '.join(self.controllers)}) under {', '.join(where)}"
        return text + (f"; {self.reason}" if self.reason else "")

    def missing(self, limits: Limits) -> str | None:
        """Why ``limits`` cannot be enforced here, naming the limits, or None if they can."""
        lacking = [n for n in limits.cgroup_limits if CONTROLLER_OF[n] not in self.parents]
        if not lacking:
            return None
        names = ", ".join(lacking)
        if self.version is None:
            return f"{names} cannot be enforced on this machine: {self.reason}"
        wanted = ", ".join(CONTROLLER_OF[n] for n in lacking)
        return (
            f"{names} cannot be enforced on this machine: cgroup v{self.version} here has no "
            f"usable {wanted} controller ({self.reason or 'not mounted'})"
        )


def _own_groups(proc_cgroup: str) -> tuple[str | None, dict[str, str]]:
    """This process's v2 path and its v1 paths by controller, from ``/proc/self/cgroup``."""
    v2: str | None = None
    v1: dict[str, str] = {}
    with open(proc_cgroup) as f:
        for line in f:
            parts = line.rstrip("\n").split(":", 2)
            if len(parts) != 3:
                continue
            hierarchy, controllers, path = parts
            if hierarchy == "0" and controllers == "":
                v2 = path
            else:
                for controller in controllers.split(","):
                    v1[controller] = path
    return v2, v1


def _writable(folder: str) -> bool:
    return os.path.isdir(folder) and os.access(folder, os.W_OK | os.X_OK)


def _read_words(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().split()
    except OSError:
        return []


def _detect_v2(root: str, path: str) -> tuple[CgroupSupport | None, str]:
    mount = root if os.path.exists(os.path.join(root, "cgroup.controllers")) else None
    if mount is None and os.path.exists(os.path.join(root, "unified", "cgroup.controllers")):
        mount = os.path.join(root, "unified")
    if mount is None:
        return None, "no cgroup v2 mount"
    own = os.path.join(mount, path.lstrip("/"))
    offered = set(_read_words(os.path.join(own, "cgroup.controllers")))
    usable = [c for c in _V2_CONTROLLERS if c in offered]
    if not usable:
        return None, f"cgroup v2 at {own} offers no memory, pids or cpu controller"
    if not _writable(own):
        return None, f"cgroup v2 at {own} is not writable by this user (no delegation)"
    enabled = set(_read_words(os.path.join(own, "cgroup.subtree_control")))
    members = _read_words(os.path.join(own, "cgroup.procs"))
    if path != "/" and members and not set(usable) <= enabled:
        return None, (
            f"cgroup v2 at {own} holds processes, so it cannot hand its controllers to "
            f"run cgroups; start cc-executor in a delegated cgroup of its own "
            f"(systemd-run --user --scope -p Delegate=yes)"
        )
    missing = [c for c in _V2_CONTROLLERS if c not in usable]
    reason = f"no {', '.join(missing)} controller in cgroup v2" if missing else ""
    return CgroupSupport(2, {c: own for c in usable}, reason), ""


def _detect_v1(root: str, paths: dict[str, str]) -> tuple[CgroupSupport | None, str]:
    parents: dict[str, str] = {}
    problems: list[str] = []
    for controller in _V1_CONTROLLERS:
        if controller not in paths:
            problems.append(f"no {controller} controller")
            continue
        mount = os.path.join(root, controller)
        if not os.path.isdir(mount):
            problems.append(f"{controller} controller not mounted at {mount}")
            continue
        own = os.path.join(mount, paths[controller].lstrip("/"))
        if not _writable(own):
            problems.append(f"{own} is not writable by this user")
            continue
        parents[controller] = own
    if not any(c in parents for c in _V2_CONTROLLERS):
        return None, "cgroup v1: " + "; ".join(problems)
    return CgroupSupport(1, parents, "; ".join(problems)), ""


def detect(root: str | None = None, proc_cgroup: str = "/proc/self/cgroup") -> CgroupSupport:
    """Which cgroups this process may create for its runs: v2 when its unified cgroup can
    hand out controllers, else v1 where its groups are writable, else none (with the
    reasons). ``root``: the mount point (default ``$CC_EXECUTOR_CGROUP_ROOT`` or
    ``/sys/fs/cgroup``). Reads files only; creates nothing."""
    root = root or os.environ.get(ROOT_ENV) or DEFAULT_ROOT
    try:
        v2_path, v1_paths = _own_groups(proc_cgroup)
    except OSError as exc:
        return CgroupSupport(None, {}, f"cannot read {proc_cgroup}: {exc.strerror}")
    reasons = []
    if v2_path is not None:
        found, why = _detect_v2(root, v2_path)
        if found is not None:
            return found
        reasons.append(why)
    if v1_paths:
        found, why = _detect_v1(root, v1_paths)
        if found is not None:
            return found
        reasons.append(why)
    return CgroupSupport(None, {}, "; ".join(reasons) or f"no cgroup mounted at {root}")


_support: list[CgroupSupport] = []


def support() -> CgroupSupport:
    """:func:`detect`, once per process (the mounts do not change under a running process;
    a failure to create a group later is reported as it happens)."""
    if not _support:
        _support.append(detect())
    return _support[0]


def _apart(found: CgroupSupport, controller: str) -> bool:
    """True when v1's ``cpu`` tree is not the ``cpuacct`` tree (not co-mounted)."""
    other = found.parents.get("cpuacct")
    mine = found.parents.get(controller)
    return other is None or mine is None or os.path.realpath(mine) != os.path.realpath(other)


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read_int(path: str) -> int | None:
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _read_keyed(path: str) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, value = line.partition(" ")
                try:
                    found[key] = int(value)
                except ValueError:
                    continue
    except OSError:
        pass
    return found


class RunCgroup:
    """The cgroup of one run (one folder per controller on v1, one folder on v2).

    Made by :meth:`create` with its limits; :meth:`add` moves the child in; the counters
    are read with :meth:`oom_kills`, :meth:`pids_refused`, :meth:`peak_memory`,
    :meth:`cpu_time`; :meth:`remove` kills whatever is left in it and deletes it.
    """

    def __init__(self, version: int, folders: dict[str, str], limits: Limits) -> None:
        self.version = version
        #: The run's folder, by controller (on v2 every controller maps to the same one).
        self.folders = folders
        self.limits = limits
        self._peak_sampled = 0

    @classmethod
    def create(cls, name: str, limits: Limits, found: CgroupSupport | None = None) -> RunCgroup:
        """Make the run's cgroup ``name`` with ``limits`` written; OSError if the kernel
        refuses (the caller reports it), after removing what was made."""
        found = found or support()
        if found.version is None:
            raise OSError(errno.ENOTSUP, found.reason)
        folders: dict[str, str] = {}
        made = cls(found.version, folders, limits)
        try:
            if found.version == 2:
                own = next(iter(found.parents.values()))
                wanted = " ".join(f"+{c}" for c in found.controllers)
                enabled = set(_read_words(os.path.join(own, "cgroup.subtree_control")))
                if not set(found.controllers) <= enabled:
                    _write(os.path.join(own, "cgroup.subtree_control"), wanted)
                parent = os.path.join(own, PARENT_NAME)
                os.makedirs(parent, exist_ok=True)
                _write(os.path.join(parent, "cgroup.subtree_control"), wanted)
                folder = os.path.join(parent, name)
                os.mkdir(folder)
                folders.update({c: folder for c in found.controllers})
            else:
                for controller, own in found.parents.items():
                    if controller == "cpu" and limits.cpus is None and _apart(found, "cpu"):
                        # A v1 cpu group is weighed as one task against its siblings: join
                        # it only to be limited (cpuacct does the accounting).
                        continue
                    folder = os.path.join(own, PARENT_NAME, name)
                    os.makedirs(os.path.dirname(folder), exist_ok=True)
                    os.mkdir(folder)
                    folders[controller] = folder
            made._write_limits()
        except BaseException:
            made.remove()
            raise
        return made

    def _write_limits(self) -> None:
        limits, folders = self.limits, self.folders
        if limits.memory_max is not None:
            folder = folders["memory"]
            if self.version == 2:
                _write(os.path.join(folder, "memory.max"), str(limits.memory_max))
                swap = os.path.join(folder, "memory.swap.max")
                if os.path.exists(swap):
                    _write(swap, "0")  # swap would let the tree outgrow its limit
                # The kernel then kills the whole group at once, not its biggest member.
                _write(os.path.join(folder, "memory.oom.group"), "1")
            else:
                _write(os.path.join(folder, "memory.limit_in_bytes"), str(limits.memory_max))
                memsw = os.path.join(folder, "memory.memsw.limit_in_bytes")
                if os.path.exists(memsw):
                    _write(memsw, str(limits.memory_max))
        if limits.pids_max is not None:
            _write(os.path.join(folders["pids"], "pids.max"), str(limits.pids_max))
        if limits.cpus is not None:
            quota = max(1000, round(limits.cpus * _CPU_PERIOD_US))
            if self.version == 2:
                _write(os.path.join(folders["cpu"], "cpu.max"), f"{quota} {_CPU_PERIOD_US}")
            else:
                folder = folders["cpu"]
                _write(os.path.join(folder, "cpu.cfs_period_us"), str(_CPU_PERIOD_US))
                _write(os.path.join(folder, "cpu.cfs_quota_us"), str(quota))

    def add(self, pid: int) -> None:
        """Move process ``pid`` into the run's cgroup (every controller's, on v1)."""
        for folder in dict.fromkeys(self.folders.values()):
            _write(os.path.join(folder, "cgroup.procs"), str(pid))

    def _file(self, controller: str, name: str) -> str | None:
        folder = self.folders.get(controller)
        return os.path.join(folder, name) if folder is not None else None

    def oom_kills(self) -> int:
        """Processes the kernel killed for exceeding the memory limit."""
        if self.version == 2:
            path = self._file("memory", "memory.events")
        else:
            path = self._file("memory", "memory.oom_control")
        return _read_keyed(path).get("oom_kill", 0) if path else 0

    def pids_refused(self) -> int:
        """Forks refused because of the process limit."""
        path = self._file("pids", "pids.events")
        return _read_keyed(path).get("max", 0) if path else 0

    def pids_peak(self) -> int | None:
        """The most processes the tree had at once (pids.peak, or the current count)."""
        path = self._file("pids", "pids.peak")
        peak = _read_int(path) if path else None
        if peak is None:
            path = self._file("pids", "pids.current")
            peak = _read_int(path) if path else None
        return peak

    def sample_memory(self) -> None:
        """Note the current usage (for kernels without a peak counter)."""
        name = "memory.current" if self.version == 2 else "memory.usage_in_bytes"
        path = self._file("memory", name)
        now = _read_int(path) if path else None
        if now is not None:
            self._peak_sampled = max(self._peak_sampled, now)

    def peak_memory(self) -> int | None:
        """The tree's peak memory use in bytes (the kernel's counter where it has one)."""
        name = "memory.peak" if self.version == 2 else "memory.max_usage_in_bytes"
        path = self._file("memory", name)
        peak = _read_int(path) if path else None
        if peak is None:
            self.sample_memory()
            return self._peak_sampled or None
        return peak

    def cpu_time(self) -> float | None:
        """CPU seconds used by the whole tree, its ended members included."""
        if self.version == 2:
            path = self._file("cpu", "cpu.stat")
            usec = _read_keyed(path).get("usage_usec") if path else None
            return usec / 1e6 if usec is not None else None
        path = self._file("cpuacct", "cpuacct.usage")
        nsec = _read_int(path) if path else None
        return nsec / 1e9 if nsec is not None else None

    def cpu_throttled(self) -> float | None:
        """Seconds the tree was held back by the CPU limit (None without one)."""
        if self.limits.cpus is None:
            return None
        path = self._file("cpu", "cpu.stat")
        stat = _read_keyed(path) if path else {}
        if "throttled_usec" in stat:
            return stat["throttled_usec"] / 1e6
        if "throttled_time" in stat:
            return stat["throttled_time"] / 1e9
        return None

    def members(self) -> list[int]:
        """The PIDs in the run's cgroup now."""
        found: set[int] = set()
        for folder in dict.fromkeys(self.folders.values()):
            for word in _read_words(os.path.join(folder, "cgroup.procs")):
                found.add(int(word))
        return sorted(found)

    def kill(self) -> int:
        """SIGKILL everything in the group (``cgroup.kill`` on v2 where it exists); the number
        of processes signalled."""
        members = self.members()
        if self.version == 2:
            folder = next(iter(self.folders.values()), None)
            if folder is not None and os.path.exists(os.path.join(folder, "cgroup.kill")):
                try:
                    _write(os.path.join(folder, "cgroup.kill"), "1")
                    return len(members)
                except OSError:
                    pass
        import signal

        # Through pidfds opened before membership is read again: a PID that ended and was
        # reused meanwhile belongs to a process outside the group, never hit.
        handles: dict[int, int] = {}
        for pid in members:
            try:
                handles[pid] = os.pidfd_open(pid)
            except (AttributeError, OSError):
                continue
        still = set(self.members())
        for pid, fd in handles.items():
            try:
                if pid in still:
                    signal.pidfd_send_signal(fd, signal.SIGKILL)
            except OSError:
                pass
            finally:
                os.close(fd)
        return len(members)

    def remove(self, wait: float = 5.0) -> bool:
        """Kill what is left in the group and delete it (every controller's folder); True
        when nothing of it is left. A member stuck in the kernel gets ``wait`` seconds."""
        deadline = time.monotonic() + wait
        left = list(dict.fromkeys(self.folders.values()))
        delay = 0.001
        while left:
            still = []
            for folder in left:
                try:
                    os.rmdir(folder)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    if exc.errno != errno.EBUSY:
                        return False
                    still.append(folder)
            left = still
            if not left:
                break
            if time.monotonic() > deadline:
                return False
            self.kill()
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        return True


def leftover_groups(found: CgroupSupport | None = None) -> Iterable[str]:
    """The run cgroups present under this process's parents (for tests and ``doctor``)."""
    found = found or support()
    for own in dict.fromkeys(found.parents.values()):
        parent = os.path.join(own, PARENT_NAME)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            if os.path.isdir(os.path.join(parent, name)):
                yield os.path.join(parent, name)


def remove_orphaned(run_id: str) -> None:
    """Remove the cgroups of run ``run_id`` (and of its later attempts, ``<id>-N``) that a
    supervisor which died left behind, killing what is still in them: crash recovery's
    part (see ``_store``). Only the groups under this process's own cgroup are found; a
    name that is not a plain run id is ignored (it comes from a file that may be damaged)."""
    if not run_id or run_id in (".", "..") or "/" in run_id or "\0" in run_id:
        return
    found = support()
    if found.version is None:
        return
    for own in dict.fromkeys(found.parents.values()):
        parent = os.path.join(own, PARENT_NAME)
        try:
            names = os.listdir(parent)
        except OSError:
            continue
        for name in names:
            if name == run_id or (
                name.startswith(run_id + "-") and name[len(run_id) + 1 :].isdigit()
            ):
                folder = os.path.join(parent, name)
                RunCgroup(found.version, {"group": folder}, Limits()).remove()
