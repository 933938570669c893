"""Control of a local run from another process of the same machine and user:
``cc-executor cancel|pause|unpause RUN_ID`` without ``--fleet``.

A recorded run listens, while it runs, on a unix socket in its run folder
(``control.sock``). The folder is its owner's only (0700) and the socket 0600, and each
end checks the other (``SO_PEERCRED``): the run obeys only its own user, and the caller
talks only to the process the history names as the run's supervisor (its PID *and* its
start time), so a stale socket or a reused PID is never trusted. Nothing is signalled by
PID: the supervisor stops or pauses its own tree as a ``cancel()``/``pause()`` of its
handle would, so a cancelled run keeps its partial result and its record.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import struct
import sys
from collections.abc import Callable, Iterator, Mapping

import orjson

from cc_executor._status import Status

#: The socket's name in the run folder.
SOCKET_NAME = "control.sock"
#: The commands a run accepts (the fleet's words: ``unpause`` sends ``resume``).
COMMANDS = ("cancel", "pause", "resume")
#: The longest path a unix socket address holds on Linux (108 bytes with its NUL); a
#: longer one is reached through ``/proc/self/fd`` (see :func:`_address`).
_MAX_ADDRESS = 107
#: Seconds either end waits for the other's line: a live supervisor answers at once.
_ANSWER_S = 10.0


@contextlib.contextmanager
def _address(path: str) -> Iterator[str]:
    """An address for the socket at ``path``: the path itself, or, when it is too long
    for a socket address, the same file named through an open descriptor of its folder
    (Linux resolves ``/proc/self/fd/N/NAME`` as it resolves any path)."""
    if len(os.fsencode(path)) <= _MAX_ADDRESS or not sys.platform.startswith("linux"):
        yield path
        return
    folder = os.open(os.path.dirname(path), os.O_PATH | os.O_DIRECTORY)
    try:
        yield f"/proc/self/fd/{folder}/{os.path.basename(path)}"
    finally:
        os.close(folder)


def _peer(sock: socket.socket) -> tuple[int, int] | None:
    """The (pid, uid) of the process at the other end, where the kernel says (Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    if option is None:
        return None
    pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, option, 12))
    return pid, uid


class ControlChannel:
    """A run's listening socket (see the module's docstring); :meth:`aclose` removes it."""

    def __init__(self, server: asyncio.base_events.Server, path: str) -> None:
        self._server = server
        self.path = path

    async def aclose(self) -> None:
        # Not wait_closed(): a caller that connected and went quiet must not hold the run's
        # end; its handler gives up on its own (its read times out).
        self._server.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path)


async def open_control(
    run_dir: str, actions: Mapping[str, Callable[[], bool]]
) -> ControlChannel | None:
    """Listen for ``actions`` (``cancel``, ``pause``, ``resume``: each returns whether it
    did something) on the run folder's socket. None when the socket cannot be made: being
    controllable from elsewhere is a convenience, never the reason a run fails."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            peer = _peer(writer.get_extra_info("socket"))
            if peer is not None and peer[1] != os.getuid():
                answer = {"ok": False, "said": "refused: another user"}
            else:
                line = await asyncio.wait_for(reader.readline(), _ANSWER_S)
                command = orjson.loads(line).get("command") if line.strip() else None
                action = actions.get(command) if isinstance(command, str) else None
                if action is None:
                    answer = {"ok": False, "said": f"unknown command {command!r}"}
                else:
                    answer = {"ok": bool(action())}
            writer.write(orjson.dumps(answer) + b"\n")
            await writer.drain()
        except (OSError, asyncio.TimeoutError, ValueError, AttributeError):
            # A caller that hung up or sent nonsense (not JSON, a line past the reader's
            # limit: a ValueError too) gets nothing, and nothing reaches the run's stderr.
            pass
        finally:
            writer.close()

    path = os.path.join(run_dir, SOCKET_NAME)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)  # a socket left by a run whose supervisor died
        with _address(path) as address:
            sock.bind(address)
        os.chmod(path, 0o600)
        sock.listen(8)
        server = await asyncio.start_unix_server(serve, sock=sock)
    except OSError:
        sock.close()
        return None
    return ControlChannel(server, path)


def send_control(
    run_dir: str, command: str, *, supervisor: tuple[int, int | None] | None
) -> bool | None:
    """Send ``command`` to the run whose folder is ``run_dir``: what its supervisor
    answered (True: done; False: nothing to do, e.g. ``pause`` of a paused run), or None
    when no live supervisor listens there (gone, or not the process ``supervisor`` names:
    its (pid, start ticks) from the history). Blocking; raises nothing but ``ValueError``
    for an unknown command."""
    if command not in COMMANDS:
        raise ValueError(f"unknown control command {command!r}")
    path = os.path.join(run_dir, SOCKET_NAME)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(_ANSWER_S)
        try:
            with _address(path) as address:
                sock.connect(address)
            if not _trusted(sock, supervisor):
                return None
            sock.sendall(orjson.dumps({"command": command}) + b"\n")
            answer = b""
            while not answer.endswith(b"\n"):
                chunk = sock.recv(4096)
                if not chunk:
                    return None
                answer += chunk
            return bool(orjson.loads(answer).get("ok"))
        except (OSError, orjson.JSONDecodeError, AttributeError):
            return None


def _trusted(sock: socket.socket, supervisor: tuple[int, int | None] | None) -> bool:
    """Whether the listener is our user's, and the very process the history recorded."""
    peer = _peer(sock)
    if peer is None:
        return True  # no SO_PEERCRED here: the folder's 0700 is the guard
    pid, uid = peer
    if uid != os.getuid():
        return False
    if supervisor is None:
        return True
    from cc_executor._store import process_start_ticks

    recorded_pid, recorded_start = supervisor
    if pid != recorded_pid:
        return False
    return recorded_start is None or process_start_ticks(pid) == recorded_start


def control_local_run(run_id: str, command: str) -> str:
    """Send ``command`` to local run ``run_id`` (found in this machine's history).
    Returns ``"done"``, ``"nothing"`` (the run answered there was nothing to do: already
    paused, not paused, already stopping), or why nothing was sent: ``"unknown"`` (not in
    the history), ``"over"`` (it has ended), ``"elsewhere"`` (recorded by another host),
    ``"gone"`` (no live supervisor answers: it died, and the history's next opening marks
    it interrupted), ``"unrecorded"`` (it runs without a run folder to reach)."""
    from cc_executor._store import open_store

    store = open_store()
    try:
        record = store.get(run_id)
    finally:
        store.close()
    if record is None:
        return "unknown"
    if record.status not in (Status.RUNNING.value, Status.PAUSED.value):
        return "over"
    if record.host and record.host != socket.gethostname():
        return "elsewhere"
    if not record.run_dir:
        return "unrecorded"
    supervisor = (
        (record.supervisor_pid, record.supervisor_started)
        if record.supervisor_pid is not None
        else None
    )
    answer = send_control(record.run_dir, command, supervisor=supervisor)
    if answer is None:
        return "gone"
    return "done" if answer else "nothing"
