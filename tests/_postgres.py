"""A real PostgreSQL server for the tests and the benchmarks: Debian's package, ``initdb``
into a folder of its own, on a unix socket only (no TCP port), fsync off.

``initdb`` refuses to run as root: as root, the server runs as the ``postgres`` account
(Debian's package creates it), in a folder under ``/tmp`` owned by that account (pytest's
temporary folders are private to root, out of its reach). Its clients connect over the
socket as the database user ``postgres`` (trust authentication: only this machine's
accounts can reach the socket, and the folder and the data die with the server).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from tests._wait import wait_for


def postgres_bin() -> Path | None:
    """The folder of PostgreSQL's server programs (``initdb``, ``postgres``), or None."""
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@dataclass
class PostgresServer:
    """A running server: its folder (holding the socket) and process."""

    folder: Path
    process: subprocess.Popen[bytes]
    #: How it was started (to start it again on the same data after :meth:`halt`).
    command: list[str] = field(default_factory=list)
    user: str | None = None

    def url(self, database: str = "postgres") -> str:
        """The URL of ``database`` over the unix socket."""
        return f"postgresql://postgres@/{database}?host={self.folder}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement (CREATE DATABASE and the like) in autocommit."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)

    def empty(self, database: str = "postgres") -> None:
        """Drop every table of the history in ``database`` (those of later migrations too):
        much cheaper than a database per test."""
        self.sql("DROP SCHEMA public CASCADE", database)
        self.sql("CREATE SCHEMA public", database)

    def stop(self) -> None:
        """Stop it (fast shutdown) and remove its folder."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def halt(self) -> None:
        """Stop the server (fast shutdown), keeping its data for :meth:`resume`."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)

    def resume(self) -> None:
        """Start the halted server again on its data, and wait until it accepts."""
        self.process = _launch(self.folder, self.command, self.user)
        wait_for(lambda: _ready(self), timeout=120, what="PostgreSQL to accept connections")


def start_postgres(*, durable: bool = False) -> PostgresServer:
    """Start a fresh server (see the module docstring); :meth:`PostgresServer.stop` ends
    it. ``durable``: fsync on (PostgreSQL's default; the benchmarks), else off (the tests).
    Raises ``RuntimeError`` when PostgreSQL is missing or does not start."""
    bindir = postgres_bin()
    if bindir is None:
        raise RuntimeError("no PostgreSQL: initdb is neither on PATH nor in /usr/lib/postgresql")
    folder = Path(tempfile.mkdtemp(prefix="cc-pg-", dir="/tmp"))
    user: str | None = None
    if os.geteuid() == 0:
        user = "postgres"
        account = pwd.getpwnam(user)
        os.chown(folder, account.pw_uid, account.pw_gid)
    data = folder / "data"
    done = subprocess.run(
        [
            str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust",
            "--no-sync", "-E", "UTF8", "--locale=C",
        ],
        user=user,
        capture_output=True,
        text=True,
        cwd=folder,
        check=False,
    )  # fmt: skip
    if done.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {done.stderr.strip()}")
    command = [
        str(bindir / "postgres"), "-D", str(data), "-c", "listen_addresses=",
        "-c", f"unix_socket_directories={folder}",
        *(() if durable else ("-c", "fsync=off", "-c", "full_page_writes=off")),
        "-c", "max_connections=200",
    ]  # fmt: skip
    server = PostgresServer(folder, _launch(folder, command, user), command, user)
    try:
        wait_for(lambda: _ready(server), timeout=120, what="PostgreSQL to accept connections")
    except BaseException:
        server.stop()
        raise
    return server


def _launch(folder: Path, command: list[str], user: str | None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        user=user,
        stdout=subprocess.DEVNULL,
        stderr=open(folder / "server.log", "ab"),
        cwd=folder,
    )


def _ready(server: PostgresServer) -> bool:
    if server.process.poll() is not None:
        log = (server.folder / "server.log").read_text(errors="replace")
        raise RuntimeError(f"PostgreSQL exited: {log[-2000:]}")
    import psycopg

    try:
        psycopg.connect(server.url(), connect_timeout=5).close()
    except psycopg.OperationalError:
        return False
    return True
