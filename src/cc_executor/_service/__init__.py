"""Remote control of runs: the HTTP/WebSocket service and the MCP server.

Layering: the interfaces (``_http``, ``_ws``, ``_mcp``) share one :class:`RunManager`
(``_manager``), which checks every run against the server's policy (``_policy``), keeps
each run's events for replay (``_runs``) and calls the run API and the process engine;
``_security`` guards every network entry point.
"""

from cc_executor._extras import require_extra

require_extra("service", "the HTTP/WebSocket service and the MCP server")
