"""Issue 18, third pass: a remote caller reaches the history only inside ``--allow-dir``.

A session of a run in another folder is not resumed (its whole conversation would reach the
caller's run), and the history's runs of other folders (prompts, answers, session ids) are
not listed, shown or verified.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cc_executor._agents._types import RunStatus
from cc_executor._run._runner import run
from cc_executor.testing import Reply, Rule, Script, Text
from tests._means import claude_path
from tests.service.conftest import CLI, Service
from tests.service.test_mcp import data, stdio_client_for

SCRIPT = Script(
    [
        Rule(match="SECRET-ELSEWHERE", answers=[Reply([Text("the outside answer")])]),
        # A resumed conversation is matched by its first prompt: its second turn answers.
        Rule(
            match="inside question",
            answers=[Reply([Text("the inside answer")]), Reply([Text("went on")])],
        ),
    ]
)


@pytest.mark.cli
async def test_the_session_of_a_run_in_another_folder_is_not_resumed(
    start: Callable[..., Service], bed: Any, root: Path, tmp_path: Path
) -> None:
    service = start()
    outside = tmp_path / "outside"
    outside.mkdir()
    async with bed(SCRIPT) as b, service.client() as client:
        # A run of the same account and history, in a folder the server does not allow.
        local = await run(
            "SECRET-ELSEWHERE: what is in this folder?",
            agent_path=claude_path(),
            cwd=outside,
            env=b.server.claude_env(home=b.home, max_retries=0),
            heartbeat_s=0,
        )
        assert local.status is RunStatus.OK, local.error
        assert local.session_id
        inside = await client.post(
            "/runs", json={"prompt": "inside question", "options": b.options()}
        )
        assert inside.status_code == 202, inside.text
        inside_id = inside.json()["run_id"]
        inside_run = await _finished(client, inside_id)
        assert inside_run["status"] == "ok", inside_run

        refused = await client.post(
            "/runs",
            json={"prompt": "go on", "options": b.options(resume=local.session_id)},
        )
        assert refused.status_code == 403, refused.text
        message = refused.json()["error"]["message"]
        assert local.session_id in message
        assert "allowed directories" in message
        assert "\n" not in message
        unknown = await client.post(
            "/runs",
            json={"prompt": "go on", "options": b.options(resume="0" * 8 + "-1111-2222")},
        )
        assert unknown.status_code == 403, unknown.text

        resumed = await client.post(
            "/runs",
            json={
                "prompt": "go on",
                "options": b.options(resume=inside_run["result"]["session_id"]),
            },
        )
        assert resumed.status_code == 202, resumed.text
        resumed_run = await _finished(client, resumed.json()["run_id"])

        prompts = [r.prompt for r in b.server.message_requests]
        bodies = [json.dumps(r.body) for r in b.server.message_requests]
    assert resumed_run["status"] == "ok", resumed_run
    assert resumed_run["result"]["result"] == "went on"
    # The outside conversation reached the model only in its own run.
    assert sum("SECRET-ELSEWHERE" in body for body in bodies) == 1, prompts


def recorded_exec(cwd: Path, word: str) -> str:
    """The id of a finished ``cc-executor exec echo WORD`` run in ``cwd``."""
    done = subprocess.run(
        [CLI, "exec", "--json", "--", "echo", word],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return str(json.loads(done.stdout)["run_id"])


async def test_runs_of_other_folders_are_not_listed_shown_or_verified(
    start: Callable[..., Service], cc_home: Path, root: Path, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    elsewhere = recorded_exec(outside, "SECRET-ELSEWHERE")
    here = recorded_exec(root, "inside-word")
    service = start()
    async with service.client() as client:
        listed = (await client.get("/runs")).json()["runs"]
        shown = await client.get(f"/runs/{elsewhere}")
        own = await client.get(f"/runs/{here}")
    ids = [r["run_id"] for r in listed]
    assert here in ids
    assert elsewhere not in ids
    assert "SECRET-ELSEWHERE" not in json.dumps(listed)
    assert shown.status_code == 404, shown.text
    assert own.status_code == 200, own.text
    async with stdio_client_for(cc_home, root) as mcp:
        mcp_listed = data(await mcp.call_tool("list_runs", {}))["runs"]
        history = await mcp.read_resource("cc-executor://history")
        shown_mcp = await mcp.call_tool("get_run", {"run_id": elsewhere})
        verified_elsewhere = data(await mcp.call_tool("verify_run", {"run_id": elsewhere}))
        verified = data(await mcp.call_tool("verify_run", {"run_id": here}))
    assert [r["run_id"] for r in mcp_listed] == [here]
    assert "SECRET-ELSEWHERE" not in json.dumps([c.model_dump() for c in history.contents])
    assert shown_mcp.is_error
    assert shown_mcp.content[0].text == f"not_found: no run {elsewhere!r}"  # type: ignore[union-attr]
    # As for an id the history never had: nothing of that run is told.
    assert verified_elsewhere["problems"] == ["no such run in the history"], verified_elsewhere
    assert verified_elsewhere["artifacts"] == []
    assert verified["ok"] is True, verified


async def _finished(client: Any, run_id: str) -> dict[str, Any]:
    async with client.stream("GET", f"/runs/{run_id}/events") as stream:
        async for _ in stream.aiter_lines():
            pass
    body: dict[str, Any] = (await client.get(f"/runs/{run_id}")).json()
    return body


def _repo(path: Path) -> Path:
    path.mkdir(parents=True)
    for args in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(
            ["git", "-C", str(path), "-c", "user.name=T", "-c", "user.email=t@example.com", *args],
            check=True,
            capture_output=True,
        )
    return path


async def _workspace_run(repo: Path, agent: Path, word: str) -> str:
    """The id of a finished run of the command agent ``agent`` in a worktree of ``repo``."""
    result = await run(
        word, agent="command", agent_spec=agent, cwd=repo, workspace="worktree", heartbeat_s=0
    )
    assert result.status is RunStatus.OK, result.error
    assert result.workspace is not None
    return result.run_id


@pytest.mark.slow  # real git repositories and a server
async def test_a_workspace_run_belongs_to_the_folder_it_was_run_in(
    start: Callable[..., Service], cc_home: Path, root: Path, tmp_path: Path
) -> None:
    # Its record's cwd is the worktree in the run folder, outside every --allow-dir: the
    # repository the worktree is of says whose run it is, and nothing more is let in.
    agent = tmp_path / "cat.toml"
    agent.write_text(f'command = ["{sys.executable}", "-c", "print(input())"]\n')
    here = await _workspace_run(_repo(root / "repo"), agent, "inside-word")
    elsewhere = await _workspace_run(_repo(tmp_path / "outside"), agent, "SECRET-ELSEWHERE")
    service = start()
    async with service.client() as client:
        own = await client.get(f"/runs/{here}")
        shown = await client.get(f"/runs/{elsewhere}")
        listed = (await client.get("/runs")).json()["runs"]
        receipt = await client.get(f"/runs/{here}/workspace")
    assert own.status_code == 200, own.text
    assert own.json()["cwd"].startswith(str(cc_home)), own.json()  # in its run folder
    assert shown.status_code == 404, shown.text
    assert [r["run_id"] for r in listed] == [here]
    assert "SECRET-ELSEWHERE" not in json.dumps(listed)
    assert receipt.status_code == 200, receipt.text
    assert receipt.json()["repo"] == str(root / "repo")


def _branches(repo: Path) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "branch", "--list", "cc-executor/*"],
        check=True,
        capture_output=True,
        text=True,
    )
    return done.stdout


@pytest.mark.slow  # real git repositories and a server
async def test_the_workspaces_list_and_prune_stay_inside_the_allowed_folders(
    start: Callable[..., Service], root: Path, tmp_path: Path
) -> None:
    """Issue 22: `workspace list` and `workspace prune` over REST, scoped like the runs."""
    agent = tmp_path / "cat.toml"
    agent.write_text(f'command = ["{sys.executable}", "-c", "print(input())"]\n')
    repo, outside = _repo(root / "repo"), _repo(tmp_path / "outside")
    here = await _workspace_run(repo, agent, "inside-word")
    await _workspace_run(outside, agent, "SECRET-ELSEWHERE")
    service = start()
    reader = (service.home / "service-token-readonly").read_text().strip()
    async with service.client() as client:
        listed = await client.get("/workspaces", params={"repo": str(repo)})
        refused = await client.get("/workspaces", params={"repo": str(outside)})
        not_git = await client.get("/workspaces")  # the allowed root itself: no repository
        read_only = await client.post(
            "/workspaces/prune",
            json={"older_than": 0, "repo": str(repo)},
            headers={"Authorization": f"Bearer {reader}"},
        )
        kept = await client.post("/workspaces/prune", json={"older_than": "1h", "repo": str(repo)})
        dry = await client.post(
            "/workspaces/prune", json={"older_than": 0, "repo": str(repo), "dry_run": True}
        )
        bad = await client.post("/workspaces/prune", json={"older_than": "soon"})
        still = _branches(repo)
        pruned = await client.post("/workspaces/prune", json={"older_than": 0, "repo": str(repo)})
        after = await client.get("/workspaces", params={"repo": str(repo)})
    assert listed.status_code == 200, listed.text
    assert [(w["run_id"], w["worktree"]) for w in listed.json()["workspaces"]] == [(here, True)]
    assert listed.json()["workspaces"][0]["repo"] == str(repo)
    assert refused.status_code == 403, refused.text
    assert "SECRET-ELSEWHERE" not in refused.text
    assert not_git.status_code == 400, not_git.text
    assert read_only.status_code == 403, read_only.text
    assert read_only.json()["error"]["code"] == "read_only"
    assert kept.json()["pruned"] == [], kept.text
    assert kept.json()["dry_run"] is False
    assert dry.json()["pruned"] == [here], dry.text
    assert dry.json()["dry_run"] is True
    assert bad.status_code == 400, bad.text
    assert "older_than" in bad.json()["error"]["message"]
    assert f"cc-executor/{here}" in still  # neither the reader, 1h nor the dry run removed it
    assert pruned.json()["pruned"] == [here], pruned.text
    assert after.json()["workspaces"] == []
    assert _branches(repo) == ""
    assert _branches(outside) != ""  # not this server's to prune


@pytest.mark.slow  # real git repositories and a server
async def test_the_discard_endpoint_deletes_a_pushed_branch_when_asked(
    start: Callable[..., Service], cc_home: Path, tmp_path: Path
) -> None:
    """`workspace discard --remote` over REST: ?remote=true deletes the branch the run pushed."""
    bare = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    src = _repo(tmp_path / "src")
    subprocess.run(["git", "-C", str(src), "push", "-q", str(bare), "main"], check=True)
    agent = tmp_path / "cat.toml"
    agent.write_text(f'command = ["{sys.executable}", "-c", "print(input())"]\n')
    result = await run(
        "pushed", agent="command", agent_spec=agent, repo=f"file://{bare}",
        workspace="worktree", heartbeat_s=0,
    )  # fmt: skip
    assert result.status is RunStatus.OK, result.error
    branch = f"cc-executor/{result.run_id}"
    assert _branches(bare).strip() == branch
    # The run's clone is in its run folder: this server's folders include the data dir.
    service = start("--allow-dir", str(cc_home))
    async with service.client() as client:
        gone = await client.post(
            f"/runs/{result.run_id}/workspace/discard", params={"remote": "true"}
        )
    assert gone.status_code == 200, gone.text
    assert gone.json()["remote_deleted"] == [f"file://{bare}"]
    assert _branches(bare) == ""
