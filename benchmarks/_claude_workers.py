"""Worker processes for ``bench_claude.py``; each mode prints its figures as JSON on stdout.

    python benchmarks/_claude_workers.py serve HOME
    python benchmarks/_claude_workers.py inproc SIZE REPS CLAUDE CWD
    python benchmarks/_claude_workers.py rss-import
    python benchmarks/_claude_workers.py rss-api SIZE CLAUDE CWD
    python benchmarks/_claude_workers.py rss-cli SIZE CLAUDE CWD
    python benchmarks/_claude_workers.py rss-bare SIZE CLAUDE CWD
    python benchmarks/_claude_workers.py sdk SIZE REPS CLAUDE CWD TIMEOUT

Every mode but ``serve`` expects to be started with the environment that ``serve`` printed
(the scripted server's ``claude_env`` plus ``CC_EXECUTOR_HOME``), so it inherits nothing that
points the CLI elsewhere. Each runs in a fresh interpreter so that its peak RSS is its own and
a hang in one cannot freeze the benchmark.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

#: Answer sizes in characters (ASCII, so also bytes); "MB" is 10**6.
SIZES = {"trivial": 2, "2MB": 2_000_000, "20MB": 20_000_000}
#: Characters per ``text_delta`` event: large, so that the server is not the bottleneck.
CHUNK_SIZE = 1 << 16
#: The flags our Claude adapter passes (see ``build_command``).
STREAM_FLAGS = ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"]


def prompt_for(size: str) -> str:
    """The prompt whose scripted answer is ``answer_text(size)``."""
    return f"bench-claude {size}"


def answer_text(size: str) -> str:
    """Deterministic, line-structured text of exactly ``SIZES[size]`` characters."""
    n = SIZES[size]
    if n <= 2:
        return "ok"[:n]
    line = "the quick brown fox jumps over the lazy dog; pack my box with five dozen jugs\n"
    return (line * (n // len(line) + 1))[:n]


def peak_rss() -> int:
    """This process's own peak RSS in bytes: ``VmHWM``, the high-water mark of its memory map.

    Not ``getrusage(RUSAGE_SELF).ru_maxrss``: Linux carries that across ``execve`` from the
    memory map being replaced, which for a child that Python spawned with ``vfork`` is the
    parent's, so a small worker would report the benchmark's own peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _clean_runs() -> None:
    shutil.rmtree(Path(os.environ["CC_EXECUTOR_HOME"]) / "runs", ignore_errors=True)


def _clean_sessions() -> None:
    """Drops the CLI's session transcripts (up to 40 MB a run), untimed."""
    shutil.rmtree(Path(os.environ["CLAUDE_CONFIG_DIR"]) / "projects", ignore_errors=True)


# --- serve -----------------------------------------------------------------------------------


def serve(home: str) -> None:
    """Serves every size until stdin closes; prints the environment for the CLI first."""
    from cc_executor.testing import ModelServer, Reply, Rule, Script, Text

    rules = [
        Rule(
            match=f"^{prompt_for(size)}$",
            answers=[Reply([Text(answer_text(size))], chunk_size=CHUNK_SIZE)],
        )
        for size in SIZES
    ]
    rules.append(Rule(answers=[Reply([Text("ok")])]))  # anything else the CLI asks
    with ModelServer(Script(rules)) as server:
        env = server.claude_env(home=home, base=os.environ, max_retries=0)
        _emit({"url": server.url, "env": env})
        sys.stdin.read()
        _emit({"requests": len(server.message_requests)})


# --- in-process: our API vs the bare CLI spawned from the same Python process ----------------


def _stream_result_chars(path: Path) -> int:
    """Length of the ``result`` text in the last line of a stream-json output file."""
    with path.open("rb") as f:
        f.seek(0, os.SEEK_END)
        end = f.tell()
        f.seek(max(0, end - SIZES["20MB"] * 3))
        last = f.read().rstrip(b"\n").rsplit(b"\n", 1)[-1]
    data = json.loads(last)
    assert data.get("type") == "result", data.get("type")
    assert not data.get("is_error"), data.get("subtype")
    return len(data["result"])


async def _bare(claude: str, prompt: str, cwd: str, out: Path | None) -> float:
    """The bare CLI with our adapter's flags; stdout to ``out``, or to a pipe read and
    dropped (``out=None``: what any wrapper that reads the CLI's output has to do)."""
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if out else None
    try:
        t = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            claude,
            *STREAM_FLAGS,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE if fd is None else fd,
            stderr=subprocess.DEVNULL,
            cwd=cwd,
        )
        assert proc.stdin is not None
        proc.stdin.write(prompt.encode())
        proc.stdin.close()
        if proc.stdout is not None:
            while await proc.stdout.read(1 << 20):
                pass
        await proc.wait()
        dt = time.perf_counter() - t
    finally:
        if fd is not None:
            os.close(fd)
    assert proc.returncode == 0, proc.returncode
    return dt


async def _ours(claude: str, prompt: str, cwd: str) -> tuple[float, Any]:
    from cc_executor._run._runner import run

    t = time.perf_counter()
    result = await run(prompt, cwd=cwd, env=dict(os.environ), claude_path=claude, heartbeat_s=0)
    return time.perf_counter() - t, result


