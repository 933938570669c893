"""The web dashboard under ``/ui``: pages rendered here as HTML, kept live in the browser
by ``static/ui.js`` from the service's public REST and SSE endpoints (``GET /runs``,
``GET /runs/events``, ``GET /runs/{id}/events``, ``POST /runs/{id}/cancel``, ...).

Everything a run produced (prompts, answers, tool input and output, errors) reaches the
page as text only: escaped here, set with ``textContent`` by the script, never parsed as
HTML. Each response carries a strict Content-Security-Policy (scripts and styles from
``/ui/static`` only, nothing inline, no other origin), so even a missed escape runs no
script. docs/dashboard.md says why this approach, docs/security.md how login works.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import html
import re
import time
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlencode

import orjson
from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from cc_executor._errors import FleetError
from cc_executor._service._manager import InvalidRequest, RunManager, ServiceError
from cc_executor._service._security import (
    READ_ONLY,
    SecurityPolicy,
    session_cookie_name,
)
from cc_executor._status import Status

#: Content-Security-Policy of every dashboard response: our own script and style only.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: An answer longer than this is shown as its head and tail, with a download.
ANSWER_SHOWN = 64 * 1024
#: Rows per page of the run list.
PAGE_SIZE = 50

_STATIC = ("ui.js", "ui.css")
_STATUS_CLASSES = {s.value for s in Status}


def h(value: Any) -> str:
    """``value`` as HTML text (quotes too: it may sit in an attribute)."""
    return html.escape("" if value is None else str(value), quote=True)


def _time(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return ""
    moment = _dt.datetime.fromtimestamp(stamp, tz=_dt.timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _number(value: Any, fmt: str) -> str:
    return format(value, fmt) if isinstance(value, (int, float)) else ""


def _headers_out() -> dict[str, str]:
    return {
        "content-security-policy": CSP,
        "x-content-type-options": "nosniff",
        # Not no-referrer: with it Chromium sends "Origin: null" on our own form posts,
        # which the Origin check rightly refuses.
        "referrer-policy": "same-origin",
        "cache-control": "no-store",
    }


def _page(request: Request, title: str, body: str, *, status: int = 200) -> Response:
    role = getattr(request.state, "role", None)
    csrf = _csrf(request)
    nav = ""
    if role is not None:
        start = "" if role == READ_ONLY else '<a href="/ui/new">Start a run</a>'
        shown = "read-only" if role == READ_ONLY else "full access"
        nav = (
            '<nav aria-label="Main"><a href="/ui/runs">Runs</a>'
            '<a href="/ui/overview">Overview</a>'
            f'{start}<span class="role">{h(shown)}</span>'
            '<button type="button" data-post="/ui/logout" data-then="/ui/login">'
            "Log out</button></nav>"
        )
    text = (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="csrf-token" content="{h(csrf)}">'
        f"<title>{h(title)} · cc-executor</title>"
        '<link rel="stylesheet" href="/ui/static/ui.css">'
        '<script type="module" src="/ui/static/ui.js"></script></head>'
        # The skip link is the first Tab stop: keyboard users pass the header's links in one key.
        '<body><a class="skip" href="#main">Skip to content</a>'
        f'<header><span class="brand">cc-executor</span>{nav}</header>'
        f'<main id="main" tabindex="-1">{body}</main></body></html>'
    )
    return Response(text, status_code=status, media_type="text/html", headers=_headers_out())


def _policy(request: Request) -> SecurityPolicy:
    policy: SecurityPolicy = request.app.state.policy
    return policy


def _manager(request: Request) -> RunManager:
    manager: RunManager = request.app.state.manager
    return manager


def _cookie_name(request: Request) -> str:
    server = request.scope.get("server")
    return session_cookie_name(server[1] if server else None)


def _csrf(request: Request) -> str:
    session_id = request.cookies.get(_cookie_name(request))
    session = _policy(request).sessions.get(session_id)
    return session.csrf if session is not None else ""


# ------------------------------------------------------------------------- login


def _login_form(request: Request, error: str = "", status: int = 200) -> Response:
    problem = f'<p class="error" role="alert" id="token-error">{h(error)}</p>' if error else ""
    described = ' aria-describedby="token-error" aria-invalid="true"' if error else ""
    body = (
        '<h1>Log in</h1><form method="post" action="/ui/login" class="login">'
        '<label for="token">Service token</label>'
        f'<input id="token" name="token" type="password" autocomplete="current-password" '
        f"required autofocus{described}>{problem}"
        "<p class=hint>The token is in <code>service-token</code> (full access) or "
        "<code>service-token-readonly</code> (read only) in the data folder.</p>"
        '<button type="submit">Log in</button></form>'
    )
    return _page(request, "Log in", body, status=status)


async def login_page(request: Request) -> Response:
    """The login form."""
    return _login_form(request)


async def login(request: Request) -> Response:
    """Check the token of the form; on success open a session and go to the runs."""
    fields = parse_qs((await request.body()).decode("utf-8", "replace"))
    given = (fields.get("token") or [""])[0]
    policy = _policy(request)
    role = policy.role_of_token(given) if given else None
    if role is None:
        return _login_form(request, "That token is not valid for this server.", 401)
    session_id, _ = policy.sessions.open(role)
    response = RedirectResponse("/ui/runs", status_code=303, headers=_headers_out())
    response.set_cookie(
        _cookie_name(request),
        session_id,
        max_age=int(policy.sessions.lifetime),
        path="/",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def logout(request: Request) -> Response:
    """End the session."""
    name = _cookie_name(request)
    _policy(request).sessions.close(request.cookies.get(name))
    response = Response(status_code=204, headers=_headers_out())
    response.delete_cookie(name, path="/", httponly=True, samesite="strict")
    return response


async def static(request: Request) -> Response:
    """The dashboard's script and style sheet, from the package."""
    name = request.path_params["name"]
    if name not in _STATIC:
        return Response("not found", status_code=404, media_type="text/plain")
    path = resources.files("cc_executor._service").joinpath("static").joinpath(name)
    kind = "text/javascript" if name.endswith(".js") else "text/css"
    return FileResponse(str(path), media_type=kind, headers=_headers_out())


