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
    """An empty history on the session's PostgreSQL, in ``CC_EXECUTOR_HISTORY``: its URL.
    Every test has the same URL, so this process's memory of it being down (up to 5 s,
    shared by its stores) is forgotten too: an earlier test's outage is not this one's."""
    from cc_executor._store import _mirror

    _mirror._DOWN_UNTIL.clear()
    _mirror._DOWN_REASON.clear()
    postgres_server.empty()
    monkeypatch.setenv("CC_EXECUTOR_HISTORY", postgres_server.url())
    return postgres_server.url()