def inproc(size: str, reps: int, claude: str, cwd: str) -> None:
    """Interleaves the bare CLI (stdout to a file, and to a pipe) and ``run()``, ``reps``
    times after one untimed warm-up round, rotating the order every round."""
    prompt, n = prompt_for(size), SIZES[size]
    out = Path(cwd) / f"inproc-{size}.jsonl"
    names = ["bare file", "bare pipe", "ours"]

    async def main() -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(reps + 1):
            for name in names[rep % 3 :] + names[: rep % 3]:
                if name == "bare file":
                    dt = await _bare(claude, prompt, cwd, out)
                    assert _stream_result_chars(out) == n
                elif name == "bare pipe":
                    dt = await _bare(claude, prompt, cwd, None)
                else:
                    dt, result = await _ours(claude, prompt, cwd)
                    assert result.status == "ok", (result.status, result.error)
                    assert len(result.result) == n, len(result.result)
                    del result
                    _clean_runs()
                _clean_sessions()
                if rep:
                    times[name].append(dt)
        return times

    times = asyncio.run(main())
    out.unlink(missing_ok=True)
    _emit({"size": size, "chars": n, "samples": times})


# --- peak RSS --------------------------------------------------------------------------------


def rss_import() -> None:
    """Peak RSS of a process that imported what a run needs, and did nothing else."""
    import cc_executor._run._runner  # noqa: F401

    _emit({"peak_rss": peak_rss()})


def rss_api(size: str, claude: str, cwd: str) -> None:
    """Peak RSS of this process after one ``run()`` whose answer is ``size``."""
    dt, result = asyncio.run(_ours(claude, prompt_for(size), cwd))
    assert result.status == "ok", (result.status, result.error)
    chars = len(result.result)
    del result
    _clean_runs()
    _clean_sessions()
    _emit({"size": size, "chars": chars, "seconds": dt, "peak_rss": peak_rss()})


def rss_cli(size: str, claude: str, cwd: str) -> None:
    """Peak RSS of ``cc-executor run PROMPT --json --quiet``, run by the console script's own
    entry point in this process; an exit hook reports ``RUSAGE_SELF`` (not the CLI child) on
    stderr, so the JSON on stdout is exactly what the console script prints."""
    import atexit

    from cc_executor._cli import main

    def report() -> None:
        sys.stderr.write(json.dumps({"peak_rss": peak_rss()}) + "\n")
        _clean_runs()
        _clean_sessions()

    atexit.register(report)
    sys.argv = ["cc-executor", "run", prompt_for(size), "--json", "--quiet"]
    sys.argv += ["--claude", claude, "--cwd", cwd]
    sys.exit(main())


def rss_bare(size: str, claude: str, cwd: str) -> None:
    """The bare CLI's own peak RSS, from ``wait4`` on it. Spawned from this small process
    because Linux carries the spawner's peak into the child's ``ru_maxrss`` (see
    :func:`peak_rss`); here that is about 10 MB, far below the CLI's."""
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            [claude, *STREAM_FLAGS], stdin=subprocess.PIPE, stdout=sink, stderr=sink, cwd=cwd
        )
        assert proc.stdin is not None
        proc.stdin.write(prompt_for(size).encode())
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
    _clean_sessions()
    assert os.waitstatus_to_exitcode(status) == 0, status
    _emit({"size": size, "peak_rss": usage.ru_maxrss * 1024, "spawner_rss": peak_rss()})


# --- claude-agent-sdk ------------------------------------------------------------------------


def sdk(size: str, reps: int, claude: str, cwd: str, timeout: float) -> None:
    """``claude_agent_sdk.query()`` with default options (bar the CLI path, cwd and env), after
    one untimed trivial warm-up; one JSON line per attempt, printed as soon as it ends."""
    try:
        sdk_mod: Any = importlib.import_module("claude_agent_sdk")
    except ImportError as exc:
        _emit({"error_type": "ImportError", "error": str(exc), "installed": False})
        return
    version = importlib.import_module("claude_agent_sdk._version").__version__
    options = sdk_mod.ClaudeAgentOptions(cli_path=claude, cwd=cwd, env=dict(os.environ))

    async def once(prompt: str) -> tuple[int, Any]:
        chars = -1
        subtype = None
        async for message in sdk_mod.query(prompt=prompt, options=options):
            if isinstance(message, sdk_mod.ResultMessage):
                subtype = message.subtype
                chars = len(message.result or "")
        return chars, subtype

    async def main() -> None:
        await asyncio.wait_for(once(prompt_for("trivial")), timeout)
        for _ in range(reps):
            t = time.perf_counter()
            row: dict[str, Any] = {"size": size, "version": version}
            try:
                chars, subtype = await asyncio.wait_for(once(prompt_for(size)), timeout)
                row.update(ok=chars == SIZES[size], chars=chars, subtype=subtype)
            except asyncio.TimeoutError:
                row.update(ok=False, error_type="hang", error=f"no result within {timeout} s")
            except Exception as exc:
                row.update(ok=False, error_type=type(exc).__name__, error=str(exc)[:300])
            row["seconds"] = time.perf_counter() - t
            _clean_sessions()
            _emit(row)

    asyncio.run(main())


def _main(argv: list[str]) -> None:
    mode, args = argv[0], argv[1:]
    if mode == "serve":
        serve(args[0])
    elif mode == "inproc":
        inproc(args[0], int(args[1]), args[2], args[3])
    elif mode == "rss-import":
        rss_import()
    elif mode == "rss-api":
        rss_api(args[0], args[1], args[2])
    elif mode == "rss-bare":
        rss_bare(args[0], args[1], args[2])
    elif mode == "rss-cli":
        rss_cli(args[0], args[1], args[2])
    elif mode == "sdk":
        sdk(args[0], int(args[1]), args[2], args[3], float(args[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _main(sys.argv[1:])
