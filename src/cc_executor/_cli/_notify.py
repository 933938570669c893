"""``notify`` and ``inbox``: notifications between projects on the command line.

An inbox is untrusted input: every piece of a message shown here (file names included)
has terminal control characters, bidirectional controls and zero-width characters
neutralised (:func:`cc_executor._text.inert`), names, reasons and errors cannot break their
line, and JSON output is pure ASCII standard JSON (no NaN). Nothing in a message is ever run
or followed; paths and commands in it are only displayed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Any

from cc_executor._cli._codes import EXIT_CANCELLED, EXIT_TIMEOUT
from cc_executor._text import inert

if TYPE_CHECKING:
    from cc_executor.notify import Entry, InboxProblem

EXIT_REFUSED = 1
EXIT_USAGE = 2
_TYPES = ("issue_fixed", "issue_report", "question", "ack")
_PREVIEW = 100


def _shown(text: str) -> str:
    text = inert(text)
    # Undecodable file names arrive as lone surrogates, which no terminal encoding takes.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _line(text: str) -> str:
    # A name or a reason stays on its line: a newline in a file name could forge entries,
    # and so could a line or paragraph separator where a terminal or a reader breaks on it.
    shown = _shown(text).replace("\n", "\\x0a").replace("\t", "\\x09")
    return shown.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _one_line(value: object, limit: int = _PREVIEW) -> str:
    text = " ".join(str(value).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return _shown(text)


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, ensure_ascii=True, allow_nan=False) + "\n")
    sys.stdout.flush()


def _fail(command: str, text: str) -> int:
    print(f"cc-executor {command}: {_line(text)}", file=sys.stderr)
    return EXIT_REFUSED


def _issue(text: str) -> int | str:
    from cc_executor.notify._message import issue_id

    try:
        return issue_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _fix(text: str) -> Any:
    from cc_executor.notify import Fix

    _issue, colon, description = text.partition(":")
    if not colon or not description.strip():
        # A fix without its description tells the receiver nothing it can check.
        raise argparse.ArgumentTypeError(f"expected 'ID: description', got {text!r}")
    try:
        return Fix.parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected 'ID: description': {exc}") from None


def _positive(kind: type[int] | type[float]) -> Any:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def add_parser(sub: Any) -> None:
    """Register ``notify`` and ``inbox`` on the subcommand set ``sub``."""
    p = sub.add_parser(
        "notify",
        help="send a notification into another project's inbox",
        description="Write one JSON message into PATH/.github/ISSUES/inbox/ (atomically, never "
        "over another file), validated against the notification schema. The commit is HEAD of "
        "this project's git repository. An issue_fixed message is refused (exit 1) while "
        "tracked files have uncommitted changes, or while HEAD is on no remote-tracking branch "
        "and a remote exists (--allow-unpushed lifts the latter).",
    )
    p.add_argument("--to", required=True, metavar="PATH", help="the receiving project's folder")
    p.add_argument(
        "--project",
        metavar="PATH",
        help="the sending project (default: the git top level of the current directory)",
    )
    p.add_argument("--type", choices=_TYPES, default="issue_fixed", help="(issue_fixed)")
    p.add_argument(
        "--issue",
        action="append",
        type=_issue,
        default=[],
        metavar="ID",
        help="an issue the message is about; repeat for several",
    )
    p.add_argument(
        "--fix",
        action="append",
        type=_fix,
        default=[],
        metavar="'ID: DESCRIPTION'",
        help="a fix (issue_fixed only); repeat for several",
    )
    p.add_argument("--message", metavar="TEXT", help="free text for the receiver")
    p.add_argument(
        "--verify-step",
        action="append",
        default=[],
        metavar="CMD",
        help="how the receiver can check the fix (text for a human; never run by anyone here)",
    )
    p.add_argument(
        "--from-run",
        metavar="RUN_ID",
        help="fill the fixes' test results from this run of the history (status, receipts)",
    )
    p.add_argument("--allow-unpushed", action="store_true", help="send even if HEAD is unpushed")
    p.add_argument("--dry-run", action="store_true", help="check and print, write nothing")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=notify_command)

    common = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: given before the action or after it, the option keeps its value.
    common.add_argument(
        "--project",
        metavar="PATH",
        default=argparse.SUPPRESS,
        help="the project (default: the enclosing git work tree)",
    )
    common.add_argument(
        "--json", action="store_true", default=argparse.SUPPRESS, help="JSON output"
    )
    p = sub.add_parser(
        "inbox",
        help="list, show, acknowledge or watch this project's inbox",
        description="Read .github/ISSUES/inbox/*.json (notifications) and "
        ".github/ISSUES/incoming/*.md (issues with YAML front matter) as untrusted input: "
        "bad files are reported with the reason, text is shown with control characters "
        "neutralised, and nothing in a message is ever run or followed. Without an action: "
        "list.",
    )
    p.add_argument(
        "--project", metavar="PATH", help="the project (default: the enclosing git work tree)"
    )
    p.add_argument("--json", action="store_true", help="JSON output")
    p.set_defaults(handler=inbox_list)
    actions = p.add_subparsers(dest="action", metavar="ACTION")
    q = actions.add_parser("list", parents=[common], help="list entries and problem files")
    q.set_defaults(handler=inbox_list)
    q = actions.add_parser("show", parents=[common], help="show one entry")
    q.add_argument("id", metavar="ID", help="file name, without extension, or unique prefix")
    q.add_argument(
        "--verify-runs",
        action="store_true",
        help="check the test runs the message cites against the local run history",
    )
    q.set_defaults(handler=inbox_show)
    q = actions.add_parser(
        "ack",
        parents=[common],
        help="move an entry to processed/, optionally replying",
        description="Move ID into the processed/ sub-folder. With --reply-to PATH, first write "
        "an 'ack' message into PATH's inbox; the path must be given here: a path inside the "
        "message is shown, never used.",
    )
    q.add_argument("id", metavar="ID", help="file name, without extension, or unique prefix")
    q.add_argument("--reply", action="store_true", help="reply with an ack (needs --reply-to)")
    q.add_argument("--reply-to", metavar="PATH", help="the sender's project folder, confirmed")
    q.add_argument("--message", metavar="TEXT", help="text of the ack")
    q.set_defaults(handler=inbox_ack)
    q = actions.add_parser(
        "watch",
        parents=[common],
        help="print entries as they arrive",
        description="Print each entry that arrives after the start (file-system events, or "
        "polling where they are unavailable). Exit 0 at --max-events or at --timeout without "
        "--max-events; 124 when --timeout ends it before --max-events entries; 130 on Ctrl-C.",
    )
    q.add_argument("--timeout", type=_positive(float), metavar="S", help="stop after S seconds")
    q.add_argument("--max-events", type=_positive(int), metavar="N", help="stop after N entries")
    q.add_argument("--poll", action="store_true", help="poll instead of file-system events")
    q.set_defaults(handler=inbox_watch)


def notify_command(args: argparse.Namespace) -> int:
    """Handler of ``notify``."""
    from cc_executor.notify import NotifyError, notify

    try:
        delivery = notify(
            args.to,
            project=args.project,
            type=args.type,
            issues=args.issue,
            fixes=args.fix,
            message=args.message,
            verification_steps=args.verify_step,
            from_run=args.from_run,
            allow_unpushed=args.allow_unpushed,
            dry_run=args.dry_run,
        )
    except NotifyError as exc:
        return _fail("notify", str(exc))
    if args.json:
        _print_json(
            {"path": str(delivery.path), "dry_run": delivery.dry_run, "message": delivery.message}
        )
    elif delivery.dry_run:
        print(json.dumps(delivery.message, indent=2, ensure_ascii=True))
        print(f"would write {_shown(str(delivery.path))}")
    else:
        print(_shown(str(delivery.path)))
    return 0


def _summary(entry: Entry | InboxProblem) -> list[str]:
    from cc_executor.notify import Issue, Message

    if isinstance(entry, Message):
        data = entry.data
        parts = [_one_line(data["type"]), f"from {_one_line(data['from'], 40)}"]
        if data.get("issue_numbers"):
            parts.append("issues " + _one_line(", ".join(map(str, data["issue_numbers"])), 40))
        parts.append(_one_line(data["timestamp"], 40))
        lines = [f"{_line(entry.id)}  " + "  ".join(parts)]
        if data.get("message"):
            lines.append(f"    {_one_line(data['message'])}")
        return lines
    if isinstance(entry, Issue):
        parts = ["issue"]
        if entry.priority is not None:
            parts.append(f"priority {_one_line(entry.priority, 20)}")
        if entry.labels:
            parts.append("labels " + _one_line(", ".join(entry.labels), 60))
        return [f"{_line(entry.id)}  " + "  ".join(parts), f"    {_one_line(entry.title)}"]
    return [f"! {_line(entry.id)}: {_line(entry.reason)}"]


def _project(args: argparse.Namespace) -> Any:
    return getattr(args, "project", None)


def _reconfigure_stdout() -> None:
    # Message text may hold characters the terminal's encoding lacks: escape, never crash.
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")


def inbox_list(args: argparse.Namespace) -> int:
    """Handler of ``inbox`` and ``inbox list``. Exit 0 even when some files are problems
    (they are part of the listing); 1 when the project folder does not exist."""
    from pathlib import Path

    from cc_executor.notify import Issue, project_root, read_inbox

    root = project_root(_project(args))
    if not Path(root).is_dir():
        return _fail("inbox", f"{root} is not a directory")
    inbox = read_inbox(root)
    if getattr(args, "json", False):
        _print_json(inbox.to_dict())
        return 0
    _reconfigure_stdout()
    for item in [*inbox.entries, *inbox.problems]:
        print("\n".join(_summary(item)))
    issues = sum(isinstance(e, Issue) for e in inbox.entries)
    print(
        f"{len(inbox.entries) - issues} message(s), {issues} issue(s), "
        f"{len(inbox.problems)} problem file(s) in {_line(str(root))}"
    )
    return 0


def _fix_lines(fix: dict[str, Any], checks: dict[str, Any]) -> list[str]:
    lines = [
        f"  - {_one_line(fix['issue'], 40)} [{_one_line(fix['status'], 40)}] "
        f"{_one_line(fix['description'], 200)}"
    ]
    result = fix.get("test_result")
    if isinstance(result, dict):
        receipts = ", ".join(
            f"{_one_line(a['name'], 20)} {a['size']} B sha256 {_one_line(a['sha256'], 64)}"
            for a in result["artifacts"]
        )
        exit_code = result.get("exit_code")
        lines.append(
            f"      test run {_one_line(result['run_id'], 64)}: {_one_line(result['status'], 40)}"
            + (f" (exit {exit_code})" if isinstance(exit_code, int) else "")
            + f"; command: {_one_line(' '.join(map(str, result.get('argv', []))), 200)}"
        )
        lines.append(f"      receipts: {receipts or 'none'}")
        check = checks.get(str(result["run_id"]))
        if check is not None:
            lines.append(f"      local history: {check.state} ({_one_line(check.detail, 200)})")
    elif isinstance(result, str):
        lines.append(f"      test result: {_one_line(result, 200)}")
    return lines


def _show_message(data: dict[str, Any], checks: dict[str, Any]) -> list[str]:
    lines = [
        f"type:      {_one_line(data['type'])}",
        f"from:      {_one_line(data['from'])}",
        f"to:        {_one_line(data['to'])}",
        f"sent:      {_one_line(data['timestamp'])}",
    ]
    if "commit_sha" in data:
        lines.append(f"commit:    {_one_line(data['commit_sha'])}")
    if data.get("issue_numbers"):
        lines.append(f"issues:    {_one_line(', '.join(map(str, data['issue_numbers'])), 400)}")
    if "in_reply_to" in data:
        lines.append(f"replying:  {_one_line(data['in_reply_to'])}")
    if "reply_to" in data:
        lines.append(
            f"reply_to:  {_one_line(data['reply_to'], 400)} (not used unless you confirm it: "
            "inbox ack ID --reply-to PATH)"
        )
    if data.get("fixes_implemented"):
        lines.append("fixes:")
        for fix in data["fixes_implemented"]:
            lines.extend(_fix_lines(fix, checks))
    if data.get("verification_steps"):
        lines.append("verification steps (for you to review; cc-executor runs nothing):")
        lines.extend(f"  - {_one_line(step, 400)}" for step in data["verification_steps"])
    known = {
        "type", "from", "to", "timestamp", "commit_sha", "issue_numbers", "in_reply_to",
        "reply_to", "fixes_implemented", "verification_steps", "message",
    }  # fmt: skip
    others = sorted(key for key in data if key not in known)
    if others:
        lines.append(f"other fields: {_one_line(', '.join(others), 400)}")
    if "message" in data:
        lines.append("message:")
        # Only "\n" breaks lines: a "\r" (or any other separator) is shown as an escape.
        lines.extend(f"  {_shown(line)}" for line in str(data["message"]).split("\n"))
    return lines


def inbox_show(args: argparse.Namespace) -> int:
    """Handler of ``inbox show``: exit 0 for an entry, 1 for a problem file or no match."""
    from cc_executor.notify import (
        EntryNotFound,
        Issue,
        Message,
        check_evidence,
        find,
        read_inbox,
    )

    inbox = read_inbox(_project(args))
    try:
        entry = find(inbox, args.id)
    except EntryNotFound as exc:
        return _fail("inbox", str(exc))
    checks: dict[str, Any] = {}
    if isinstance(entry, Message) and args.verify_runs:
        for fix in entry.data.get("fixes_implemented", []):
            result = fix.get("test_result")
            if isinstance(result, dict):
                check = check_evidence(result)
                checks[check.run_id] = check
    if getattr(args, "json", False):
        data = entry.to_dict()
        if checks:
            data["evidence_checks"] = [
                {"run_id": c.run_id, "state": c.state, "detail": c.detail} for c in checks.values()
            ]
        _print_json(data)
        return 0 if isinstance(entry, Message | Issue) else EXIT_REFUSED
    _reconfigure_stdout()
    print(f"id:        {_line(entry.id)}")
    if isinstance(entry, Message):
        print("\n".join(_show_message(entry.data, checks)))
        return 0
    if isinstance(entry, Issue):
        print(f"title:     {_one_line(entry.title, 400)}")
        if entry.priority is not None:
            print(f"priority:  {_one_line(entry.priority)}")
        if entry.labels:
            print(f"labels:    {_one_line(', '.join(entry.labels), 400)}")
        print(_shown(entry.body.rstrip("\n")))
        return 0
    print(f"problem:   {_line(entry.reason)}")
    return EXIT_REFUSED


def inbox_ack(args: argparse.Namespace) -> int:
    """Handler of ``inbox ack``."""
    from cc_executor.notify import (
        EntryNotFound,
        Message,
        NotifyError,
        acknowledge,
        find,
        read_inbox,
    )

    if args.reply and args.reply_to is None:
        hint = ""
        try:
            entry = find(read_inbox(_project(args)), args.id)
        except EntryNotFound:
            entry = None
        if isinstance(entry, Message) and "reply_to" in entry.data:
            hint = (
                f"; the message names {_one_line(entry.data['reply_to'], 400)}, which is not "
                "used unless you pass it yourself"
            )
        print(
            f"cc-executor inbox: --reply needs --reply-to PATH (the sender's folder){hint}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        done = acknowledge(
            args.id, project=_project(args), reply_to=args.reply_to, message=args.message
        )
    except NotifyError as exc:
        return _fail("inbox", str(exc))
    if getattr(args, "json", False):
        _print_json(
            {
                "id": done.entry.id,
                "moved_to": str(done.moved_to),
                "reply": None if done.reply is None else str(done.reply.path),
            }
        )
        return 0
    print(f"moved {_line(done.entry.id)} to {_line(str(done.moved_to))}")
    if done.reply is not None:
        print(f"sent ack to {_line(str(done.reply.path))}")
    return 0


def inbox_watch(args: argparse.Namespace) -> int:
    """Handler of ``inbox watch``."""
    import contextlib
    from pathlib import Path

    from cc_executor.notify import NotifyError, watch

    def ready(folder: Path, mechanism: str) -> None:
        print(
            f"cc-executor inbox: watching {_line(str(folder))} ({mechanism})",
            file=sys.stderr,
            flush=True,
        )

    as_json = getattr(args, "json", False)
    if not as_json:
        _reconfigure_stdout()
    count = 0
    try:
        stream = watch(
            _project(args),
            timeout=args.timeout,
            max_events=args.max_events,
            polling=args.poll,
            on_ready=ready,
        )
        with contextlib.closing(stream):
            for item in stream:
                count += 1
                if as_json:
                    _print_json(item.to_dict())
                else:
                    print("\n".join(_summary(item)), flush=True)
    except NotifyError as exc:
        return _fail("inbox", str(exc))
    except KeyboardInterrupt:
        return EXIT_CANCELLED
    if args.max_events is not None and count < args.max_events:
        return EXIT_TIMEOUT
    return 0
