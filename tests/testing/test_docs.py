"""docs/testing.md: every script example in it is valid, and together they use every field."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from cc_executor.testing import Usage, parse_script
from cc_executor.testing._script import _ERROR_KEYS, _REPLY_KINDS, _REPLY_OPTIONS

DOC = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
BLOCK = re.compile(r"^```(yaml|json)\n(.*?)^```$", re.MULTILINE | re.DOTALL)


def examples() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in BLOCK.findall(DOC.read_text(encoding="utf-8"))]


def load(kind: str, body: str) -> Any:
    return json.loads(body) if kind == "json" else yaml.safe_load(body)


def keys_of(data: Any) -> set[str]:
    """The keys a script uses, leaving out the free-form values (tool input, headers)."""
    if isinstance(data, list):
        return set().union(*(keys_of(item) for item in data)) if data else set()
    if not isinstance(data, dict):
        return set()
    found = set(data)
    for key, value in data.items():
        if key not in ("input", "headers"):
            found |= keys_of(value)
    return found


@pytest.mark.parametrize(("kind", "body"), examples(), ids=lambda v: v[:40])
def test_every_example_is_a_valid_script(kind: str, body: str) -> None:
    parse_script(load(kind, body), source="docs/testing.md")


def test_the_examples_use_every_field_the_parser_accepts() -> None:
    accepted = {
        "rules", "when_exhausted", "match", "answers", "signature", "name", "input", "id",
        *_REPLY_KINDS, *_REPLY_OPTIONS, *_ERROR_KEYS, "error", "latency",
        *(f.name for f in dataclasses.fields(Usage)),
    }  # fmt: skip
    used = set().union(*(keys_of(load(kind, body)) for kind, body in examples()))
    assert accepted - used == set()
    assert used - accepted == set()
