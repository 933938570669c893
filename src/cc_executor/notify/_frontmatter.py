"""The YAML front matter of an issue file, parsed as untrusted input with structural bounds.

PyYAML's safe loader builds no objects but plain data, yet on hostile input it can fail
with plain ``ValueError``/``KeyError``/``AttributeError`` (``2024-02-30``, an integer of
4,301 digits, ``!!bool maybe``), spend CPU quadratic in the nesting of flow collections,
and expand aliases. The loader here turns every failure into a :class:`yaml.YAMLError`
carrying the line, stops scanning and composing at :data:`MAX_DEPTH` levels of nesting or
:data:`MAX_NODES` values (so the work done on a document is bounded by its structure
before its size matters), refuses aliases, and refuses numbers that are not finite.
"""

from __future__ import annotations

import math
from typing import Any, NoReturn

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.nodes import Node, ScalarNode

#: The deepest nesting accepted in front matter and in a JSON message (an issue's front
#: matter needs 2 levels, a notification 6).
MAX_DEPTH = 32
#: The most values (scalars and collections) accepted in front matter.
MAX_NODES = 1000
_MAX_SHOWN = 40
_MAX_DETAIL = 80


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 1] + "…"


class _BoundedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the bounds of the module docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0
        self._nodes = 0

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        # The scanner reads ahead of the composer; each open flow level makes its every
        # later step slower, so it stops at the bound too.
        if self.flow_level >= MAX_DEPTH:
            raise ComposerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark()
            )
        super().fetch_flow_collection_start(TokenClass)

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        # Checked before PyYAML reads further, so a deep document is abandoned at the bound.
        if self.check_event(yaml.AliasEvent):
            self._refuse("YAML aliases are not allowed in front matter")
        if self._depth >= MAX_DEPTH:
            self._refuse(f"nested deeper than {MAX_DEPTH} levels")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            self._refuse(f"more than {MAX_NODES} values")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def _refuse(self, problem: str) -> NoReturn:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        raise ComposerError(None, None, problem, mark)

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except yaml.YAMLError:
            raise
        except Exception as exc:
            # PyYAML's scalar constructors fail with plain exceptions on values their
            # patterns let through; the value is the file's problem, with its line.
            kind = node.tag.rpartition(":")[2]
            detail = str(exc) if isinstance(exc, ValueError) else ""
            if len(detail) > _MAX_DETAIL:
                detail = detail[: _MAX_DETAIL - 1] + "…"
            raise ConstructorError(
                None,
                None,
                f"{_shown(node.value)} is not a valid {kind}" + (f" ({detail})" if detail else ""),
                node.start_mark,
            ) from None

    def construct_finite_float(self, node: ScalarNode) -> float:
        value = self.construct_yaml_float(node)
        if not math.isfinite(value):
            raise ConstructorError(
                None, None, f"{_shown(node.value)} is not a finite number", node.start_mark
            )
        return value


_BoundedLoader.add_constructor("tag:yaml.org,2002:float", _BoundedLoader.construct_finite_float)


def load_front_matter(text: str) -> Any:
    """The data of one YAML document ``text``. Raises :class:`yaml.YAMLError` (with
    ``problem`` and ``problem_mark`` set) for anything it refuses or cannot read."""
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()
