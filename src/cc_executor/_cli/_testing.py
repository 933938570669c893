"""``cc-executor testing serve``: run a scripted model server from the command line."""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import signal
import stat
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

#: The agents ``--agent`` names: the agent's title, what its throwaway folder is, and the
#: prefixes of variables that, set in the shell that loads the printed environment, would
#: send it to another endpoint or credential than the scripted server (the printed ones are
#: overridden).
_AGENTS = {
    "claude": ("Claude Code", "config folder", ("ANTHROPIC_", "CLAUDE_CODE_", "CLOUD_ML_")),
    "codex": ("Codex CLI", "home (CODEX_HOME)", ("OPENAI_", "CODEX_", "AZURE_OPENAI_")),
    "gemini": ("Gemini CLI", "home (GEMINI_CLI_HOME)", ("GEMINI_", "GOOGLE_")),
    "command": ("the command agent", "home (QWEN_HOME)", ("OPENAI_", "QWEN_")),
}
_CONFLICTING_NAMES = ("CLAUDECODE",)
#: The model a Gemini CLI run asks for: its default, ``auto``, asks a routing model first.
_GEMINI_MODEL = "gemini-2.5-flash"

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

environment: the printed variables (and --env-file) point the agent (--agent: claude, codex,
gemini, or command for an OpenAI-compatible CLI such as Qwen Code) at the server and give it
a throwaway folder of its own (CLAUDE_CONFIG_DIR; CODEX_HOME with the provider's config.toml;
GEMINI_CLI_HOME with API-key auth; QWEN_HOME). They do not change HOME or CC_EXECUTOR_HOME,
so runs are recorded in your usual history. On stop the folder is removed if runs left
nothing in it, and kept (with a message) if they did.

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
        "--agent",
        choices=tuple(_AGENTS),
        default="claude",
        help="the agent whose environment is printed: claude (default), codex, gemini, or "
        "command (OPENAI_BASE_URL and OPENAI_API_KEY, for an OpenAI-compatible CLI such as "
        "Qwen Code)",
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
    serve.add_argument(
        "--background",
        action="store_true",
        help="start the server in the background and print only shell commands that load "
        'its environment, for: eval "$(cc-executor testing serve --script NAME --background)"; '
        "stop it with: kill $CC_EXECUTOR_TESTING_PID (default: serve in the foreground)",
    )
    serve.set_defaults(handler=_serve)


def _env_lines(env: Mapping[str, str]) -> list[str]:
    return [f"{name}={shlex.quote(value)}" for name, value in env.items()]


