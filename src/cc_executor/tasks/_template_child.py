"""The process that renders one prompt template, under memory and CPU limits.

Run by :func:`cc_executor.tasks._template.render`: reads ``{"source", "tasks"}`` as JSON on
stdin, writes ``{"text"}`` or ``{"error", "line"}`` as JSON on stdout. The limits are set
after the imports and the input are read, so they measure the rendering alone; a value that
outgrows them is a ``MemoryError`` here, a CPU overrun is ``SIGXCPU`` (then ``SIGKILL``).
"""

from __future__ import annotations

import json
import math
import sys

from cc_executor.tasks import _template


def _address_space() -> int | None:
    """This process's virtual memory size in bytes (Linux), or None where unknown."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError):
        return None
    return None


def _limit() -> None:
    try:
        import resource
    except ImportError:  # no rlimits here: the parent's wall bound still holds
        return
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    used = resource.getrusage(resource.RUSAGE_SELF)
    cpu = math.ceil(used.ru_utime + used.ru_stime) + _template.MAX_CPU_SECONDS
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    size = _address_space()
    if size is not None:
        cap = size + _template.MAX_MEMORY
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))


def main() -> None:
    request = json.loads(sys.stdin.buffer.read())
    source = request["source"]
    tasks = {tid: _template.revive(values) for tid, values in request["tasks"].items()}
    _template.render_here("{{ 1 }}", {})  # load Jinja2 (imports, caches) before the limits
    _limit()
    answer: dict[str, object]
    try:
        answer = {"text": _template.render_here(source, tasks)}
    except _template.TemplateProblem as exc:
        answer = {"error": str(exc), "line": exc.line}
    except MemoryError:
        answer = {"error": _template.too_much_memory(), "line": None}
    sys.stdout.write(json.dumps(answer))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
