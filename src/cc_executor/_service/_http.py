"""The HTTP service: REST for runs, Server-Sent Events for their events, the WebSocket
JSON-RPC endpoint, and an OpenAPI document generated from the routes' docstrings.

Every response body is JSON; errors are ``{"error": {"code", "message"}}`` with a fitting
status (400 bad input, 401/403 refused by the guard, 404 unknown run, 409 wrong state,
413 too large, 429 queue full, 501 not available). Model output only ever travels inside
JSON strings, so it cannot break the SSE framing or forge events.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import os
import re
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response, StreamingResponse
from starlette.routing import Match, Route, WebSocketRoute
from starlette.schemas import SchemaGenerator

from cc_executor._errors import FleetError
from cc_executor._payload import versioned
from cc_executor._service._manager import (
    InvalidRequest,
    NotFound,
    RunManager,
    ServiceError,
    replay_log,
)
from cc_executor._service._runs import RunFilter
from cc_executor._service._security import Guard, SecurityPolicy
from cc_executor._store import RunRecord
from cc_executor._text import duration_s
from cc_executor._version import __version__

#: Seconds between SSE keep-alive comments while a run is quiet.
SSE_KEEPALIVE_S = 15.0

_EVENT_NAME = re.compile(r"^[a-z][a-z0-9_.]{0,63}$")

_SCHEMAS = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "cc-executor service", "version": __version__},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
)


def json_response(data: Any, status: int = 200) -> Response:
    """A JSON response encoded with orjson (non-string keys and NaN refused); an object
    carries ``schema_version``."""
    return Response(
        orjson.dumps(versioned(data)), status_code=status, media_type="application/json"
    )


def error_response(status: int, code: str, message: str) -> Response:
    """The uniform error body."""
    return json_response({"error": {"code": code, "message": message}}, status)


def _service_error(exc: ServiceError) -> Response:
    return error_response(exc.status, exc.code, str(exc))


def _manager(request: Request) -> RunManager:
    manager: RunManager = request.app.state.manager
    return manager


async def health(request: Request) -> Response:
    """Liveness and load.
    ---
    summary: Server health
    responses:
      200:
        description: "{status: ok, version, runs_in_memory, running, queued, max_concurrent,
          max_queued, exec_allowed}"
    """
    return json_response({"status": "ok", "version": __version__, **_manager(request).stats()})


async def create_run(request: Request) -> Response:
    """Start a run.
    ---
    summary: Start an agent run, a command (if allowed) or a task list
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            properties:
              prompt: {type: string, description: "The prompt of an agent run"}
              argv:
                type: array
                items: {type: string}
                description: "A command (its executable must be on the server's allowlist)"
              tasks: {description: "A task list"}
              options: {type: object, description: "Run options (see RunOptions)"}
    responses:
      202: {description: "Queued: {run_id, status, events}"}
      400: {description: Invalid request}
      403: {description: Not allowed by the server's policy}
      429: {description: The queue is full}
      501: {description: Not available in this version}
      503: {description: "The server is shutting down, or its fleet (serve --fleet) does not
        answer: nothing was queued, submit again later"}
    """
    try:
        spec = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return error_response(400, "bad_json", f"the body is not valid JSON: {exc}")
    try:
        await _manager(request).check_fleet(spec)
        run = _manager(request).submit(spec)
    except ServiceError as exc:
        return _service_error(exc)
    return json_response(
        {"run_id": run.id, "status": run.status, "events": f"/runs/{run.id}/events"}, 202
    )


def _number(request: Request, name: str, kind: type[float] | type[int]) -> Any:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        number = kind(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be a number, got {value!r}") from None
    # float() reads "nan" and "inf": a filter by either matches nothing, or everything.
    if not math.isfinite(number):
        raise InvalidRequest(f"{name} must be a finite number, got {value!r}")
    return number


async def list_runs(request: Request) -> Response:
    """List runs, newest first.
    ---
    summary: Runs in memory, then from the history
    parameters:
      - {name: status, in: query, schema: {type: string}}
      - {name: kind, in: query, schema: {type: string, enum: [run, exec, tasks]}}
      - {name: since, in: query, schema: {type: number}, description: Unix time}
      - {name: until, in: query, schema: {type: number}, description: Unix time}
      - {name: parent_id, in: query, schema: {type: string}}
      - {name: agent, in: query, schema: {type: string}}
      - {name: model, in: query, schema: {type: string}}
      - {name: q, in: query, schema: {type: string}, description: Text in the prompt}
      - {name: before, in: query, schema: {type: string}, description: "The `next` of
          the previous page (keyset pagination)"}
      - {name: brief, in: query, schema: {type: boolean}, description: "List lines only:
          no answers or streamed text"}
      - {name: limit, in: query, schema: {type: integer, default: 100, maximum: 1000}}
    responses:
      200: {description: "{runs: [...], next: cursor of the next page or null}"}
    """
    try:
        runs, cursor = await list_page(request)
    except ServiceError as exc:
        return _service_error(exc)
    return json_response({"runs": runs, "next": cursor})


def _flag(request: Request, name: str) -> bool:
    """A true/false query parameter: ``1``/``true`` or ``0``/``false`` (absent or empty:
    false); anything else is refused rather than read as false (``?remote=yes`` kept the
    pushed branch without a word)."""
    value = request.query_params.get(name)
    if value in (None, "", "0", "false"):
        return False
    if value in ("1", "true"):
        return True
    raise InvalidRequest(f"{name} must be true or false (or 1 or 0), got {value[:40]!r}")


def _cursor(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    stamp, _, run_id = value.partition(":")
    try:
        return float(stamp), run_id
    except ValueError:
        raise InvalidRequest(f"before must be a cursor from `next`, got {value[:40]!r}") from None


async def list_page(request: Request) -> tuple[list[dict[str, Any]], str | None]:
    """A page of ``GET /runs`` for the query of ``request``, and the next page's cursor
    (``before`` of the next request)."""
    q = request.query_params
    runs, key = await _manager(request).list_page(
        **dataclasses.asdict(_run_filter(request) or RunFilter()),
        before=_cursor(q.get("before")),
        brief=_flag(request, "brief"),
        limit=_number(request, "limit", int) or 100,
    )
    return runs, None if key is None else f"{key[0]!r}:{key[1]}"


async def runs_overview(request: Request) -> Response:
    """What the runs of a period add up to.
    ---
    summary: Counts by status, cost per day and model, slowest, costliest, failures
    parameters:
      - {name: since, in: query, schema: {type: number}, description: "Unix time (default:
          7 days ago)"}
      - {name: until, in: query, schema: {type: number}, description: Unix time}
    responses:
      200: {description: "{runs, truncated, by_status, cost_by_day, cost_by_model, slowest,
        costliest, failures}"}
    """
    try:
        since = _number(request, "since", float)
        until = _number(request, "until", float)
    except ServiceError as exc:
        return _service_error(exc)
    if since is None:
        since = time.time() - 7 * 86400
    return json_response(await _manager(request).overview(since, until))


async def fleet_status(request: Request) -> Response:
    """The fleet's workers and queues (``serve --fleet``).
    ---
    summary: The fleet's live workers and its queues' counts, as ``fleet status`` shows them
    responses:
      200: {description: "{fleet: URL without credentials, workers: [{worker_id, host, pid,
        slots, busy, agents, queues, version, heartbeat_at, heartbeat_age_s}], queues:
        {NAME: {queued, running}}}"}
      404: {description: The server has no fleet}
      503: {description: The fleet's broker does not answer}
    """
    try:
        return json_response(await _manager(request).fleet_status())
    except ServiceError as exc:
        return _service_error(exc)
    except FleetError as exc:
        return error_response(503, "fleet_unavailable", str(exc))


def _run_filter(request: Request) -> RunFilter | None:
    """The run-list filters of ``request``'s query (as ``GET /runs`` reads them); None
    without any."""
    q = request.query_params
    wanted = RunFilter(
        status=q.get("status") or None,
        kind=q.get("kind") or None,
        since=_number(request, "since", float),
        until=_number(request, "until", float),
        parent_id=q.get("parent_id") or None,
        agent=q.get("agent") or None,
        model=q.get("model") or None,
        text=q.get("q") or None,
    )
    return None if wanted == RunFilter() else wanted


async def runs_feed(request: Request) -> Response:
    """Every run's list line as it changes, as Server-Sent Events.
    ---
    summary: Follow the run list live (runs queued, started, paused, ended)
    description: >-
      Each change is an event `run` whose data is `{type: run, run: {...}}`, the run's
      line as `GET /runs?brief=1` gives it. Only changes from the moment of connecting
      are sent: read the list first, then follow. With the filters of `GET /runs`, a
      change of a run that matches them is `run`, and a change of one that does not (it
      no longer matches, or never did) is `leave`, with the same data: a client showing
      that run drops or marks it. A client too slow to keep up gets one `gap` event: read
      the list again.
    parameters:
      - {name: status, in: query, schema: {type: string}}
      - {name: kind, in: query, schema: {type: string, enum: [run, exec]}}
      - {name: since, in: query, schema: {type: number}, description: Unix time}
      - {name: until, in: query, schema: {type: number}, description: Unix time}
      - {name: parent_id, in: query, schema: {type: string}}
      - {name: agent, in: query, schema: {type: string}}
      - {name: model, in: query, schema: {type: string}}
      - {name: q, in: query, schema: {type: string}, description: Text in the prompt}
    responses:
      200: {description: text/event-stream}
      400: {description: A filter that is not valid}
    """
    interval = float(getattr(request.app.state, "sse_keepalive_s", SSE_KEEPALIVE_S))
    try:
        wanted = _run_filter(request)
    except ServiceError as exc:
        return _service_error(exc)
    feed = _manager(request).feed
    # Subscribed before the response starts: a client that has the first bytes misses
    # no change made after it.
    queue = feed.subscribe(wanted)

    async def changes() -> AsyncGenerator[dict[str, Any], None]:
        while True:
            yield await queue.get()

    async def body() -> AsyncIterator[bytes]:
        source = changes()
        try:
            yield b": runs\n\n"
            async for event in with_keepalive(source, interval):
                yield b": keepalive\n\n" if event is None else sse_frame(event)
        finally:
            feed.unsubscribe(queue)
            await source.aclose()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def get_run(request: Request) -> Response:
    """One run.
    ---
    summary: A run's status, and its result once finished (else the text streamed so far)
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: The run}
      404: {description: No such run}
    """
    try:
        return json_response(await _manager(request).describe(request.path_params["run_id"]))
    except ServiceError as exc:
        return _service_error(exc)


async def _control(request: Request, action: str) -> Response:
    manager = _manager(request)
    run_id = request.path_params["run_id"]
    try:
        run = getattr(manager, action)(run_id)
    except ServiceError as exc:
        return _service_error(exc)
    return json_response({"run_id": run.id, "status": run.status})


async def cancel_run(request: Request) -> Response:
    """Cancel a run.
    ---
    summary: Stop a run (its whole process tree); it ends cancelled with its partial result
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{run_id, status}"}
      404: {description: No such run}
      409: {description: The run already ended}
    """
    return await _control(request, "cancel")


async def pause_run(request: Request) -> Response:
    """Pause a run.
    ---
    summary: SIGSTOP a running run's process tree (timeouts do not count paused time)
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{run_id, status}"}
      404: {description: No such run}
      409: {description: The run is not running}
    """
    return await _control(request, "pause")


async def resume_run(request: Request) -> Response:
    """Resume a run.
    ---
    summary: SIGCONT a paused run's process tree
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{run_id, status}"}
      404: {description: No such run}
      409: {description: The run is not paused}
    """
    return await _control(request, "resume")


async def resume_tasks(request: Request) -> Response:
    """Resume a task list.
    ---
    summary: Run a finished or interrupted task list again as `tasks resume` does (tasks
      that ended ok are kept, the others run again), under its own id
    parameters:
      - {name: list_id, in: path, required: true, schema: {type: string}}
    requestBody:
      required: false
      content:
        application/json:
          schema:
            type: object
            properties:
              options:
                type: object
                description: "Run options over the list's saved ones, max_parallel,
                  budget_usd, budget_threshold; without env, the env this server was given
                  for the list"
    responses:
      202: {description: "Queued: {run_id, status, events}"}
      400: {description: Invalid request}
      403: {description: Not allowed by the server's policy}
      404: {description: No such task list}
      409: {description: The list is running (here or in another process)}
      429: {description: The queue is full}
    """
    body = await request.body()
    try:
        spec = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return error_response(400, "bad_json", f"the body is not valid JSON: {exc}")
    try:
        run = _manager(request).resume_tasks(request.path_params["list_id"], spec)
    except ServiceError as exc:
        return _service_error(exc)
    return json_response(
        {"run_id": run.id, "status": run.status, "events": f"/runs/{run.id}/events"}, 202
    )


async def _workspace(request: Request, action: str) -> Response:
    """A workspace operation on a run this service knows (404 otherwise): the receipt,
    its diff, a merge (409 with the conflicting files, the tree untouched), a discard."""
    from cc_executor._errors import WorkspaceConflict, WorkspaceError
    from cc_executor._run import _workspace

    run_id = request.path_params["run_id"]
    try:
        remote = _flag(request, "remote")
        await _manager(request).describe(run_id)
    except ServiceError as exc:
        return _service_error(exc)
    work = {
        "receipt": _workspace.load_receipt,
        "diff": lambda rid: {"run_id": rid, "patch": _workspace.workspace_diff(rid)},
        "merge": _workspace.workspace_merge,
        "discard": lambda rid: _workspace.workspace_discard(rid, remote=remote),
    }[action]
    try:
        return json_response(await asyncio.to_thread(work, run_id))
    except WorkspaceConflict as exc:
        error = {"code": "conflict", "message": str(exc), "files": exc.files}
        return json_response({"error": error}, 409)
    except (WorkspaceError, OSError) as exc:
        return error_response(404 if action == "receipt" else 409, "workspace", str(exc))


async def get_workspace(request: Request) -> Response:
    """A run's workspace.
    ---
    summary: The change receipt of a run made with a workspace (docs/workspaces.md)
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "The receipt: branch, commit, base, patch_path, changes"}
      404: {description: No such run, or no workspace}
    """
    return await _workspace(request, "receipt")


async def workspace_diff(request: Request) -> Response:
    """A run's workspace diff.
    ---
    summary: The changes of the run's branch since its base, as a patch
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{run_id, patch}"}
      404: {description: No such run}
      409: {description: No workspace}
    """
    return await _workspace(request, "diff")


async def workspace_merge(request: Request) -> Response:
    """Merge a run's workspace.
    ---
    summary: Bring the run's branch into the repository's current branch
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{run_id, merged, commit}"}
      404: {description: No such run}
      409: {description: "A conflict (error.files; the tree is left as it was), or no workspace"}
    """
    return await _workspace(request, "merge")


async def workspace_discard(request: Request) -> Response:
    """Discard a run's workspace.
    ---
    summary: Remove the run's worktree and branch
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
      - {name: remote, in: query, schema: {type: boolean}, description: "Also delete the
          branch the run pushed (a fleet or repo run's) from the remote"}
    responses:
      200: {description: "{run_id, discarded, remote_deleted}"}
      404: {description: No such run}
      409: {description: No workspace}
    """
    return await _workspace(request, "discard")


async def list_workspaces(request: Request) -> Response:
    """List workspaces.
    ---
    summary: "`workspace list` of a repository inside the allowed folders: the receipts
      (with run_id and worktree) of the runs this server may see whose branch still exists"
    parameters:
      - {name: repo, in: query, schema: {type: string}, description: "A folder of the
          repository (default: the server's first allowed folder)"}
    responses:
      200: {description: "{workspaces: [...]}"}
      400: {description: Not a folder of a git repository}
      403: {description: Outside the allowed folders}
    """
    try:
        found = await _manager(request).workspaces(request.query_params.get("repo"))
    except ServiceError as exc:
        return _service_error(exc)
    return json_response({"workspaces": found})


def _older_than(value: Any) -> float:
    """``older_than`` of a prune: seconds, or a duration as ``workspace prune`` takes it."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
        return float(value)
    seconds = duration_s(value) if isinstance(value, str) else None
    if seconds is None:
        raise InvalidRequest(
            f"older_than must be seconds or a duration like 30m, 12h or 7d, got {value!r:.40}"
        )
    return seconds


async def prune_workspaces(request: Request) -> Response:
    """Prune workspaces.
    ---
    summary: "`workspace prune`: discard the workspaces of a repository's runs that started
      longer ago than older_than (runs this server may see, none still running)"
    requestBody:
      required: false
      content:
        application/json:
          schema:
            type: object
            properties:
              older_than: {description: "Seconds, or a duration: 30m, 12h, 7d, 2w (default 7d)"}
              repo: {type: string, description: "A folder of the repository (default: the
                server's first allowed folder)"}
              dry_run: {type: boolean, description: Say what would go, remove nothing}
    responses:
      200: {description: "{pruned: [run ids], dry_run}"}
      400: {description: Invalid request, or not a folder of a git repository}
      403: {description: Outside the allowed folders, or a read-only token}
    """
    body = await request.body()
    try:
        spec = orjson.loads(body) if body.strip() else {}
    except orjson.JSONDecodeError as exc:
        return error_response(400, "bad_json", f"the body is not valid JSON: {exc}")
    try:
        if not isinstance(spec, dict):
            raise InvalidRequest("the body must be a JSON object")
        unknown = sorted(set(spec) - {"older_than", "repo", "dry_run"})
        if unknown:
            raise InvalidRequest(f"unknown field(s): {', '.join(unknown)}")
        dry_run = spec.get("dry_run", False)
        if not isinstance(dry_run, bool):
            raise InvalidRequest("dry_run must be true or false")
        gone = await _manager(request).prune_workspaces(
            _older_than(spec.get("older_than", "7d")), spec.get("repo"), dry_run=dry_run
        )
    except ServiceError as exc:
        return _service_error(exc)
    return json_response({"pruned": gone, "dry_run": dry_run})


async def list_permissions(request: Request) -> Response:
    """A run's pending permission requests.
    ---
    summary: The run's tool calls waiting for a decision (its permission policy asked)
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "{permissions: [{request_id, tool_name, tool_input, rule,
        requested_at, timeout_s, ...}]}"}
      404: {description: No such run in the server's memory}
    """
    try:
        pending = _manager(request).permissions(request.path_params["run_id"])
    except ServiceError as exc:
        return _service_error(exc)
    return json_response({"permissions": pending})


async def decide_permission(request: Request) -> Response:
    """Decide a pending permission request.
    ---
    summary: Allow or deny a tool call the run's permission policy asked about
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
      - {name: request_id, in: path, required: true, schema: {type: string}}
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [decision]
            properties:
              decision: {type: string, enum: [allow, deny]}
              message: {type: string, description: "Why, told to the model when denied"}
    responses:
      200: {description: "{run_id, request_id, decision}"}
      400: {description: Invalid request}
      404: {description: No such run or pending request (decided or timed out)}
    """
    try:
        body = orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        return error_response(400, "bad_json", f"the body is not valid JSON: {exc}")
    if not isinstance(body, dict):
        return error_response(400, "invalid_request", "the body must be a JSON object")
    unknown = sorted(set(body) - {"decision", "message"})
    if unknown:
        # As every other body: a misspelt "mesage" must not be dropped without a word.
        return error_response(
            400,
            "invalid_request",
            f"unknown field(s): {', '.join(unknown)} (known: decision, message)",
        )
    try:
        decided = _manager(request).decide_permission(
            request.path_params["run_id"],
            request.path_params["request_id"],
            body.get("decision"),
            body.get("message"),
            by="service (HTTP)",
        )
    except ServiceError as exc:
        return _service_error(exc)
    return json_response(decided)


async def verify_run(request: Request) -> Response:
    """Verify a run's receipts.
    ---
    summary: Recompute the receipts of a finished run (its record and each file)
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: "The verification report, an outcome per artifact; for a run the
        history does not hold (or one outside the allowed folders): ok and exists false,
        problems [no such run in the history]"}
    """
    try:
        return json_response(await _manager(request).verify(request.path_params["run_id"]))
    except ServiceError as exc:
        return _service_error(exc)


def _attachment(name: str) -> dict[str, str]:
    return {
        "content-disposition": f'attachment; filename="{name}"',
        "x-content-type-options": "nosniff",
        "cache-control": "no-store",
    }


async def run_log(request: Request) -> Response:
    """A run's event log.
    ---
    summary: Download the agent's event log (its stdout, JSON Lines) as a file
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: application/x-ndjson}
      404: {description: No such run, or it has no event log}
    """
    run_id = request.path_params["run_id"]
    try:
        run = await _manager(request).describe(run_id)
    except ServiceError as exc:
        return _service_error(exc)
    result: dict[str, Any] = run["result"] if isinstance(run.get("result"), dict) else {}
    path = result.get("event_log")
    if not path and run.get("run_dir"):
        path = os.path.join(str(run["run_dir"]), "stdout.log")
    if not path or not await asyncio.to_thread(os.path.isfile, path):
        return error_response(404, "not_found", f"run {run_id!r} has no event log")
    return FileResponse(
        path, media_type="application/x-ndjson", headers=_attachment(f"{run_id}.jsonl")
    )


async def run_answer(request: Request) -> Response:
    """A run's whole answer.
    ---
    summary: Download the run's final answer as a text file (however large)
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
    responses:
      200: {description: text/plain}
      404: {description: No such run in this server's memory, or no answer yet}
    """
    run_id = request.path_params["run_id"]
    try:
        text = await _manager(request).answer(run_id)
    except ServiceError as exc:
        return _service_error(exc)
    if text is None:
        return error_response(404, "not_found", f"run {run_id!r} has no answer")
    return Response(
        text.encode(), media_type="text/plain; charset=utf-8", headers=_attachment(f"{run_id}.txt")
    )


def _after(request: Request) -> int:
    value = request.headers.get("last-event-id") or request.query_params.get("after") or "0"
    # ASCII digits only ("²" is a digit to str.isdigit but not to int()), and not so many
    # that int() refuses them: both were a 500.
    if not (value.isascii() and value.isdigit() and len(value) <= 18):
        raise InvalidRequest(f"Last-Event-ID must be a sequence number, got {value[:40]!r}")
    return int(value)


def sse_frame(event: dict[str, Any]) -> bytes:
    """One SSE frame: ``id`` (the sequence number), ``event`` (the type, when it is a safe
    name) and ``data`` (the event as one line of JSON)."""
    name = event.get("type")
    parts = []
    seq = event.get("seq")
    if isinstance(seq, int):
        parts.append(b"id: %d\n" % seq)
    if isinstance(name, str) and _EVENT_NAME.match(name):
        parts.append(b"event: " + name.encode() + b"\n")
    parts.append(b"data: " + orjson.dumps(versioned(event)) + b"\n\n")
    return b"".join(parts)


async def with_keepalive(
    events: AsyncIterator[dict[str, Any]], interval: float
) -> AsyncIterator[dict[str, Any] | None]:
    """``events``, with a None every ``interval`` seconds of silence. The pending read is
    never cancelled by the timeout, so no event is lost."""
    pending: asyncio.Future[dict[str, Any]] | None = None
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(events.__anext__())
            done, _ = await asyncio.wait({pending}, timeout=interval)
            if not done:
                yield None
                continue
            try:
                item = pending.result()
            except StopAsyncIteration:
                return
            pending = None
            yield item
    finally:
        if pending is not None and not pending.done():
            pending.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await pending


async def run_events(request: Request) -> Response:
    """A run's events as Server-Sent Events.
    ---
    summary: Replay then follow a run's events; resume with Last-Event-ID
    description: >-
      Every event has a per-run sequence number, sent as the SSE id. A client that
      reconnects with Last-Event-ID (or ?after=N) receives every later event, none twice.
      The stream ends after the run's `completed` event. Events older than the server's
      per-run replay bound come as one `gap` event. A run no longer in the server's
      memory (a CLI run, one of an earlier server) replays its event log from the
      history, numbered alike, then its `completed` event, and the stream ends.
    parameters:
      - {name: run_id, in: path, required: true, schema: {type: string}}
      - {name: after, in: query, schema: {type: integer}, description: Same as Last-Event-ID}
      - {name: Last-Event-ID, in: header, schema: {type: integer}}
    responses:
      200: {description: text/event-stream}
      404: {description: "No such run, or one from the history without an event log"}
    """
    manager = _manager(request)
    run_id = request.path_params["run_id"]
    try:
        after = _after(request)
        run = manager.get(run_id)
    except NotFound:
        try:
            record = await manager.logged_run(run_id)
        except ServiceError as exc:
            return _service_error(exc)
        return _replay(record, after)
    except ServiceError as exc:
        return _service_error(exc)
    interval = float(getattr(request.app.state, "sse_keepalive_s", SSE_KEEPALIVE_S))

    async def body() -> AsyncIterator[bytes]:
        yield b": run " + run.id.encode() + b"\n\n"
        source = run.follow(after)
        try:
            async for event in with_keepalive(source, interval):
                yield b": keepalive\n\n" if event is None else sse_frame(event)
        finally:
            await source.aclose()

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


def _replay(record: RunRecord, after: int) -> Response:
    """A finished run's events from its event log on disk, as SSE (read in a thread)."""

    def body() -> Iterator[bytes]:
        yield b": run " + record.id.encode() + b" (from the history)\n\n"
        for event in replay_log(record, after):
            yield sse_frame(event)

    return StreamingResponse(
        body(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


async def openapi(request: Request) -> Response:
    """The OpenAPI document of this service.
    ---
    summary: This document
    responses:
      200: {description: OpenAPI 3 JSON}
    """
    schema = _SCHEMAS.get_schema(routes=request.app.routes)
    # YAML reads the status codes as integers; JSON object keys are strings.
    body = orjson.dumps(schema, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, media_type="application/json")


async def _no_such_endpoint(request: Request, exc: Exception) -> Response:
    """A path or method no route serves: the uniform error body (Starlette's own is
    plain text, which a client parsing every error as JSON would choke on)."""
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        # Starlette names the methods of the first route of the path only (/runs has two).
        methods = {
            method
            for route in request.app.router.routes
            if isinstance(route, Route) and route.matches(request.scope)[0] != Match.NONE
            for method in route.methods or ()
        }
        allowed = ", ".join(sorted(methods - {"HEAD"}))
        response = error_response(
            405,
            "method_not_allowed",
            f"{request.method} {request.url.path}: method not allowed (allowed: {allowed})",
        )
        response.headers["Allow"] = allowed
        return response
    return error_response(
        404,
        "not_found",
        f"no endpoint {request.method} {request.url.path} (GET /openapi.json lists them)",
    )


def create_app(
    manager: RunManager,
    policy: SecurityPolicy,
    *,
    sse_keepalive_s: float = SSE_KEEPALIVE_S,
) -> Starlette:
    """The ASGI app: routes behind the :class:`Guard`. ``manager`` is shared by every
    connection; the caller owns its lifetime (``await manager.aclose()`` at shutdown)."""
    from cc_executor._service._ui import ui_routes
    from cc_executor._service._ws import websocket_endpoint

    routes = [
        Route("/health", health, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"], include_in_schema=False),
        Route("/runs", create_run, methods=["POST"]),
        Route("/runs", list_runs, methods=["GET"]),
        Route("/runs/events", runs_feed, methods=["GET"]),
        Route("/runs/overview", runs_overview, methods=["GET"]),
        Route("/fleet", fleet_status, methods=["GET"]),
        Route("/runs/{run_id}", get_run, methods=["GET"]),
        Route("/runs/{run_id}/events", run_events, methods=["GET"]),
        Route("/runs/{run_id}/verify", verify_run, methods=["GET"]),
        Route("/runs/{run_id}/log", run_log, methods=["GET"]),
        Route("/runs/{run_id}/answer", run_answer, methods=["GET"]),
        Route("/runs/{run_id}/cancel", cancel_run, methods=["POST"]),
        Route("/runs/{run_id}/pause", pause_run, methods=["POST"]),
        Route("/runs/{run_id}/resume", resume_run, methods=["POST"]),
        Route("/tasks/{list_id}/resume", resume_tasks, methods=["POST"]),
        Route("/workspaces", list_workspaces, methods=["GET"]),
        Route("/workspaces/prune", prune_workspaces, methods=["POST"]),
        Route("/runs/{run_id}/workspace", get_workspace, methods=["GET"]),
        Route("/runs/{run_id}/workspace/diff", workspace_diff, methods=["GET"]),
        Route("/runs/{run_id}/workspace/merge", workspace_merge, methods=["POST"]),
        Route("/runs/{run_id}/workspace/discard", workspace_discard, methods=["POST"]),
        Route("/runs/{run_id}/permissions", list_permissions, methods=["GET"]),
        Route(
            "/runs/{run_id}/permissions/{request_id}/decision",
            decide_permission,
            methods=["POST"],
        ),
        WebSocketRoute("/ws", websocket_endpoint),
        WebSocketRoute("/ws/mcp", websocket_endpoint),  # the original cc_executor's path
        *ui_routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={404: _no_such_endpoint, 405: _no_such_endpoint},
    )
    app.state.manager = manager
    app.state.policy = policy
    app.state.sse_keepalive_s = sse_keepalive_s
    app.add_middleware(Guard, policy=policy)
    return app
