"""Claude Code runs through cc-executor vs the bare CLI and claude-agent-sdk.

Every figure is a ratio against a baseline measured in the same run, on the same machine, on
answers scripted by ``cc_executor.testing.ModelServer`` (its own process, 64 KiB text deltas so
it is never the bottleneck): a trivial "ok", 2 MB and 20 MB of text.

    .venv/bin/python benchmarks/bench_claude.py [--quick] [--json FILE] [--claude PATH]
        [--parts console,inproc,sdk,rss] [--reps N] [--sizes trivial,2MB,20MB]
    .venv/bin/python benchmarks/bench_claude.py --report FILE    # print a saved run again

Measures:
1. wall time of ``cc-executor run PROMPT --json --quiet`` (the console script, stdout to a
   file) against the bare CLI with our adapter's flags (``claude -p --output-format
   stream-json --verbose --include-partial-messages``, prompt on stdin) with its stdout
   redirected to a file, and with its stdout read from a pipe (what any wrapper does), and the
   bare CLI with plain ``-p`` text output for reference; runs interleaved in a random order
   drawn afresh every repetition (seeded), medians of 7 / 5 / 3 repetitions after a warm-up
   round. The overhead is the median of ``ours - bare→file`` within each repetition (the
   issue's baseline is ``claude -p ... > file``; pairing by repetition keeps the bare CLI's
   own drift out of it), with its quartiles. Targets: <= 30 ms for the trivial answer,
   <= 5% for the others. Also the fixed cost of a Python start that imports what a run needs,
   and the floor under any console script in Python (``_spawn_floor.py``: start, spawn the
   CLI, wait, print its last line), with ours above that floor, paired the same way;
2. the same from an already running Python process: ``await run(...)`` against the bare CLI
   spawned with ``asyncio.create_subprocess_exec`` (stdout to a file, and to a pipe that is
   read), interleaved in one worker process;
3. peak RSS of our process alone (its ``VmHWM``, never the CLI child's) for the 20 MB answer,
   through the console script's entry point and through ``run()``, against the RSS of a process
   that only imported cc-executor and asyncio. Target: <= 3x the answer size. The bare CLI's own
   peak (``wait4`` on it) is shown for context;
4. ``claude_agent_sdk.query()`` on the same answers, same CLI binary, same environment, default
   options otherwise: wall time, or the exception it raises (its default per-line buffer is
   1 MiB), or a hang, each attempt in a worker process with a timeout.

claude-agent-sdk is a comparison only, not a dependency; without it part 4 says so. Install it
into the venv with ``.venv/bin/pip install claude-agent-sdk`` (measured with 0.2.187).

The Claude Code CLI is ``--claude``, else ``$CC_EXECUTOR_CLAUDE``, else the one that
``scripts/install-claude-code`` installs. ``--quick`` runs the trivial and 2 MB answers only,
with fewer repetitions (and the RSS figures on 2 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _claude_workers import (  # noqa: E402
    SIZES,
    STREAM_FLAGS,
    prompt_for,
)

REPO = HERE.parent
PYTHON = sys.executable
WORKERS = str(HERE / "_claude_workers.py")
FLOOR_SCRIPT = str(HERE / "_spawn_floor.py")
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "cc-executor")
MB = 1_000_000
SDK_TIMEOUT_S = 120.0
#: Targets: absolute overhead for the trivial answer, relative for the others, RSS multiple.
TRIVIAL_TARGET_S = 0.030
RELATIVE_TARGET = 0.05
RSS_TARGET = 3.0


# --- helpers ---------------------------------------------------------------------------------


def find_claude(given: str | None) -> str:
    if given:
        return given
    if os.environ.get("CC_EXECUTOR_CLAUDE"):
        return os.environ["CC_EXECUTOR_CLAUDE"]
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-claude-code")],
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip().splitlines()[-1]


def machine_line(claude: str) -> str:
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = int(f.readline().split()[1])
    distro = ""
    if os.path.exists("/etc/debian_version"):
        distro = f", Debian {Path('/etc/debian_version').read_text().strip()}"
    version = subprocess.run([claude, "--version"], capture_output=True, text=True, check=False)
    return (
        f"{platform.machine()} {cpu}, {os.cpu_count()} cores, {mem_kib / (1 << 20):.0f} GiB, "
        f"Linux {platform.release()}{distro}, CPython {platform.python_version()}, "
        f"Claude Code {version.stdout.split()[0] if version.stdout else '?'}"
    )


def worker(
    *args: object, env: dict[str, str], timeout: float | None = None, script: str = WORKERS
) -> list[Any]:
    """Runs a worker mode of ``script``; returns the JSON lines it printed (also when it
    timed out)."""
    try:
        done = subprocess.run(
            [PYTHON, script, *map(str, args)],
            capture_output=True,
            text=True,
            check=False,
            env=env,
            timeout=timeout,
        )
        stdout, stderr, code = done.stdout, done.stderr, done.returncode
    except subprocess.TimeoutExpired as exc:
        out = exc.stdout or b""
        stdout = out.decode() if isinstance(out, bytes) else out
        stderr, code = "", None
    lines = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    if code not in (0, None) and not lines:
        raise SystemExit(f"worker {args[0]} failed ({code}):\n{stderr[-3000:]}")
    if code is None:
        lines.append({"worker_timeout": timeout})
    return lines


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms"


def mb(n: float) -> str:
    return f"{n / MB:.1f} MB"


def overhead_verdict(size: str, base: float, ours: float) -> tuple[bool, str]:
    delta = ours - base
    if size == "trivial":
        return delta <= TRIVIAL_TARGET_S, f"target <= {ms(TRIVIAL_TARGET_S)}"
    return delta <= RELATIVE_TARGET * base, f"target <= {RELATIVE_TARGET:.0%}"


class Bench:
    def __init__(self, claude: str, root: Path, env: dict[str, str]) -> None:
        self.claude = claude
        self.root = root
        self.env = env
        self.cwd = root / "work"
        self.cwd.mkdir()
        self.out = root / "stdout"
        self.claude_home = Path(env["HOME"])
        self.runs = Path(env["CC_EXECUTOR_HOME"]) / "runs"

    def reset_state(self) -> None:
        """Drops the CLI's session transcripts and our run folders, so every run starts from
        the same state and the disk does not fill up, and writes dirty pages out, so that one
        run's writeback (up to 100 MB for the 20 MB answer) does not land in the next run's
        time (untimed; with it the 20 MB quartiles went from [28..131] to [32..72] ms)."""
        shutil.rmtree(self.claude_home / ".claude" / "projects", ignore_errors=True)
        shutil.rmtree(self.runs, ignore_errors=True)
        os.sync()

    # 1. console script vs bare CLI ---------------------------------------------------------

    def timed(self, argv: list[str], stdin: bytes | None, *, to_pipe: bool = False) -> float:
        """Wall time of one run, stdout to ``self.out`` (or read from a pipe and dropped)."""
        with self.out.open("wb") as out:
            t = time.perf_counter()
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE if to_pipe else out,
                stderr=subprocess.DEVNULL,
                env=self.env,
                cwd=self.cwd,
            )
            if proc.stdin is not None:
                proc.stdin.write(stdin or b"")
                proc.stdin.close()
            if proc.stdout is not None:
                while proc.stdout.read(1 << 20):
                    pass
            code = proc.wait()
            dt = time.perf_counter() - t
        if code != 0:
            raise SystemExit(f"{argv[0]} {argv[1]} exited {code}")
        return dt

    def check_output(self, variant: str, chars: int) -> None:
        """Checks (untimed) that the run produced the whole answer."""
        data = self.out.read_bytes()
        if variant in ("bare file", "python floor"):
            last = json.loads(data.rstrip(b"\n").rsplit(b"\n", 1)[-1])
            got = len(last["result"])
        elif variant == "bare text":
            got = len(data) - 1  # the CLI adds a newline
        elif variant == "ours":
            result = json.loads(data)
            assert result["status"] == "ok", result.get("error")
            got = len(result["result"])
        else:
            return
        assert got == chars, (variant, got, chars)

    def console(self, size: str, reps: int) -> dict[str, Any]:
        prompt = prompt_for(size)
        ours = [CONSOLE_SCRIPT, "run", prompt, "--json", "--quiet", "--claude", self.claude]
        variants: dict[str, tuple[list[str], bytes | None]] = {
            "bare file": ([self.claude, *STREAM_FLAGS], prompt.encode()),
            "bare pipe": ([self.claude, *STREAM_FLAGS], prompt.encode()),
            "bare text": ([self.claude, "-p"], prompt.encode()),
            "ours": ([*ours, "--cwd", str(self.cwd)], None),
        }
        prompt_file = self.root / "prompt.txt"
        prompt_file.write_bytes(prompt.encode())
        # The floor under any console script in Python: start, spawn the CLI, wait, print.
        variants["python floor"] = (
            [
                PYTHON,
                FLOOR_SCRIPT,
                str(prompt_file),
                str(self.root / "floor.out"),
                self.claude,
                *STREAM_FLAGS,
            ],
            None,
        )
        if size == "trivial":
            # What any console script in Python pays before it does anything.
            variants["python imports"] = (
                [PYTHON, "-c", "import asyncio, cc_executor._cli._run, cc_executor._run._runner"],
                None,
            )
        names = list(variants)
        samples: dict[str, list[float]] = {name: [] for name in names}
        for rep in range(reps + 1):  # rep 0 warms up every variant
            # A fresh random order every repetition (seeded: reproducible), so that no
            # variant always follows the same one (a rotation keeps the neighbours fixed).
            order = random.Random(rep).sample(names, len(names))
            for name in order:
                argv, stdin = variants[name]
                dt = self.timed(argv, stdin, to_pipe=name == "bare pipe")
                self.check_output(name, SIZES[size])
                self.reset_state()
                if rep:
                    samples[name].append(dt)
        return {
            "reps": reps,
            "samples": samples,
            "median": {k: median(v) for k, v in samples.items()},
        }

    # 2. in-process API vs bare CLI --------------------------------------------------------------

    def inproc(self, size: str, reps: int) -> dict[str, Any]:
        data = worker("inproc", size, reps, self.claude, self.cwd, env=self.env)[0]
        self.reset_state()
        data["median"] = {k: median(v) for k, v in data["samples"].items()}
        return dict(data)

    # 3. peak RSS -------------------------------------------------------------------------------

    def rss(self, size: str) -> dict[str, Any]:
        imports = [worker("rss-import", env=self.env)[0]["peak_rss"] for _ in range(3)]
        api = worker("rss-api", size, self.claude, self.cwd, env=self.env)[0]
        self.reset_state()
        done = subprocess.run(
            [PYTHON, WORKERS, "rss-cli", size, self.claude, self.cwd],
            capture_output=True,
            env=self.env,
            check=False,
        )
        result = json.loads(done.stdout)
        assert done.returncode == 0, done.stderr[-2000:]
        assert result["status"] == "ok", result.get("error")
        assert len(result["result"]) == SIZES[size]
        cli = json.loads(done.stderr.decode().strip().splitlines()[-1])
        del result
        self.reset_state()
        bare = worker("rss-bare", size, self.claude, self.cwd, env=self.env)[0]
        return {
            "size": size,
            "answer_bytes": SIZES[size],
            "import_peak_rss": median(imports),
            "api_peak_rss": api["peak_rss"],
            "console_peak_rss": cli["peak_rss"],
            "bare_claude_peak_rss": bare["peak_rss"],
        }

    # 4. claude-agent-sdk -----------------------------------------------------------------------

    def sdk(self, size: str, reps: int) -> dict[str, Any]:
        rows = worker(
            "sdk",
            size,
            reps,
            self.claude,
            self.cwd,
            SDK_TIMEOUT_S,
            env=self.env,
            timeout=SDK_TIMEOUT_S * (reps + 1) + 30,
        )
        self.reset_state()
        if rows and rows[0].get("installed") is False:
            return {"installed": False, "error": rows[0]["error"]}
        attempts = [r for r in rows if "seconds" in r]
        ok = [r["seconds"] for r in attempts if r["ok"]]
        failures = [r for r in attempts if not r["ok"]]
        if any("worker_timeout" in r for r in rows):
            failures.append({"error_type": "hang", "error": "worker killed after its timeout"})
        return {
            "installed": True,
            "version": attempts[0]["version"] if attempts else None,
            "attempts": attempts,
            "completed": len(ok),
            "median_ok_s": median(ok),
            "median_failed_s": median([r["seconds"] for r in failures if "seconds" in r]),
            "failure": failures[0] if failures else None,
        }


# --- report ----------------------------------------------------------------------------------


def paired_overhead(
    samples: dict[str, list[float]], over: str = "ours", base: str = "bare file"
) -> tuple[float, float, float]:
    """Median, first and third quartile of ``over - base`` (by default ``ours - bare
    file``) within each repetition.

    Every repetition runs each variant once, one right after the other, so a pair shares
    the machine's state of the moment; the medians of the variants taken apart carry the
    bare CLI's own drift (20 to 50 ms between runs here) into the overhead."""
    diffs = [o - b for o, b in zip(samples[over], samples[base], strict=True)]
    if len(diffs) < 2:
        return diffs[0], diffs[0], diffs[0]
    q1, q2, q3 = statistics.quantiles(diffs, n=4, method="inclusive")
    return q2, q1, q3


