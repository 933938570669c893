"""Every example in README.md and docs/ (subfolders too) runs, as written: the docs stay true.

A fenced block whose language is a shell (``console``, ``bash``, ``sh``, ``shell``) or Python
(``python``, ``py``) is an example. Each runs for real in a fresh project folder: shell blocks
through bash with the installed ``cc-executor`` first on PATH, Python blocks in a subprocess
of this interpreter, both with the environment of the scripted model server
(``tests/docs_examples.yaml``), a throwaway ``HOME`` and the real Claude Code CLI.

Conventions for writers (see also CONTRIBUTING.md):

- A shell block with lines starting ``$ `` is a session: those lines (with ``\\``
  continuations) are the commands, and the other lines their expected output; each expected
  line must appear, in order, in what its command printed (stdout and stderr), ``...``
  standing for any text. Without ``$ `` lines the block is one bash script. Either way the
  block fails at the first command that fails (``set -e``): show an expected failure as
  ``cmd || echo "exit code $?"``.
- ``LANG file=NAME`` (any language): the block is the content of the file NAME, written into
  the project folder of every example after it on the same page.
- ``LANG no-test: REASON``: an example that cannot run here (a server that runs until
  Ctrl-C, a real account); the reason is required, and the set is listed below so that it
  only grows on purpose.
- ``allow-errors`` in the info string: runs of the example may end ``error``, ``crashed``
  or ``spawn_failed`` (otherwise such a run fails the example, even when the block's own
  exit code is 0, as a Python example that only prints the status has).
- Every fence has a language (``text`` for plain text), so no example escapes by omission.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cc_executor.testing import ModelServer
from tests._means import claude_path, codex_path

REPO = Path(__file__).resolve().parents[1]
SCRIPT = Path(__file__).with_name("docs_examples.yaml")
SHELLS = {"console", "bash", "sh", "shell"}
PYTHONS = {"python", "py"}
# A fence of three or more backticks (or tildes), closed by the same fence at the same indent.
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>[^\n`]*)\n"
    r"(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
    re.MULTILINE | re.DOTALL,
)
MARK = "@@cc-executor-docs-command@@"
#: Statuses that mean the example's environment, not the example, went wrong.
BROKEN = {"error", "crashed", "spawn_failed"}

#: Examples that do not run here, by page and the start of the block's first line. A new
#: entry needs a reason in the block's own info string too (``no-test: REASON``).
UNTESTED = {
    ("docs/dashboard.md", "cc-executor serve --allow-dir ~/proj --port 8765"),
    ("README.md", "bash scripts/main"),
    ("README.md", 'cc-executor notify --to ../other --issue 12 --fix "'),
    ("docs/testing.md", "cc-executor testing serve --script write_file --env"),
    ("docs/testing.md", "set -a; . ./test.env; set +a"),
    ("docs/testing.md", "with ModelServer(script) as server:"),
    ("docs/agents/codex.md", "cc-executor run --agent codex --sandbox workspace-w"),
    ("docs/agents/gemini.md", "cc-executor run --agent gemini"),
    ("docs/agents/command.md", "cc-executor run --agent command"),
    ("docs/fleet.md", "# On one machine: Redis (Debian: apt-get install redis-server), reacha"),
    ("docs/fleet.md", "import asyncio"),
    ("docs/fleet.md", "cc-executor worker --allow-dir /srv/repos --budget-usd 50 --reserve-u"),
    ("docs/fleet.md", "cc-executor fleet status --fleet unix:///run/redis/"),
    ("docs/fleet.md", "cc-executor attach 01JD3Y0Q8Z6W1C5M7V4T2R9N0P"),
    ("docs/postgresql.md", "export CC_EXECUTOR_HISTORY=postgresql://cc@db.internal/cc"),
    ("docs/fleet.md", 'cc-executor run "Refactor the parser" &'),
    ("docs/fleet.md", "cc-executor worker --queue gpu --queue default --slots 2"),
    ("docs/fleet.md", "# Each worker says which remotes its runs may clone (a pattern, * ma"),
    ("docs/fleet.md", 'cc-executor serve --fleet "$CC_EXECUTOR_FLEET" --allow-dir /srv/rep'),
    ("docs/fleet.md", "# `make test` on any worker started with --allow-exec make"),
    ("docs/fleet.md", 'cc-executor run --fleet "$CC_EXECUTOR_FLEET" --permission-policy'),
    ("docs/fleet.md", "cc-executor exec --fleet redis://redis.internal:6379/0 --cwd /srv/rep"),
    ("docs/fleet.md", 'cc-executor tasks run review.md --fleet "$CC_EXECUTOR_FLEET" --max-paral'),
}


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # relative to the repository
    line: int  # of the opening fence
    lang: str
    options: str  # the info string after the language
    body: str

    @property
    def runnable(self) -> bool:
        return self.lang in SHELLS | PYTHONS

    @property
    def untested_reason(self) -> str | None:
        match = re.match(r"no-test\b:?\s*(.*)", self.options)
        return match.group(1).strip() if match else None

    @property
    def file_name(self) -> str | None:
        match = re.match(r"file=(\S+)", self.options)
        return match.group(1) if match else None

    @property
    def allows_errors(self) -> bool:
        return "allow-errors" in self.options.split()

    @property
    def first_line(self) -> str:
        line = next((s for s in self.body.splitlines() if s.strip()), "")
        return line.removeprefix("$ ").split("  #")[0].strip()

    def __str__(self) -> str:
        return f"{self.page}:{self.line}"


def pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]


def blocks_of(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        indent = match["indent"]
        body = "".join(
            line.removeprefix(indent) for line in match["body"].splitlines(keepends=True)
        )
        lang, _, options = match["info"].strip().partition(" ")
        line = text.count("\n", 0, match.start()) + 1
        found.append(Block(str(page.relative_to(REPO)), line, lang, options.strip(), body))
    return found


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in blocks_of(page)]


def examples() -> list[Block]:
    return [b for b in all_blocks() if b.runnable and b.untested_reason is None]


# --- the checks of the docs themselves (fast) -------------------------------------------


def test_every_fence_names_its_language() -> None:
    bare = [str(b) for b in all_blocks() if not b.lang]
    assert bare == [], "give these blocks a language (`text` for plain text)"


def test_untested_examples_say_why_and_are_the_listed_ones() -> None:
    untested = [b for b in all_blocks() if b.runnable and b.untested_reason is not None]
    assert [str(b) for b in untested if not b.untested_reason] == []
    # Each listed entry is the page and the start of the block's first command.
    listed = sorted(
        (entry, str(b))
        for b in untested
        for entry in UNTESTED
        if entry[0] == b.page and b.first_line.startswith(entry[1])
    )
    assert [entry for entry, _ in listed] == sorted(UNTESTED), listed
    assert sorted(block for _, block in listed) == sorted(str(b) for b in untested)


def test_every_page_and_example_is_found() -> None:
    found = examples()
    assert {b.page for b in found} >= {"README.md", "docs/testing.md"}
    # Every runnable block is either collected below or listed as untested: none is lost.
    runnable = [b for b in all_blocks() if b.runnable]
    assert len(runnable) == len(found) + len(UNTESTED)


LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s]*)\)")


def anchors(page: Path) -> set[str]:
    """GitHub's ids of a page's headings: lower case, punctuation dropped, spaces to -."""
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    headings = re.findall(r"^#{1,6} +(.+?) *$", text, re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_links_between_pages_resolve() -> None:
    """Content moved between the README, docs/ and ARCHITECTURE.md: no link may dangle."""
    broken = []
    for page in [*pages(), REPO / "ARCHITECTURE.md", REPO / "CONTRIBUTING.md"]:
        text = FENCE.sub("", page.read_text(encoding="utf-8"))
        for target in LINK.findall(text):
            path, _, fragment = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            if not linked.exists() or (
                fragment and linked.suffix == ".md" and fragment not in anchors(linked)
            ):
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert broken == []


# --- running them -------------------------------------------------------------------------


def session_script(body: str) -> tuple[str, list[tuple[str, list[str]]]]:
    """A bash script running the ``$ `` commands of a session, printing a marker before
    each, and the commands with their expected output lines."""
    commands: list[tuple[str, list[str]]] = []
    continued = False
    for line in body.splitlines():
        if continued:
            commands[-1] = (commands[-1][0] + "\n" + line, commands[-1][1])
        elif line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands and line.strip():
            commands[-1][1].append(line.strip())
        continued = line.endswith("\\") and (continued or line.startswith("$ "))
    script = "".join(f"printf '\\n%s\\n' '{MARK}'\n{command}\n" for command, _ in commands)
    return script, commands


def expected_pattern(line: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part.strip()) for part in line.split("...")))


def check_session(output: str, commands: list[tuple[str, list[str]]]) -> None:
    pieces = output.split(MARK + "\n")[1:]
    assert len(pieces) == len(commands), output
    for (command, expected), printed in zip(commands, pieces, strict=True):
        lines = iter(printed.splitlines())
        for want in expected:
            pattern = expected_pattern(want)
            assert any(pattern.search(got) for got in lines), (
                f"`{command}` did not print {want!r} (in order); it printed:\n{printed}"
            )


def files_before(block: Block) -> dict[str, str]:
    page = [b for b in all_blocks() if b.page == block.page]
    return {b.file_name: b.body for b in page if b.file_name and b.line < block.line}


@pytest.fixture(scope="module")
def model_server() -> Iterator[ModelServer]:
    with ModelServer(SCRIPT) as server:
        yield server


@pytest.mark.cli
@pytest.mark.slow
@pytest.mark.parametrize("block", examples(), ids=str)
def test_example_runs_as_written(block: Block, model_server: ModelServer, tmp_path: Path) -> None:
    home = tmp_path / "home"
    project = tmp_path / "project"
    for folder in (home, project):
        folder.mkdir()
    (project / "README.md").write_text("# demo\n\nA small project.\n")
    for name, content in files_before(block).items():
        (project / name).write_text(content)
    env = model_server.claude_env(home=home, base=os.environ)
    claude = claude_path()
    assert claude is not None
    env["CC_EXECUTOR_CLAUDE"] = claude
    if "--agent codex" in block.body:  # a user who installed it has it; HOME moves here
        env["CC_EXECUTOR_CODEX"] = codex_path()
    env["CC_EXECUTOR_HOME"] = str(home / ".local" / "share" / "cc-executor")
    # The installed console first, and `claude` as a user who installed it has it.
    env["PATH"] = os.pathsep.join(
        [str(Path(sys.executable).parent), str(Path(claude).parent), env["PATH"]]
    )
    for name in ("XDG_DATA_HOME", "PYTHONPATH"):
        env.pop(name, None)
    # Temporary folders in the test's own: `testing serve --background` keeps its agent's
    # folder when a run wrote to it (as the page says), and the example kills it; under
    # /tmp, every run of the suite left one there.
    env["TMPDIR"] = str(tmp_path / "tmp")
    (tmp_path / "tmp").mkdir()

    if block.lang in PYTHONS:
        source = tmp_path / "example.py"
        source.write_text(block.body)
        code, output = run_example([sys.executable, str(source)], project, env)
        assert code == 0, f"{block} failed:\n{output}"
    else:
        run_shell(block, project, env)
    if not block.allows_errors:
        runs = history(env)
        broken = [(r["status"], r.get("error")) for r in runs if r["status"] in BROKEN]
        assert broken == [], f"{block}: runs of the example failed: {broken}"


def history(env: dict[str, str]) -> list[dict[str, Any]]:
    done = subprocess.run(
        ["cc-executor", "history", "--json", "--limit", "1000"],
        check=False, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    runs: list[dict[str, Any]] = json.loads(done.stdout)
    return runs


def run_shell(block: Block, project: Path, env: dict[str, str]) -> None:
    session = any(line.startswith("$ ") for line in block.body.splitlines())
    script, commands = session_script(block.body) if session else (block.body, [])
    code, output = run_example(["bash", "-e", "-o", "pipefail", "-c", script], project, env)
    assert code == 0, f"{block} failed (exit {code}):\n{output}"
    if session:
        check_session(output, commands)


def run_example(argv: list[str], cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run an example in its own process group, stdout and stderr together; a background
    process it leaves behind (a server, after a failure) is killed, and never holds us."""
    log = cwd.parent / "output.log"
    with log.open("w") as out:
        child = subprocess.Popen(
            argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
        try:
            code = child.wait()
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.pid, signal.SIGKILL)
    return code, log.read_text(encoding="utf-8", errors="replace")