async def home(request: Request) -> Response:
    """``/ui``: the run list."""
    return RedirectResponse("/ui/runs", status_code=303)


# ------------------------------------------------------------------------- runs


def _status_badge(status: Any) -> str:
    name = str(status or "")
    kind = name if name in _STATUS_CLASSES else "other"
    return f'<span class="status s-{h(kind)}">{h(name)}</span>'


def _tokens(run: dict[str, Any]) -> str:
    parts = [run.get("input_tokens"), run.get("output_tokens")]
    if not any(isinstance(p, int) for p in parts):
        return ""
    return f"{parts[0] or 0} / {parts[1] or 0}"


def _duration(run: dict[str, Any]) -> Any:
    value = run.get("duration_s")
    if value is None and run.get("ended_at") and run.get("started_at"):
        value = run["ended_at"] - run["started_at"]
    return value


def run_row(run: dict[str, Any]) -> str:
    """One line of the run table (``ui.js`` builds the same from ``/runs/events``)."""
    run_id = str(run.get("run_id", ""))
    link = f"/ui/runs/{h(run_id)}"
    started = run.get("started_at") or run.get("created_at")
    prompt = run.get("prompt_preview") or " ".join(map(str, run.get("argv") or []))
    # The list's order: when the server took a run it holds, else when the run started.
    key = run.get("started_at") if run.get("from_history") else run.get("created_at")
    return (
        f'<tr data-run-id="{h(run_id)}" data-key="{h(_number(key, "f"))}">'
        f'<td data-col="status">{_status_badge(run.get("status"))}</td>'
        f'<td data-col="prompt"><a href="{link}">{h(str(prompt)[:120] or run_id)}</a></td>'
        f'<td data-col="agent">{h(run.get("agent") or run.get("kind"))}</td>'
        f'<td data-col="model">{h(run.get("model"))}</td>'
        f'<td data-col="started">{h(_time(started))}</td>'
        f'<td data-col="duration" class="num">{h(_number(_duration(run), ".1f"))}</td>'
        f'<td data-col="cost" class="num">{h(_number(run.get("cost_usd"), ".4f"))}</td>'
        f'<td data-col="tokens" class="num">{h(_tokens(run))}</td>'
        f'<td data-col="exit" class="num">{h(run.get("exit_code"))}</td></tr>'
    )


def _before(value: str | None) -> tuple[float, str] | None:
    if not value:
        return None
    stamp, _, run_id = value.partition(":")
    try:
        return float(stamp), run_id
    except ValueError:
        raise InvalidRequest(
            f"before must be the key of an Older runs link, got {value[:40]!r}"
        ) from None


def _date_stamp(value: str | None, name: str, *, end: bool = False) -> float | None:
    if not value:
        return None
    try:
        day = _dt.date.fromisoformat(value)
    except ValueError:
        # Ignored, it listed every run as if the date had filtered them.
        raise InvalidRequest(f"{name} must be a date like 2026-12-31, got {value[:40]!r}") from None
    moment = _dt.datetime(day.year, day.month, day.day, tzinfo=_dt.timezone.utc)
    if end:
        moment += _dt.timedelta(days=1)
    return moment.timestamp()


def _filters(request: Request) -> str:
    q = request.query_params
    statuses = "".join(
        f'<option value="{h(s.value)}"{" selected" if q.get("status") == s.value else ""}>'
        f"{h(s.value)}</option>"
        for s in Status
    )

    def pair(label: str, control: str, name: str) -> str:
        # Label and control together: a narrow window wraps between pairs, not inside one.
        return f'<span class="pair"><label for="f-{name}">{label}</label>{control}</span>'

    return (
        '<form class="filters" method="get" action="/ui/runs" role="search">'
        + pair(
            "Status",
            f'<select id="f-status" name="status"><option value="">any</option>{statuses}</select>',
            "status",
        )
        + pair("Agent", f'<input id="f-agent" name="agent" value="{h(q.get("agent"))}">', "agent")
        + pair("Model", f'<input id="f-model" name="model" value="{h(q.get("model"))}">', "model")
        + pair(
            "From",
            f'<input id="f-from" name="from" type="date" value="{h(q.get("from"))}">',
            "from",
        )
        + pair("To", f'<input id="f-to" name="to" type="date" value="{h(q.get("to"))}">', "to")
        + pair(
            "Prompt text",
            f'<input id="f-q" name="q" type="search" value="{h(q.get("q"))}">',
            "q",
        )
        + '<button type="submit">Filter</button></form>'
    )