def median_interval(
    samples: dict[str, list[float]],
    over: str = "ours",
    base: str = "bare file",
    *,
    resamples: int = 2000,
    level: float = 0.95,
) -> tuple[float, float]:
    """Bootstrap confidence interval of the median of ``over - base`` (percentile
    method, seeded, so a report printed again from its JSON shows the same interval).
    With 15 repetitions it is often 20 ms wide for the small answers: a median a few ms
    from its target does not say on which side the overhead really is."""
    diffs = [o - b for o, b in zip(samples[over], samples[base], strict=True)]
    rng = random.Random(0)
    medians = sorted(statistics.median(rng.choices(diffs, k=len(diffs))) for _ in range(resamples))
    tail = (1 - level) / 2
    return medians[int(tail * resamples)], medians[int((1 - tail) * resamples) - 1]


def verdict_row(size: str, row: dict[str, Any]) -> str:
    """Overhead of ``ours`` over the bare CLI with stdout to a file (the issue's baseline,
    ``claude -p ... > file``), paired by repetition, its 95% interval, and the verdict of
    the median against the target."""
    delta, q1, q3 = paired_overhead(row["samples"])
    low, high = median_interval(row["samples"])
    base = row["median"]["bare file"]
    met, target = overhead_verdict(size, base, base + delta)
    return (
        f"{ms(delta):>7} {delta / base:>+7.1%} [{q1 * 1000:.0f}..{q3 * 1000:.0f}] "
        f"{low * 1000:>4.0f}..{high * 1000:<4.0f} {'met' if met else 'MISSED'} ({target})"
    )


