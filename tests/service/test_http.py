"""REST and Server-Sent Events through httpx against the real server."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cc_executor._payload import SCHEMA_VERSION
from cc_executor.testing import Reply, Rule, Script, Text, ToolUse, Usage
from tests._wait import await_for
from tests.service.conftest import Service, chatty, sse_events


def assert_contiguous(events: list[dict[str, Any]]) -> None:
    seqs = [e["seq"] for e in events]
    assert seqs == list(range(1, len(seqs) + 1)), seqs


async def test_health_and_openapi(service: Service) -> None:
    async with service.client() as client:
        health = (await client.get("/health")).json()
        assert health["status"] == "ok"
        assert health["exec_allowed"] is True
        doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in ("/runs", "/runs/{run_id}", "/runs/{run_id}/events", "/runs/{run_id}/cancel"):
        assert path in paths, sorted(paths)
    assert "requestBody" in paths["/runs"]["post"]
    assert "404" in paths["/fleet"]["get"]["responses"]
    # An unknown run's verification is a report (exists: false), not the 404 it said.
    assert list(paths["/runs/{run_id}/verify"]["get"]["responses"]) == ["200"]
    async with service.client() as client:
        unknown = await client.get("/runs/nope/verify")
    assert unknown.status_code == 200
    assert unknown.json()["exists"] is False
    assert "/openapi.json" not in paths


async def test_exec_run_streams_every_line_in_order(service: Service) -> None:
    async with service.client() as client:
        response = await client.post("/runs", json={"argv": chatty(300)})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id)
        run = (await client.get(f"/runs/{run_id}")).json()
        listed = (await client.get("/runs", params={"kind": "exec"})).json()["runs"]
    assert_contiguous(events)
    assert [e["type"] for e in events[:2]] == ["queued", "started"]
    lines = [e["text"] for e in events if e["type"] == "output"]
    assert lines == [f"line {i}" for i in range(300)]
    assert events[-1]["type"] == "completed"
    assert events[-1]["status"] == "ok"
    assert run["status"] == "ok"
    assert run["result"]["exit_code"] == 0
    assert run_id in [r["run_id"] for r in listed]


async def test_exec_run_with_an_output_limit(service: Service) -> None:
    """A remote caller's command run takes the resource limits: 300 lines of about 8 bytes
    under a 1000-byte limit end limit_exceeded, with the output up to the limit kept."""
    async with service.client() as client:
        body = {"argv": chatty(300), "options": {"max_output_bytes": 1000}}
        response = await client.post("/runs", json=body)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id)
        run = (await client.get(f"/runs/{run_id}")).json()
    assert run["status"] == "limit_exceeded"
    assert run["result"]["stdout_bytes"] == 1000
    assert run["result"]["error"].startswith("output limit exceeded: max_output_bytes 1000")
    assert events[-1]["status"] == "limit_exceeded"


async def test_sse_reconnect_with_last_event_id_loses_nothing(service: Service) -> None:
    async with service.client() as client:
        run_id = (await client.post("/runs", json={"argv": chatty(400, 0.002)})).json()["run_id"]
        first = await sse_events(client, run_id, stop_after=50)
        await asyncio.sleep(0.3)  # events keep coming while we are away
        rest = await sse_events(client, run_id, last_event_id=first[-1]["seq"])
        again = await sse_events(client, run_id, last_event_id=390)
    events = first + rest
    assert_contiguous(events)
    assert [e["text"] for e in events if e["type"] == "output"] == [f"line {i}" for i in range(400)]
    assert events[-1]["type"] == "completed"
    assert again[0]["seq"] == 391
    assert again == events[390:]


async def test_claude_run_start_stream_finish(service: Service, bed: Any) -> None:
    script = Script([Rule(answers=[Reply([Text("Hello from the service.")], chunk_size=5)])])
    async with bed(script) as b, service.client() as client:
        response = await client.post("/runs", json={"prompt": "hi", "options": b.options()})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id)
        run = (await client.get(f"/runs/{run_id}")).json()
    assert_contiguous(events)
    types = [e["type"] for e in events]
    assert "init" in types
    assert "result" in types
    deltas = "".join(e["text"] for e in events if e["type"] == "text_delta")
    assert deltas == "Hello from the service."
    assert events[-1]["status"] == "ok"
    assert run["status"] == "ok"
    assert run["result"]["result"] == "Hello from the service."
    assert run["result"]["run_id"] == run_id


async def test_tool_calls_stream_with_their_kind(service: Service, bed: Any) -> None:
    write = ToolUse("Write", {"file_path": "kind.txt", "content": "k\n"})
    script = Script([Rule(answers=[Reply([write]), Reply([Text("Written.")])])])
    async with bed(script) as b, service.client() as client:
        options = b.options(allowed_tools=["Write"])
        response = await client.post("/runs", json={"prompt": "write", "options": options})
        assert response.status_code == 202, response.text
        events = await sse_events(client, response.json()["run_id"])
    uses = [e for e in events if e["type"] == "tool_use"]
    assert [(u["name"], u["kind"]) for u in uses] == [("Write", "write")]
    assert events[-1]["status"] == "ok"


async def test_pause_resume_cancel_from_a_second_connection(service: Service, bed: Any) -> None:
    slow = Reply([Text("tick " * 200)], chunk_size=5, delay=0.05)
    async with bed(Script([Rule(answers=[slow])])) as b:
        async with service.client() as starter:
            response = await starter.post("/runs", json={"prompt": "slow", "options": b.options()})
            run_id = response.json()["run_id"]
        async with service.client() as client:
            events = await sse_events(client, run_id, stop_after=1)
            while not any(e["type"] == "text_delta" for e in events):
                events += await sse_events(
                    client, run_id, last_event_id=events[-1]["seq"], stop_after=1
                )
            paused = await client.post(f"/runs/{run_id}/pause")
            assert paused.status_code == 200, paused.text
            assert paused.json()["status"] == "paused"
            assert (await client.post(f"/runs/{run_id}/pause")).status_code == 409
            # Lines the CLI wrote before SIGSTOP may still be in the pipe: the count settles
            # once they are read (on a loaded machine, after the pause's answer).
            seq_at_pause, settled_at = -1, 0.0
            while True:
                seq = (await client.get(f"/runs/{run_id}")).json()["last_seq"]
                now = asyncio.get_running_loop().time()
                if seq != seq_at_pause:
                    seq_at_pause, settled_at = seq, now
                elif now - settled_at >= 0.3:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.8)  # paused for a while: the behaviour under test
            assert (await client.get(f"/runs/{run_id}")).json()["last_seq"] == seq_at_pause
            resumed = await client.post(f"/runs/{run_id}/resume")
            assert resumed.json()["status"] == "running"
            await asyncio.sleep(0.5)  # running again for a while before the cancel
            cancelled = await client.post(f"/runs/{run_id}/cancel")
            assert cancelled.status_code == 200
            rest = await sse_events(client, run_id)
            run = (await client.get(f"/runs/{run_id}")).json()
            assert (await client.post(f"/runs/{run_id}/cancel")).status_code == 409
    types = [e["type"] for e in rest]
    assert types.index("paused") < types.index("resumed") < types.index("cancelled")
    assert rest[-1]["status"] == "cancelled"
    assert run["status"] == "cancelled"
    assert run["result"]["partial"] is True
    assert run["result"]["result"].startswith("tick tick")


async def test_bad_requests_get_specific_errors(
    service: Service, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    cases: list[tuple[Any, int, str]] = [
        (b"{not json", 400, "bad_json"),
        ({"prompt": "x", "options": {"no_such_option": 1}}, 400, "invalid_request"),
        ({"prompt": "x", "options": {"timeout": -1}}, 400, "invalid_request"),
        ({"prompt": ""}, 400, "invalid_request"),
        # An empty list or string was read as no options, and the run accepted.
        ({"prompt": "x", "options": []}, 400, "invalid_request"),
        ({"prompt": "x", "options": ""}, 400, "invalid_request"),
        ({"prompt": "x", "argv": ["a"]}, 400, "invalid_request"),
        ({"prompt": "x", "options": {"claude_path": "/bin/sh"}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"env": {"LD_PRELOAD": "/x.so"}}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"env": {"GIT_SSH_COMMAND": "x"}}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"env": {"BASH_FUNC_ls%%": "() { id; }"}}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"env": {"PERL5OPT": "-Mx"}}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"add_dirs": 5}}, 400, "invalid_request"),
        ({"prompt": "x", "options": {"cwd": str(root) + "\u0000"}}, 400, "invalid_request"),
        ({"prompt": "x", "options": {"heartbeat_s": 0.000001}}, 400, "invalid_request"),
        ({"prompt": "x", "options": {"resume": "--mcp-config={}"}}, 400, "invalid_request"),
        ({"prompt": "x", "options": {"cwd": str(outside)}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"cwd": str(root / "escape")}}, 403, "forbidden"),
        ({"prompt": "x", "options": {"cwd": str(root / ".." / "outside")}}, 403, "forbidden"),
        ({"argv": ["/bin/sh", "-c", "echo hi"]}, 403, "forbidden"),
        ({"argv": [sys.executable], "options": {"cwd": "/"}}, 403, "forbidden"),
        ({"tasks": {"tasks": []}}, 400, "invalid_request"),
        (
            {"tasks": {"tasks": [{"id": "a", "prompt": "x", "dependson": []}]}},
            400,
            "invalid_request",
        ),
        (
            {"tasks": {"tasks": [{"id": "a", "prompt": "x", "cwd": str(outside)}]}},
            403,
            "forbidden",
        ),
        (
            {"tasks": {"tasks": [{"id": "a", "prompt": "x", "env": {"PYTHONPATH": "/x"}}]}},
            403,
            "forbidden",
        ),
        (
            {"tasks": {"defaults": {"extra_args": ["--x"]}, "tasks": [{"id": "a", "prompt": "x"}]}},
            403,
            "forbidden",
        ),
        ({"tasks": "## Task 1: a\nhi\n"}, 400, "invalid_request"),
        # Where a list's budget notes go is the server's caller's choice, never a client's:
        # neither the list nor the request's options may name a webhook or its hosts.
        (
            {
                "tasks": {"tasks": [{"id": "a", "prompt": "x"}]},
                "options": {
                    "budget_webhook": "http://example.com/b",
                    "budget_webhook_allow_host": ["example.com"],
                },
            },
            400,
            "invalid_request",
        ),
        (
            {
                "tasks": {
                    "budget_webhook_allow_host": "example.com",
                    "tasks": [{"id": "a", "prompt": "x"}],
                }
            },
            400,
            "invalid_request",
        ),
    ]
    async with service.client() as client:
        for body, status, code in cases:
            if isinstance(body, bytes):
                response = await client.post("/runs", content=body)
            else:
                response = await client.post("/runs", json=body)
            assert response.status_code == status, (body, response.text)
            assert response.json()["error"]["code"] == code, (body, response.text)
        listed = {"tasks": [{"id": "a", "prompt": "x"}]}
        bad = await client.post("/runs", json={"tasks": listed, "options": {"budget_threshold": 0}})
        assert bad.status_code == 400, bad.text
        said = bad.json()["error"]["message"]
        assert said == "budget_threshold must be a percentage in [0.1, 100], got 0", said
        assert (await client.get("/runs/nope")).status_code == 404
        assert (await client.get("/runs/nope/events")).status_code == 404
        assert (await client.post("/runs/nope/cancel")).status_code == 404
        assert (await client.get("/runs", params={"limit": "x"})).status_code == 400
        assert (await client.get("/runs", params={"brief": "yes"})).status_code == 400
        # REST says what MCP says of a misspelt option: the closest name, and only the
        # options a caller may set (it listed run_dir, agent_path and the like as known).
        response = await client.post("/runs", json={"prompt": "x", "options": {"cwdd": "."}})
        message = response.json()["error"]["message"]
        assert message.startswith(
            "unknown run option(s) in options: cwdd (did you mean cwd?); known: "
        ), message
        assert "agent_path" not in message, message
        assert "run_dir" not in message, message
        # A misspelt filter matched nothing and answered an empty page, 200.
        for params, says in (
            ({"status": "done"}, "unknown status 'done' (known: queued, "),
            ({"kind": "task"}, "unknown kind 'task' (known: run, exec, tasks)"),
            ({"since": "nan"}, "since must be a finite number, got 'nan'"),
            ({"until": "inf"}, "until must be a finite number, got 'inf'"),
        ):
            response = await client.get("/runs", params=params)
            assert response.status_code == 400, (params, response.text)
            assert says in response.json()["error"]["message"], (params, response.text)
        response = await client.get("/runs/overview", params={"since": "-inf"})
        assert response.status_code == 400, response.text
        # Starlette's own 404 and 405 were plain text, and named only one route's methods.
        response = await client.get("/run")
        assert response.status_code == 404
        assert response.json()["error"]["message"] == (
            "no endpoint GET /run (GET /openapi.json lists them)"
        )
        response = await client.delete("/runs")
        assert response.status_code == 405
        assert response.headers["allow"] == "GET, POST"
        assert response.json()["error"] == {
            "code": "method_not_allowed",
            "message": "DELETE /runs: method not allowed (allowed: GET, POST)",
        }


async def test_exec_is_refused_without_allow_exec(start: Callable[..., Service]) -> None:
    service = start()
    async with service.client() as client:
        response = await client.post("/runs", json={"argv": chatty(1)})
    assert response.status_code == 403
    assert "--allow-exec" in response.json()["error"]["message"]


async def test_full_queue_gets_429_and_queued_runs_cancel(start: Callable[..., Service]) -> None:
    service = start("--allow-exec", sys.executable, "--max-concurrent", "1", "--max-queued", "1")
    sleeper = [sys.executable, "-c", "import time; time.sleep(30)"]
    async with service.client() as client:
        first = (await client.post("/runs", json={"argv": sleeper})).json()["run_id"]
        second = (await client.post("/runs", json={"argv": sleeper})).json()["run_id"]
        third = await client.post("/runs", json={"argv": sleeper})
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "queue_full"
        assert (await client.get(f"/runs/{second}")).json()["status"] == "queued"
        assert (await client.post(f"/runs/{second}/cancel")).status_code == 200
        events = await sse_events(client, second)
        assert events[-1]["status"] == "cancelled"
        assert (await client.post(f"/runs/{first}/cancel")).status_code == 200
        events = await sse_events(client, first)
        assert events[-1]["status"] == "cancelled"
        health = (await client.get("/health")).json()
    assert health["running"] == 0
    assert health["queued"] == 0


async def test_runs_survive_disconnects_and_restart_marks_interrupted(
    start: Callable[..., Service],
) -> None:
    service = start("--allow-exec", sys.executable)
    sleeper = [sys.executable, "-c", "print('up', flush=True); import time; time.sleep(60)"]
    async with service.client() as client:
        run_id = (await client.post("/runs", json={"argv": sleeper})).json()["run_id"]
        await sse_events(client, run_id, stop_after=4)
    # The client is gone; the run is not.
    async with service.client() as client:
        run = (await client.get(f"/runs/{run_id}")).json()
        assert run["status"] == "running"
        pid = next(
            e["pid"]
            for e in await sse_events(client, run_id, stop_after=3)
            if e["type"] == "spawned"
        )
    service.stop(signal.SIGKILL)
    restarted = start("--allow-exec", sys.executable)
    async with restarted.client() as client:
        run = (await client.get(f"/runs/{run_id}")).json()
    assert run["status"] == "interrupted"
    assert run["from_history"] is True
    for _ in range(50):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            break
        await asyncio.sleep(0.1)
    else:
        raise AssertionError("the interrupted run's child is still alive")


async def test_task_list_over_http(service: Service, bed: Any) -> None:
    """A 2-task list where the second prompt reads the first answer, started over HTTP and
    followed over SSE; also given as Markdown text."""
    usage = Usage(input_tokens=1000, output_tokens=1000)  # at least $0.001 on any model
    script = Script(
        [
            Rule(match="first", answers=[Reply([Text("ALPHA")], usage=usage)]),
            Rule(match="second", answers=[Reply([Text("done")])]),
        ]
    )
    async with bed(script) as b, service.client() as client:
        options = b.options()
        body = {
            "tasks": {
                "tasks": [
                    {"id": "one", "prompt": "first step"},
                    {"id": "two", "prompt": "second step, after {{ tasks.one.result }}"},
                ]
            },
            # The list's budget from the request: its first task passes 0.1% of $1.
            "options": {**options, "budget_usd": 1, "budget_threshold": [0.1]},
        }
        response = await client.post("/runs", json=body)
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id)
        run = (await client.get(f"/runs/{run_id}")).json()
        markdown = "## Task 1: one\nfirst step\n\n## Task 2: two\nsecond step\n"
        again = await client.post(
            "/runs", json={"tasks": markdown, "options": {**options, "format": "markdown"}}
        )
        assert again.status_code == 202, again.text
        events_md = await sse_events(client, again.json()["run_id"])
        prompts = [r.prompt for r in b.server.message_requests]
        no_log = await client.get(f"/runs/{run_id}/log")
        assert (await client.post("/ui/login", data={"token": service.token})).status_code == 303
        page = (await client.get(f"/ui/runs/{run_id}")).text
    # A list has no event log of its own: its page offered one, a link to that 404.
    assert no_log.status_code == 404
    assert "Tasks" in page
    assert f"/runs/{run_id}/log" not in page
    assert events[-1]["status"] == "ok"
    assert events_md[-1]["status"] == "ok"
    assert run["kind"] == "tasks"
    assert {e.get("task_id") for e in events if "task_id" in e} == {"one", "two"}
    assert "second step, after ALPHA" in prompts
    budget = [(e["task_id"], e["what"], e["threshold"]) for e in events if e["type"] == "budget"]
    assert budget == [("one", "threshold", 0.001)]


async def test_what_a_remote_caller_may_not_set_or_smuggle(service: Service) -> None:
    """Issue 18 L2, L3, T8: no turning the audit trail off or forging its links; NUL bytes,
    '=' in names and an argument too long for Linux are refused at submission (400), not
    accepted and failed at the spawn."""
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"record": False}, 403, "record"),
        ({"parent_id": "someone-elses-list"}, 403, "parent_id"),
        ({"env": {"ANTHROPIC_A=B": "1"}}, 400, "'ANTHROPIC_A=B' is not a variable name"),
        ({"env": {"ANTHROPIC_\u0000": "1"}}, 400, "is not a variable name"),
        ({"env": {"ANTHROPIC_A": "1\u0000"}}, 400, "NUL byte"),
        ({"append_system_prompt": "be\u0000brief"}, 400, "append_system_prompt contains a NUL"),
        ({"allowed_tools": ["Wr\u0000ite"]}, 400, "allowed_tools contains a NUL"),
        # Third pass, T8: one argument or variable over Linux's limit was a 202, then
        # spawn_failed (Argument list too long).
        ({"append_system_prompt": "b" * 140_000}, 400, "append_system_prompt is 140,000 bytes"),
        ({"env": {"ANTHROPIC_A": "é" * 70_000}}, 400, "env: ANTHROPIC_A is 140,000 bytes"),
    ]
    async with service.client() as client:
        for options, status, message in cases:
            response = await client.post("/runs", json={"prompt": "x", "options": options})
            assert response.status_code == status, (options, response.text)
            assert message in response.json()["error"]["message"], (options, response.text)


async def test_every_rest_body_and_event_carries_the_schema_version(service: Service) -> None:
    """Issue 16 (settled): every REST and event payload says which version it is."""
    async with service.client() as client:
        health = (await client.get("/health")).json()
        response = await client.post("/runs", json={"argv": chatty(3)})
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id)
        run = (await client.get(f"/runs/{run_id}")).json()
        listed = (await client.get("/runs")).json()
        missing = (await client.get("/runs/nope")).json()
        # The guard's refusals are REST bodies too.
        refused = (await client.get("/runs", headers={"Authorization": "Bearer x"})).json()
        too_large = (await client.post("/runs", content=b"x" * 2_000_000)).json()
    assert refused["error"]["code"] == "unauthorized"
    assert too_large["error"]["code"] == "too_large"
    for body in (health, response.json(), run, listed, missing, refused, too_large):
        assert body["schema_version"] == SCHEMA_VERSION, body
    assert events
    assert all(e["schema_version"] == SCHEMA_VERSION for e in events), events


async def test_a_sequence_number_that_is_not_one_is_a_400(service: Service) -> None:
    """Issue 18 L1: '²' passes str.isdigit and fails int(); 5,000 digits fail int(): both
    were a 500."""
    async with service.client() as client:
        run_id = (await client.post("/runs", json={"argv": chatty(1)})).json()["run_id"]
        for value in ("\u00b2", "9" * 5000, "-1", "1e3"):
            header = {b"Last-Event-ID": value.encode()}
            response = await client.get(f"/runs/{run_id}/events", headers=header)
            assert response.status_code == 400, (value[:10], response.text)
            response = await client.get(f"/runs/{run_id}/events", params={"after": value})
            assert response.status_code == 400, (value[:10], response.text)


async def test_a_run_in_a_workspace_and_its_endpoints(service: Service, bed: Any) -> None:
    import subprocess

    write = ToolUse("Write", {"file_path": "made.txt", "content": "m\n"})
    script = Script([Rule(answers=[Reply([write]), Reply([Text("Written.")])])])
    async with bed(script) as b, service.client() as client:
        repo = b.workdir / "repo"
        repo.mkdir()
        for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
            subprocess.run(
                ["git", "-c", "user.name=t", "-c", "user.email=t@e", "-C", str(repo), *args],
                check=True,
            )
        options = b.options(allowed_tools=["Write"], workspace="worktree", cwd=str(repo))
        response = await client.post("/runs", json={"prompt": "write", "options": options})
        assert response.status_code == 202, response.text
        run_id = response.json()["run_id"]
        events = await sse_events(client, run_id)
        assert events[-1]["status"] == "ok"
        receipt = (await client.get(f"/runs/{run_id}/workspace")).json()
        assert receipt["changes"] == [{"path": "made.txt", "kind": "added"}]
        diff = (await client.get(f"/runs/{run_id}/workspace/diff")).json()
        assert "+m" in diff["patch"]
        merged = await client.post(f"/runs/{run_id}/workspace/merge")
        assert merged.json()["merged"] == "fast-forward", merged.text
        assert (repo / "made.txt").read_text() == "m\n"
        # A flag it cannot read was taken as false: the remote branch silently kept.
        unread = await client.post(f"/runs/{run_id}/workspace/discard?remote=yes")
        assert unread.status_code == 400, unread.text
        assert unread.json()["error"]["message"] == (
            "remote must be true or false (or 1 or 0), got 'yes'"
        )
        gone = await client.post(f"/runs/{run_id}/workspace/discard")
        assert gone.json()["discarded"] is True
        assert (await client.get("/runs/nope/workspace")).status_code == 404


async def _warning(service: Service) -> str:
    """The first warning line the server prints on stderr."""
    assert service.proc.stderr is not None
    fd = service.proc.stderr.fileno()  # read unbuffered: select sees what is left unread
    seen = bytearray()

    def warned() -> str | None:
        # The check runs beside the start: its line comes when the client gives up.
        while select.select([fd], [], [], 0)[0]:
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            seen.extend(chunk)
        lines = seen.decode(errors="replace").splitlines(keepends=True)
        return next((x for x in lines if ": warning: " in x and x.endswith("\n")), None)

    return await await_for(warned, timeout=120, what="the fleet warning") or ""


async def test_serve_with_an_unreachable_fleet_warns_and_refuses_runs_at_once(
    start: Callable[..., Service], root: Path
) -> None:
    """No Redis at the fleet's URL: one warning line as the server starts, and an agent run
    is refused with 503 (nothing queued, no class name), not accepted then ended ``error``."""
    service = start("--fleet", "unix:///nonexistent/redis.sock")
    # So does `mcp --fleet`, on the same run manager.
    mcp = start("--fleet", "unix:///nonexistent/redis.sock", "--transport", "http", command="mcp")
    for server, command in ((service, "serve"), (mcp, "mcp")):
        warning = await _warning(server)
        assert warning.startswith(
            f"cc-executor {command}: warning: the fleet at unix:///nonexistent/redis.sock: "
        )
        assert "refused (503 fleet_unavailable) until it answers" in warning
    async with service.client() as client:
        refused = await client.post("/runs", json={"prompt": "hi", "options": {"cwd": str(root)}})
        listed = await client.get("/runs")
    assert refused.status_code == 503, refused.text
    error = refused.json()["error"]
    assert error["code"] == "fleet_unavailable"
    assert error["message"].startswith("the fleet at unix:///nonexistent/redis.sock: ")
    assert error["message"].endswith(
        "; the run was not queued: submit it again once the fleet answers"
    )
    assert "FleetError" not in error["message"]
    assert listed.json()["runs"] == []
