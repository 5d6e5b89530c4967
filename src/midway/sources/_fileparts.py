"""Partitions of a csv, jsonl or lines file: byte ranges cut where a record begins.

A cut found by seeking to a byte and reading on to the next newline can land inside a CSV
field that holds a newline, so the plan is made by reading the file once through the
source's own reader, which knows where each record begins (quoted newlines, blank lines,
a BOM, gzip). That read is made once per job, by its first worker (the store keeps the
plan for the others); each partition then opens at its first record's byte offset, O(1),
and stops before the next partition's first record. Record numbers stay those of the whole
file, so an item's default key is the same as in a run that is not distributed.

Cuts are placed by the share of the input's bytes read, as progress counts them: by the
uncompressed offset in a plain file, and for a ``.gz`` file by the compressed bytes, which
are known only once per chunk of records (1,024), so gzip partitions are cut between
chunks. A partition of a single-member ``.gz`` file decompresses the file from its start
to reach its first record (see ``_gzip``).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from midway._model.jsonutil import JSONValue
from midway.errors import SourceError
from midway.sources.base import Source


class WholeFile(Source, Protocol):
    """What a partition needs of the file source it cuts (``_files.FileSource``)."""

    path: Path

    def size_bytes(self) -> int | None: ...

    def progress(self, position: JSONValue, size: int | None = None) -> float | None: ...


def plan_parts(source: WholeFile, count: int) -> list[JSONValue]:
    """``count`` parts, each ``{"start": position, "end": byte, "records": n}``; the first
    part starts at None (the beginning), the last has no end."""
    targets = [i / count for i in range(1, count)]
    starts: list[JSONValue] = [None]
    records = 0
    end: JSONValue = None  # the position after the last record
    size = source.size_bytes()
    cursor = source.open(None)
    try:
        for chunk in cursor:
            n = len(chunk.items)

            def done(j: int, chunk: Any = chunk) -> float:
                return source.progress(chunk.position_before(j), size) or 0.0

            while targets and done(n) >= targets[0]:
                j = bisect_left(range(n), targets.pop(0), key=done)
                starts.append(chunk.position_before(j))
            records += n
            end = chunk.position_before(n)
    finally:
        cursor.close()
    while len(starts) < count:  # a small file: the last parts are empty
        starts.append(end)
    parts: list[JSONValue] = []
    for i, start in enumerate(starts):
        after = starts[i + 1] if i + 1 < count else None
        first = _record(start)
        last = records if after is None else _record(after)
        parts.append({"start": start, "end": _offset(after), "records": max(0, last - first)})
    return parts


def _record(position: JSONValue) -> int:
    record = position.get("record") if isinstance(position, dict) else None
    return record if isinstance(record, int) else 0


def _offset(position: JSONValue) -> int | None:
    offset = position.get("offset") if isinstance(position, dict) else None
    return offset if isinstance(offset, int) else None


def partition(source: WholeFile, part: JSONValue, index: int) -> FilePartition:
    if isinstance(part, dict):
        start, end, records = part.get("start"), part.get("end"), part.get("records")
        if (
            (start is None or isinstance(start, dict))
            and (end is None or isinstance(end, int))
            and isinstance(records, int)
        ):
            return FilePartition(source, start, end, records)
    raise SourceError(
        f"partition {index} of {source.describe()} is recorded as {str(part)[:120]!r}, which "
        "is not a part of a file; `midway reset` the job to split it again"
    )


class FilePartition:
    """The records of a file from ``start`` (a position) to before byte ``end``."""

    seekable = True

    def __init__(
        self,
        inner: WholeFile,
        start: JSONValue,
        end: int | None,
        records: int,
    ) -> None:
        self._inner = inner
        self.kind = inner.kind
        self.path = inner.path
        self._start = start
        self._end = end
        self._records = records
        self._first = _record(start)

    def fingerprint(self) -> dict[str, JSONValue]:
        fp = dict(self._inner.fingerprint())
        fp["part"] = [self._first, self._first + self._records]
        return fp

    def total(self) -> int:
        return self._records

    def open(self, position: JSONValue) -> BoundedCursor:
        cursor = self._inner.open(self._start if position is None else position)
        return BoundedCursor(cursor, self._end)

    def describe(self) -> str:
        first = self._first + 1
        last = self._first + self._records
        return f"{self._inner.describe()}, records {first:,} to {last:,}"

    def describe_position(self, position: JSONValue) -> str:
        return self._inner.describe_position(self._start if position is None else position)


class BoundedCursor:
    """The chunks of a file cursor, cut before the first record that starts at ``end``."""

    def __init__(self, inner: Any, end: int | None) -> None:
        self._inner = inner
        self._end = end

    def __iter__(self) -> Iterator[Any]:
        end = self._end
        for chunk in self._inner:
            offsets = chunk.offsets
            n = len(chunk.items)
            if end is None or offsets[n - 1] < end:
                yield chunk
                continue
            j = bisect_left(offsets, end, 0, n)
            if j:
                yield chunk.head(j)
            return

    def close(self) -> None:
        self._inner.close()