async def runs_page(request: Request) -> Response:
    """The run list: filters, a page of runs newest first, live updates."""
    q = request.query_params
    try:
        since = _date_stamp(q.get("from"), "from")
        until = _date_stamp(q.get("to"), "to", end=True)
        runs, key = await _manager(request).list_page(
            status=q.get("status") or None,
            agent=q.get("agent") or None,
            model=q.get("model") or None,
            text=q.get("q") or None,
            since=since,
            until=until,
            before=_before(q.get("before")),
            brief=True,
            limit=PAGE_SIZE,
        )
    except (ServiceError, ValueError) as exc:
        return _page(request, "Runs", f'<p class="error" role="alert">{h(exc)}</p>', status=400)
    # The live feed with the same filters: matching runs appear and change, the others
    # come as "leave" (ui.js marks a shown run that no longer matches).
    feed_args = {
        "status": q.get("status"),
        "agent": q.get("agent"),
        "model": q.get("model"),
        "q": q.get("q"),
        "since": None if since is None else repr(since),
        "until": None if until is None else repr(until),
    }
    feed = "/runs/events"
    if any(feed_args.values()):
        feed += "?" + urlencode({k: v for k, v in feed_args.items() if v})
    # A later page ("Older runs") takes no new runs: they belong on the first one.
    older_page = bool(q.get("before"))
    filtered = any(feed_args.values())
    rows = "".join(run_row(r) for r in runs)
    older = ""
    if key is not None:
        args = {k: v for k, v in q.items() if k != "before" and v}
        args["before"] = f"{key[0]!r}:{key[1]}"
        older = f'<a class="older" href="/ui/runs?{h(urlencode(args))}">Older runs</a>'
    empty = "" if runs else '<p class="empty" id="no-runs">No runs match.</p>'
    body = (
        f"<h1>Runs</h1>{_filters(request)}"
        f'<p class="live-note" aria-live="polite" id="live-note"></p>'
        '<div class="table-wrap"><table class="runs" id="runs" '
        f'data-live="{"0" if older_page else "1"}" data-filtered="{int(filtered)}" '
        f'data-feed="{h(feed)}"><caption class="sr-only">Runs, newest first'
        "</caption><thead><tr><th scope=col>Status</th><th scope=col>Prompt</th>"
        "<th scope=col>Agent</th><th scope=col>Model</th><th scope=col>Started (UTC)</th>"
        "<th scope=col>Duration s</th><th scope=col>Cost $</th><th scope=col>Tokens in/out</th>"
        f"<th scope=col>Exit</th></tr></thead><tbody>{rows}</tbody></table></div>"
        f"{empty}{older}"
    )
    return _page(request, "Runs", body)


def _answer_html(run_id: str, text: str) -> str:
    # Each box scrolls (ui.css): focusable, so that a keyboard can scroll it too.
    if len(text) <= ANSWER_SHOWN:
        return f'<pre class="answer" id="answer" tabindex="0">{h(text)}</pre>'
    half = ANSWER_SHOWN // 2
    return (
        f'<p class="note">The answer is {len(text):,} characters: its beginning and end are '
        f'shown. <a href="/runs/{h(run_id)}/answer" download>Download the whole answer</a>.</p>'
        f'<pre class="answer" id="answer" tabindex="0" aria-label="Beginning of the answer">'
        f"{h(text[:half])}</pre>"
        f'<p class="cut">… {len(text) - 2 * half:,} characters not shown …</p>'
        f'<pre class="answer" tabindex="0" aria-label="End of the answer">{h(text[-half:])}</pre>'
    )


def _field(name: str, value: Any) -> str:
    if value in (None, "", [], {}):
        return ""
    return f"<dt>{h(name)}</dt><dd>{h(value)}</dd>"


#: The most of a workspace's diff the run page shows (the rest: the diff endpoint).
DIFF_SHOWN = 256 * 1024


def _workspace_parts(run_id: str, given: Any) -> tuple[dict[str, Any] | None, str | None]:
    """The change receipt of run ``run_id`` (its result's, else its ``workspace.json``) and
    the diff of its branch; None for either that cannot be had. Blocking (git, files)."""
    from cc_executor._errors import WorkspaceError
    from cc_executor._run import _workspace

    local = None
    with contextlib.suppress(WorkspaceError, OSError):
        local = _workspace.load_receipt(run_id)
    receipt = given if isinstance(given, dict) else local
    if receipt is None:
        return None, None
    diff = None
    if local is not None:
        # Never from a remote: the diff of a pushed branch would fetch it (the diff
        # endpoint does that on request; a page load should not).
        with contextlib.suppress(WorkspaceError, OSError, ValueError):
            diff = _workspace.workspace_diff(run_id, fetch=False)
    return receipt, diff


