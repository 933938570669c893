"""``history``, ``show``, ``export``, ``verify`` and ``prune``: the run history on the command line.

Everything shown comes from files and model output, so it is printed through
:func:`cc_executor._text.inert`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, BinaryIO

from cc_executor._text import duration_s, inert

if TYPE_CHECKING:
    from cc_executor._store import HistoryStore, RunRecord


def duration(text: str) -> float:
    """``30s``, ``15m``, ``12h``, ``7d``, ``2w`` as seconds."""
    seconds = duration_s(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"expected a duration like 30m, 12h or 7d, got {text!r}")
    return seconds


def since(text: str) -> float:
    """``--since``: a duration ago (``2h``) or an ISO date/time, as a timestamp."""
    try:
        return time.time() - duration(text)
    except argparse.ArgumentTypeError:
        pass
    from datetime import datetime

    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a duration (2h, 7d) or an ISO date (2026-11-24T10:00), got {text!r}"
        ) from None
    return moment.timestamp()


def positive(text: str) -> int:
    """A whole number of at least 1 (``verify --last``, ``history --limit``)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


#: What ``history --kind`` accepts: the kinds of run the history records.
KINDS = ("run", "exec", "tasks")


def _statuses() -> tuple[str, ...]:
    from cc_executor._status import Status

    return tuple(s.value for s in Status if s is not Status.USAGE_ERROR)


