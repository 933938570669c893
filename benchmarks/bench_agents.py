"""Every agent: in-process ``run()`` against its bare CLI, in one run on the same answers.

For Claude Code, Codex CLI, Gemini CLI and Qwen Code (through the command agent and a spec,
as in ``tests/run/test_command_agent.py``), on answers scripted by
``cc_executor.testing.ModelServer`` (its own process, 64 KiB text deltas; it speaks each
CLI's API): a trivial "ok" and 2 MB of text (random words: Gemini CLI cuts an answer that
repeats itself short).

    .venv/bin/python benchmarks/bench_agents.py [--quick] [--reps N] [--agents a,b]
        [--json FILE]
    .venv/bin/python benchmarks/bench_agents.py --report FILE    # print a saved run again

Measures, all agents in one worker process:
1. wall time of ``await run(PROMPT, **options)`` against the bare CLI started with
   ``asyncio.create_subprocess_exec`` with what ``run()`` gives it: the adapter's argv, our
   environment plus the options' ``process_env`` (a fresh agent home where the adapter makes
   one, made untimed) and the prompt on stdin; stdout to a file (as ``run()`` does: the
   baseline), and read from a pipe (what a minimal wrapper does, for context). ``reps``
   repetitions after a warm-up round; each runs every (agent, answer) block in a fresh random
   order, and the variants of a block one right after the other, also shuffled. Medians and
   p90 of the wall times; the overhead is the median (and p90) of ``ours - bare→file``
   within each repetition, with the median's 95% bootstrap interval. Target: <= 30 ms for
   the trivial answer, <= 5% for 2 MB (as ``bench_claude.py``). ``run()``'s own time
   before the CLI's spawn and after its exit is shown apart;
2. each CLI's own start-up: ``CLI --version`` (interleaved with the above) and the bare
   trivial run;
3. peak RSS of the bare CLI's process tree (summed over its processes, sampled every 5 ms;
   and its largest process's own peak from ``wait4``) beside what one ``run()`` adds to the
   supervising Python process (its ``VmHWM`` after the run minus its ``VmRSS`` before, with
   the run API imported), each in a fresh worker process.

The CLIs are those of ``scripts/install-agents`` (``$CC_EXECUTOR_CLAUDE``, ``_CODEX``,
``_GEMINI``, ``_QWEN``, else its cache). ``--quick``: 3 repetitions and the RSS of the
trivial answer only.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _agent_workers import AGENTS  # noqa: E402
from _claude_workers import SIZES  # noqa: E402
from bench_claude import (  # noqa: E402
    PYTHON,
    find_claude,
    mb,
    median,
    median_interval,
    ms,
    overhead_verdict,
    source_state,
    stop_server,
    worker,
)

AGENT_WORKERS = str(HERE / "_agent_workers.py")
#: The answers measured (of ``_claude_workers.SIZES``).
BENCH_SIZES = ("trivial", "2MB")
#: scripts/install-agents' variable and cache folder of each npm CLI, and its name for people.
NPM_CLIS = {
    "codex": ("CC_EXECUTOR_CODEX", "codex", "codex", "Codex CLI"),
    "gemini": ("CC_EXECUTOR_GEMINI", "gemini-cli", "gemini", "Gemini CLI"),
    "qwen": ("CC_EXECUTOR_QWEN", "qwen-code", "qwen", "Qwen Code"),
}
TITLES = {"claude": "Claude Code", **{k: v[3] for k, v in NPM_CLIS.items()}}
#: Variables that would point a CLI somewhere else: not passed to the workers.
FOREIGN_PREFIXES = (
    "ANTHROPIC_",
    "CLAUDE",
    "OPENAI_",
    "AZURE_OPENAI_",
    "CODEX_",
    "GEMINI_",
    "GOOGLE_",
    "QWEN",
    "CC_EXECUTOR_",
)


def find_cli(agent: str) -> str:
    """The CLI of ``agent``: its variable, else the newest in scripts/install-agents' cache."""
    if agent == "claude":
        return find_claude(None)
    variable, folder, binary, title = NPM_CLIS[agent]
    if os.environ.get(variable):
        return os.environ[variable]
    cache = Path(os.environ.get("CC_EXECUTOR_CACHE", Path.home() / ".cache" / "cc-executor"))
    found = sorted((cache / folder).glob(f"*/bin/{binary}"), reverse=True)
    if not found:
        raise SystemExit(f"no {title}: set {variable} or run scripts/install-agents {agent}")
    return str(found[0])