def workspace_html(run_id: str, receipt: dict[str, Any], diff: str | None) -> str:
    """A run's workspace: its branch, commit and base, the changed files with their kind,
    and the diff as text in a box of its own (the first ``DIFF_SHOWN`` characters)."""
    facts = "".join(
        [
            _field("Branch", receipt.get("branch")),
            _field("Commit", receipt.get("commit")),
            _field("Base", receipt.get("base")),
            _field("Mode", receipt.get("mode")),
            _field("Workspace", receipt.get("path")),
        ]
    )
    changes = [c for c in receipt.get("changes") or [] if isinstance(c, dict)]
    rows = "".join(
        f'<tr data-path="{h(c.get("path"))}"><td>'
        + (f"{h(c['old_path'])} → " if c.get("old_path") else "")
        + f'{h(c.get("path"))}</td><td data-col="kind">{h(c.get("kind"))}</td></tr>'
        for c in changes
    )
    table = (
        '<table class="changes"><thead><tr><th scope=col>File</th><th scope=col>Change</th>'
        f"</tr></thead><tbody>{rows}</tbody></table>"
        if rows
        else '<p class="empty">No change.</p>'
    )
    if diff is None:
        shown = (
            '<p class="note">The diff is not on this machine: '
            f"<code>GET /runs/{h(run_id)}/workspace/diff</code> fetches it.</p>"
        )
    else:
        cut = (
            f'<p class="cut">… {len(diff) - DIFF_SHOWN:,} characters not shown: the whole diff '
            f"is at <code>GET /runs/{h(run_id)}/workspace/diff</code>.</p>"
            if len(diff) > DIFF_SHOWN
            else ""
        )
        shown = (
            f'<pre class="diff" id="diff" tabindex="0" aria-label="Diff of the workspace">'
            f"{h(diff[:DIFF_SHOWN])}</pre>{cut}"
        )
    return (
        '<section id="workspace" aria-labelledby="ws-title"><h2 id="ws-title">Workspace</h2>'
        f'<dl class="facts">{facts}</dl><h3>Changes</h3>{table}<h3>Diff</h3>{shown}</section>'
    )


