"""JSON in one place: compact canonical encoding, and errors that name the bad value's path."""

from __future__ import annotations

import json
import math
from typing import Any

from midway.errors import StateNotSerializable

JSONValue = Any
"""Anything ``json.dumps`` accepts: dict (str keys), list, str, int, float, bool, None."""


def dumps(value: JSONValue) -> str:
    """Compact JSON, UTF-8 kept readable, NaN refused (other tools cannot read it back)."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def canonical(value: JSONValue) -> str:
    """Key-sorted compact JSON: equal values give equal text (identities and hashes)."""
    return json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    )


def find_unserializable(value: object, path: str) -> tuple[str, str] | None:
    """The path and type name of the first value below ``value`` that JSON cannot hold."""
    if value is None or isinstance(value, str | bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"float {value!r}")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                return (f"{path}[{k!r}]", f"a {type(k).__name__} key (JSON keys are strings)")
            found = find_unserializable(v, f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            found = find_unserializable(v, f"{path}[{i}]")
            if found:
                return found
        return None
    return (path, type(value).__name__)


def dumps_state(state: dict[str, JSONValue], label: str = "ctx.state") -> str:
    """Encode the user's state, or raise an error that names the offending key."""
    try:
        return dumps(state)
    except (TypeError, ValueError):
        found = find_unserializable(state, label) or (label, "value JSON cannot hold")
    path, kind = found
    raise StateNotSerializable(
        f"{path} holds a {kind}, which cannot be saved in a checkpoint (state is JSON). "
        "Store JSON types only: convert sets to sorted lists, datetimes to ISO strings, "
        "objects to dicts. The previous checkpoint is unchanged.",
        path=path,
    )
