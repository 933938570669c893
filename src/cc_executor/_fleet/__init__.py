"""Fleet mode's transport: agent runs handed to workers on other machines through a broker.

The rest of cc-executor sees only :class:`Fleet` (``_fleet/_base.py``), a narrow interface:
*submit* a run, the per-run *lease* (owner + epoch) that keeps a run from running twice, the
*control channel* (cancel), the per-run *event stream* and the *worker heartbeat*. One
implementation is built, on Dramatiq with Redis (``_fleet/_redis.py``); a second backend is
one more module behind the same interface. It imports only the leaves: what a run is, and
the checks a worker applies, live above it (``_run/_fleet.py``, ``_service/_worker.py``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from cc_executor._fleet._base import Fleet


def open_fleet(url: str, *, from_argv: bool = False) -> Fleet:
    """The fleet at ``url`` (``redis://``, ``rediss://`` or ``unix:///path``), not yet
    connected. ``from_argv``: the URL was given on a command line, where a password would be
    visible to every user (``ps``), so one in it is refused. Raises :class:`FleetError` for
    a bad URL and :class:`MissingExtra` without the ``fleet`` extra."""
    from cc_executor._extras import require_extra
    from cc_executor._fleet._url import parse_fleet_url

    target = parse_fleet_url(url, from_argv=from_argv)
    require_extra("fleet", "fleet mode")
    from cc_executor._fleet._redis import RedisFleet

    return RedisFleet(target)