def report(results: dict[str, Any], out: Callable[[str], None] = print) -> None:
    out(f"machine: {results['machine']}")
    out(f"source:  {results['source']}")
    load = [f"{results[k][0]:.2f}" for k in ("load_before", "load_after")]
    out(f"load:    1-minute load average {load[0]} before, {load[1]} after (other work on the")
    out("         machine shows up as noise in the wall times)")
    out("")
    if "console" in results:
        out("1. `cc-executor run --json --quiet` (console script) vs the bare CLI; medians of")
        out("   wall time (bare: our adapter's flags, stdout to a file / read from a pipe; -p text")
        out("   for reference); overhead: median [quartiles] of ours - bare→file per repetition,")
        out("   then the 95% bootstrap interval of that median (ms)")
        out(
            f"   {'answer':<8} {'reps':>4} {'bare→file':>10} {'bare→pipe':>10} {'-p text':>8} "
            f"{'cc-executor':>12} {'overhead':>26} {'95% CI':>10} verdict"
        )
        for size, row in results["console"].items():
            m = row["median"]
            out(
                f"   {size:<8} {row['reps']:>4} {ms(m['bare file']):>10} {ms(m['bare pipe']):>10} "
                f"{ms(m['bare text']):>8} {ms(m['ours']):>12} {verdict_row(size, row)}"
            )
        floors = {s: r for s, r in results["console"].items() if "python floor" in r["samples"]}
        if floors:
            out("   the floor under any Python console script (`_spawn_floor.py`: start, spawn the")
            out("   CLI, wait, print its last line), and ours above it, paired the same way:")
            for size, row in floors.items():
                parts = []
                for over, base in (("python floor", "bare file"), ("ours", "python floor")):
                    delta, _, _ = paired_overhead(row["samples"], over, base)
                    low, high = median_interval(row["samples"], over, base)
                    parts.append(f"{delta * 1000:+.0f} ms ({low * 1000:.0f}..{high * 1000:.0f})")
                out(f"   {size:<8} floor - bare→file {parts[0]:<22} cc-executor - floor {parts[1]}")
        fixed = results["console"].get("trivial", {}).get("median", {}).get("python imports")
        if fixed is not None:
            out(
                f"   fixed cost in that: `python -c 'import asyncio, cc_executor._cli._run, "
                f"cc_executor._run._runner'` = {ms(fixed)}"
            )
        out("")
    if "inproc" in results:
        out("2. in-process: `await run(...)` vs the bare CLI via asyncio.create_subprocess_exec")
        out("   (overhead paired by repetition, as above)")
        out(
            f"   {'answer':<8} {'reps':>4} {'bare→file':>10} {'bare→pipe':>10} {'run()':>8} "
            f"{'overhead':>26} {'95% CI':>10} verdict"
        )
        for size, row in results["inproc"].items():
            m = row["median"]
            out(
                f"   {size:<8} {len(row['samples']['ours']):>4} {ms(m['bare file']):>10} "
                f"{ms(m['bare pipe']):>10} {ms(m['ours']):>8} {verdict_row(size, row)}"
            )
        out("")
    if "rss" in results:
        rss = results["rss"]
        answer = rss["answer_bytes"]
        fixed_rss = rss["import_peak_rss"]
        out(
            f"3. peak RSS (VmHWM) of our process alone, {mb(answer)} answer "
            f"(target <= {RSS_TARGET:.0f}x = {mb(RSS_TARGET * answer)})"
        )
        out(f"   {'python + import cc_executor, asyncio (fixed cost)':<50} {mb(fixed_rss):>9}")
        for label, key in (
            ("`cc-executor run --json --quiet` (console entry)", "console_peak_rss"),
            ("`await run(...)` (API)", "api_peak_rss"),
        ):
            value = rss[key]
            verdict = "met" if value <= RSS_TARGET * answer else "MISSED"
            out(
                f"   {label:<50} {mb(value):>9}  {value / answer:.2f}x the answer "
                f"({(value - fixed_rss) / answer:.2f}x above the fixed cost)  {verdict}"
            )
        bare_label = "the bare claude CLI itself (wait4), for context"
        out(f"   {bare_label:<50} {mb(rss['bare_claude_peak_rss']):>9}")
        out("")
    if "sdk" in results and "inproc" in results:
        report_sdk(results, out)


