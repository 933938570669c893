"""History URLs: a password is never shown nor taken from a command line, however written
(fast: no server; tests/store/test_postgres.py connects)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cc_executor._errors import HistoryError
from cc_executor._store._location import parse_postgres_url

CLI = str(Path(sys.executable).parent / "cc-executor")


def test_a_password_in_the_query_is_a_password() -> None:
    # Fourth pass P7: libpq reads ?password=, which passed the command line's check and
    # was shown in every error naming the history.
    url = "postgresql://u@db.example/h?sslmode=require&password=s3cret"
    with pytest.raises(HistoryError, match="CC_EXECUTOR_HISTORY_PASSWORD"):
        parse_postgres_url(url, from_argv=True)
    target = parse_postgres_url(url)
    assert target.password == "s3cret"
    assert target.url == "postgresql://u@db.example/h?sslmode=require"


@pytest.mark.parametrize(
    "url", ["postgresql://u:pZq9/s3cret@db.example/h", "postgresql://u:7319/s3cret@db.example/h"]
)
def test_an_unencoded_password_is_never_quoted_back(url: str) -> None:
    # Fourth pass P8: a slash in the password made urlsplit read part of it as the port
    # (quoted in the error) or as the host and path (shown, and tried as a host name).
    with pytest.raises(HistoryError) as raised:
        parse_postgres_url(url, from_argv=True)
    assert "pZq9" not in str(raised.value)
    assert "7319" not in str(raised.value)
    assert "s3cret" not in str(raised.value)


def test_the_command_line_refuses_a_query_password_in_one_line(tmp_path: Path) -> None:
    url = "postgresql://u@127.0.0.1:1/h?password=s3cret"
    done = subprocess.run(
        [CLI, "--history", url, "history"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1
    assert "s3cret" not in done.stderr


def test_the_tls_key_passphrase_is_kept_as_a_password_is() -> None:
    # Fourth pass P19: ?sslpassword= passed the command line's check and was shown.
    url = "postgresql://u@db.example/h?sslpassword=k3y&sslmode=require"
    with pytest.raises(HistoryError, match="CC_EXECUTOR_HISTORY_PASSWORD"):
        parse_postgres_url(url, from_argv=True)
    target = parse_postgres_url(url)
    assert target.ssl_password == "k3y"
    assert target.url == "postgresql://u@db.example/h?sslmode=require"
