"""The least a console script written in Python can cost: start the interpreter, start the
CLI (prompt on stdin from a file, stdout to a file), wait for it, print its last line.

    python benchmarks/_spawn_floor.py PROMPT_FILE OUT_FILE CLAUDE [ARGS...]

``bench_claude.py`` times it beside the bare CLI and ``cc-executor run``: what it costs over
the bare CLI is the floor under any Python wrapper on this machine (interpreter start-up,
one more process, reading the result back); what ``cc-executor run`` costs over it is ours.
Only ``os`` and ``sys`` are imported, nothing is parsed.
"""

import os
import sys


def main() -> None:
    prompt_file, out_file, *argv = sys.argv[1:]
    stdin = os.open(prompt_file, os.O_RDONLY)
    stdout = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    pid = os.posix_spawn(
        argv[0],
        argv,
        os.environ,
        file_actions=[(os.POSIX_SPAWN_DUP2, stdin, 0), (os.POSIX_SPAWN_DUP2, stdout, 1)],
    )
    _, status = os.waitpid(pid, 0)
    with open(out_file, "rb") as f:
        end = f.seek(0, os.SEEK_END)
        if end and os.pread(f.fileno(), 1, end - 1) == b"\n":
            end -= 1
        start = end
        while start > 0:  # back to the newline before the last line, 1 MiB at a time
            block = os.pread(f.fileno(), min(start, 1 << 20), max(0, start - (1 << 20)))
            cut = block.rfind(b"\n")
            if cut >= 0:
                start = start - len(block) + cut + 1
                break
            start -= len(block)
        last = os.pread(f.fileno(), end - start, start)
    sys.stdout.buffer.write(last + b"\n")
    sys.stdout.flush()
    os._exit(os.waitstatus_to_exitcode(status))


if __name__ == "__main__":
    main()
