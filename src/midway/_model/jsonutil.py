"""JSON in one place: compact canonical encoding, and errors that name the bad value's path."""

from __future__ import annotations

import json
import math
from typing import Any

from midway.errors import StateNotSerializable

JSONValue = Any
"""Anything ``json.dumps`` accepts: dict (str keys), list, str, int, float, bool, None."""


_COMPACT = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ASCII = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
_CANONICAL_ASCII = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), sort_keys=True, allow_nan=False
)


def is_text(text: str) -> bool:
    """True when ``text`` can be written as UTF-8: it holds no lone surrogate (as a file
    name with a byte that is not UTF-8 does, decoded with ``surrogateescape``)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def escape_text(text: str) -> str:
    """``text`` with each lone surrogate written as ``\\udcff``: what a message or an
    error can be stored and shown as (the other characters are kept)."""
    if is_text(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dumps(value: JSONValue) -> str:
    """Compact JSON, UTF-8 kept readable, NaN refused (other tools cannot read it back).

    A string with a lone surrogate (a key or a position taken from a file name that is not
    UTF-8) is written with ``\\u`` escapes, which JSON allows and :func:`loads` reads back
    to the same string: the text stays valid UTF-8 for every store, and nothing is lost."""
    if type(value) is int:  # a position, most often: at every=1 one per item
        return str(value)
    text = _COMPACT.encode(value)
    return text if is_text(text) else _ASCII.encode(value)


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999: a number too large for a float reads as infinity
        raise ValueError(f"{text} is beyond a float")
    return value


def loads(text: str | bytes) -> JSONValue:
    """Read back what midway wrote: strict JSON, so NaN and Infinity (which :func:`dumps`
    never writes, also spelled as a number too large for a float) are damage; any damage,
    nesting too deep included, is a ValueError."""
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise ValueError("nested too deeply") from None


def canonical(value: JSONValue) -> str:
    """Key-sorted compact JSON: equal values give equal text (identities and hashes)."""
    text = json.dumps(
        value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
    )
    return text if is_text(text) else _CANONICAL_ASCII.encode(value)


def find_unserializable(
    value: object, path: str, _open: set[int] | None = None
) -> tuple[str, str] | None:
    """The path and type name of the first value below ``value`` that JSON cannot hold
    faithfully: other types, non-string keys (JSON would quietly turn them into strings),
    NaN and infinities, and a container that holds itself."""
    if isinstance(value, str):
        return None if is_text(value) else (path, "string that is not valid Unicode")
    if value is None or isinstance(value, bool | int):
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else (path, f"float {value!r}")
    if not isinstance(value, dict | list | tuple):
        return (path, type(value).__name__)
    open_ids = set() if _open is None else _open
    if id(value) in open_ids:
        return (path, "reference to a container that holds it (a cycle)")
    open_ids.add(id(value))
    try:
        if isinstance(value, dict):
            for k, v in value.items():
                if not isinstance(k, str):
                    return (f"{path}[{k!r}]", f"{type(k).__name__} key (JSON keys are strings)")
                if not is_text(k):
                    return (f"{path}[{k!r}]", "key that is not valid Unicode")
                found = find_unserializable(v, f"{path}[{k!r}]", open_ids)
                if found:
                    return found
            return None
        for i, v in enumerate(value):
            found = find_unserializable(v, f"{path}[{i}]", open_ids)
            if found:
                return found
        return None
    finally:
        open_ids.discard(id(value))


def dumps_state(state: dict[str, JSONValue], label: str = "ctx.state") -> str:
    """Encode the user's state, or raise an error that names the offending key.

    The walk comes first because ``json.dumps`` would quietly turn ``{1: x}`` into
    ``{"1": x}``, and a resumed run would then count under two different keys."""
    if not state:
        return "{}"
    found = find_unserializable(state, label)
    if found is None:
        try:
            return dumps(state)
        except (TypeError, ValueError, RecursionError):
            found = (label, "value JSON cannot hold")
    path, kind = found
    raise StateNotSerializable(
        f"{path} holds a {kind}, which cannot be saved in a checkpoint (state is JSON). "
        "Store JSON types only: strings as keys, sets as sorted lists, datetimes as ISO "
        "strings, objects as dicts, text with a lone surrogate (a file name's bytes) "
        "escaped. The previous checkpoint is unchanged.",
        path=path,
    )