def report_sdk(results: dict[str, Any], out: Callable[[str], None]) -> None:
    sdk = results["sdk"]
    first = next(iter(sdk.values()))
    if not first.get("installed"):
        out(f"4. claude-agent-sdk: not installed ({first.get('error')}); see the docstring")
        return
    out(f"4. claude-agent-sdk {first.get('version')} query(), default options, same CLI and env")
    out(f"   {'answer':<8} {'completed':>9} {'query()':>9} {'run()':>8} {'ratio':>6}  failure")
    for size, row in sdk.items():
        ours = results["inproc"][size]["median"]["ours"]
        done = f"{row['completed']}/{len(row['attempts'])}"
        if row["completed"]:
            t, ratio = ms(row["median_ok_s"]), f"{row['median_ok_s'] / ours:.2f}x"
        else:
            t, ratio = "-", "-"
        failure = row["failure"]
        why = ""
        if failure:
            why = f"{failure['error_type']}: {failure['error'][:120]}"
            if "seconds" in failure:
                why += f" (raised after {ms(failure['seconds'])})"
        out(f"   {size:<8} {done:>9} {t:>9} {ms(ours):>8} {ratio:>6}  {why}")


def source_state() -> str:
    """cc-executor's version and the commit measured (and whether src/ had local changes)."""
    import cc_executor
    from cc_executor._version import __version__

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", "-C", str(REPO), *args], capture_output=True, text=True, check=False
        )
        return done.stdout.strip() if done.returncode == 0 else ""

    package = Path(cc_executor.__file__).resolve().parent
    if package != REPO / "src" / "cc_executor":
        return f"cc-executor {__version__} imported from {package}"
    commit = git("rev-parse", "--short", "HEAD")
    changed = git("status", "--porcelain", "--untracked-files=no", "src")
    dirty = " + uncommitted changes in src/" if changed else ""
    return f"cc-executor {__version__} at {commit or 'unknown commit'}{dirty}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="trivial and 2 MB only, fewer reps")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument("--claude", metavar="PATH", help="the Claude Code CLI")
    parser.add_argument(
        "--parts",
        default="console,inproc,sdk,rss",
        metavar="P[,P]",
        help="which parts to run (console, inproc, sdk, rss; default: all)",
    )
    parser.add_argument("--reps", type=int, metavar="N", help="repetitions for every size")
    parser.add_argument(
        "--sizes", metavar="S[,S]", help="only these answers (trivial, 2MB, 20MB; default: all)"
    )
    parser.add_argument(
        "--report", metavar="FILE", help="print the report of a run saved with --json, run nothing"
    )
    args = parser.parse_args()
    if args.report:
        report(json.loads(Path(args.report).read_text()))
        return
    parts = set(args.parts.split(","))
    claude = find_claude(args.claude)
    # Start-up time is measured: the package's bytecode must exist, as after a regular
    # install (an editable one under PYTHONDONTWRITEBYTECODE would recompile on every run).
    import compileall

    compileall.compile_dir(str(REPO / "src" / "cc_executor"), quiet=1)
    reps = {"trivial": 3, "2MB": 2} if args.quick else {"trivial": 7, "2MB": 5, "20MB": 3}
    if args.reps:
        reps = dict.fromkeys(reps, args.reps)
    if args.sizes:
        wanted = args.sizes.split(",")
        unknown = sorted(set(wanted) - set(SIZES))
        if unknown:
            parser.error(f"unknown size(s): {', '.join(unknown)} (known: {', '.join(SIZES)})")
        reps = {size: n for size, n in reps.items() if size in wanted}
    rss_size = "2MB" if args.quick else "20MB"

    root = Path(tempfile.mkdtemp(prefix="cc-bench-claude-"))
    (root / "home").mkdir()
    server = subprocess.Popen(
        [PYTHON, WORKERS, "serve", str(root / "home")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert server.stdout is not None
        env = json.loads(server.stdout.readline())["env"]
        env["CC_EXECUTOR_HOME"] = str(root / "cc-executor")
        bench = Bench(claude, root, env)
        results: dict[str, Any] = {
            "machine": machine_line(claude),
            "source": source_state(),
            "reps": reps,
            "load_before": os.getloadavg(),
        }
        for part, fn in (("console", bench.console), ("inproc", bench.inproc), ("sdk", bench.sdk)):
            if part not in parts:
                continue
            results[part] = {}
            for size, n in reps.items():
                print(f"... {part} {size}", file=sys.stderr, flush=True)
                results[part][size] = fn(size, n)
        if "rss" in parts:
            print(f"... rss {rss_size}", file=sys.stderr, flush=True)
            results["rss"] = bench.rss(rss_size)
        results["load_after"] = os.getloadavg()
    finally:
        stop_server(server, root)

    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")


def stop_server(server: subprocess.Popen[Any], root: str | Path) -> None:
    """End the scripted server (it stops when its stdin closes) and remove the scratch root."""
    if server.stdin is not None:
        server.stdin.close()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
