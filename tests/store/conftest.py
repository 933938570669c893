"""The history's tests run against both backends: ``history_backend`` names the history
each test (and every ``cc-executor`` it starts) uses through ``CC_EXECUTOR_HISTORY``."""

from __future__ import annotations

import pytest

from tests._postgres import PostgresServer


@pytest.fixture(
    params=["sqlite", pytest.param("postgres", marks=[pytest.mark.postgres, pytest.mark.slow])]
)
def history_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``sqlite`` (the default file in the test's home) or ``postgres``: an empty database
    on the session's server, named by ``CC_EXECUTOR_HISTORY``."""
    if request.param == "postgres":
        request.getfixturevalue("pg_url")
    return str(request.param)


@pytest.fixture
def pg_url(postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty history on the session's PostgreSQL, in ``CC_EXECUTOR_HISTORY``: its URL."""
    postgres_server.empty()
    monkeypatch.setenv("CC_EXECUTOR_HISTORY", postgres_server.url())
    return postgres_server.url()