def _check_replaceable(path: str) -> bool:
    """Whether ``path`` exists; ``FileExistsError`` saying why if it is a file that serve did
    not write (only those are ever replaced)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise FileExistsError(f"--env-file {path}: exists and cannot be read ({exc})") from None
    # Never a FIFO or a device (an open would wait for a writer, a read never end: third
    # pass T6), and no link: a name in a shared folder can be planted.
    if not stat.S_ISREG(mode):
        raise FileExistsError(
            f"--env-file {path}: exists and is not a regular file; choose another name"
        )
    try:
        with open(path, encoding="utf-8") as existing:
            first = existing.readline(len(_ENV_FILE_MARK))
    except FileNotFoundError:
        return False
    except (OSError, UnicodeDecodeError) as exc:
        raise FileExistsError(f"--env-file {path}: exists and cannot be read ({exc})") from None
    if not first.startswith(_ENV_FILE_MARK):
        raise FileExistsError(
            f"--env-file {path}: exists and was not written by {_PROG}; "
            "choose another name or remove it"
        )
    return True


def _write_env_file(path: str, text: str) -> None:
    """Write ``text`` to ``path`` whole (a shell sourcing it never sees half a file), refusing
    to replace a file that serve did not write. ``OSError`` or ``FileExistsError`` saying why."""
    _check_replaceable(path)
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
        if not stat.S_ISREG(os.lstat(path).st_mode):
            return f"Kept {path}: it was replaced since serve wrote it."
        with open(path, encoding="utf-8") as current:
            if current.read(len(text) + 1) != text:
                return f"Kept {path}: it was changed since serve wrote it."
        os.unlink(path)
    except FileNotFoundError:
        pass
    except (OSError, UnicodeDecodeError) as exc:
        return f"Kept {path}: {exc}"
    return None


class _AgentFolder:
    """The throwaway folder of the agent serve prints the environment of, and the files serve
    wrote in it (Codex's provider, Gemini's auth settings), with what they held."""

    def __init__(self, agent: str) -> None:
        self.agent = agent
        self.path = tempfile.mkdtemp(prefix=f"cc-executor-{agent}-home-")
        self.written: dict[str, str] = {}

    def wrote(self, path: str) -> None:
        with open(path, encoding="utf-8") as file:
            self.written[path] = file.read()

    def remove(self) -> str | None:
        """Remove the folder if runs left nothing in it (serve's own files unchanged);
        otherwise say where it stays, so no file a run wrote is ever deleted."""
        for path, text in self.written.items():
            try:
                with open(path, encoding="utf-8") as file:
                    if file.read() == text:
                        os.unlink(path)
            except (OSError, UnicodeDecodeError):
                pass  # changed or gone: the folder is kept, or already is not there
        for folder in sorted({os.path.dirname(p) for p in self.written}, reverse=True):
            if folder != self.path:
                with contextlib.suppress(OSError):
                    os.rmdir(folder)
        try:
            os.rmdir(self.path)  # refuses, atomically, a folder that is not empty
        except FileNotFoundError:
            pass
        except OSError:
            title, what, _ = _AGENTS[self.agent]
            return (
                f"Kept {title}'s {what} {self.path}: runs wrote to it (their settings and "
                "session transcripts). Remove it when you no longer need them: "
                f"rm -r {shlex.quote(self.path)}"
            )
        return None


def agent_env(server: Any, agent: str, folder: _AgentFolder) -> dict[str, str]:
    """The variables that point ``agent`` at ``server`` (started), with its home in
    ``folder`` (and the files it needs there, written now)."""
    if agent == "claude":
        return dict(server.claude_env(config_dir=folder.path))
    if agent == "codex":
        folder.wrote(server.write_codex_config(folder.path))
        return dict(server.codex_env(folder.path))
    if agent == "gemini":
        folder.wrote(server.write_gemini_settings(folder.path))
        return {**server.gemini_env(folder.path), "GEMINI_MODEL": _GEMINI_MODEL}
    return {
        "OPENAI_BASE_URL": f"{server.url}/v1",
        "OPENAI_API_KEY": "sk-cc-executor-testing",
        "QWEN_HOME": folder.path,
    }


def _conflicts(
    environ: Mapping[str, str], printed: Mapping[str, str], agent: str = "claude"
) -> list[str]:
    prefixes = _AGENTS[agent][2]
    return sorted(
        name
        for name in environ
        if name not in printed and (name.startswith(prefixes) or name in _CONFLICTING_NAMES)
    )


def _warn_conflicts(printed: Mapping[str, str], agent: str) -> None:
    title = _AGENTS[agent][0]
    for name in _conflicts(os.environ, printed, agent):
        print(
            f"{_PROG}: warning: {name} is set here; if the shell that runs {title} "
            "has it too, it may send the CLI elsewhere: unset it there",
            file=sys.stderr,
        )


def _read_env_file(path: str) -> dict[str, str]:
    with open(path, encoding="utf-8") as file:
        pairs = [line.rstrip("\n").partition("=") for line in file if line[:1] != "#"]
    return {name: shlex.split(value)[0] for name, _, value in pairs if name}


def _serve_in_background(args: argparse.Namespace, script: str) -> int:
    """Start ``serve`` as a detached child that writes an env file, wait until it has, then
    print that environment as ``export`` lines and the child's pid, for ``eval``."""
    import subprocess
    import time

    if args.env_file is not None:
        try:
            if _check_replaceable(args.env_file):
                # Gone before the child starts: its appearing is the sign the child listens.
                os.unlink(args.env_file)
        except OSError as exc:
            print(f"{_PROG}: {exc}", file=sys.stderr)
            return 2
    folder = tempfile.mkdtemp(prefix="cc-executor-testing-")
    env_file = args.env_file or os.path.join(folder, "env")
    argv = [
        sys.executable, "-c", "import sys; from cc_executor._cli import main; sys.exit(main())",
        "testing", "serve", "--script", script, "--host", args.host, "--port", str(args.port),
        "--agent", args.agent, "--env-file", env_file,
    ]  # fmt: skip
    errors_path = os.path.join(folder, "stderr")
    try:
        with open(errors_path, "wb") as errors:
            # A session of its own: the terminal's Ctrl-C is for the shell, not for the server.
            child = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=errors,
                start_new_session=True,
            )
        try:
            # The child writes the file in one step once it listens: existing means complete.
            while not os.path.exists(env_file) and child.poll() is None:
                time.sleep(0.02)
        except BaseException:  # Ctrl-C while waiting: leave no server nobody knows about
            child.terminate()
            raise
        if child.poll() is not None:
            with open(errors_path, encoding="utf-8", errors="replace") as failed:
                sys.stderr.write(failed.read())
            return child.returncode or 2
        env = _read_env_file(env_file)
    finally:
        if not args.env_file:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(env_file)  # the child finds it gone on stop, which is fine
        os.unlink(errors_path)
        os.rmdir(folder)
    for line in _env_lines(env):
        print(f"export {line}")
    print(f"CC_EXECUTOR_TESTING_PID={child.pid}")
    title, what, _ = _AGENTS[args.agent]
    folder = env[_FOLDER_VARIABLES[args.agent]]
    url = env.get(_URL_VARIABLES[args.agent], "")
    print(
        f"{_PROG}: scripted model server{' at ' + url if url else ''} in the background "
        f"(pid {child.pid}); stop it with: kill {child.pid} ({title}'s {what} {folder} is "
        "removed then, unless runs wrote to it)",
        file=sys.stderr,
    )
    _warn_conflicts(env, args.agent)
    return 0


