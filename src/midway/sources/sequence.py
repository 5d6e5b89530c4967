"""``sources.sequence``: a list, tuple or range, resumed by index in O(1)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources.base import Chunk, KeySpec, NumberedChunk, key_function, position_as_count

CHUNK = 4096
_SAMPLE = 64


class SequenceSource:
    kind = "sequence"
    seekable = True

    def __init__(
        self, items: Sequence[Any], key: KeySpec = None, *, name: str = "", offset: int = 0
    ) -> None:
        self._items = items
        self._key = key_function(key)
        self._name = name
        self._offset = offset  # a partition's first index in the whole sequence
        self._key_spec = key

    def plan_parts(self, count: int) -> list[JSONValue]:
        """``count`` consecutive index ranges of about equal size (for distributed runs)."""
        n = len(self._items)
        bounds = [n * i // count for i in range(count + 1)]
        return [[bounds[i], bounds[i + 1]] for i in range(count)]

    def partition(self, part: JSONValue, index: int) -> SequenceSource:
        """The items of one index range; an item keeps its number in the whole sequence as
        its default key."""
        if not (
            isinstance(part, list)
            and len(part) == 2
            and all(isinstance(b, int) for b in part)
            and 0 <= part[0] <= part[1] <= len(self._items)
        ):
            raise SourceError(
                f"partition {index} of {self.describe()} is recorded as {part!r}, which does "
                "not fit this sequence; `midway reset` the job to split it again"
            )
        lo, hi = part
        return SequenceSource(
            self._items[lo:hi],
            self._key_spec,
            name=f"items {lo:,} to {hi:,} of {self.describe()}",
            offset=self._offset + lo,
        )

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
        start = position_as_count(position, "sequence")
        return SequenceCursor(self._items, start, self._key, self._offset)

    def describe(self) -> str:
        return self._name or f"a sequence of {len(self._items):,} items"

    def describe_position(self, position: JSONValue) -> str:
        return f"index {position_as_count(position, 'sequence'):,}"


class SequenceCursor:
    def __init__(self, items: Sequence[Any], start: int, key: Any, offset: int = 0) -> None:
        self._items = items
        self._start = start
        self._key = key
        self._offset = offset

    def __iter__(self) -> Iterator[Chunk]:
        items, n = self._items, len(self._items)
        if self._offset and self._key is None:  # a partition: keys count in the whole
            for first in range(self._start, n, CHUNK):
                yield OffsetChunk(list(items[first : first + CHUNK]), first, None, self._offset)
            return
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


class OffsetChunk(NumberedChunk):
    """A partition's items: positions count in the partition, keys in the whole sequence."""

    __slots__ = ("offset",)

    def __init__(self, items: list[Any], start: int, key: Any, offset: int) -> None:
        super().__init__(items, start, key)
        self.offset = offset

    def key(self, index: int) -> JSONValue:
        return self.offset + self.start + index


class SharedList(NumberedChunk):
    """The caller's whole list as one chunk. The engine walks copies of its slices, never
    the list itself, so it stops at the length the list had, even if the caller appends."""

    __slots__ = ()
    shared = True


def sequence(items: Sequence[Any], key: KeySpec = None, *, name: str = "") -> SequenceSource:
    """A list, tuple or range. The position is the index; ``key=`` names an item's identity.

    Anything it cannot index by position is refused before a run starts: a set above all,
    whose order is not the same in the next process."""
    if not (hasattr(items, "__getitem__") and hasattr(items, "__len__")) or isinstance(
        items, AbstractSet | Mapping
    ):
        what = type(items).__name__
        if isinstance(items, AbstractSet):
            how = (
                "its order is not the same in the next process (it depends on the hash seed), "
                "so a resumed run would skip items and repeat others. Pass sorted(...) of it"
            )
        else:
            how = "pass a list of its items, or use sources.iterable() for a stream"
        raise ConfigError(
            f"sources.sequence() needs a list, tuple or range, which it reads by position; "
            f"it was given a {what}: {how}"
        )
    return SequenceSource(items, key, name=name)
