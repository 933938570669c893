"""Worker processes for ``bench_agents.py``; each mode prints its figures as JSON on stdout.

    python benchmarks/_agent_workers.py serve
    python benchmarks/_agent_workers.py inproc CONFIG REPS SIZE[,SIZE]
    python benchmarks/_agent_workers.py rss-ours CONFIG AGENT SIZE
    python benchmarks/_agent_workers.py rss-bare CONFIG AGENT SIZE

``CONFIG`` is a JSON file written by ``bench_agents.py``: the scripted server's URL, the
benchmark's folder and each agent's CLI. Every mode runs in a fresh interpreter, started with
an environment that points no agent anywhere else, so that its peak RSS is its own.

The bare CLI gets exactly what ``run()`` gives it: the argv of the agent's adapter, our
environment plus the options' ``process_env`` (with a fresh agent home where the adapter makes
one, created untimed) and the prompt on stdin; its stdout goes to a file, as ours does.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _claude_workers import CHUNK_SIZE, SIZES, peak_rss

#: The agents measured, in report order; "qwen" is Qwen Code through the command agent.
AGENTS = ("claude", "codex", "gemini", "qwen")
GEMINI_MODEL = "gemini-2.5-flash"
QWEN_SPEC = """\
name = "Qwen Code"
command = ["{qwen}", "-p", "", "--auth-type", "openai", "--yolo", "-o", "stream-json"]
output = "claude-stream-json"
model_arg = ["--model={{model}}"]
base_url_env = "OPENAI_BASE_URL"
"""


def prompt_for(size: str) -> str:
    """The prompt whose scripted answer is ``answer_text(size)``."""
    return f"bench-agents {size}"


def answer_text(size: str) -> str:
    """Deterministic text of exactly ``SIZES[size]`` characters, lines of seeded random
    words: Gemini CLI stops an answer that repeats itself ("Loop detected", and an empty
    result), which the repeated line of ``bench_claude.py``'s answers does."""
    import random

    n = SIZES[size]
    if n <= 2:
        return "ok"[:n]
    rng = random.Random(size)
    words = [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9)))
        for _ in range(4096)
    ]
    lines, total = [], 0
    while total < n:
        line = " ".join(rng.choices(words, k=12)) + "\n"
        lines.append(line)
        total += len(line)
    return "".join(lines)[:n]


