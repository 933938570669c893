"""Fleet URLs and where their credentials come from."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from cc_executor._errors import FleetError
from cc_executor._secrets import env_secret

#: The schemes a fleet URL may use: Redis over TCP, over TLS, or over a unix socket.
SCHEMES = ("redis", "rediss", "unix")

#: The environment variables that give the broker's password (or the file holding it) and
#: its ACL user name: a password on the command line is visible to every user (``ps``).
PASSWORD_ENV = "CC_EXECUTOR_FLEET_PASSWORD"  # noqa: S105 - a variable's name
PASSWORD_FILE_ENV = "CC_EXECUTOR_FLEET_PASSWORD_FILE"  # noqa: S105 - a name
USERNAME_ENV = "CC_EXECUTOR_FLEET_USERNAME"


@dataclass(frozen=True)
class FleetTarget:
    """A parsed fleet URL: ``url`` without credentials, and the credentials to use."""

    url: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)


def parse_fleet_url(url: str, *, from_argv: bool = False) -> FleetTarget:
    """Check ``url`` and gather its credentials: a user name and password from the URL
    (refused in a URL given on a command line, ``from_argv``), else from
    ``CC_EXECUTOR_FLEET_USERNAME`` and ``CC_EXECUTOR_FLEET_PASSWORD`` (or the first line of
    the file named by ``CC_EXECUTOR_FLEET_PASSWORD_FILE``)."""
    if not isinstance(url, str) or not url.strip():
        raise FleetError("the fleet URL is empty (give redis://, rediss:// or unix:///path)")
    parts = urlsplit(url.strip())
    if parts.scheme not in SCHEMES:
        raise FleetError(
            f"fleet URL {parts.scheme + '://...' if parts.scheme else url[:40]!r}: the scheme "
            "must be redis://, rediss:// (TLS) or unix:///path/to/redis.sock"
        )
    if parts.scheme == "unix" and not parts.path.startswith("/"):
        raise FleetError("a unix:// fleet URL names an absolute socket path: unix:///path")
    if parts.scheme != "unix" and not parts.hostname:
        raise FleetError(f"fleet URL {parts.scheme}://...: no host")
    if parts.password is not None and from_argv:
        raise FleetError(
            "the fleet URL holds a password, which every user of this machine can read on a "
            f"command line: put it in {PASSWORD_ENV} or in a file named by {PASSWORD_FILE_ENV}"
        )
    username = unquote(parts.username) if parts.username else os.environ.get(USERNAME_ENV)
    password = unquote(parts.password) if parts.password is not None else _env_password()
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port is not None:
        netloc += f":{parts.port}"
    if parts.scheme == "unix":
        # urlunsplit would drop the empty authority ("unix:/path"), which redis-py refuses.
        bare = f"unix://{parts.path}" + (f"?{parts.query}" if parts.query else "")
    else:
        bare = parts._replace(netloc=netloc).geturl()
    return FleetTarget(url=bare, username=username or None, password=password)


def _env_password() -> str | None:
    try:
        return env_secret(PASSWORD_ENV, PASSWORD_FILE_ENV)
    except ValueError as exc:
        raise FleetError(str(exc)) from None
