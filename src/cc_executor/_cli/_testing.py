"""``cc-executor testing serve``: run a scripted model server from the command line."""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Mapping
from types import FrameType
from typing import Any

__all__ = ["add_parser"]

_PROG = "cc-executor testing serve"

#: The first line of every env file serve writes: only a file that starts with it is replaced.
_ENV_FILE_MARK = "# cc-executor testing serve:"

#: Variables that, set in the shell that loads the printed environment, would send Claude Code
#: to another endpoint or credential than the scripted server (the printed ones are overridden).
_CONFLICTING_PREFIXES = ("ANTHROPIC_", "CLAUDE_CODE_", "CLOUD_ML_")
_CONFLICTING_NAMES = ("CLAUDECODE",)

_FORMAT_SUMMARY = """\
script format (YAML or JSON; every field, with examples: docs/testing.md in the source):
  rules:                     # tried in order: the first whose match fits the prompt answers
    - match: "(?i)hello"     # a regular expression searched in the prompt (omit: any prompt)
      answers:               # answers[n] answers turn n (0, then one more per tool result)
        - tool_use: {name: Write, input: {file_path: hello.txt, content: "hi\\n"}}
        - text: "I created hello.txt."
          delay: 0.1         # also: chunk_size, latency, drop_after, drop_non_streaming,
                             # errors_before, usage, stop_reason
    - answers:
        - error: {status: 529, message: "Overloaded"}   # an HTTP error answer
  when_exhausted: error      # past the last answer: HTTP 500 (error) or repeat_last

examples shipped with cc-executor (--script NAME): {examples}

environment: the printed variables (and --env-file) point Claude Code at the server and give
it a throwaway config folder (CLAUDE_CONFIG_DIR). They do not change HOME or CC_EXECUTOR_HOME,
so runs are recorded in your usual history. On stop the folder is removed if it is empty, and
kept (with a message) if runs wrote to it.

examples:
  cc-executor testing serve --script write_file
  cc-executor testing serve --script my_script.yaml --port 8765 --env-file test.env
  (then, in the shell that runs claude or cc-executor: set -a; . ./test.env; set +a)
"""


