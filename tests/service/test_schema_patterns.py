"""The service stays responsive while a model's answer is validated against a schema whose
pattern backtracks catastrophically: the match runs off the GIL and within a budget."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from cc_executor.testing import Reply, Rule, Script, Text
from tests.service.conftest import Service, sse_events

# A pattern the regex module must spend its budget on, and the review's reproduction (which
# the stdlib's re took hours on, holding the GIL).
SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": "string", "pattern": "^(a|a)+$"},
        "b": {"type": "string", "pattern": "^(a+)+$"},
    },
}
ANSWER = json.dumps({"a": "a" * 40 + "!", "b": "a" * 32 + "!"})


async def test_health_is_served_while_a_hostile_pattern_is_validated(
    service: Service, bed: Any
) -> None:
    script = Script([Rule(answers=[Reply([Text(ANSWER)])])])
    async with bed(script) as b, service.client() as client:
        options = b.options(json_schema=SCHEMA)
        response = await client.post("/runs", json={"prompt": "json", "options": options})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id, stop_after=1)
        while not any(e["type"] == "result" for e in events):
            events += await sse_events(
                client, run_id, last_event_id=events[-1]["seq"], stop_after=1
            )
        # The CLI has answered; validation runs between this and the run's end, for the
        # pattern budget, and /health must be served meanwhile.
        finished = asyncio.create_task(sse_events(client, run_id, last_event_id=events[-1]["seq"]))
        healthy = 0
        while not finished.done():
            reply = await client.get("/health")
            assert reply.status_code == 200, reply.text
            healthy += 1
        events += await finished
        run = (await client.get(f"/runs/{run_id}")).json()
    assert healthy >= 1
    assert events[-1]["status"] == "error"
    assert run["status"] == "error"
    error = run["result"]["error"]
    assert error == (
        "json_mode: JSON does not match the schema: $.a: "
        f"{'a' * 40 + '!'!r}: matching the pattern '^(a|a)+$' took too long (over the 1 s "
        "budget for an answer's patterns); treated as not matching"
    )
    assert run["result"]["json_error"] == error.removeprefix("json_mode: ")
    assert run["result"]["json"] == json.loads(ANSWER)


async def test_a_schema_nested_too_deeply_is_a_400_not_a_500(service: Service) -> None:
    # Issue 18, third pass: 900 levels (10 KB) made jsonschema's check raise
    # RecursionError, answered 500 with a traceback in the server's log.
    schema: dict[str, Any] = {}
    node = schema
    for _ in range(900):
        node["items"] = {}
        node = node["items"]
    async with service.client() as client:
        response = await client.post(
            "/runs", json={"prompt": "json", "options": {"json_schema": schema}}
        )
        health = await client.get("/health")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"] == (
        "invalid JSON schema: nested too deeply to be checked (use $defs and $ref for deep "
        "structures)"
    )
    assert health.status_code == 200
