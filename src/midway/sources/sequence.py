"""``sources.sequence``: a list, tuple or range, resumed by index in O(1)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from typing import Any

from midway.jsonutil import JSONValue
from midway.sources.base import Chunk, KeySpec, NumberedChunk, key_function, position_as_count

CHUNK = 4096
_SAMPLE = 64


class SequenceSource:
    kind = "sequence"
    seekable = True

    def __init__(self, items: Sequence[Any], key: KeySpec = None, *, name: str = "") -> None:
        self._items = items
        self._key = key_function(key)
        self._name = name

    def fingerprint(self) -> dict[str, JSONValue]:
        """Length plus a hash of the first and last items: cheap, and catches most edits."""
        n = len(self._items)
        head = list(self._items[:_SAMPLE])
        tail = list(self._items[max(_SAMPLE, n - _SAMPLE) :])
        text = json.dumps([head, tail], sort_keys=True, default=lambda o: type(o).__name__)
        return {"kind": self.kind, "length": n, "sample": hashlib.sha256(text.encode()).hexdigest()}

    def total(self) -> int:
        return len(self._items)

    def open(self, position: JSONValue) -> SequenceCursor:
        return SequenceCursor(self._items, position_as_count(position, "sequence"), self._key)

    def describe(self) -> str:
        return self._name or f"a sequence of {len(self._items):,} items"

    def describe_position(self, position: JSONValue) -> str:
        return f"index {position_as_count(position, 'sequence'):,}"


class SequenceCursor:
    def __init__(self, items: Sequence[Any], start: int, key: Any) -> None:
        self._items = items
        self._start = start
        self._key = key

    def __iter__(self) -> Iterator[Chunk]:
        items, n = self._items, len(self._items)
        if isinstance(items, list) and self._start == 0:
            # The caller's list itself, not a copy: the engine copies each slice it walks
            # (a few thousand items at a time), so a copy here would be a second one. (A
            # resumed run reads copies: a chunk's items start at its position.)
            if n:
                yield SharedList(items, 0, self._key)
            return
        for start in range(self._start, n, CHUNK):
            part = items[start : start + CHUNK]  # a list's slice is already a new list
            yield NumberedChunk(part if isinstance(part, list) else list(part), start, self._key)

    def close(self) -> None:
        pass


class SharedList(NumberedChunk):
    """The caller's whole list as one chunk. The engine walks copies of its slices, never
    the list itself, so it stops at the length the list had, even if the caller appends."""

    __slots__ = ()
    shared = True


def sequence(items: Sequence[Any], key: KeySpec = None, *, name: str = "") -> SequenceSource:
    """A list, tuple or range. The position is the index; ``key=`` names an item's identity."""
    return SequenceSource(items, key, name=name)
