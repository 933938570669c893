"""The workspace of a run whose folder is on another machine (a fleet worker's), reached
from the receipt the history holds (in Python, on the command line and through the
service): the repository it names is used where it is reachable (shared storage), and
where it is not, ``diff`` shows the history's patch and ``merge`` says in one line what to
do (exit 2). A copy the history holds that does not match its receipt is refused."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from cc_executor._cli import main
from cc_executor._errors import WorkspaceError
from cc_executor._run._workspace import (
    PATCH_ARTIFACT,
    RECEIPT_ARTIFACT,
    workspace_diff,
    workspace_discard,
    workspace_list,
    workspace_merge,
    workspace_prune,
)
from cc_executor._store import Artifact, RunRecord, file_receipt, open_store
from tests._postgres import PostgresServer
from tests.run.test_workspace import finished, git, make_repo
from tests.service.conftest import launch

CLI = str(Path(sys.executable).parent / "cc-executor")


def test_a_repository_out_of_reach_is_said_in_one_line_and_diff_shows_the_patch(
    cc_home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """No git, no database: a receipt naming a repository this machine does not have."""
    run_dir = cc_home / "runs" / "r1"
    run_dir.mkdir(parents=True)
    patch = run_dir / "workspace.patch"
    patch.write_text("diff --git a/a.txt b/a.txt\n+a\n")
    gone = tmp_path / "not-mounted" / "repo"
    receipt = {
        "run_id": "r1",
        "mode": "worktree",
        "branch": "cc-executor/r1",
        "commit": "c" * 40,
        "base": "b" * 40,
        "patch_path": str(patch),
        "changes": [{"path": "a.txt", "kind": "added"}],
        "path": str(run_dir / "workspace" / "repo"),
        "repo": str(gone),
    }
    (run_dir / "workspace.json").write_text(json.dumps(receipt))
    assert workspace_diff("r1") == patch.read_text()
    with pytest.raises(WorkspaceError, match="which this machine cannot reach"):
        workspace_merge("r1")
    assert main(["workspace", "merge", "r1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert f"run r1's workspace is in {gone}, which this machine cannot reach" in err
    assert f"run this where {gone} is mounted at that same path" in err


def test_a_history_without_the_copy_says_which_history_to_use(cc_home: Path) -> None:
    """A SQLite history keeps no copies of a run's files: the run of another machine it
    holds (imported) has its workspace named, not read."""
    now = time.time()
    record = RunRecord(
        id="x1",
        kind="run",
        started_at=now,
        ended_at=now,
        status="ok",
        host="machine-one",
        run_dir="/srv/elsewhere/runs/x1",
        artifacts=[Artifact(name=RECEIPT_ARTIFACT, path="/srv/elsewhere/runs/x1/workspace.json",
                            size=2, sha256="0" * 64)],
    )  # fmt: skip
    store = open_store()
    try:
        store.start(record)
        store.finish(record)
    finally:
        store.close()
    with pytest.raises(WorkspaceError) as caught:
        workspace_diff("x1")
    assert str(caught.value) == (
        "run x1 was made on machine-one, and this history holds no copy of its workspace's "
        "receipt: give the fleet's PostgreSQL history (--history postgresql://...), or run "
        "this on machine-one"
    )


@pytest.mark.postgres
@pytest.mark.slow  # over 0.3 s: real git repositories, a PostgreSQL history, a server
async def test_a_run_of_another_machine_from_the_histories_copy(
    postgres_server: PostgresServer,
    cc_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from cc_executor._store._location import parse_postgres_url
    from cc_executor._store._postgres import PostgresStore

    postgres_server.empty()
    url = postgres_server.url()
    monkeypatch.setenv("CC_EXECUTOR_HISTORY", url)
    repo = make_repo(tmp_path / "shared" / "repo")
    # The worker's run folder: its receipt and patch are copied into the history, then the
    # folder is out of this machine's sight.
    worker_runs = tmp_path / "worker"
    ws = finished(repo, "w1", worker_runs, {"a.txt": "a\n"})
    receipt_path = Path(ws.run_dir) / "workspace.json"
    artifacts = [
        file_receipt(PATCH_ARTIFACT, Path(ws.run_dir) / "workspace.patch"),
        file_receipt(RECEIPT_ARTIFACT, receipt_path),
    ]
    now = time.time()
    record = RunRecord(
        id="w1",
        kind="run",
        cwd=ws.cwd,
        started_at=now,
        ended_at=now,
        status="ok",
        host="machine-one",
        run_dir=ws.run_dir,
        artifacts=[a for a in artifacts if a is not None],
    )
    pg = PostgresStore(parse_postgres_url(url), readonly=False)
    try:
        pg.finish(record)
    finally:
        pg.close()
    shutil.rmtree(ws.run_dir)

    # The service, on a history it shares with the worker, in the shared folder.
    service = launch(cc_home, repo.parent, env={"CC_EXECUTOR_HISTORY": url})
    try:
        async with service.client() as client:
            receipt = await client.get("/runs/w1/workspace")
            assert receipt.status_code == 200, receipt.text
            assert receipt.json()["changes"] == [{"path": "a.txt", "kind": "added"}]
            diff = await client.get("/runs/w1/workspace/diff")
            assert diff.status_code == 200, diff.text
            assert "+a" in diff.json()["patch"]
            merged = await client.post("/runs/w1/workspace/merge")
            assert merged.status_code == 200, merged.text
            assert merged.json()["merged"] == "fast-forward"
    finally:
        service.stop()
    assert (repo / "a.txt").read_text() == "a\n"

    assert "+a" in workspace_diff("w1")  # the shared repository's branch
    moved = repo.rename(tmp_path / "moved")
    # Out of reach: diff shows the patch the history holds; merge says what to do.
    assert "+a" in workspace_diff("w1")
    with pytest.raises(WorkspaceError) as caught:
        workspace_merge("w1")
    assert str(caught.value) == (
        f"run w1's workspace is in {repo} on machine-one, which this machine cannot reach: "
        f"run this where {repo} is mounted at that same path (or on machine-one); workspace "
        "diff shows the patch the history holds"
    )
    done = subprocess.run(
        [CLI, "workspace", "merge", "w1"], capture_output=True, text=True, check=False
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1, done.stderr
    moved.rename(repo)

    # A copy that is not the one the record receipted is refused.
    postgres_server.sql(
        "UPDATE run_files SET content = 'tampered'::bytea WHERE run_id = 'w1' "
        f"AND name = '{RECEIPT_ARTIFACT}'"
    )
    with pytest.raises(WorkspaceError, match="does not match its receipt"):
        workspace_merge("w1")
    assert git(repo, "branch", "--list", "cc-executor/w1").strip()


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_a_discard_leaves_the_worktrees_other_machines_made_in_a_shared_repository(
    cc_home: Path, tmp_path: Path
) -> None:
    repo = make_repo(tmp_path / "shared")
    finished(repo, "here", cc_home, {"a.txt": "a\n"})
    # A run of another machine, going on in its worktree: its folder is not seen here.
    theirs = finished(repo, "there", tmp_path / "worker", {"b.txt": "b\n"})
    hidden = Path(theirs.run_dir).rename(tmp_path / "hidden")
    assert main(["workspace", "discard", "here"]) == 0
    registered = git(repo, "worktree", "list", "--porcelain")
    assert f"worktree {theirs.path}\n" in registered
    assert "cc-executor/here" not in registered
    hidden.rename(theirs.run_dir)
    assert git(Path(theirs.path), "status", "--porcelain") == ""


@pytest.mark.slow  # over 0.3 s: real git repositories
def test_without_the_fleets_history_the_branch_in_the_shared_repository_is_used(
    cc_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = make_repo(tmp_path / "shared")
    theirs = finished(repo, "there", tmp_path / "worker", {"b.txt": "b\n"})
    Path(theirs.run_dir).rename(tmp_path / "hidden")  # on the worker's machine
    monkeypatch.chdir(repo)
    # Not this machine's to prune: its run may still be going on the other machine.
    assert workspace_prune(0, repo) == []
    [listed] = workspace_list(repo)
    assert listed["path"] == theirs.path
    assert "+b" in workspace_diff("there")
    assert workspace_merge("there")["merged"] == "fast-forward"
    assert (repo / "b.txt").read_text() == "b\n"
    done = workspace_discard("there")
    assert done["worktree_removed"] == [theirs.path]
    assert git(repo, "branch", "--list", "cc-executor/there") == ""
    assert f"worktree {theirs.path}\n" not in git(repo, "worktree", "list", "--porcelain")
