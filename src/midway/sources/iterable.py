"""``sources.iterable``: any iterator. It cannot seek: a resume replays and skips."""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterable, Iterator
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.sources._unordered import refuse_unordered
from midway.sources.base import Chunk, KeySpec, NumberedChunk, key_function, position_as_count

MAX_CHUNK = 1024
SLOW_CHUNK_SECONDS = 0.05


class IterableSource:
    kind = "iterable"
    seekable = False

    def __init__(
        self,
        items: Iterable[Any],
        key: KeySpec,
        *,
        version: JSONValue,
        total: int | None,
        name: str,
    ) -> None:
        """See :func:`iterable`, which holds the defaults."""
        refuse_unordered(items, "sources.iterable()")
        self._items = items
        self._key = key_function(key)
        self._version = version
        self._total = total
        self._name = name

    def fingerprint(self) -> dict[str, JSONValue]:
        """An iterator cannot be inspected; ``version=`` is the user's word for its identity."""
        return {"kind": self.kind, "version": self._version}

    def total(self) -> int | None:
        return self._total

    def open(self, position: JSONValue) -> IterableCursor:
        return IterableCursor(iter(self._items), position_as_count(position, "iterable"), self._key)

    def describe(self) -> str:
        return self._name or "an iterable"

    def describe_position(self, position: JSONValue) -> str:
        return f"item {position_as_count(position, 'iterable') + 1:,}"


class IterableCursor:
    def __init__(self, it: Iterator[Any], skip: int, key: Any) -> None:
        self._it = it
        self._skip = skip
        self._key = key

    def __iter__(self) -> Iterator[Chunk]:
        it = self._it
        if self._skip:
            skipped = sum(1 for _ in itertools.islice(it, self._skip))
            if skipped < self._skip:
                return
        start, size = self._skip, 1
        # Chunks grow from 1 while they fill fast, and go back to 1 when one was slow to
        # fill: a slow generator (paging an API) is not read far ahead, and what it gave
        # reaches the handler (or a partial batch, batch_seconds=) without waiting for more.
        while True:
            began = time.monotonic()
            items = list(itertools.islice(it, size))
            if not items:
                return
            yield NumberedChunk(items, start, self._key)
            start += len(items)
            slow = time.monotonic() - began > SLOW_CHUNK_SECONDS
            size = 1 if slow else min(size * 2, MAX_CHUNK)

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if callable(close):
            close()


def iterable(
    items: Iterable[Any],
    key: KeySpec = None,
    *,
    version: JSONValue = None,
    total: int | None = None,
    name: str = "",
) -> IterableSource:
    """Any iterable or generator. It has no position to seek to, so a resumed run re-reads
    and skips the items already done (and says so). ``version=`` stands in for a fingerprint:
    change it when the input changes. ``total=`` enables progress and ETA."""
    return IterableSource(items, key, version=version, total=total, name=name)
