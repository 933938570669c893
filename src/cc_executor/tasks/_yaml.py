"""YAML loaded with the line of every key and value, for problems that point at a line."""

from __future__ import annotations

from typing import Any

from cc_executor.tasks._errors import TaskListError, TaskListProblem

#: Nodes a document may build (aliases included): more is an alias bomb.
_MAX_NODES = 2_000_000


class LocatedYAML:
    """YAML parsed with the line of every key and value (PyYAML's nodes know them)."""

    def __init__(self, source: str, offset: int, problems: list[TaskListProblem]) -> None:
        self.source = source
        self.offset = offset
        self.problems = problems
        self.key_lines: dict[tuple[Any, ...], int] = {}
        self.value_lines: dict[tuple[Any, ...], int] = {}
        self._count = 0

    def load(self, text: str) -> Any:
        """The document in ``text`` (None if empty), its lines recorded (``offset`` added).
        Raises :class:`TaskListError` for invalid YAML, an alias bomb or a recursive alias;
        duplicate and unusable keys are collected in ``problems``."""
        import yaml

        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            return None if node is None else self._build(loader, node, (), frozenset())
        except yaml.MarkedYAMLError as exc:
            mark = exc.problem_mark or exc.context_mark
            line = mark.line + 1 + self.offset if mark is not None else None
            what = " ".join(p for p in (exc.context, exc.problem) if p)
            raise TaskListError(
                [TaskListProblem(self.source, f"invalid YAML: {what}", line)]
            ) from None
        except yaml.YAMLError as exc:
            raise TaskListError([TaskListProblem(self.source, f"invalid YAML: {exc}")]) from None
        finally:
            loader.dispose()

    def _build(self, loader: Any, node: Any, path: tuple[Any, ...], seen: frozenset[int]) -> Any:
        import yaml

        self._count += 1
        line = node.start_mark.line + 1 + self.offset
        if self._count > _MAX_NODES:
            raise TaskListError(
                [TaskListProblem(self.source, "document too large (alias bomb?)", line)]
            )
        if id(node) in seen:
            raise TaskListError([TaskListProblem(self.source, "recursive YAML alias", line)])
        self.value_lines[path] = line + (1 if getattr(node, "style", None) in ("|", ">") else 0)
        self.key_lines.setdefault(path, line)
        inner = seen | {id(node)}
        if isinstance(node, yaml.MappingNode):
            loader.flatten_mapping(node)
            out: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = loader.construct_object(key_node, deep=True)
                key_line = key_node.start_mark.line + 1 + self.offset
                try:
                    hash(key)
                except TypeError:
                    self.problems.append(
                        TaskListProblem(self.source, "unusable mapping key", key_line)
                    )
                    continue
                if key in out:
                    self.problems.append(
                        TaskListProblem(self.source, f"duplicate key {key!r}", key_line)
                    )
                key_path = (*path, key)
                self.key_lines[key_path] = key_line
                out[key] = self._build(loader, value_node, key_path, inner)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [
                self._build(loader, item, (*path, i), inner) for i, item in enumerate(node.value)
            ]
        return loader.construct_object(node, deep=True)