def add_parser(subparsers: argparse._SubParsersAction[Any]) -> None:
    """Register ``testing serve --script FILE|NAME [--host H] [--port N] [--env-file FILE]``.

    The ``serve`` parser stores its handler as ``handler`` in the parsed namespace: call
    ``args.handler(args)``, which returns the process exit status (0 after a clean stop by Ctrl-C or
    SIGTERM, 2 for a bad script, host or env file). Heavy modules are imported by the handler only.
    """
    from cc_executor.testing._examples import example_names

    testing = subparsers.add_parser(
        "testing",
        help="tools for testing against a scripted model",
        description="Tools for running the real Claude Code CLI against a scripted model.",
    )
    commands = testing.add_subparsers(dest="testing_command", metavar="COMMAND", required=True)
    serve = commands.add_parser(
        "serve",
        help="serve a scripted Anthropic Messages API on a loopback port",
        description=(
            "Serve a scripted Anthropic Messages API on a loopback port until Ctrl-C or SIGTERM. "
            "Prints the URL and the environment variables that point Claude Code at it."
        ),
        epilog=_FORMAT_SUMMARY.replace("{examples}", ", ".join(example_names())),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument(
        "--script",
        required=True,
        metavar="FILE|NAME",
        help="script file (.json, .yaml or .yml), or the name of a shipped example "
        "(e.g. write_file)",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="loopback address to bind (default: 127.0.0.1)"
    )
    serve.add_argument("--port", type=int, default=0, help="TCP port (default: 0, any free port)")
    serve.add_argument(
        "--env-file",
        metavar="FILE",
        help="also write the environment to FILE, a dotenv file with shell-quoted values "
        "(load it with: set -a; . FILE; set +a); removed on stop unless it was changed; "
        "an existing file is replaced only if serve wrote it (default: none)",
    )
    serve.set_defaults(handler=_serve)


def _env_lines(env: Mapping[str, str]) -> list[str]:
    return [f"{name}={shlex.quote(value)}" for name, value in env.items()]


def _write_env_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole (a shell sourcing it never sees half a file), refusing
    to replace a file that serve did not write. ``OSError`` or ``FileExistsError`` saying why."""
    try:
        with open(path, encoding="utf-8") as existing:
            first = existing.readline()
    except FileNotFoundError:
        first = None
    except (OSError, UnicodeDecodeError) as exc:
        raise FileExistsError(f"--env-file {path}: exists and cannot be read ({exc})") from None
    if first is not None and not first.startswith(_ENV_FILE_MARK):
        raise FileExistsError(
            f"--env-file {path}: exists and was not written by {_PROG}; "
            "choose another name or remove it"
        )
    folder = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(prefix=".cc-executor-env-", dir=folder)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def _remove_env_file(path: str, text: str) -> str | None:
    """Remove the env file if it still holds ``text``; otherwise say why it stays."""
    try:
        with open(path, encoding="utf-8") as current:
            if current.read() != text:
                return f"Kept {path}: it was changed since serve wrote it."
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        return f"Kept {path}: {exc}"
    return None


def _remove_config_dir(path: str) -> str | None:
    """Remove the throwaway config folder only if it is empty (serve creates nothing in it);
    otherwise say where it stays, so no file a run wrote is ever deleted."""
    try:
        os.rmdir(path)  # refuses, atomically, a folder that is not empty
    except FileNotFoundError:
        pass
    except OSError:
        return (
            f"Kept Claude Code's config folder {path}: runs wrote to it (their settings and "
            "session transcripts). Remove it when you no longer need them: "
            f"rm -r {shlex.quote(path)}"
        )
    return None


def _conflicts(environ: Mapping[str, str], printed: Mapping[str, str]) -> list[str]:
    return sorted(
        name
        for name in environ
        if name not in printed
        and (name.startswith(_CONFLICTING_PREFIXES) or name in _CONFLICTING_NAMES)
    )


def _serve(args: argparse.Namespace) -> int:
    # Starlette and uvicorn load here, not at registration: `cc-executor --help` stays fast.
    from cc_executor.testing._examples import resolve_script
    from cc_executor.testing._script import ScriptError
    from cc_executor.testing._server import ModelServer

    try:
        server = ModelServer(resolve_script(args.script), host=args.host, port=args.port)
    except (ScriptError, ValueError, FileNotFoundError) as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        server.__enter__()
    except OSError as exc:  # the port is taken, the address is not ours, ...
        print(f"{_PROG}: cannot listen: {exc}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    config_dir = tempfile.mkdtemp(prefix="cc-executor-claude-config-")
    env = server.claude_env(config_dir=config_dir)
    env_text = None
    notes: list[str | None] = []
    try:
        if args.env_file is not None:
            env_text = (
                f"{_ENV_FILE_MARK} the scripted model server at {server.url}\n"
                "# Load it with: set -a; . FILE; set +a\n" + "\n".join(_env_lines(env)) + "\n"
            )
            try:
                _write_env_file(args.env_file, env_text)
            except OSError as exc:
                env_text = None
                print(f"{_PROG}: {exc}", file=sys.stderr)
                return 2
        print(f"Scripted model server listening on {server.url}", flush=True)
        print(
            "Point Claude Code at it with (HOME and CC_EXECUTOR_HOME are left alone; "
            "CLAUDE_CONFIG_DIR is a throwaway folder):"
        )
        for line in _env_lines(env):
            print(f"export {line}")
        if args.env_file is not None:
            print(f"Or load {args.env_file}: set -a; . {shlex.quote(args.env_file)}; set +a")
        print(f"Recorded requests: {server.url}/_testing/requests")
        print("Press Ctrl-C to stop.", flush=True)
        for name in _conflicts(os.environ, env):
            print(
                f"{_PROG}: warning: {name} is set here; if the shell that runs Claude Code "
                "has it too, it may send the CLI elsewhere: unset it there",
                file=sys.stderr,
            )
        # Event.wait with a timeout keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        server.__exit__(None, None, None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if env_text is not None:
            notes.append(_remove_env_file(args.env_file, env_text))
        notes.append(_remove_config_dir(config_dir))
    for note in notes:
        if note is not None:
            print(note)
    print("Stopped.", flush=True)
    return 0
