"""A run's workspace for a 10,000-file repository: made and committed, against git's own
``git worktree add`` (issue 22: within 1.2x of it).

``.venv/bin/python benchmarks/bench_workspace.py [--files N] [--reps N] [--dir DIR]``

Each repetition times, in a random order, (a) plain ``git worktree add -b BRANCH PATH HEAD``
and (b) cc-executor's whole workspace: ``create_workspace`` (reading the repository's
configuration, its status for the uncommitted-changes list, ``git worktree add``) then one
file written and ``finish_workspace`` (``git add -A``, the commit, the patch, the list of
changes, the receipt). Removing the worktrees is not timed. The figure is the median of
the per-repetition ratios, with the medians of both.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from cc_executor._run._workspace import create_workspace, finish_workspace


def git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True)


def make_repo(root: Path, files: int) -> Path:
    repo = root / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    git(repo, "config", "user.name", "bench")
    git(repo, "config", "user.email", "bench@localhost")
    for n in range(files):
        folder = repo / f"d{n // 100:03d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{n:05d}.txt").write_text(f"file {n}\n" * 4)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "files")
    return repo


def plain(repo: Path, root: Path, n: int) -> tuple[float, float]:
    """``git worktree add`` alone, then git doing the whole job by hand (add, one file,
    ``git add -A``, ``git commit``): the times of both."""
    path = root / f"plain-{n}"
    began = time.perf_counter()
    git(repo, "worktree", "add", "-q", "-b", f"plain/{n}", str(path), "HEAD")
    made = time.perf_counter() - began
    Path(path, "d000", "f00000.txt").write_text("changed\n")
    git(path, "add", "-A")
    git(path, "commit", "-q", "--no-verify", "-m", "by hand")
    whole = time.perf_counter() - began
    git(repo, "worktree", "remove", "--force", str(path))
    git(repo, "branch", "-D", "-q", f"plain/{n}")
    return made, whole


def ours(repo: Path, root: Path, n: int) -> tuple[float, float]:
    """cc-executor's workspace: made, then one file, then committed with its receipt."""
    run_dir = root / f"run-{n}"
    run_dir.mkdir()
    began = time.perf_counter()
    ws = create_workspace("worktree", str(repo), f"bench-{n}", str(run_dir))
    made = time.perf_counter() - began
    Path(ws.path, "d000", "f00000.txt").write_text("changed\n")
    finish_workspace(ws, "ok")
    whole = time.perf_counter() - began
    git(repo, "worktree", "remove", "--force", ws.path)
    git(repo, "branch", "-D", "-q", ws.branch)
    shutil.rmtree(run_dir)
    return made, whole


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=9)
    parser.add_argument("--dir", help="where the repository goes (default: the temp folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-ws-", dir=args.dir))
    try:
        repo = make_repo(root, args.files)
        plain(repo, root, -1)  # warm-up: the page cache holds the objects for both
        ours(repo, root, -1)
        rng = random.Random(22)
        times: dict[str, list[tuple[float, float]]] = {"plain": [], "ours": []}
        for n in range(args.reps):
            order = [("plain", plain), ("ours", ours)]
            rng.shuffle(order)
            for name, fn in order:
                times[name].append(fn(repo, root, n))
        load = os.getloadavg()[0]
        print(f"{args.files} files, {args.reps} repetitions, {root} (load average {load:.2f})")
        print("| what | median | ratio (median of the per-repetition ratios) |")
        print("|---|---|---|")

        def row(what: str, mine: list[float], base: list[float], against: str) -> None:
            ratios = [m / b for m, b in zip(mine, base, strict=True)]
            low, _, high = statistics.quantiles(ratios, n=4)
            print(
                f"| {what} | {statistics.median(mine) * 1000:.0f} ms | "
                f"**{statistics.median(ratios):.2f}x** {against} (quartiles {low:.2f}-{high:.2f}) |"
            )

        add = [t[0] for t in times["plain"]]
        by_hand = [t[1] for t in times["plain"]]
        print(f"| `git worktree add` | {statistics.median(add) * 1000:.0f} ms | 1 |")
        print(f"| git by hand: add + one file + `add -A` + `commit` | "
              f"{statistics.median(by_hand) * 1000:.0f} ms | |")  # fmt: skip
        made = [t[0] for t in times["ours"]]
        whole = [t[1] for t in times["ours"]]
        row("cc-executor: workspace made", made, add, "of `git worktree add`")
        row("cc-executor: made + one file + committed + receipt", whole, by_hand, "of git by hand")
        row("(the same)", whole, add, "of `git worktree add` alone")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