async def run_page(request: Request) -> Response:
    """One run: its summary, transcript (live), answer, receipts and controls."""
    run_id = request.path_params["run_id"]
    manager = _manager(request)
    try:
        run = await manager.describe(run_id)
    except ServiceError as exc:
        return _page(request, "No such run", f'<p class="error">{h(exc)}</p>', status=exc.status)
    result: dict[str, Any] = run["result"] if isinstance(run.get("result"), dict) else {}
    record = await manager.record(run_id) if not run.get("from_history") else run
    status = run.get("status")
    usage = result.get("usage") or {}
    details = "".join(
        [
            _field("Agent", run.get("agent") or run.get("kind")),
            _field("Model", result.get("model") or run.get("model")),
            _field("Folder", run.get("cwd")),
            _field("Started (UTC)", _time(run.get("started_at") or run.get("created_at"))),
            _field("Ended (UTC)", _time(run.get("ended_at"))),
            _field("Duration s", _number(_duration({**run, **result}), ".1f")),
            _field("Cost $", _number(result.get("cost_usd", run.get("cost_usd")), ".4f")),
            _field("Input tokens", usage.get("input_tokens", run.get("input_tokens"))),
            _field("Output tokens", usage.get("output_tokens", run.get("output_tokens"))),
            _field("Turns", result.get("num_turns", run.get("turns"))),
            _field("Exit code", result.get("exit_code", run.get("exit_code"))),
            _field("Session", result.get("session_id", run.get("session_id"))),
        ]
    )
    if run.get("kind") == "tasks" and not run.get("graph"):
        # A list from the history: its tasks, graph and last states from its folder.
        run = {**run, **(await manager.task_list(run_id) or {})}
    read_only = getattr(request.state, "role", None) == READ_ONLY
    live = bool(run.get("live"))
    controls = ""
    if not read_only:
        # A task list can be cancelled, not paused (the API refuses it): no button that
        # can only fail.
        actions = ["cancel"] if run.get("kind") == "tasks" else ["cancel", "pause", "resume"]
        # A list that ended without success runs again (POST /tasks/{id}/resume): its
        # tasks that ended ok are kept.
        again = ""
        if run.get("kind") == "tasks":
            can = not live and status != "ok"
            again = (
                f'<button type="button" data-resume-list{"" if can else " disabled"} '
                'aria-describedby="resume-hint">Resume</button>'
                '<span id="resume-hint" class="hint">Resume runs again the tasks that did '
                "not end ok.</span>"
            )
        controls = (
            '<div class="controls" role="group" aria-label="Control the run">'
            + "".join(
                f'<button type="button" data-action="{a}"{"" if live else " disabled"}>'
                f"{a.capitalize()}</button>"
                for a in actions
            )
            + again
            + "</div>"
        )
    # Tool calls the run's permission policy asked about: filled and emptied by ui.js
    # from the run's permission_request/permission_decision events and
    # GET /runs/{id}/permissions; a read-only login sees them without buttons.
    pending = (
        '<section id="permissions" class="permissions" hidden aria-labelledby="perm-title">'
        '<h2 id="perm-title">Waiting for a decision</h2>'
        f'<ul id="pending" data-decide="{int(not read_only)}"></ul></section>'
        if live
        else ""
    )
    prompt = run.get("prompt_preview")
    tasks = run.get("kind") == "tasks"
    answer = result.get("result") if isinstance(result.get("result"), str) else None
    if answer is None and run.get("from_history") and run.get("kind") == "run":
        # The history keeps a preview: the whole answer is in the run's event log.
        with contextlib.suppress(ServiceError):
            answer = await manager.answer(run_id)
    if answer is None:
        answer = run.get("result_preview") or ""
    json_answer = ""
    if result.get("json") is not None:
        pretty = orjson.dumps(result["json"], option=orjson.OPT_INDENT_2).decode()
        json_answer = f'<h2>JSON answer</h2><pre class="json">{h(pretty)}</pre>'
    files = result.get("files") or []
    files_html = (
        "<h2>Files changed</h2><ul>" + "".join(f"<li>{h(f)}</li>" for f in files) + "</ul>"
        if files
        else ""
    )
    warnings = result.get("warnings") or run.get("warnings") or []
    warn_html = (
        '<h2>Warnings</h2><ul class="warnings">'
        + "".join(f"<li>{h(w)}</li>" for w in warnings)
        + "</ul>"
        if warnings
        else ""
    )
    error = result.get("error") or run.get("error")
    stderr_tail = result.get("stderr_tail") or ""
    error_html = ""
    if error or stderr_tail:
        error_html = f'<h2>Error</h2><p class="error">{h(error)}</p>' + (
            f'<h3>stderr (tail)</h3><pre class="stderr">{h(stderr_tail)}</pre>'
        ) * bool(stderr_tail)
    workspace = ""
    if result.get("workspace") is not None or run.get("from_history"):
        receipt, diff = await asyncio.to_thread(_workspace_parts, run_id, result.get("workspace"))
        if receipt is not None:
            workspace = workspace_html(run_id, receipt, diff)
    artifacts = (record or {}).get("artifacts") or []
    # A task list has no event log of its own (its tasks' runs do): the link was a 404.
    log_link = (
        ""
        if tasks
        else f'<p><a href="/runs/{h(run_id)}/log" download>Download the event log</a></p>'
    )
    receipts = ""
    if artifacts:
        rows = "".join(
            f'<tr data-name="{h(a.get("name"))}"><td>{h(a.get("name"))}</td>'
            f'<td class="num">{h(a.get("size"))}</td><td><code>'
            f'{h(str(a.get("sha256", ""))[:16])}</code></td><td data-col="outcome"></td></tr>'
            for a in artifacts
            if isinstance(a, dict)
        )
        receipts = (
            '<h2>Receipts</h2><table class="receipts"><thead><tr><th scope=col>File</th>'
            "<th scope=col>Bytes</th><th scope=col>SHA-256</th><th scope=col>Verified</th>"
            f"</tr></thead><tbody>{rows}</tbody></table>"
            '<button type="button" data-verify>Verify</button>'
            '<p id="verify-outcome" aria-live="polite"></p>'
        )
    # A run from the history shows its transcript from its event log, replayed by
    # GET /runs/{id}/events as the live events were sent.
    replay = (
        bool(run.get("from_history"))
        and run.get("kind") == "run"
        and any(isinstance(a, dict) and a.get("name") == "events" for a in artifacts)
    )
    body = (
        f'<h1>Run <code>{h(run_id)}</code> <span id="run-status">{_status_badge(status)}</span>'
        f'</h1><section id="run" data-run-id="{h(run_id)}" data-live="{int(live)}" '
        f'data-in-memory="{int(not run.get("from_history"))}" data-replay="{int(replay)}" '
        f'data-started="{h(run.get("started_at") or "")}">'
        f"{controls}"
        f'<p class="error" role="alert" id="control-error"></p>{pending}'
        + (f'<h2>Prompt</h2><pre class="prompt">{h(prompt)}</pre>' if prompt else "")
        + f'<dl class="facts">{details}</dl>'
        f"{task_table(run) if run.get('kind') == 'tasks' else ''}"
        # The last heartbeat, rewritten in place by ui.js (not a line per heartbeat).
        '<h2>Transcript</h2><p id="heartbeat" class="note" hidden></p>'
        '<div id="transcript" class="transcript" aria-live="off"></div>'
        f"{f'<h2>Answer</h2>{_answer_html(run_id, answer)}' if answer or not tasks else ''}"
        f"{json_answer}{files_html}{workspace}"
        f"{warn_html}{error_html}{receipts}"
        f"{log_link}"
        "</section>"
    )
    return _page(request, f"Run {run_id}", body)


# ------------------------------------------------------------------------- overview

#: The periods the overview offers, in days.
PERIODS = (1, 7, 30, 90)


