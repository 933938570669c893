"""``workspace list|diff|merge|discard|prune``: the workspaces of runs made with
``--workspace`` (docs/workspaces.md). Everything shown comes from git and files, so it is
printed through :func:`cc_executor._text.inert` (a diff is printed as it is: it is what
the user asked to read, on their terminal, like ``git diff``)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from cc_executor._text import inert


def add_parser(sub: Any) -> None:
    from cc_executor._cli._history import duration

    p = sub.add_parser("workspace", help="list, diff, merge or discard the workspaces of runs")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    a = actions.add_parser("list", help="the workspaces of this repository's runs")
    a.add_argument("--repo", metavar="DIR", help="the repository (default: the current folder)")
    a.add_argument("--json", action="store_true", help="one JSON object")
    a.set_defaults(handler=list_workspaces)
    for name, handler, what in (
        ("diff", diff, "print the changes of a run's branch since its base, as a patch"),
        ("merge", merge, "bring a run's branch into your tree (fast-forward or merge commit)"),
        ("discard", discard, "remove a run's worktree and branch"),
    ):
        a = actions.add_parser(name, help=what)
        a.add_argument("run_id", metavar="RUN_ID", help="the run whose workspace it is")
        if name != "diff":
            a.add_argument("--json", action="store_true", help="one JSON object")
        if name == "discard":
            a.add_argument(
                "--remote",
                action="store_true",
                help="also delete the branch the run pushed (a fleet or --repo run's) from "
                "the remote (default: it stays there)",
            )
        a.set_defaults(handler=handler)
    a = actions.add_parser("prune", help="discard the workspaces of old runs")
    a.add_argument(
        "--older-than",
        type=duration,
        default=duration("7d"),
        metavar="DURATION",
        help="runs started longer ago than this (default 7d): 30m, 12h, 7d, 2w",
    )
    a.add_argument("--repo", metavar="DIR", help="the repository (default: the current folder)")
    a.add_argument("--dry-run", action="store_true", help="say what would go, remove nothing")
    a.set_defaults(handler=prune)


def _fail(exc: Exception) -> int:
    from cc_executor._errors import WorkspaceConflict

    print(f"cc-executor workspace: {inert(str(exc))}", file=sys.stderr)
    # A conflict is an outcome (1); a workspace that cannot be found or used is a usage error.
    return 1 if isinstance(exc, WorkspaceConflict) else 2


def _json(data: Any) -> None:
    import orjson

    from cc_executor._payload import versioned

    sys.stdout.write(orjson.dumps(versioned(data)).decode() + "\n")


def list_workspaces(args: argparse.Namespace) -> int:
    from cc_executor._errors import WorkspaceError
    from cc_executor._run._workspace import workspace_list

    try:
        found = workspace_list(args.repo)
    except WorkspaceError as exc:
        return _fail(exc)
    if args.json:
        _json({"workspaces": found})
        return 0
    if not found:
        print("no workspaces")
    for item in found:
        changes = item.get("changes") or []
        where = item.get("path") if item.get("worktree") else "(no worktree)"
        print(inert(f"{item['run_id']}  {item['branch']}  {len(changes)} file(s) changed  {where}"))
    return 0


def diff(args: argparse.Namespace) -> int:
    from cc_executor._errors import WorkspaceError
    from cc_executor._run._workspace import workspace_diff

    try:
        sys.stdout.write(workspace_diff(args.run_id))
    except (WorkspaceError, OSError) as exc:
        return _fail(exc if isinstance(exc, WorkspaceError) else WorkspaceError(str(exc)))
    return 0


def _act(args: argparse.Namespace, action: Any, say: Any) -> int:
    from cc_executor._errors import WorkspaceError

    try:
        done = action(args.run_id)
    except WorkspaceError as exc:
        if args.json:
            _json({"run_id": args.run_id, "error": str(exc), "files": getattr(exc, "files", [])})
        return _fail(exc)
    if args.json:
        _json(done)
    else:
        print(inert(say(done)))
    return 0


def merge(args: argparse.Namespace) -> int:
    from cc_executor._run._workspace import workspace_merge

    return _act(
        args,
        workspace_merge,
        lambda d: (
            f"merged run {d['run_id']}: {d['merged']}"
            + (f" ({d['commit'][:12]})" if d.get("commit") else "")
        ),
    )


def discard(args: argparse.Namespace) -> int:
    from cc_executor._run._workspace import workspace_discard

    def say(done: dict[str, Any]) -> str:
        said = f"discarded the workspace of run {done['run_id']}"
        if done.get("remote_deleted"):
            return said + f"; its branch deleted from {', '.join(done['remote_deleted'])}"
        if "branch_deleted" in done and not args.remote and "worktree_removed" not in done:
            # A run of another machine: its branch is on a remote, and was left there.
            return said + "; its pushed branch stays on the remote (--remote deletes it)"
        return said

    return _act(args, lambda run_id: workspace_discard(run_id, remote=args.remote), say)


def prune(args: argparse.Namespace) -> int:
    from cc_executor._errors import WorkspaceError
    from cc_executor._run._workspace import workspace_prune

    try:
        gone = workspace_prune(args.older_than, args.repo, dry_run=args.dry_run)
    except WorkspaceError as exc:
        return _fail(exc)
    verb = "would remove" if args.dry_run else "removed"
    print(f"{verb} {len(gone)} workspace(s)" + (f": {', '.join(gone)}" if gone else ""))
    return 0