def _emit(data: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def serve() -> None:
    """Serves every answer until stdin closes; prints its URL first."""
    from cc_executor.testing import ModelServer, Reply, Rule, Script, Text

    rules = [
        Rule(
            # Qwen Code sends the prompt followed by a blank line.
            match=rf"^{prompt_for(size)}\s*$",
            answers=[Reply([Text(answer_text(size))], chunk_size=CHUNK_SIZE)],
        )
        for size in SIZES
        if size != "20MB"
    ]
    rules.append(Rule(answers=[Reply([Text("ok")])]))  # anything else a CLI asks
    with ModelServer(Script(rules)) as server:
        _emit({"url": server.url})
        sys.stdin.read()


def homes(root: Path) -> dict[str, Path]:
    """Each agent's own home in the benchmark's folder (Codex's is not under /tmp, where it
    refuses its helper binaries: ``bench_agents.py`` puts the folder in ``~/.cache``)."""
    return {agent: root / f"{agent}-home" for agent in AGENTS}


def run_options(agent: str, config: dict[str, Any]) -> dict[str, Any]:
    """The ``run()`` keyword arguments of ``agent`` against the scripted server, as the
    tests of each adapter give them."""
    root, url, path = Path(config["root"]), config["url"], config["paths"][agent]
    home = homes(root)[agent]
    home.mkdir(exist_ok=True)
    common = {"cwd": str(root / "work"), "heartbeat_s": 0, "retries": 0}
    if agent == "claude":
        env = {
            "HOME": str(home),
            "CLAUDE_CONFIG_DIR": str(home / ".claude"),
            "ANTHROPIC_BASE_URL": url,
            "ANTHROPIC_API_KEY": "sk-ant-cc-executor-testing",
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_AUTOUPDATER": "1",
            "CLAUDE_CODE_MAX_RETRIES": "0",
        }
        return {"agent": "claude", "agent_path": path, "env": env, **common}
    if agent == "codex":
        env = {"CODEX_HOME": str(home), "OPENAI_API_KEY": "sk-cc-executor-testing"}
        return {"agent": "codex", "agent_path": path, "base_url": f"{url}/v1", "env": env, **common}
    if agent == "gemini":
        # No GEMINI_CLI_HOME: the adapter makes a home of the run's own (API-key auth).
        env = {"HOME": str(home), "GEMINI_API_KEY": "cc-executor-testing"}
        return {
            "agent": "gemini",
            "agent_path": path,
            "base_url": url,
            "model": GEMINI_MODEL,
            "env": env,
            **common,
        }
    spec = root / "qwen.toml"
    if not spec.exists():
        spec.write_text(QWEN_SPEC.format(qwen=path))
    settings = home / ".qwen" / "settings.json"
    if not settings.exists():
        # Its memory extraction, on by default, asks the model again after the answer until
        # it gives up: 28 more requests and 90 s against the scripted server.
        settings.parent.mkdir(parents=True, exist_ok=True)
        settings.write_text(json.dumps({"memory": {"enableManagedAutoMemory": False}}))
    env = {"HOME": str(home), "OPENAI_API_KEY": "sk-cc-executor-testing"}
    return {
        "agent": "command",
        "agent_spec": str(spec),
        "base_url": f"{url}/v1",
        "model": "qwen-test",
        "env": env,
        **common,
    }


def clean_state(agent: str, config: dict[str, Any]) -> None:
    """Drops the sessions the CLIs keep (up to a few MB a run) and our run folders, so that
    every run starts from the same state and the disk does not fill up; untimed."""
    root = Path(config["root"])
    home = homes(root)[agent]
    for folder in (
        home / ".claude" / "projects",
        home / "sessions",
        home / ".qwen" / "tmp",
        home / ".qwen" / "projects",
        home / ".gemini" / "tmp",
        root / "cc-executor" / "runs",
        root / "bare",
    ):
        shutil.rmtree(folder, ignore_errors=True)


class Bare:
    """The bare CLI of one agent with what ``run()`` would give it."""

    def __init__(self, agent: str, config: dict[str, Any]) -> None:
        from cc_executor._agents import adapter_for
        from cc_executor._run._options import RunOptions

        self.agent = agent
        self.config = config
        self.options = RunOptions.from_kwargs(run_options(agent, config))
        self.adapter = adapter_for(self.options)
        executable = self.adapter.locate(
            self.options.agent_path, {**os.environ, **self.options.env}
        )
        self.argv = self.adapter.command(executable, self.options)
        self.cwd = str(self.options.cwd)
        self.folder = Path(config["root"]) / "bare"

    def env(self) -> dict[str, str]:
        """Our environment plus the run's ``process_env``, with a fresh agent home where the
        adapter makes one (created here, untimed: ``run()`` creates its own inside the run)."""
        self.folder.mkdir(exist_ok=True)
        return {**os.environ, **self.options.process_env(str(self.folder))}

    async def timed(self, prompt: bytes, env: dict[str, str], out: Path | None) -> float:
        """Wall time from the spawn to the exit; stdout to ``out``, or to a pipe read and
        dropped (``None``)."""
        fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC) if out else None
        try:
            t = time.perf_counter()
            proc = await asyncio.create_subprocess_exec(
                *self.argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE if fd is None else fd,
                stderr=subprocess.DEVNULL,
                cwd=self.cwd,
                env=env,
            )
            assert proc.stdin is not None
            proc.stdin.write(prompt)
            proc.stdin.close()
            if proc.stdout is not None:
                while await proc.stdout.read(1 << 20):
                    pass
            await proc.wait()
            dt = time.perf_counter() - t
        finally:
            if fd is not None:
                os.close(fd)
        assert proc.returncode == 0, (self.agent, proc.returncode)
        return dt

    def answer_chars(self, out: Path) -> int:
        """Length of the answer in the CLI's output file, read by the adapter's parser."""
        from cc_executor._agents._types import ResultEvent, TextDeltaEvent

        text: list[str] = []
        result: ResultEvent | None = None
        with out.open("rb") as f:
            for event in self.adapter.parser().parse_log(f):
                if isinstance(event, ResultEvent):
                    result = event
                elif isinstance(event, TextDeltaEvent):
                    text.append(event.text)
        assert result is not None, self.agent
        assert not result.is_error, (self.agent, result)
        return len(result.result) if result.result else len("".join(text))


async def version_time(argv0: str, env: dict[str, str]) -> float:
    """Wall time of ``CLI --version``, stdout read from a pipe."""
    t = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        argv0, "--version", stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env
    )
    await proc.communicate()
    dt = time.perf_counter() - t
    assert proc.returncode == 0, (argv0, proc.returncode)
    return dt


async def ours_time(
    agent: str, config: dict[str, Any], prompt: str
) -> tuple[float, Any, dict[str, float]]:
    """Wall time of one ``run()``, its result and the argv it spawned, and where the time
    went: before the spawn, and after the CLI's process ended (the engine's own clock)."""
    from cc_executor._run._runner import start_run

    argvs: list[tuple[str, ...]] = []

    def seen(event: Any) -> None:
        if event.type == "run_started":
            argvs.append(event.argv)

    options = run_options(agent, config)
    t_wall = time.time()
    t = time.perf_counter()
    handle = start_run(prompt, on_event=seen, **options)
    result = await handle.wait()
    dt = time.perf_counter() - t
    end_wall = t_wall + dt
    process = handle._run._processes[0]
    phases = {"pre": process.started_at - t_wall, "post": end_wall - process.ended_at}
    return dt, (result, argvs), phases


