"""`cc-executor run` through the console script, the real CLI and the scripted model server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from cc_executor.testing import HttpErrorReply, ModelServer, Reply, Rule, Script, Text, ToolUse
from tests._means import claude_path, uses_cli
from tests._procs import run_cgroups
from tests._pty import run_on_pty
from tests._wait import wait_for, with_room

CLI = str(Path(sys.executable).parent / "cc-executor")
RUN_FIELDS = {
    "run_id", "status", "result", "partial", "timeout_after", "session_id", "cost_usd",
    "usage", "num_turns", "duration_s", "exit_code", "error", "json", "files",
}  # fmt: skip
#: 3 MB with what JSON escapes (quotes, backslashes, control characters) and non-ASCII.
HUGE = "".join(f'{i:06d} "q" \\ \x01 \u00e9\U0001f600\n' for i in range(3_000_000 // 20))

#: What orjson leaves raw and a terminal obeys or reorders by: C1 controls (CSI, NEL),
#: bidi controls and the line separators.
CONTROLS = (
    "a\x9b2Jb \x85 \u061c \u200e\u200f \u202a\u202b\u202c\u202d\u202e "
    "\u2066\u2067\u2068\u2069 \u2028\u2029 \x7f end"
)


@pytest.fixture
@uses_cli
def served(tmp_path: Path) -> Iterator[tuple[ModelServer, dict[str, str], Path]]:
    claude = claude_path()
    assert claude is not None  # the cli marker's probe skipped the test otherwise
    script = Script(
        [
            Rule(
                match="write",
                answers=[
                    Reply([ToolUse("Write", {"file_path": "note.txt", "content": "noted\n"})]),
                    Reply([Text("Wrote note.txt.")]),
                ],
            ),
            Rule(match="json", answers=[Reply([Text('Result: {"n": 3,}')])]),
            Rule(match="fail", answers=[HttpErrorReply(400, message="scripted bad request")]),
            Rule(match="slow", answers=[Reply([Text("x " * 400)], chunk_size=2, delay=0.1)]),
            Rule(
                match="escape",
                answers=[Reply([Text("evil \x1b]0;pwned\x07 \x1b[2J title")], chunk_size=4)],
            ),
            Rule(
                match="bidi",
                answers=[Reply([Text("invoice\u202egnp.exe \u2066zero\u200bwidth")], chunk_size=4)],
            ),
            Rule(match="huge", answers=[Reply([Text(HUGE)], chunk_size=1 << 18)]),
            Rule(match="controls", answers=[Reply([Text(CONTROLS)])]),
            *(
                Rule(
                    match=word,
                    answers=[Reply([Text("after retry")], errors_before=[HttpErrorReply(529)])],
                )
                for word in ("overload-long", "overload-short", "overload-bad")
            ),
            Rule(answers=[Reply([Text("Plain answer.")])]),
        ]
    )
    work = tmp_path / "work"
    home = tmp_path / "home"
    work.mkdir()
    home.mkdir()
    with ModelServer(script) as server:
        env = server.claude_env(home=home, base=os.environ, max_retries=0)
        env["CC_EXECUTOR_CLAUDE"] = claude
        env["CC_EXECUTOR_HOME"] = str(tmp_path / "cc-home")
        yield server, env, work


def cc(
    env: dict[str, str], *args: str, stdin: bytes | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [CLI, "run", *args], input=stdin, capture_output=True, env=env, timeout=120, check=False
    )


def test_answer_on_stdout_progress_on_stderr(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    _, env, work = served
    done = cc(env, "please write a note", "--allowed-tools", "Write", "--cwd", str(work))
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Wrote note.txt.\n"
    assert (work / "note.txt").read_text() == "noted\n"
    assert b"tool: Write note.txt" in done.stderr
    assert b"ok \xc2\xb7 $" in done.stderr


def test_json_prints_one_object(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    _, env, work = served
    done = cc(env, "json please", "--json-mode", "--json", "--cwd", str(work))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.decode().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    assert set(result) >= RUN_FIELDS
    assert result["status"] == "ok"
    assert result["json"] == {"n": 3}


def test_huge_answer_printed_whole(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """Written a slice at a time (plain and --json), never encoded in one piece."""
    _, env, work = served
    plain = cc(env, "huge answer", "--cwd", str(work), "--quiet")
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == HUGE.encode()  # it ends with a newline: none added
    as_json = cc(env, "huge answer", "--cwd", str(work), "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert as_json.stdout.count(b"\n") == 1
    result = json.loads(as_json.stdout)
    assert set(result) >= RUN_FIELDS
    assert result["result"] == HUGE
    compact = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
    assert as_json.stdout == (compact + "\n").encode()


def test_prompt_from_stdin(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    server, env, work = served
    prompt = "hello from stdin; $(touch /tmp/never) `id`\n"
    done = cc(env, "-", "--cwd", str(work), "--quiet", stdin=prompt.encode())
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Plain answer.\n"
    assert server.message_requests[-1].prompt == prompt


def test_five_mb_prompt_from_stdin(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    server, env, work = served
    prompt = "0123456789abcdef" * (5 * 1024 * 1024 // 16)
    args = ("-", "--cwd", str(work), "--quiet")
    refused = cc(env, *args, stdin=prompt.encode())
    assert refused.returncode == 1
    assert b"Prompt is too long: Claude Code refused the prompt itself" in refused.stderr
    assert b"--max-context-tokens" in refused.stderr
    assert server.message_requests == []
    done = cc(env, *args, "--max-context-tokens", "4000000", stdin=prompt.encode())
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Plain answer.\n"
    assert server.message_requests[-1].prompt == prompt
    bad = cc(env, "x", "--max-context-tokens", "0")
    assert bad.returncode == 2
    assert b"--max-context-tokens must be a positive integer, got 0" in bad.stderr


def test_error_exit_code_and_message(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    _, env, work = served
    done = cc(env, "fail now", "--cwd", str(work), "--retries", "0")
    assert done.returncode == 1
    assert b"API error 400: API Error: 400 scripted bad request" in done.stderr
    # The CLI's error text is not an answer: nothing on stdout, even under --quiet.
    assert done.stdout == b""
    quiet = cc(env, "fail now", "--cwd", str(work), "--retries", "0", "--quiet")
    assert quiet.returncode == 1
    assert quiet.stdout == b""
    assert quiet.stderr.decode().splitlines() == [
        "cc-executor run: API error 400: API Error: 400 scripted bad request"
    ]


def test_quiet_prints_the_answer_only(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """--quiet: no live view and no summary line."""
    _, env, work = served
    done = cc(env, "hello", "--cwd", str(work), "--quiet")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Plain answer.\n"
    assert done.stderr == b""


def test_retry_back_off_flags(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """--retry-initial-delay / --retry-max-delay reach the run: a back-off longer than the
    timeout leaves is not attempted, a short one is; bad values are a usage error."""
    _, env, work = served
    base = ["--json", "--quiet", "--cwd", str(work), "--retries", "1"]
    delays = ("--retry-initial-delay", "30", "--retry-max-delay", "30")
    long = cc(env, "overload-long", *base, "--timeout", "20", *delays)
    out = json.loads(long.stdout)
    assert long.returncode == 1, long.stderr
    assert out["attempts"] == 1
    assert any("the timeout leaves no time" in w for w in out["warnings"])
    delays = ("--retry-initial-delay", "0.1", "--retry-max-delay", "0.1")
    short = cc(env, "overload-short", *base, *delays)
    out = json.loads(short.stdout)
    assert short.returncode == 0, short.stderr
    assert (out["result"], out["attempts"]) == ("after retry", 2)
    bad = cc(env, "overload-bad", *base, "--retry-initial-delay", "5", "--retry-max-delay", "1")
    assert bad.returncode == 2
    assert b"--retry-initial-delay <= --retry-max-delay" in bad.stderr


def test_timeout_exit_124_with_partial_answer(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    _, env, work = served
    # The timeout must fall after the first words: more room if the CLI's start took it all.
    done, _ = with_room(
        lambda t: cc(env, "slow one", "--cwd", str(work), "--timeout", f"{t:g}", "--json"),
        3,
        lambda d: json.loads(d.stdout or b"{}").get("result", "").startswith("x x"),
    )
    assert done.returncode == 124
    result = json.loads(done.stdout)
    assert result["status"] == "timeout"
    assert result["partial"] is True
    assert result["result"].startswith("x x")
    assert result["session_id"]


def test_bad_option_is_a_clear_error(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    _, env, _work = served
    done = cc(env, "x", "--permission-mode", "yolo")
    assert done.returncode == 2
    assert b"--permission-mode must be one of" in done.stderr
    assert done.stderr.count(b"\n") == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-turns", "0"], "--max-turns must be >= 1, got 0"),
        (["--max-trns", "3"], "unrecognized arguments: --max-trns 3 (did you mean --max-turns?)"),
        (["--timeout", "soon"], "argument --timeout: expected seconds or 'auto', got 'soon'"),
        (
            ["--agent", "command"],
            "the command agent needs --agent-spec, a TOML file describing its CLI: "
            "see docs/agents/command.md",
        ),
    ],
)
def test_usage_error_names_the_flag(
    served: tuple[ModelServer, dict[str, str], Path], args: list[str], message: str
) -> None:
    """One line naming the flag (not the API's option name), "did you mean" for a typo;
    under --json, exactly one usage_error object on stdout."""
    _, env, work = served
    done = cc(env, "x", *args, "--cwd", str(work))
    assert done.returncode == 2
    assert done.stderr.decode() == (
        f"cc-executor run: error: {message} (see cc-executor run --help)\n"
    )
    assert done.stdout == b""
    as_json = cc(env, "x", *args, "--cwd", str(work), "--json")
    assert as_json.returncode == 2
    assert json.loads(as_json.stdout) == {
        "schema_version": 1,
        "status": "usage_error",
        "error": message,
        "exit_code": 2,
        "run_id": None,
    }


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["-"], b"  \n", b"the prompt is empty"),
        (["x", "--add-dir", "/nonexistent-dir"], None, b"--add-dir: /nonexistent-dir is not a"),
        (["x", "--mcp-config", "/nonexistent.json"], None, b"--mcp-config: no such file"),
        (["x", "--json-schema", '{"type": 12}'], None, b"invalid JSON schema"),
        (["x", "--json-schema", "5"], None, b"a schema is a JSON object"),
        (["x", "--json-schema", "/nonexistent.json"], None, b"no such file: /nonexistent.json"),
        (["x", "--retry-max-delay", "-1"], None, b"retry delays must satisfy"),
    ],
)
def test_bad_input_is_refused_before_anything_runs(
    served: tuple[ModelServer, dict[str, str], Path],
    args: list[str],
    stdin: bytes | None,
    message: bytes,
) -> None:
    """Each is a usage error (exit 2, one line, no traceback) before the CLI starts: the
    model server sees no request."""
    server, env, work = served
    before = len(server.message_requests)
    done = cc(env, *args, "--json", "--cwd", str(work), stdin=stdin)
    assert done.returncode == 2, done.stderr
    assert message in done.stderr
    assert b"Traceback" not in done.stderr
    assert json.loads(done.stdout)["status"] == "usage_error"
    assert len(server.message_requests) == before


def test_prompt_from_a_closed_stdin(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    _, env, work = served
    done = subprocess.run(
        [CLI, "run", "-", "--cwd", str(work)],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
        preexec_fn=lambda: os.close(0),  # the child starts with fd 0 closed
    )
    assert done.returncode == 2
    assert b"stdin is closed" in done.stderr
    assert b"Traceback" not in done.stderr


def test_prompt_that_is_not_utf8_is_sent_with_a_warning(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    server, env, work = served
    done = cc(env, "-", "--json", "--cwd", str(work), stdin=b"plain \xff\xfe bytes")
    result = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert any("not valid UTF-8 (byte 6)" in w for w in result["warnings"])
    assert server.message_requests[-1].prompt == "plain \ufffd\ufffd bytes"
    shown = subprocess.run(
        [CLI, "show", result["run_id"]], capture_output=True, env=env, timeout=60, check=False
    )
    assert b"warning: the prompt is not valid UTF-8 (byte 6)" in shown.stdout


def test_live_view_on_a_terminal_neutralises_escapes(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """On a real pseudo-terminal the live view draws a status line; control sequences from
    the model never reach the terminal raw."""
    _, env, work = served
    returncode, screen = run_on_pty(
        [CLI, "run", "escape test", "--cwd", str(work)],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    assert returncode == 0
    assert b"turns" in screen
    assert b"tools" in screen
    assert b"\x1b]0;pwned" not in screen  # no window-title change
    assert b"\x1b[2J" not in screen  # no screen clear from the model
    assert b"\\x1b]0;pwned\\x07" in screen  # shown inert instead


def test_live_view_on_a_terminal_neutralises_bidi_controls(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """Bidi overrides and zero-width characters from the model (text that reads otherwise
    than it is) reach the terminal as escapes, in the live view and in the answer."""
    _, env, work = served
    returncode, screen = run_on_pty(
        [CLI, "run", "bidi test", "--cwd", str(work)],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    assert returncode == 0
    for raw in ("\u202e", "\u2066", "\u200b"):
        assert raw.encode() not in screen
    assert b"invoice\\u202egnp.exe \\u2066zero\\u200bwidth" in screen


def test_json_on_a_terminal_escapes_what_would_control_it(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """Issue 18 F8.2: orjson escapes only C0, so C1 and bidi controls and U+2028/U+2029 in
    the answer reached the terminal raw under --json; now they are \\u escapes of the same
    JSON value. Written to a pipe, the JSON stays as it was."""
    _, env, work = served
    returncode, screen = run_on_pty(
        [CLI, "run", "controls test", "--json", "--quiet", "--cwd", str(work)],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    assert returncode == 0, screen
    for raw in sorted(set(CONTROLS) - set("abend J2 ")):
        assert raw.encode() not in screen, hex(ord(raw))
    [line] = [line for line in screen.splitlines() if line.startswith(b'{"')]
    assert json.loads(line)["result"] == CONTROLS
    assert b"a\\u009b2Jb \\u0085 \\u061c \\u200e\\u200f \\u202a" in line
    piped = cc(env, "controls test", "--json", "--quiet", "--cwd", str(work))
    assert piped.returncode == 0, piped.stderr
    assert json.loads(piped.stdout)["result"] == CONTROLS
    assert CONTROLS.encode() in piped.stdout


def test_live_view_spinner_turns(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """The spinner moves: one spinner for the run (a new one per refresh stayed on its
    first frame for good)."""
    _, env, work = served
    returncode, screen = run_on_pty(
        # 10 s for the spinner to turn: a loaded machine spent 2.5 s mostly starting up.
        [CLI, "run", "slow one", "--cwd", str(work), "--timeout", "10"],
        env={**env, "TERM": "xterm-256color", "COLUMNS": "120"},
    )
    assert returncode == 124
    frames = {f for f in "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏" if f.encode() in screen}
    assert len(frames) >= 3, frames


def _processes_with(marker: str) -> list[int]:
    """PIDs of live processes whose environment contains ``marker``."""
    found = []
    for proc in psutil.process_iter(["pid"]):
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                continue
            if marker in "\0".join(f"{k}={v}" for k, v in proc.environ().items()):
                found.append(proc.pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
    return found


@pytest.mark.parametrize("delay", [0.0, 0.01, 0.02, 0.03, 0.08, 0.15, 0.4, 1.5])
def test_interrupt_at_any_moment_of_the_start(
    served: tuple[ModelServer, dict[str, str], Path], delay: float
) -> None:
    """The console starts Claude Code before its imports; a Ctrl-C at any moment, before
    the start, between the start and the event loop, or during the answer, leaves nothing
    running and never prints a traceback. Once the CLI is up, the run ends ``cancelled``
    with exit code 130 and its partial answer."""
    server, env, work = served
    proc = subprocess.Popen(
        [CLI, "run", "slow one", "--cwd", str(work), "--json", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    if delay < 0.4:
        time.sleep(delay)  # a moment of the start: the behaviour under test
    else:
        # During the answer: once the CLI asked for it (then deeper into it).
        wait_for(
            lambda: any("slow one" in (r.prompt or "") for r in server.message_requests),
            what="the CLI's request for the answer",
        )
        time.sleep(delay - 0.4)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    # Python's own behaviour for any console script, before any of our code ran: a signal
    # while the interpreter initialises (importing ``site``, which runs the venv's .pth
    # files, or setting up the standard streams) is a fatal init error, exit 1.
    in_site = proc.returncode == 1 and b"Fatal Python error: init_" in err
    # And while it reads and compiles the console script, before running a line of it:
    # CPython prints the bare exception with no traceback (no frame yet) and exits 1 (its
    # exit by SIGINT applies only to an interrupt while code runs). Seen once in a fresh
    # clone's CI, where the script has no cached bytecode.
    in_site = in_site or (proc.returncode == 1 and err.strip() == b"KeyboardInterrupt")
    # Python's own too: a KeyboardInterrupt raised inside a callback Python runs for itself
    # (the import lock's weakref callback, during an import before our handlers are in) is
    # printed as "Exception ignored" and dropped, so the run goes on to its end.
    dropped = proc.returncode == 0 and b"Exception ignored in" in err and b"_bootstrap" in err
    if not dropped:
        assert proc.returncode in (130, -signal.SIGINT) or in_site, (proc.returncode, err)
        if proc.returncode == 130:
            assert b"Traceback" not in err, err
        else:
            # Died of the signal while the interpreter itself was starting.
            assert not err or err.rstrip().endswith(b"KeyboardInterrupt"), err
        if delay >= 0.4:
            assert proc.returncode == 130
            result = json.loads(out)
            assert result["status"] == "cancelled"
            assert result["partial"] is True
        elif out:
            assert json.loads(out)["status"] == "cancelled"
    wait_for(
        lambda: _processes_with(env["CC_EXECUTOR_HOME"]) == [],
        what="no process of the run left",
    )


def test_command_line_only_argparse_reads(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """Abbreviated options and ``--`` are argparse's to read (the console's quick reading
    declines them); the run is the same."""
    _, env, work = served
    done = cc(env, "--time", "60", "--cwd", str(work), "--qui", "--", "-dash prompt")
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"Plain answer.\n"


def test_unknown_claude_path_is_reported_not_launched(
    served: tuple[ModelServer, dict[str, str], Path], tmp_path: Path
) -> None:
    _, env, work = served
    done = cc(env, "hi", "--cwd", str(work), "--claude", str(tmp_path / "nope"), "--json")
    assert done.returncode == 125
    result = json.loads(done.stdout)
    assert result["status"] == "spawn_failed"
    assert "Claude Code not found at" in result["error"]


def test_a_claude_that_is_not_executable_says_so(
    served: tuple[ModelServer, dict[str, str], Path], tmp_path: Path
) -> None:
    _, env, work = served
    plain = tmp_path / "claude"
    plain.write_text("#!/bin/sh\n")
    done = cc({**env, "CC_EXECUTOR_CLAUDE": str(plain)}, "hi", "--cwd", str(work), "--json")
    assert done.returncode == 125
    assert json.loads(done.stdout)["error"] == (
        f"Claude Code at {plain} (from CC_EXECUTOR_CLAUDE) is not executable: chmod +x it, "
        "or point CC_EXECUTOR_CLAUDE at the executable"
    )


def test_closed_stdout_is_not_a_traceback(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """A reader that goes away (``| head -c 10``) ends the command quietly."""
    _, env, work = served
    proc = subprocess.Popen(
        [CLI, "run", "huge answer", "--cwd", str(work), "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None
    assert proc.stderr is not None
    assert len(proc.stdout.read(10)) == 10
    proc.stdout.close()
    err = proc.stderr.read()
    assert proc.wait(timeout=60) == 141
    assert b"Traceback" not in err
    assert b"BrokenPipe" not in err


def test_unusable_home_falls_back_to_a_temporary_run_folder(
    served: tuple[ModelServer, dict[str, str], Path], tmp_path: Path
) -> None:
    """A broken CC_EXECUTOR_HOME (a file where the folder should be) costs the history, not
    the run: the output goes to a temporary folder, with warnings saying so."""
    _, env, work = served
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the data folder should be")
    done = cc(
        {**env, "CC_EXECUTOR_HOME": str(blocker / "home")}, "hi", "--json", "--cwd", str(work)
    )
    result = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert result["status"] == "ok"
    assert result["result"] == "Plain answer."
    assert any("unusable" in w and "output kept in" in w for w in result["warnings"])
    assert any("history not recorded" in w for w in result["warnings"])
    assert Path(result["event_log"]).is_file()
    plain = cc({**env, "CC_EXECUTOR_HOME": str(blocker / "home")}, "hi", "--cwd", str(work))
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout == b"Plain answer.\n"
    assert plain.stderr.count(b"cc-executor run: warning: history not recorded") == 1
    assert plain.stderr.count(b"cc-executor run: warning: ") == len(result["warnings"])


def test_timeout_auto_from_past_runs(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """``--timeout auto`` without a model: the history keeps the model Claude Code reports,
    so the runs of any model count (they never matched before)."""
    _, env, work = served
    first = cc(env, "hello", "--timeout", "auto", "--quiet", "--cwd", str(work))
    assert first.returncode == 0, first.stderr
    assert b"fewer than 5: using the default 600 s" in first.stderr
    assert first.stderr.count(b"--timeout auto:") == 1, first.stderr  # not again at the end
    for _ in range(4):
        assert cc(env, "hello", "--quiet", "--cwd", str(work)).returncode == 0
    done = cc(env, "hello", "--timeout", "auto", "--json", "--quiet", "--cwd", str(work))
    assert done.returncode == 0, done.stderr
    assert b"5 similar past runs" in done.stderr
    assert b"(runs of any model)" in done.stderr
    assert json.loads(done.stdout)["status"] == "ok"


def test_fallback_model_reaches_the_cli(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """An option added by one declaration (plus Claude Code's flag): the flag is read by the
    console, checked, and passed to the real CLI, which accepts it."""
    _, env, work = served
    done = cc(env, "hello", "--fallback-model", "claude-fallback-x", "--json", "--cwd", str(work))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    events = Path(result["event_log"]).read_text()
    assert '"type":"result"' in events.replace(" ", "")
    bad = cc(env, "hello", "--fallback-model=--mcp-config={}", "--cwd", str(work))
    assert bad.returncode == 2
    assert b"--fallback-model must be a session id or name" in bad.stderr


def test_denied_tool_calls_are_not_a_success(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """Claude Code answers "Wrote note.txt." though its Write was refused: exit 3, and the
    last line names the denied tool and the flag that grants it."""
    _, env, work = served
    done = cc(env, "please write a note", "--cwd", str(work))
    assert done.returncode == 3, done.stderr
    assert not (work / "note.txt").exists()
    last = done.stderr.decode().strip().splitlines()[-1]
    assert "denied (Write)" in last
    assert "--allowed-tools Write" in last
    as_json = cc(env, "please write a note", "--cwd", str(work), "--json")
    assert as_json.returncode == 3
    result = json.loads(as_json.stdout)
    assert result["status"] == "denied"
    assert [d["tool_name"] for d in result["permission_denials"]] == ["Write"]
    accepted = cc(env, "please write a note", "--cwd", str(work), "--accept-denials")
    assert accepted.returncode == 0, accepted.stderr


def test_workspace_from_the_console(served: tuple[ModelServer, dict[str, str], Path]) -> None:
    """``--workspace worktree``: the run writes in its own worktree, ``--json`` carries the
    receipt, and the user's uncommitted files left out are printed; outside git it is a
    usage error."""
    _, env, work = served
    repo = work / "repo"
    repo.mkdir()
    for args in (["init", "-q"], ["commit", "-q", "--allow-empty", "-m", "first"]):
        subprocess.run(["git", "-C", str(repo), *args], check=True, env={**env, **IDENTITY})
    (repo / "mine.txt").write_text("uncommitted\n")
    done = cc(env, "please write a note", "--allowed-tools", "Write", "--cwd", str(repo),
              "--workspace", "worktree", "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    receipt = json.loads(done.stdout)["workspace"]
    assert receipt["changes"] == [{"path": "note.txt", "kind": "added"}]
    assert receipt["branch"].startswith("cc-executor/")
    assert not (repo / "note.txt").exists()
    assert b"were not carried into the workspace" in done.stderr
    assert receipt["left_behind"] == ["mine.txt"]
    assert b"mine.txt" in done.stderr
    refused = cc(env, "x", "--workspace", "worktree", "--cwd", str(work))
    assert refused.returncode == 2
    assert b"is not in a git repository" in refused.stderr
    assert refused.stderr.count(b"\n") == 1


IDENTITY = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


@pytest.mark.cgroup
def test_a_run_under_resource_limits_works_and_records_what_it_used(
    served: tuple[ModelServer, dict[str, str], Path],
) -> None:
    """The console's early start puts the CLI in a cgroup of the run's own before it execs;
    the run ends ok, with the tree's peak memory and CPU time in its result and history."""
    _, env, work = served
    limits = ("--memory-max", "2G", "--cpus", "2", "--pids-max", "1000")
    done = cc(env, "hello", *limits, "--json", "--cwd", str(work))
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["status"] == "ok"
    assert result["result"] == "Plain answer."
    assert result["peak_memory_bytes"] > 10 << 20  # the CLI's own, at least
    assert result["peak_memory_bytes"] <= 2 << 30
    assert result["cpu_time_s"] > 0
    shown = subprocess.run(
        [CLI, "show", "--json", result["run_id"]], capture_output=True, env=env, check=True
    )
    record = json.loads(shown.stdout)
    assert record["peak_memory_bytes"] == result["peak_memory_bytes"]
    assert record["cpu_time_s"] == result["cpu_time_s"]
    assert run_cgroups(result["run_id"]) == []


def test_a_limit_that_cannot_be_enforced_refuses_the_run(
    served: tuple[ModelServer, dict[str, str], Path], tmp_path: Path
) -> None:
    _, env, work = served
    no_cgroups = {**env, "CC_EXECUTOR_CGROUP_ROOT": str(tmp_path)}
    done = cc(no_cgroups, "hello", "--pids-max", "100", "--cwd", str(work))
    assert done.returncode == 125, done.stderr
    assert b"pids_max cannot be enforced on this machine" in done.stderr


def test_the_config_files_defaults_reach_the_cli_under_the_flags(
    served: tuple[ModelServer, dict[str, str], Path], tmp_path: Path
) -> None:
    """[defaults] of the config file reach the real CLI whichever way the console reads the
    command line (its quick reading, or argparse for an abbreviated flag), and a flag given
    wins over the file."""
    from cc_executor._store import open_store

    _, env, work = served
    config = tmp_path / "config.toml"
    config.write_text("[defaults]\nmax_turns = 3\nappend_system_prompt = 'from the file'\n")
    env = {**env, "CC_EXECUTOR_CONFIG": str(config)}
    argvs = []
    for flags in ([], ["--max-tu", "5"]):
        done = cc(env, "hello", *flags, "--json", "--cwd", str(work))
        assert done.returncode == 0, done.stderr
        store = open_store()
        try:
            record = store.get(json.loads(done.stdout)["run_id"])
        finally:
            store.close()
        assert record is not None
        argvs.append(record.argv)
    assert "--max-turns=3" in argvs[0]
    assert "--max-turns=5" in argvs[1]
    assert all("--append-system-prompt=from the file" in argv for argv in argvs)


@pytest.mark.slow  # over 0.3 s: a cc-executor child process and its agent
@pytest.mark.parametrize(
    ("command", "sig"),
    [("run", signal.SIGTERM), ("tasks", signal.SIGHUP), ("batch", signal.SIGTERM)],
)
def test_a_signal_other_than_ctrl_c_exits_the_shell_way(
    tmp_path: Path, command: str, sig: signal.Signals
) -> None:
    """SIGTERM exits 143 and SIGHUP 129 (128 + N, as a shell reports them), where both
    exited 130 like a Ctrl-C: a supervisor tells its own stop from a user's. The run is
    stopped the orderly way all the same, and recorded ``cancelled``. (``exec``: in
    tests/cli/test_exec.py.)"""
    started = tmp_path / "started"
    agent = tmp_path / "agent.toml"
    code = f"import pathlib, time; pathlib.Path({str(started)!r}).touch(); time.sleep(600)"
    agent.write_text(f"command = [\"{sys.executable}\", \"-c\", '''{code}''']\n")
    argv = {
        "run": ["run", "x", "--agent", "command", "--agent-spec", str(agent), "--json"],
        "tasks": ["tasks", "run", "list.json", "--json"],
        "batch": ["batch", "prompts.jsonl", "--timeout", "600", "--json"],
    }[command]
    options = {"agent": "command", "agent_spec": str(agent)}
    (tmp_path / "list.json").write_text(
        json.dumps({"tasks": [{"id": "a", "prompt": "x", **options}]})
    )
    (tmp_path / "prompts.jsonl").write_text(json.dumps({"prompt": "x", "options": options}))
    proc = subprocess.Popen(
        [CLI, *argv, "--quiet"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    wait_for(started.exists, what="the agent started")
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + sig, err
    listed = subprocess.run([CLI, "history", "--json"], capture_output=True, check=True)
    assert [r["status"] for r in json.loads(listed.stdout) if r["kind"] == "run"] == ["cancelled"]
