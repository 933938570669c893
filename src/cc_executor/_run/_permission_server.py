"""The permission-prompt MCP server of one run.

Started as ``python -m cc_executor._run._permission_server SOCKET``.

Claude Code starts it over stdio (``--mcp-config``) and calls its one tool, ``decide``,
through ``--permission-prompt-tool``. Each call is passed as one JSON line to the run's
:class:`~cc_executor._run._permissions.PermissionBroker` on the unix socket ``SOCKET`` and
its answer returned as the tool's single text block, which is what the CLI reads
(``{"behavior": "allow", "updatedInput": {...}}`` or ``{"behavior": "deny", "message":
...}``). Anything going wrong on the way is a deny, never a hang of the CLI: the broker
bounds each decision with the policy's ``ask_timeout_s``.
"""

from __future__ import annotations

import asyncio
import json
import socket
import sys
from typing import Any

from mcp.server.mcpserver import MCPServer

from cc_executor._run._permissions import MAX_REQUEST_BYTES, SERVER_NAME


def build(path: str) -> MCPServer[Any]:
    server: MCPServer[Any] = MCPServer(SERVER_NAME)

    # Unstructured: the CLI takes exactly one text block (structured output adds a second
    # form and the CLI then rejects the answer as invalid; observed on 2.1.330).
    @server.tool(name="decide", structured_output=False)
    async def decide(tool_name: str, input: dict[str, Any], tool_use_id: str | None = None) -> str:
        """Decide whether Claude Code may run a tool call (cc-executor's permission policy)."""
        request = {"tool_name": tool_name, "input": input, "tool_use_id": tool_use_id}
        try:
            reader, writer = await asyncio.open_unix_connection(path, limit=MAX_REQUEST_BYTES)
            try:
                writer.write(json.dumps(request).encode() + b"\n")
                await writer.drain()
                line = await reader.readline()
            finally:
                writer.close()
            answer = json.loads(line)
            if not isinstance(answer, dict) or answer.get("behavior") not in ("allow", "deny"):
                raise ValueError("no decision")
        except (OSError, ValueError) as exc:
            answer = {"behavior": "deny", "message": f"cc-executor could not decide: {exc}"}
        return json.dumps(answer)

    return server


def _say_ready(path: str) -> None:
    """Tell the run this server is up (the run holds its idle clock until then)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(path)
            s.sendall(b'{"ready": true}\n')
    except OSError:
        pass  # the run's clock hold ends on its own


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m cc_executor._run._permission_server SOCKET", file=sys.stderr)
        return 2
    server = build(argv[0])
    _say_ready(argv[0])
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
