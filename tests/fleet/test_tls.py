"""A fleet's Redis over TLS with a certificate of a private CA (docs/fleet.md, "Securing
Redis"): the CA named in the URL (``?ssl_ca_certs=``) is trusted; without it the
certificate is refused in one line, exit 2."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests._wait import wait_for
from tests.fleet.conftest import CLI

pytestmark = [pytest.mark.redis, pytest.mark.slow]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=120)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A ``redis-server`` on 127.0.0.1 speaking TLS only, its certificate (for
    ``localhost``) signed by a CA of the test's own; yields its port and the CA file."""
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.crt", "-days", "2", "-subj", "/CN=cc-executor test CA", cwd=tmp_path)  # fmt: skip
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "srv.key", "-out", "srv.csr",
             "-subj", "/CN=localhost", cwd=tmp_path)  # fmt: skip
    (tmp_path / "ext").write_text("subjectAltName=DNS:localhost\n")
    _openssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", "srv.crt", "-days", "2", "-extfile", "ext",
             cwd=tmp_path)  # fmt: skip
    port = _free_port()
    executable = shutil.which("redis-server")
    assert executable is not None
    argv = [
        executable, "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
        "--tls-cert-file", "srv.crt", "--tls-key-file", "srv.key",
        "--tls-ca-cert-file", "ca.crt", "--tls-auth-clients", "no",
        "--save", "", "--appendonly", "no", "--dir", str(tmp_path),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    client = redis.Redis(
        host="localhost", port=port, ssl=True, ssl_ca_certs=str(tmp_path / "ca.crt")
    )

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(
                f"redis-server exited: {proc.stderr.read() if proc.stderr else ''!r}"
            )
        try:
            return bool(client.ping())
        except redis.RedisError:
            return False

    try:
        wait_for(up, timeout=60, what="redis-server answers over TLS")
        yield port, tmp_path / "ca.crt"
    finally:
        client.close()
        proc.terminate()
        proc.wait(30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_a_private_ca_named_in_the_url_is_trusted(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    trusted = subprocess.run(
        [CLI, "fleet", "status", "--json", "--fleet",
         f"rediss://localhost:{port}/0?ssl_ca_certs={ca}"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout)["workers"] == []
    untrusted = subprocess.run(
        [CLI, "fleet", "status", "--fleet", f"rediss://localhost:{port}/0"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert untrusted.returncode == 2
    assert len(untrusted.stderr.splitlines()) == 1, untrusted.stderr
    assert "CERTIFICATE_VERIFY_FAILED" in untrusted.stderr
