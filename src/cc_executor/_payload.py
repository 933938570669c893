"""The JSON form of results and events: one derivation from their dataclass fields, and the
version every payload carries.

A leaf module (the engine at the bottom uses it): it imports nothing of ours.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import fields
from typing import Any

#: The version of every JSON payload cc-executor prints or serves (``--json`` output, REST
#: bodies, events), as ``schema_version``. Breaking changes to a payload raise it and are
#: listed in CHANGELOG.md; adding a key is not a breaking change.
SCHEMA_VERSION = 1


def versioned(data: Any) -> Any:
    """``data`` with ``schema_version`` first when it is a JSON object without one (what the
    service sends: REST bodies, events, JSON-RPC results); anything else as it is."""
    if isinstance(data, dict) and "schema_version" not in data:
        return {"schema_version": SCHEMA_VERSION, **data}
    return data


def payload(obj: Any, *, skip: Collection[str] = (), versioned: bool = True) -> dict[str, Any]:
    """``schema_version`` (unless not ``versioned``: an object nested in a payload), then
    the fields of dataclass ``obj`` in declaration order, JSON ready: enums as their
    values, mappings as dicts, lists and tuples as lists (their mappings as dicts),
    ``duration_s`` rounded to the microsecond. Private fields (``_x``) and those named in
    ``skip`` are left out."""
    data: dict[str, Any] = {"schema_version": SCHEMA_VERSION} if versioned else {}
    for f in fields(obj):
        if f.name.startswith("_") or f.name in skip:
            continue
        data[f.name] = _plain(getattr(obj, f.name))
    if isinstance(data.get("duration_s"), float):
        data["duration_s"] = round(data["duration_s"], 6)
    return data


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, (list, tuple)):
        return [dict(v) if isinstance(v, Mapping) else v for v in value]
    return value