def inproc(config: dict[str, Any], reps: int, sizes: list[str]) -> None:
    """``reps`` interleaved repetitions after one untimed warm-up round. Each repetition runs
    every (agent, answer) block once, the blocks in a fresh random order (seeded), and within
    a block the bare CLI (stdout to a file; to a pipe) and ``run()``, also shuffled, one right
    after the other, so that a pair shares the machine's state of the moment. The trivial
    block also times ``CLI --version``."""
    agents = config["agents"]
    bares = {agent: Bare(agent, config) for agent in agents}
    blocks = [(agent, size) for agent in agents for size in sizes]
    out = Path(config["root"]) / "bare.out"

    async def main() -> dict[str, Any]:
        samples: dict[str, dict[str, dict[str, list[float]]]] = {
            agent: {size: {} for size in sizes} for agent in agents
        }
        for rep in range(reps + 1):
            rng = random.Random(rep)
            for agent, size in rng.sample(blocks, len(blocks)):
                bare, n = bares[agent], SIZES[size]
                prompt = prompt_for(size)
                variants = ["bare file", "bare pipe", "ours"]
                if size == "trivial":
                    variants.append("version")
                for name in rng.sample(variants, len(variants)):
                    if name == "ours":
                        dt, (result, argvs), phases = await ours_time(agent, config, prompt)
                        assert result.status == "ok", (agent, result.status, result.error)
                        assert len(result.result) == n, (agent, len(result.result), n)
                        assert argvs == [tuple(bare.argv)], (agent, argvs, bare.argv)
                        del result
                        if rep:
                            for key, value in phases.items():
                                samples[agent][size].setdefault(f"ours {key}", []).append(value)
                    elif name == "version":
                        dt = await version_time(bare.argv[0], bare.env())
                    else:
                        to = out if name == "bare file" else None
                        dt = await bare.timed(prompt.encode(), bare.env(), to)
                        if to is not None:
                            got = bare.answer_chars(to)
                            assert got == n, (agent, got, n)
                    clean_state(agent, config)
                    if rep:
                        samples[agent][size].setdefault(name, []).append(dt)
                print(f"    rep {rep} {agent} {size}", file=sys.stderr, flush=True)
            if rep == 0:
                os.sync()
        return samples

    samples = asyncio.run(main())
    out.unlink(missing_ok=True)
    _emit({"samples": samples, "argv": {agent: bares[agent].argv for agent in agents}})


# --- peak RSS --------------------------------------------------------------------------------


def _vm_rss() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def rss_ours(config: dict[str, Any], agent: str, size: str) -> None:
    """This process's RSS before one ``run()`` (the run API imported) and its peak after:
    what supervising the CLI costs the caller's process."""
    import cc_executor._run._runner  # noqa: F401

    before = _vm_rss()
    _, (result, _), _ = asyncio.run(ours_time(agent, config, prompt_for(size)))
    assert result.status == "ok", (agent, result.status, result.error)
    chars = len(result.result)
    del result
    clean_state(agent, config)
    _emit({"agent": agent, "size": size, "chars": chars, "rss_before": before, "peak": peak_rss()})


def _tree_rss(pid: int) -> tuple[int, int]:
    """Summed RSS of ``pid`` and its descendants, and how many processes that is."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0, 0
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total, len(procs)


def rss_bare(config: dict[str, Any], agent: str, size: str) -> None:
    """Peak of the bare CLI's whole tree (its RSS summed over its processes, sampled every
    5 ms from a thread) for one answer, and the largest process's own peak (``wait4``)."""
    bare = Bare(agent, config)
    env = bare.env()
    with open(os.devnull, "wb") as sink:
        proc = subprocess.Popen(
            bare.argv, stdin=subprocess.PIPE, stdout=sink, stderr=sink, cwd=bare.cwd, env=env
        )
        peak = [0, 0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                total, count = _tree_rss(proc.pid)
                peak[0] = max(peak[0], total)
                peak[1] = max(peak[1], count)
                done.wait(0.005)

        sampler = threading.Thread(target=sample)
        sampler.start()
        assert proc.stdin is not None
        proc.stdin.write(prompt_for(size).encode())
        proc.stdin.close()
        _, status, usage = os.wait4(proc.pid, 0)
        done.set()
        sampler.join()
    clean_state(agent, config)
    assert os.waitstatus_to_exitcode(status) == 0, (agent, status)
    _emit(
        {
            "agent": agent,
            "size": size,
            "tree_peak": peak[0],
            "processes": peak[1],
            "largest_peak": usage.ru_maxrss * 1024,
        }
    )


def _main(argv: list[str]) -> None:
    if argv[0] == "serve":
        serve()
        return
    mode, config = argv[0], json.loads(Path(argv[1]).read_text())
    if mode == "inproc":
        inproc(config, int(argv[2]), argv[3].split(","))
    elif mode == "rss-ours":
        rss_ours(config, argv[2], argv[3])
    elif mode == "rss-bare":
        rss_bare(config, argv[2], argv[3])
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    _main(sys.argv[1:])
