"""A run's whole answer after the server that ran it has stopped: the history keeps a
200-character preview, so ``GET /runs/{id}/answer`` and the run page read the answer back
from the run's event log."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import httpx

from cc_executor.testing import Reply, Rule, Script, Text
from tests.service.conftest import Service, sse_events

#: Over the 64 KiB the run page shows whole: its head and tail, and a download.
ANSWER = "HEAD-OF-ANSWER " + "".join(f"{i:06d} " for i in range(20_000)) + "TAIL-OF-ANSWER"


async def test_the_whole_answer_of_a_run_from_the_history(
    start: Callable[..., Service], bed: Any
) -> None:
    first = start()
    script = Script([Rule(answers=[Reply([Text(ANSWER)], chunk_size=4096)])])
    async with bed(script) as b, first.client() as client:
        created = await client.post("/runs", json={"prompt": "answer", "options": b.options()})
        assert created.status_code == 202, created.text
        run_id = created.json()["run_id"]
        events = await sse_events(client, run_id)
        assert events[-1]["status"] == "ok", events[-1]
    first.stop()
    second = start()  # the run is in its history only
    async with httpx.AsyncClient(base_url=second.url, headers={"Origin": second.url}) as client:
        reply = await client.get(f"/runs/{run_id}/answer", headers=second.headers())
        assert reply.status_code == 200, reply.text
        assert (
            hashlib.sha256(reply.content).hexdigest() == hashlib.sha256(ANSWER.encode()).hexdigest()
        )
        assert (await client.post("/ui/login", data={"token": second.token})).status_code == 303
        page = (await client.get(f"/ui/runs/{run_id}")).text
        assert f'href="/runs/{run_id}/answer" download>Download the whole answer' in page
        assert "HEAD-OF-ANSWER 000000" in page
        assert "019999 TAIL-OF-ANSWER" in page
