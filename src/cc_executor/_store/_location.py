"""Where the history is: a SQLite file (the default, one machine) or a PostgreSQL database
(a fleet's one history), and where a database's password comes from.

Light on purpose: the command line checks ``--history`` with it before anything heavy is
imported (psycopg is imported only by the PostgreSQL backend itself).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

from cc_executor._errors import HistoryError
from cc_executor._secrets import env_secret

#: The variable naming the history: a file path, ``sqlite:///path`` or ``postgresql://...``.
HISTORY_ENV = "CC_EXECUTOR_HISTORY"
#: The variables giving the database's password (or the file holding it): a password on the
#: command line is visible to every user (``ps``). libpq's own ``PGPASSWORD`` and
#: ``PGPASSFILE`` (``~/.pgpass``) work too, when neither is set.
PASSWORD_ENV = "CC_EXECUTOR_HISTORY_PASSWORD"  # noqa: S105 - a variable's name
PASSWORD_FILE_ENV = "CC_EXECUTOR_HISTORY_PASSWORD_FILE"  # noqa: S105 - a name
POSTGRES_SCHEMES = ("postgresql", "postgres")
_MANGLED = (
    "its host or port cannot be read (a password holding '/', '?', '#' or '@' must be "
    f"percent-encoded, or given in {PASSWORD_ENV})"
)


@dataclass(frozen=True)
class PostgresTarget:
    """A PostgreSQL history: ``url`` without its password (safe to show), and the password
    to use (None: libpq finds it, or none is needed)."""

    url: str
    password: str | None = field(default=None, repr=False)
    #: The passphrase of the client's TLS key (``?sslpassword=``), kept out of ``url`` too.
    ssl_password: str | None = field(default=None, repr=False)


def is_postgres(location: str | os.PathLike[str]) -> bool:
    """Whether ``location`` names a PostgreSQL database rather than a file."""
    return isinstance(location, str) and location.split("://", 1)[0] in POSTGRES_SCHEMES


def sqlite_path(location: str | os.PathLike[str]) -> Path:
    """The file of a SQLite ``location``: a path, or ``sqlite:///path``."""
    text = os.fspath(location)
    if text.startswith("sqlite://"):
        rest = text[len("sqlite://") :]
        if not rest.startswith("/"):
            raise HistoryError(
                f"history {text!r}: a sqlite:// location names an absolute path: "
                "sqlite:///path/to/history.sqlite3"
            )
        return Path(unquote(rest.split("?", 1)[0]))
    if "://" in text:
        scheme = text.split("://", 1)[0]
        raise HistoryError(
            f"history {scheme + '://...'!r}: the location must be a file path, "
            "sqlite:///path or postgresql://..."
        )
    return Path(text)


def parse_postgres_url(url: str, *, from_argv: bool = False) -> PostgresTarget:
    """Check a ``postgresql://`` history URL and find its password: from the URL (refused
    in a URL given on a command line, ``from_argv``), else ``CC_EXECUTOR_HISTORY_PASSWORD``
    (or the first line of the file ``CC_EXECUTOR_HISTORY_PASSWORD_FILE`` names), else
    none here: libpq reads ``PGPASSWORD`` and ``~/.pgpass`` (``PGPASSFILE``) itself."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        # Never the parser's message: it quotes the text it failed on, which may be a
        # password holding a slash.
        raise HistoryError(f"history URL postgresql://...: {_MANGLED}") from None
    if parts.scheme not in POSTGRES_SCHEMES:
        raise HistoryError("a PostgreSQL history URL starts with postgresql://")
    if "@" in parts.path:
        raise HistoryError(f"history URL postgresql://...: {_MANGLED}")
    # libpq takes a password as a query parameter too (?password=...): the same secret.
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = [value for key, value in query if key == "password"]
    ssl = [value for key, value in query if key == "sslpassword"]
    if (parts.password is not None or in_query or ssl) and from_argv:
        raise HistoryError(
            "the history URL holds a password, which every user of this machine can read on "
            f"a command line: put it in {PASSWORD_ENV}, in a file named by "
            f"{PASSWORD_FILE_ENV}, or in ~/.pgpass"
        )
    if parts.password is not None:
        password: str | None = unquote(parts.password)
    elif in_query:
        password = in_query[-1]
    else:
        password = _env_password()
    netloc = parts.netloc.rpartition("@")[2]
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    # The rest of the query as written (re-encoding it would change the URL shown).
    kept = "&".join(
        item
        for item in parts.query.split("&")
        if unquote(item.split("=", 1)[0]) not in ("password", "sslpassword")
    )
    return PostgresTarget(
        url=parts._replace(netloc=netloc, query=kept).geturl(),
        password=password,
        ssl_password=ssl[-1] if ssl else None,
    )


def _env_password() -> str | None:
    try:
        return env_secret(PASSWORD_ENV, PASSWORD_FILE_ENV)
    except ValueError as exc:
        raise HistoryError(str(exc)) from None


def check_location(location: str, *, from_argv: bool = False) -> None:
    """Raise :class:`HistoryError` when ``location`` (``--history``, ``CC_EXECUTOR_HISTORY``)
    cannot name a history."""
    if not location.strip():
        raise HistoryError("the history location is empty (give a path or postgresql://...)")
    if is_postgres(location):
        parse_postgres_url(location, from_argv=from_argv)
    else:
        sqlite_path(location)
