"""Reading a task list: a file (its format from its name), text in a named format, or a
mapping, validated into a :class:`~cc_executor.tasks.TaskListSpec`."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from cc_executor.tasks._errors import TaskListError, TaskListProblem
from cc_executor.tasks._markdown import parse_markdown
from cc_executor.tasks._original import from_original
from cc_executor.tasks._raw import from_document
from cc_executor.tasks._spec import TaskListSpec
from cc_executor.tasks._validate import Checker
from cc_executor.tasks._yaml import LocatedYAML

_FORMATS = {".md": "markdown", ".markdown": "markdown", ".yaml": "yaml", ".yml": "yaml"}


def parse_task_list(
    data: str | Mapping[str, Any],
    *,
    format: str | None = None,
    source: str = "<spec>",
    base_dir: str | os.PathLike[str] | None = None,
) -> TaskListSpec:
    """Validate a task list given as text (``format``: ``markdown``, ``yaml`` or ``json``)
    or as already-parsed data (a mapping shaped like the YAML form).

    ``source`` names the list in messages; relative paths in it (``cwd``, ``add_dirs``,
    ``mcp_config`` files) are resolved against ``base_dir`` (default: the current
    directory); a ``json_schema`` is a mapping or JSON text (a file name only in a list
    file). Raises :class:`TaskListError` with every problem found, each with its line when
    the text has lines.
    """
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    return _parse(data, format, source, base, list_file=False)


def _parse(
    data: str | Mapping[str, Any], format: str | None, source: str, base: Path, *, list_file: bool
) -> TaskListSpec:
    problems: list[TaskListProblem] = []
    if isinstance(data, Mapping):
        document, _, _ = from_original(data, {}, {})
        raw = from_document(
            document, source=source, base_dir=base, key_lines={}, value_lines={}, problems=problems
        )
    elif format == "markdown":
        raw = parse_markdown(data, source, base)
    elif format in ("yaml", "json"):
        located = LocatedYAML(source, 0, problems)
        if format == "json":
            try:
                document = json.loads(data)
            except json.JSONDecodeError as exc:
                raise TaskListError(
                    [TaskListProblem(source, f"invalid JSON: {exc.msg}", exc.lineno)]
                ) from None
            located = LocatedYAML(source, 0, [])
            try:
                # Only for line numbers: JSON is (nearly) YAML, and its nodes know their lines.
                located.load(data)
            except TaskListError:
                located = LocatedYAML(source, 0, [])
        else:
            document = located.load(data)
        document, key_lines, value_lines = from_original(
            document, located.key_lines, located.value_lines
        )
        raw = from_document(
            document,
            source=source,
            base_dir=base,
            key_lines=key_lines,
            value_lines=value_lines,
            problems=problems,
        )
    else:
        raise ValueError(f"unknown task list format {format!r}: use markdown, yaml or json")
    raw.list_file = list_file
    return Checker(raw).build()


def load_task_list(path: str | os.PathLike[str]) -> TaskListSpec:
    """Read and validate a task list file: Markdown (``.md``), YAML (``.yaml``/``.yml``)
    or JSON (``.json``); the format comes from the name. Relative paths in it (``cwd``,
    ``add_dirs``, ``mcp_config`` and ``json_schema`` files) are relative to the file's
    folder. Raises :class:`TaskListError` (an unreadable file, an unknown extension, or
    every problem in the list, with line numbers)."""
    file = Path(path)
    source = os.fspath(path)
    suffix = file.suffix.lower()
    format = _FORMATS.get(suffix, "json" if suffix == ".json" else None)
    if file.is_dir():
        raise TaskListError(
            [TaskListProblem(source, "is a folder: give a task list file (.md, .yaml or .json)")]
        )
    if format is None:
        raise TaskListError(
            [TaskListProblem(source, "unknown format: name the file .md, .yaml, .yml or .json")]
        )
    try:
        text = file.read_text(encoding="utf-8-sig")  # a BOM would hide the front matter
    except UnicodeDecodeError as exc:
        bad = exc.object[exc.start : exc.start + 1].hex()
        reason = f"not UTF-8 text (byte 0x{bad} at offset {exc.start})"
        raise TaskListError([TaskListProblem(source, f"cannot read: {reason}")]) from None
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if isinstance(exc, FileNotFoundError) and not file.is_absolute():
            reason += f" (looked in {Path.cwd()})"
        raise TaskListError([TaskListProblem(source, f"cannot read: {reason}")]) from None
    return _parse(text, format, source, file.resolve().parent, list_file=True)