def bar_chart(title: str, values: dict[str, float], fmt: str) -> str:
    """A horizontal bar chart as inline SVG (no script, no style attribute), with the
    same figures as a table for screen readers."""
    if not values:
        return f"<h2>{h(title)}</h2><p class=empty>No runs.</p>"
    top = max(values.values()) or 1.0
    row, label_w, bar_w = 22, 170, 300
    height = row * len(values) + 4
    bars = []
    for i, (name, value) in enumerate(values.items()):
        y = i * row + 2
        width = max(1, round(bar_w * value / top)) if value else 0
        bars.append(
            f'<text x="{label_w - 6}" y="{y + 15}" text-anchor="end" class="chart-label">'
            f"{h(str(name)[:28])}</text>"
            f'<rect x="{label_w}" y="{y + 3}" width="{width}" height="{row - 6}" class="bar"/>'
            f'<text x="{label_w + width + 6}" y="{y + 15}" class="chart-label">'
            f"{h(format(value, fmt))}</text>"
        )
    table = "".join(
        f"<tr><th scope=row>{h(k)}</th><td class=num>{h(format(v, fmt))}</td></tr>"
        for k, v in values.items()
    )
    return (
        f"<h2>{h(title)}</h2>"
        f'<svg class="chart" role="img" aria-label="{h(title)}" '
        f'viewBox="0 0 {label_w + bar_w + 90} {height}" width="{label_w + bar_w + 90}" '
        f'height="{height}"><title>{h(title)}</title>{"".join(bars)}</svg>'
        f'<details><summary>{h(title)} as a table</summary><table class="figures">'
        f"{table}</table></details>"
    )


def _run_list(title: str, runs: list[dict[str, Any]], key: str, fmt: str) -> str:
    if not runs:
        return ""
    items = []
    for run in runs:
        link = f"/ui/runs/{h(run['run_id'])}"
        text = h(str(run.get("prompt_preview") or run["run_id"])[:80])
        figure = h(_number(run.get(key), fmt))
        items.append(
            f'<li><a href="{link}">{text}</a> {_status_badge(run.get("status"))} {figure}</li>'
        )
    return f"<h2>{h(title)}</h2><ol>{''.join(items)}</ol>"


#: How often the overview's fleet section reads ``GET /fleet`` again, in seconds.
FLEET_POLL_S = 5


def worker_row(worker: dict[str, Any]) -> str:
    """One worker of the fleet section (``ui.js`` builds the same from ``GET /fleet``):
    what it runs (links to the runs) and its health (``ok``, ``late``, ``lost``)."""
    health = str(worker.get("health") or "ok")
    kind = health if health in ("ok", "late", "lost") else "other"
    runs = ", ".join(f'<a href="/ui/runs/{h(r)}">{h(r)}</a>' for r in worker.get("runs") or [] if r)
    return (
        f'<tr data-worker="{h(worker.get("worker_id"))}" data-health="{h(kind)}">'
        f"<th scope=row>{h(worker.get('worker_id'))}</th>"
        f'<td data-col="health"><span class="health h-{h(kind)}">{h(health)}</span></td>'
        f"<td>{h(worker.get('host'))}</td><td class=num>{h(worker.get('pid'))}</td>"
        f'<td class=num data-col="busy">{h(worker.get("busy"))} / {h(worker.get("slots"))}</td>'
        f'<td data-col="runs">{runs}</td>'
        f"<td>{h(', '.join(map(str, worker.get('agents') or [])))}</td>"
        f"<td>{h(', '.join(map(str, worker.get('queues') or [])))}</td>"
        f"<td>{h(worker.get('version'))}</td>"
        f'<td class=num data-col="age">{h(_number(worker.get("heartbeat_age_s"), ".1f"))}</td>'
        "</tr>"
    )


def _fleet_summary(data: dict[str, Any]) -> str:
    lost = len(data.get("lost") or [])
    gone = f", {lost} lost" if lost else ""
    return f"{data['fleet']}: {len(data['workers'])} live worker(s){gone}."


async def _fleet_html(request: Request) -> str:
    """The fleet's workers and queues (from ``GET /fleet``'s figures, read again by
    ``ui.js`` every :data:`FLEET_POLL_S` seconds); nothing without a fleet."""
    manager = _manager(request)
    if manager.config.fleet is None:
        return ""
    note, summary, rows, queues = "", "", "", ""
    try:
        data = await manager.fleet_status()
    except (ServiceError, FleetError) as exc:
        note = f"The fleet does not answer: {exc}"
    else:
        summary = _fleet_summary(data)
        rows = "".join(worker_row(w) for w in [*data["workers"], *data["lost"]])
        queues = "".join(
            f"<tr><th scope=row>{h(name)}</th><td class=num>{h(c.get('queued'))}</td>"
            f"<td class=num>{h(c.get('running'))}</td></tr>"
            for name, c in data["queues"].items()
        )
    return (
        f'<section id="fleet" data-poll="{FLEET_POLL_S}" aria-labelledby="fleet-title">'
        f'<h2 id="fleet-title">Fleet</h2><p id="fleet-summary">{h(summary)}</p>'
        f'<p class="error" role="alert" id="fleet-note">{h(note)}</p>'
        f'<p class="empty" id="no-workers"{"" if not rows and not note else " hidden"}>'
        "No worker is live.</p>"
        # Focusable: in a narrow window the table scrolls in its box, and a keyboard must
        # reach that too (a lost worker's row has no link to tab to).
        '<div class="table-wrap" tabindex="0" role="region" aria-label="Workers">'
        '<table class="figures workers" id="workers"><caption '
        'class="sr-only">Workers: live ones, then those lost</caption><thead><tr>'
        "<th scope=col>Worker</th><th scope=col>Health</th><th scope=col>Host</th>"
        "<th scope=col>PID</th><th scope=col>Busy / slots</th><th scope=col>Runs</th>"
        "<th scope=col>Agents</th><th scope=col>Queues</th><th scope=col>Version</th>"
        f"<th scope=col>Heartbeat s ago</th></tr></thead><tbody>{rows}</tbody></table></div>"
        '<table class="figures queues" id="queues"><caption class="sr-only">Queues</caption>'
        "<thead><tr><th scope=col>Queue</th><th scope=col>Queued</th><th scope=col>Running"
        f"</th></tr></thead><tbody>{queues}</tbody></table></section>"
    )