def versions(paths: dict[str, str], env: dict[str, str]) -> dict[str, str]:
    out = {}
    for agent, path in paths.items():
        done = subprocess.run(
            [path, "--version"], capture_output=True, text=True, check=False, env=env
        )
        out[agent] = (done.stdout.strip().splitlines() or ["?"])[-1]
    return out


def machine_line() -> str:
    import platform

    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    return (
        f"{platform.machine()} {cpu}, {os.cpu_count()} cores, {mem_kib / (1 << 20):.0f} GiB, "
        f"Linux {platform.release()}, CPython {platform.python_version()}"
    )


def p90(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return xs[0] if xs else float("nan")
    return statistics.quantiles(xs, n=10, method="inclusive")[8]


# --- report ----------------------------------------------------------------------------------


def overhead(size: str, row: dict[str, list[float]]) -> dict[str, Any]:
    """``ours - bare file`` paired by repetition: median, p90, the median's 95% interval,
    relative to the bare median, and the verdict."""
    diffs = [o - b for o, b in zip(row["ours"], row["bare file"], strict=True)]
    base = median(row["bare file"])
    delta = median(diffs)
    low, high = median_interval(row) if len(diffs) > 1 else (delta, delta)
    met, target = overhead_verdict(size, base, base + delta)
    return {
        "median": delta,
        "p90": p90(diffs),
        "relative": delta / base,
        "ci": (low, high),
        "met": met,
        "target": target,
    }


def report(results: dict[str, Any], out: Callable[[str], None] = print) -> None:
    out(f"machine: {results['machine']}")
    out(f"source:  {results['source']}")
    out("CLIs:    " + ", ".join(f"{TITLES[a]} {v}" for a, v in results["versions"].items()))
    out(f"command: {results['command']}")
    load = [f"{results[k][0]:.2f}" for k in ("load_before", "load_after")]
    out(f"load:    1-minute load average {load[0]} at the start, {load[1]} at the end")
    out("")
    samples = results["samples"]
    reps = len(next(iter(next(iter(samples.values())).values()))["ours"])
    out("1. `await run(...)` vs the bare CLI (asyncio.create_subprocess_exec, same argv, env")
    out(f"   and stdin), {reps} interleaved repetitions; wall times median / p90; overhead:")
    out("   ours - bare→file per repetition, median / p90, the median's 95% interval")
    out(
        f"   {'agent':<12} {'answer':<8} {'bare→file':>15} {'bare→pipe':>15} {'run()':>15} "
        f"{'overhead ms':>16} {'%':>6} {'95% CI':>10}  verdict"
    )
    verdicts = {}
    for agent, by_size in samples.items():
        for size, row in by_size.items():
            o = overhead(size, row)
            verdicts[(agent, size)] = o
            cells = [
                f"{median(row[k]) * 1000:.0f} / {p90(row[k]) * 1000:.0f}"
                for k in ("bare file", "bare pipe", "ours")
            ]
            out(
                f"   {TITLES[agent]:<12} {size:<8} {cells[0]:>15} {cells[1]:>15} {cells[2]:>15} "
                f"{o['median'] * 1000:>7.0f} / {o['p90'] * 1000:<6.0f} {o['relative']:>+6.1%} "
                f"{o['ci'][0] * 1000:>4.0f}..{o['ci'][1] * 1000:<4.0f}  "
                f"{'met' if o['met'] else 'MISSED'} ({o['target']})"
            )
    phased = [(a, s, r) for a, by in samples.items() for s, r in by.items() if "ours pre" in r]
    if phased:
        out("   where run() spends its own time (medians): before the CLI is spawned, and after")
        out("   the engine saw its process end (the rest is beside the running CLI)")
        for agent, size, row in phased:
            out(
                f"   {TITLES[agent]:<12} {size:<8} before {ms(median(row['ours pre'])):>6}"
                f"   after {ms(median(row['ours post'])):>6}"
            )
    out("")
    out("2. each CLI's own start-up (median / p90): `--version`, and a trivial answer (bare→file)")
    for agent, by_size in samples.items():
        row = by_size.get("trivial")
        if row is None:
            continue
        version, trivial = row["version"], row["bare file"]
        out(
            f"   {TITLES[agent]:<12} --version {ms(median(version)):>7} / {ms(p90(version)):<7}"
            f"   trivial answer {ms(median(trivial)):>7} / {ms(p90(trivial))}"
        )
    out("")
    if results.get("rss"):
        out("3. peak RSS: the bare CLI's tree (summed over its processes, sampled every 5 ms;")
        out("   its largest process's own peak, wait4) beside what one run() adds to ours")
        out("   (VmHWM after the run - VmRSS before it, run API imported; RSS before)")
        out(
            f"   {'agent':<12} {'answer':<8} {'CLI tree':>9} {'procs':>5} {'largest':>9} "
            f"{'ours +':>8} {'ours before':>12}"
        )
        for row in results["rss"]:
            out(
                f"   {TITLES[row['agent']]:<12} {row['size']:<8} {mb(row['tree_peak']):>9} "
                f"{row['processes']:>5} {mb(row['largest_peak']):>9} "
                f"{mb(row['peak'] - row['rss_before']):>8} {mb(row['rss_before']):>12}"
            )
        out("")
    missed = [f"{TITLES[a]} {s}" for (a, s), o in verdicts.items() if not o["met"]]
    out(f"over target: {', '.join(missed) if missed else 'none'}")


# --- main ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 repetitions, RSS of trivial only")
    parser.add_argument("--reps", type=int, metavar="N", help="repetitions (default 15)")
    parser.add_argument(
        "--agents",
        default=",".join(AGENTS),
        metavar="A[,A]",
        help=f"which agents ({', '.join(AGENTS)}; default: all)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--report", metavar="FILE", help="print the report of a run saved with --json, run nothing"
    )
    args = parser.parse_args()
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    agents = [a for a in args.agents.split(",") if a]
    unknown = sorted(set(agents) - set(AGENTS))
    if unknown or not agents:
        parser.error(f"unknown agent(s): {', '.join(unknown)} (known: {', '.join(AGENTS)})")
    reps = args.reps if args.reps else 3 if args.quick else 15
    if reps < 1:
        parser.error("--reps must be at least 1")
    paths = {agent: find_cli(agent) for agent in agents}
    # Wall times include our imports' first use: the bytecode must exist, as after an install.
    import compileall

    compileall.compile_dir(str(HERE.parent / "src" / "cc_executor"), quiet=1)

    # Not under /tmp: Codex refuses its helper binaries there.
    cache = Path.home() / ".cache"
    cache.mkdir(exist_ok=True)
    root = Path(tempfile.mkdtemp(prefix="cc-bench-agents-", dir=cache))
    (root / "work").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(FOREIGN_PREFIXES)}
    env["CC_EXECUTOR_HOME"] = str(root / "cc-executor")
    results: dict[str, Any] = {
        "machine": machine_line(),
        "source": source_state(),
        "versions": versions(paths, env),
        "command": " ".join(["benchmarks/bench_agents.py", *sys.argv[1:]]),
        "reps": reps,
        "load_before": os.getloadavg(),
    }
    server = subprocess.Popen(
        [PYTHON, AGENT_WORKERS, "serve"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert server.stdout is not None
        url = json.loads(server.stdout.readline())["url"]
        config_file = root / "config.json"
        config = {"root": str(root), "url": url, "paths": paths, "agents": agents}
        config_file.write_text(json.dumps(config))
        print(f"... {reps} repetitions of {', '.join(agents)}", file=sys.stderr, flush=True)
        data = worker(
            "inproc", config_file, reps, ",".join(BENCH_SIZES), env=env, script=AGENT_WORKERS
        )[0]
        results["samples"] = data["samples"]
        results["argv"] = data["argv"]
        results["rss"] = []
        for agent in agents:
            for size in ("trivial",) if args.quick else BENCH_SIZES:
                print(f"... rss {agent} {size}", file=sys.stderr, flush=True)
                ours = worker("rss-ours", config_file, agent, size, env=env, script=AGENT_WORKERS)
                bare = worker("rss-bare", config_file, agent, size, env=env, script=AGENT_WORKERS)
                assert ours[0]["chars"] == SIZES[size], ours
                results["rss"].append({**ours[0], **bare[0]})
        results["load_after"] = os.getloadavg()
    finally:
        stop_server(server, root)

    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