def add_parsers(sub: Any) -> None:
    """Register the history commands on the subcommand set ``sub``."""
    from cc_executor._agents import agent_names

    p = sub.add_parser(
        "history", help="list past runs", description="List past runs, newest first."
    )
    p.add_argument(
        "--status",
        choices=_statuses(),
        metavar="STATUS",
        help="only runs with this status: " + ", ".join(_statuses()),
    )
    p.add_argument("--since", type=since, metavar="WHEN", help="e.g. 2h, 7d, 2026-11-24")
    # A name no run can have (a misspelt one) is refused, not an empty answer.
    p.add_argument(
        "--agent",
        choices=agent_names(),
        metavar="AGENT",
        help="only runs of this agent: " + ", ".join(agent_names()),
    )
    p.add_argument("--kind", choices=KINDS, help="only runs of this kind: " + ", ".join(KINDS))
    p.add_argument(
        "--batch",
        metavar="ID",
        help="only runs of this batch (run_many, cc-executor batch): e.g. --batch nightly-docs",
    )
    p.add_argument(
        "--limit",
        type=positive,
        metavar="N",
        help="at most N runs (default: 20); with --batch, every run of the batch",
    )
    p.add_argument("--json", action="store_true", help="one JSON array")
    p.set_defaults(handler=history)

    p = sub.add_parser("show", help="show one run", description="Show one run's record.")
    p.add_argument("run_id", metavar="RUN_ID", help="the id or a unique prefix (6+ chars)")
    p.add_argument("--events", action="store_true", help="render the transcript")
    p.add_argument("--json", action="store_true", help="the record as one JSON object")
    p.set_defaults(handler=show)

    p = sub.add_parser("export", help="export the history as JSON or CSV")
    p.add_argument("--format", choices=("json", "csv"), default="json", help="output format")
    p.add_argument("--output", metavar="FILE", help="write there instead of stdout")
    p.add_argument(
        "--since", type=since, metavar="WHEN", help="only runs since then: 2h, 7d, 2026-11-24"
    )
    p.set_defaults(handler=export)

    p = sub.add_parser(
        "verify",
        help="check runs against their receipts",
        description="Recompute the sha256 of every stored artifact of a run and compare it with "
        "the receipt recorded when the run ended, and check the record's own fields (status, "
        "exit code, cost, ...) against the record's receipt: an HMAC-SHA256 with the key in "
        "the file $CC_EXECUTOR_RECEIPT_KEY_FILE names, else an unkeyed sha256. Exit 0 only "
        "if every run checked exists, completed, and is unaltered.",
    )
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("run_id", nargs="?", metavar="RUN_ID", help="the id or a unique prefix")
    target.add_argument(
        "--last", type=positive, metavar="N", help="the N most recent runs (N >= 1)"
    )
    p.add_argument("--json", action="store_true", help="one JSON object")
    p.set_defaults(handler=verify_runs)

    p = sub.add_parser("prune", help="delete old runs and their files")
    p.add_argument(
        "--older-than",
        type=duration,
        required=True,
        metavar="DURATION",
        help="delete runs started longer ago than this: 30m, 12h, 7d, 2w",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    p.set_defaults(handler=prune)

    p = sub.add_parser(
        "import-history",
        help="copy a SQLite history into the PostgreSQL one",
        description="Copy every run of a machine's SQLite history (and the files of those runs "
        "still on this machine) into the history named by --history or $CC_EXECUTOR_HISTORY, "
        "a PostgreSQL database. Records keep their receipts. A run already there is left as "
        "it is: importing twice adds nothing.",
    )
    p.add_argument("source", metavar="SOURCE", help="the SQLite history: a file or sqlite:///path")
    p.set_defaults(handler=import_history)


def _open() -> HistoryStore:
    from cc_executor._store import HistoryError, open_store

    try:
        return open_store()
    except HistoryError as exc:
        raise SystemExit(f"cc-executor: {exc}") from None


@contextmanager
def _reading(command: str) -> Iterator[HistoryStore]:
    """The history opened read-only for ``command`` (nothing is created, migrated or
    recovered: it works on a read-only mount), closed afterwards. The rows it skipped as
    malformed are printed as warnings; a history that cannot be read is one line naming
    the file, and exit code 1."""
    from cc_executor._store import HistoryError, open_store

    try:
        store = open_store(readonly=True)
    except HistoryError as exc:
        raise SystemExit(f"cc-executor {command}: {inert(str(exc))}") from None
    try:
        yield store
    except HistoryError as exc:
        raise SystemExit(f"cc-executor {command}: {inert(str(exc))}") from None
    finally:
        store.close()
        for warning in getattr(store, "warnings", ()):
            print(f"cc-executor {command}: warning: {inert(warning)}", file=sys.stderr)


def _status(record: RunRecord) -> str:
    """The status shown for ``record``: a run whose supervisor is gone, which a read-only
    opening does not mark ``interrupted``, says so."""
    from cc_executor._store import stale

    return f"{record.status} (supervisor gone?)" if stale(record) else record.status


def _when(ts: float | None) -> str:
    if not ts:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _print_json(data: Any) -> None:
    import json

    from cc_executor._text import inert_json

    text = json.dumps(data, ensure_ascii=False)
    sys.stdout.write((inert_json(text) if sys.stdout.isatty() else text) + "\n")


def history(args: argparse.Namespace) -> int:
    """Handler of ``history``."""
    from cc_executor._store import Query

    with _reading("history") as store:
        records = store.query(
            Query(
                status=args.status,
                since=args.since,
                agent=args.agent,
                kind=args.kind,
                batch_id=args.batch,
                # A batch is listed whole unless asked otherwise: it is the unit looked at.
                limit=args.limit if args.limit is not None else (None if args.batch else 20),
            )
        )
        empty = not records and store.count() == 0
    if args.json:
        _print_json([r.to_dict() for r in records])
        return 0
    if not records:
        print("no runs recorded yet" if empty else "no runs match")
        return 0
    header = (
        f"{'RUN ID':<26}  {'STARTED':<19}  {'KIND':<5}  {'STATUS':<13}  {'TIME':>8}  "
        f"{'COST':>8}  WHAT"
    )
    print(header)
    for r in records:
        what = r.prompt_preview if r.kind == "run" else " ".join(r.argv)
        cost = f"${r.cost_usd:.4f}" if r.cost_usd is not None else "-"
        took = f"{r.duration_s:.1f}s" if r.duration_s is not None else "-"
        print(
            f"{r.id:<26}  {_when(r.started_at):<19}  {r.kind:<5}  {_status(r):<13}  {took:>8}  "
            f"{cost:>8}  {inert((what or '')[:60])}"
        )
    return 0


def _show_record(record: RunRecord) -> None:
    fields = record.to_dict()
    artifacts = fields.pop("artifacts")
    warnings = fields.pop("warnings")
    for name in ("started_at", "ended_at"):
        fields[name] = _when(fields[name])
    fields["status"] = _status(record)
    for name, value in fields.items():
        if value is None or value == []:
            continue
        print(f"{name:>18}: {inert(str(value))}")
    for artifact in artifacts:
        short = (
            f" (incomplete: {artifact['unwritten']} more bytes could not be written)"
            if artifact.get("unwritten")
            else ""
        )
        print(
            f"{'artifact':>18}: {artifact['name']} {artifact['size']} bytes sha256 "
            f"{artifact['sha256']} {artifact['path']}{short}"
        )
    for warning in warnings:
        print(f"{'warning':>18}: {inert(warning)}")


def _render_events(record: RunRecord, store: HistoryStore) -> None:
    """The transcript of ``record``'s event log: its file on this machine, else the copy
    the history holds (a PostgreSQL history keeps one of every run's files)."""
    import tempfile

    from cc_executor._store import HOST

    artifact = next((a for a in record.artifacts if a.name in ("events", "stdout")), None)
    log = artifact.path if artifact is not None else None
    copy = None
    if artifact is not None and (record.host not in (None, HOST) or not os.path.isfile(log or "")):
        # A run of another machine (or whose folder is gone): the history's own copy.
        copy = store.file_content(record.id, artifact.name)
    if copy is not None:
        with tempfile.TemporaryFile() as file:
            file.write(copy)
            file.seek(0)
            _print_events(record, file)
        return
    if log is None and record.run_dir:
        # No receipts: the run never ended (interrupted, or still running); the log it was
        # writing is in its folder, as far as it got, or in the copy streamed to the
        # history while it ran (a PostgreSQL history; its worker may be gone).
        from pathlib import Path

        partial = Path(record.run_dir) / "stdout.log"
        if record.host in (None, HOST) and partial.is_file():
            log = str(partial)
            print(f"(the run did not end: {record.status}; the transcript so far)")
        else:
            name = "events" if record.kind == "run" else "stdout"
            copy = store.file_content(record.id, name)
            if copy is not None:
                print(f"(the run did not end: {record.status}; the transcript streamed so far)")
                with tempfile.TemporaryFile() as file:
                    file.write(copy)
                    file.seek(0)
                    _print_events(record, file)
                return
    if log is None:
        print("(no event log recorded)")
        return
    try:
        with open(log, "rb") as f:
            _print_events(record, f)
    except OSError as exc:
        print(f"(event log unreadable: {exc.strerror})")


def _decisions(store: HistoryStore, run_id: str) -> list[dict[str, Any]]:
    """The run's permission decisions; none from a history too old to hold them."""
    from cc_executor._store import HistoryError

    try:
        return store.permission_decisions(run_id)
    except HistoryError:
        return []


def _print_events(record: RunRecord, log: BinaryIO) -> None:
    from cc_executor._agents._claude import ClaudeStreamParser
    from cc_executor._agents._types import (
        ApiRetryEvent,
        NoiseEvent,
        ResultEvent,
        TextEvent,
        ThinkingEvent,
        ToolResultEvent,
        ToolUseEvent,
    )

    for event in ClaudeStreamParser().parse_log(log):
        if isinstance(event, TextEvent):
            print(f"assistant: {inert(event.text)}")
        elif isinstance(event, ThinkingEvent):
            print(f"thinking: {inert(event.text[:2000])}")
        elif isinstance(event, ToolUseEvent):
            print(f"tool call: {event.name} {inert(str(dict(event.input))[:500])}")
        elif isinstance(event, ToolResultEvent):
            mark = "tool error" if event.is_error else "tool result"
            print(f"{mark}: {inert(event.content[:500])}")
        elif isinstance(event, ApiRetryEvent):
            print(f"api retry: status {event.error_status} {event.error or ''}")
        elif isinstance(event, ResultEvent):
            state = "error" if event.is_error else event.subtype
            print(f"result ({state}): {inert((event.result or '')[:2000])}")
        elif isinstance(event, NoiseEvent) and record.kind == "exec":
            print(inert(event.text))


def show(args: argparse.Namespace) -> int:
    """Handler of ``show``."""
    with _reading("show") as store:
        record = store.get(args.run_id)  # an ambiguous prefix: one line, exit code 1
        if record is None:
            # A short prefix is never looked up: say so rather than "no run".
            short = " (an id prefix needs 6 characters or more)" if len(args.run_id) < 6 else ""
            print(
                f"cc-executor show: no run {args.run_id!r} in the history{short}", file=sys.stderr
            )
            return 1
        decisions = _decisions(store, record.id)
        if args.json:
            _print_json({**record.to_dict(), "permission_decisions": decisions})
            return 0
        _show_record(record)
        for d in decisions:
            # The tool input is the model's: one line, made inert, cut short.
            shown = inert(json.dumps(d["tool_input"], ensure_ascii=False))
            shown = shown if len(shown) <= 120 else shown[:117] + "..."
            how = d["decided_by"] + (f" ({d['rule']})" if d.get("rule") else "")
            print(
                f"{'permission':>18}: {_when(d['decided_at'])} {d['decision']} "
                f"{d['tool_name']} {shown} by {inert(how)}"
                + (f": {inert(d['message'])}" if d.get("message") else "")
            )
        if args.events:
            print()
            _render_events(record, store)
    return 0


CSV_FIELDS = (
    "id", "kind", "agent", "status", "started_at", "ended_at", "duration_s", "exit_code",
    "signal", "session_id", "cost_usd", "input_tokens", "output_tokens", "turns", "model",
    "cwd", "argv", "prompt_sha256", "prompt_preview", "result_preview", "error", "parent_id",
    "host", "run_dir", "warnings", "batch_id", "batch_key", "peak_memory_bytes", "cpu_time_s",
)  # fmt: skip


def export(args: argparse.Namespace) -> int:
    """Handler of ``export``."""
    import csv
    import io
    import json

    from cc_executor._store import Query

    with _reading("export") as store:
        records = store.query(Query(since=args.since))
    if args.format == "json":
        text = json.dumps([r.to_dict() for r in records], ensure_ascii=False, indent=1) + "\n"
    else:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            row = record.to_dict()
            row["argv"] = json.dumps(row["argv"])
            row["warnings"] = json.dumps(row["warnings"])
            writer.writerow(row)
        text = buffer.getvalue()
    if args.output:
        try:
            with open(args.output, "w", encoding="utf-8", newline="") as f:
                f.write(text)
        except OSError as exc:
            reason = "it is a folder" if isinstance(exc, IsADirectoryError) else exc.strerror
            if isinstance(exc, FileNotFoundError):
                reason = "its folder does not exist"
            print(f"cc-executor export: cannot write {args.output}: {reason}", file=sys.stderr)
            return 1
        print(f"exported {len(records)} runs to {args.output}", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def verify_runs(args: argparse.Namespace) -> int:
    """Handler of ``verify``."""
    from cc_executor._store import Query, verify
    from cc_executor._store._history import UNKEYED_NOTE

    with _reading("verify") as store:
        if args.run_id:
            targets = [(args.run_id, store.get(args.run_id))]
        else:
            targets = [(r.id, r) for r in store.query(Query(limit=args.last))]
        reports = [verify(record, run_id, store) for run_id, record in targets]
    keyed = any(r.keyed for r in reports)
    if args.json:
        _print_json(
            {
                "ok": all(r.ok for r in reports),
                "keyed": keyed,
                "runs": [r.to_dict() for r in reports],
            }
        )
    else:
        for report in reports:
            mark = "ok      " if report.ok else "FAILED  "
            facts = (
                f"exists={'yes' if report.exists else 'no'} "
                f"completed={'yes' if report.completed else 'no'} "
                f"unaltered={'yes' if report.unaltered else 'no'} "
                f"record={'yes' if report.record_unaltered else 'no'}"
            )
            print(f"{mark}{report.run_id}  {facts}")
            for problem in report.problems:
                print(f"        - {inert(problem)}")
            for note in report.notes:
                if note != UNKEYED_NOTE:
                    print(f"        note: {inert(note)}")
        if any(UNKEYED_NOTE in r.notes for r in reports):
            print(f"note: {UNKEYED_NOTE}")
    return 0 if reports and all(r.ok for r in reports) else 1


def prune(args: argparse.Namespace) -> int:
    """Handler of ``prune``."""
    import shutil

    from cc_executor._paths import runs_dir
    from cc_executor._store import Query

    cutoff = time.time() - args.older_than
    store = _open()
    try:
        if args.dry_run:
            doomed = [r for r in store.query(Query(until=cutoff)) if r.status != "running"]
        else:
            doomed = store.delete_before(cutoff)
    finally:
        store.close()
    root = runs_dir().resolve()
    removed = 0
    folders = [str(root / r.id) for r in doomed if r.run_dir and (root / r.id).is_dir()]
    workspaces = _prune_workspaces(folders, dry_run=args.dry_run)
    for record in doomed:
        if not record.run_dir:
            continue
        folder = (root / record.id).resolve()
        # Only ever delete our own run folders, whatever a record says.
        if folder.parent == root and folder.is_dir():
            if not args.dry_run:
                shutil.rmtree(folder, ignore_errors=True)
            removed += 1
    verb = "would remove" if args.dry_run else "removed"
    also = f", {workspaces} workspace(s)" if workspaces else ""
    print(f"{verb} {len(doomed)} runs ({removed} run folders{also}) older than {_when(cutoff)}")
    return 0


def _prune_workspaces(folders: list[str], *, dry_run: bool) -> int:
    """Discard the workspaces (worktree and branch) of the runs being pruned: their receipt
    goes with the run folder, and nothing would find them after it."""
    import os

    from cc_executor._run._workspace import RECEIPT_NAME, discard_for_runs

    if dry_run:
        return sum(os.path.isfile(os.path.join(f, RECEIPT_NAME)) for f in folders)
    return discard_for_runs(folders)


def import_history(args: argparse.Namespace) -> int:
    """Handler of ``import-history``."""
    from cc_executor._paths import runs_dir
    from cc_executor._store import HistoryError, Query, history_location, open_store
    from cc_executor._store._location import is_postgres, sqlite_path
    from cc_executor._store._mirror import MirroredStore
    from cc_executor._store._postgres import PostgresStore

    target = history_location()
    if not is_postgres(target):
        print(
            "cc-executor import-history: the history to import into is not a PostgreSQL one: "
            "give --history postgresql://... (before the command) or set CC_EXECUTOR_HISTORY",
            file=sys.stderr,
        )
        return 2
    try:
        path = sqlite_path(args.source)
    except HistoryError as exc:
        print(f"cc-executor import-history: {inert(str(exc))}", file=sys.stderr)
        return 2
    if not path.is_file():
        print(
            f"cc-executor import-history: no SQLite history at {inert(str(path))}", file=sys.stderr
        )
        return 2
    try:
        source = open_store(path, readonly=True)
    except HistoryError as exc:
        raise SystemExit(f"cc-executor import-history: {inert(str(exc))}") from None
    try:
        store = open_store()
        try:
            if not isinstance(store, (PostgresStore, MirroredStore)):  # is_postgres said so
                raise HistoryError(f"{target} is not a PostgreSQL history")
            added = kept = 0
            # Files are copied from the runs folders only (this home's, and the one beside
            # the file): the file is data, and its artifacts could name any file here.
            roots = [str(runs_dir()), str(path.parent / "runs")]
            for record in reversed(source.query(Query())):  # oldest first
                if store.import_record(record, files_under=roots):
                    added += 1
                else:
                    kept += 1
        finally:
            store.close()
    except HistoryError as exc:
        raise SystemExit(f"cc-executor import-history: {inert(str(exc))}") from None
    finally:
        source.close()
        for warning in source.warnings:
            print(f"cc-executor import-history: warning: {inert(warning)}", file=sys.stderr)
    print(f"imported {added} runs from {path} ({kept} already in the history)")
    return 0