#: By agent, the printed variable holding the server's URL (Codex's is in its config.toml),
#: and the one naming its folder.
_URL_VARIABLES = {
    "claude": "ANTHROPIC_BASE_URL",
    "codex": "",
    "gemini": "GOOGLE_GEMINI_BASE_URL",
    "command": "OPENAI_BASE_URL",
}
_FOLDER_VARIABLES = {
    "claude": "CLAUDE_CONFIG_DIR",
    "codex": "CODEX_HOME",
    "gemini": "GEMINI_CLI_HOME",
    "command": "QWEN_HOME",
}


def _serve(args: argparse.Namespace) -> int:
    # Starlette and uvicorn load here, not at registration: `cc-executor --help` stays fast.
    from cc_executor.testing._examples import resolve_script
    from cc_executor.testing._script import ScriptError
    from cc_executor.testing._server import ModelServer

    try:
        script = resolve_script(args.script)
        server = ModelServer(script, host=args.host, port=args.port)
    except (ScriptError, ValueError, FileNotFoundError) as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    if args.background:
        return _serve_in_background(args, str(script.resolve()))

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    try:
        server.__enter__()
    except OSError as exc:  # the port is taken, the address is not ours, ...
        print(f"{_PROG}: cannot listen: {exc}", file=sys.stderr)
        return 2
    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    folder = _AgentFolder(args.agent)
    env = agent_env(server, args.agent, folder)
    title = _AGENTS[args.agent][0]
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
            f"Point {title} at it with (HOME and CC_EXECUTOR_HOME are left alone; "
            f"{_FOLDER_VARIABLES[args.agent]} is a throwaway folder):"
        )
        for line in _env_lines(env):
            print(f"export {line}")
        if args.env_file is not None:
            print(f"Or load {args.env_file}: set -a; . {shlex.quote(args.env_file)}; set +a")
        print(f"Recorded requests: {server.url}/_testing/requests")
        print("Press Ctrl-C to stop.", flush=True)
        _warn_conflicts(env, args.agent)
        # Event.wait with a timeout keeps the main thread responsive to signals.
        while not stop.wait(0.5):
            pass
    finally:
        server.__exit__(None, None, None)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if env_text is not None:
            notes.append(_remove_env_file(args.env_file, env_text))
        notes.append(folder.remove())
    for note in notes:
        if note is not None:
            print(note)
    print("Stopped.", flush=True)
    return 0