async def overview_page(request: Request) -> Response:
    """Counts, costs and failures of a period (from ``GET /runs/overview``'s figures)."""
    try:
        days = int(request.query_params.get("days", "7"))
    except ValueError:
        days = 7
    days = days if days in PERIODS else 7
    data = await _manager(request).overview(time.time() - days * 86400)
    options = "".join(
        f'<option value="{d}"{" selected" if d == days else ""}>last {d} day{"s" * (d > 1)}'
        "</option>"
        for d in PERIODS
    )
    truncated = (
        '<p class="note">Only the newest runs of the period are counted.</p>'
        if data["truncated"]
        else ""
    )
    failures = "".join(
        f"<tr><td>{h(f['reason'])}</td><td class=num>{h(f['runs'])}</td></tr>"
        for f in data["failures"]
    )
    failures_html = (
        '<h2>Failures by reason</h2><table class="figures"><thead><tr><th scope=col>Reason'
        f"</th><th scope=col>Runs</th></tr></thead><tbody>{failures}</tbody></table>"
        if failures
        else ""
    )
    body = (
        '<h1>Overview</h1><form method="get" action="/ui/overview" class="filters">'
        f'<label for="days">Period</label><select id="days" name="days">{options}</select>'
        f'<button type="submit">Show</button></form><p>{h(data["runs"])} runs.</p>{truncated}'
        + bar_chart("Runs by status", data["by_status"], "d")
        + bar_chart("Cost per day (USD)", data["cost_by_day"], ".4f")
        + bar_chart("Cost per model (USD)", data["cost_by_model"], ".4f")
        + _run_list("Slowest runs (s)", data["slowest"], "duration_s", ".1f")
        + _run_list("Most expensive runs (USD)", data["costliest"], "cost_usd", ".4f")
        + failures_html
        + await _fleet_html(request)
    )
    return _page(request, "Overview", body)


# ------------------------------------------------------------------------- task lists


def _state_class(state: Any) -> str:
    name = str(state or "pending")
    return name if re.fullmatch(r"[a-z_]{1,32}", name) else "other"


def task_graph(graph: dict[str, Any], states: dict[str, Any] | None = None) -> str:
    """A task list's dependency graph as inline SVG: one column per wave, an arrow from
    each dependency; ``ui.js`` colours each task as its ``task_state`` events arrive."""
    waves: list[list[str]] = graph.get("waves") or []
    depends_on: dict[str, list[str]] = graph.get("depends_on") or {}
    node_w, node_h, gap_x, gap_y = 150, 34, 60, 16
    where: dict[str, tuple[int, int]] = {}
    for col, wave in enumerate(waves):
        for row, task_id in enumerate(wave):
            where[task_id] = (col * (node_w + gap_x) + 4, row * (node_h + gap_y) + 4)
    width = max(1, len(waves)) * (node_w + gap_x)
    height = max((len(w) for w in waves), default=1) * (node_h + gap_y) + 8
    edges = []
    for task_id, deps in depends_on.items():
        for dep in deps:
            if dep in where and task_id in where:
                (x1, y1), (x2, y2) = where[dep], where[task_id]
                edges.append(
                    f'<line x1="{x1 + node_w}" y1="{y1 + node_h // 2}" x2="{x2}" '
                    f'y2="{y2 + node_h // 2}" class="edge"/>'
                )
    states = states or {}
    nodes = "".join(
        f'<g class="task-node t-{_state_class(states.get(task_id, {}).get("state"))}" '
        f'data-task="{h(task_id)}">'
        f"<title>{h(_task_tip(task_id, states.get(task_id) or {}))}</title>"
        f'<rect x="{x}" y="{y}" width="{node_w}" height="{node_h}" rx="4"/>'
        f'<text x="{x + 8}" y="{y + 21}">{h(task_id[:18])}</text></g>'
        for task_id, (x, y) in where.items()
    )
    return (
        f'<svg class="graph" role="img" aria-label="Dependency graph of the tasks" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
        f"<title>Dependency graph of the tasks</title>{''.join(edges)}{nodes}</svg>"
    )


def _task_seconds(saved: dict[str, Any]) -> float | None:
    """How long a saved task ran, from its first start to its end; None if it has not."""
    start, end = saved.get("started_at"), saved.get("ended_at")
    if isinstance(start, (int, float)) and isinstance(end, (int, float)) and end >= start:
        return float(end - start)
    return None


def _task_tip(task_id: str, saved: dict[str, Any]) -> str:
    """A graph node's tooltip: the task, its state and how long it ran (ui.js: the same)."""
    seconds = _task_seconds(saved)
    tip = f"{task_id}: {saved.get('state') or 'pending'}"
    return tip if seconds is None else f"{tip}, {seconds:.1f} s"


def task_table(run: dict[str, Any]) -> str:
    """The tasks of a list run: their dependencies, then state, attempt, cost and
    duration, filled in by ``ui.js`` from the list's ``task_state`` events."""
    graph = run.get("graph") or {}
    depends_on: dict[str, list[str]] = graph.get("depends_on") or {}
    # The saved states of a list from the history; a live one's come as events.
    states: dict[str, Any] = run.get("states") or {}

    def cells(task_id: str) -> str:
        saved = states.get(task_id)
        if not saved:
            return (
                '<td data-col="state">pending</td><td data-col="attempt" class="num"></td>'
                '<td data-col="cost" class="num"></td><td data-col="duration" class="num"></td>'
            )
        cost = saved.get("cost_usd")
        return (
            f'<td data-col="state">{_status_badge(saved.get("state"))}</td>'
            f'<td data-col="attempt" class="num">{h(saved.get("attempt") or "")}</td>'
            f'<td data-col="cost" class="num">{_number(cost, ".4f")}</td>'
            f'<td data-col="duration" class="num">{_number(_task_seconds(saved), ".1f")}</td>'
        )

    rows = "".join(
        f'<tr data-task="{h(task_id)}"><th scope=row>{h(task_id)}</th>'
        f"<td>{h(', '.join(depends_on.get(task_id, [])))}</td>{cells(task_id)}</tr>"
        for task_id in run.get("tasks") or []
    )
    return (
        f"<h2>Tasks</h2>{task_graph(graph, states)}"
        '<table class="tasks"><thead><tr><th scope=col>Task</th><th scope=col>Depends on</th>'
        "<th scope=col>State</th><th scope=col>Attempt</th><th scope=col>Cost $</th>"
        "<th scope=col>Duration s</th>"
        f"</tr></thead><tbody>{rows}</tbody></table>"
    )


# ------------------------------------------------------------------------- start a run


async def new_page(request: Request) -> Response:
    """The form that starts a run (``POST /runs`` from the script)."""
    config = _manager(request).config
    folders = "".join(f'<option value="{h(d)}">{h(d)}</option>' for d in config.allow_dirs)
    agents = "".join(f'<option value="{h(a)}">{h(a)}</option>' for a in config.agents)

    def field(name: str, label: str, control: str, hint: str = "") -> str:
        hint_html = f'<span class="hint" id="hint-{name}">{h(hint)}</span>' if hint else ""
        return (
            f'<div class="field" data-field="{name}"><label for="o-{name}">{h(label)}</label>'
            f'{control}{hint_html}<span class="error" id="err-{name}" role="alert"></span></div>'
        )

    body = (
        '<h1>Start a run</h1><form id="start" novalidate>'
        + field("prompt", "Prompt", '<textarea id="o-prompt" name="prompt" rows="6"></textarea>')
        + field("cwd", "Folder", f'<select id="o-cwd" name="cwd">{folders}</select>')
        + field("agent", "Agent", f'<select id="o-agent" name="agent">{agents}</select>')
        + field("model", "Model", '<input id="o-model" name="model">')
        + field(
            "allowed_tools",
            "Allowed tools",
            '<input id="o-allowed_tools" name="allowed_tools">',
            "Comma-separated, e.g. Read, Grep",
        )
        + field(
            "timeout", "Timeout (s)", '<input id="o-timeout" name="timeout" inputmode="decimal">'
        )
        + "<details><summary>More options</summary>"
        + field(
            "options",
            "Other options (JSON object)",
            '<textarea id="o-options" name="options" rows="4"></textarea>',
            'Any run option, e.g. {"max_turns": 5}',
        )
        + "</details>"
        + '<p class="error" role="alert" id="err-form"></p>'
        + '<button type="submit">Start</button></form>'
    )
    return _page(request, "Start a run", body)


def ui_routes() -> list[BaseRoute]:
    """The dashboard's routes (under ``/ui``)."""
    return [
        Route("/ui", home, methods=["GET"], include_in_schema=False),
        Route("/ui/", home, methods=["GET"], include_in_schema=False),
        Route("/ui/login", login_page, methods=["GET"], include_in_schema=False),
        Route("/ui/login", login, methods=["POST"], include_in_schema=False),
        Route("/ui/logout", logout, methods=["POST"], include_in_schema=False),
        Route("/ui/static/{name}", static, methods=["GET"], include_in_schema=False),
        Route("/ui/runs", runs_page, methods=["GET"], include_in_schema=False),
        Route("/ui/runs/{run_id}", run_page, methods=["GET"], include_in_schema=False),
        Route("/ui/new", new_page, methods=["GET"], include_in_schema=False),
        Route("/ui/overview", overview_page, methods=["GET"], include_in_schema=False),
    ]
