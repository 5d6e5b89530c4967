"""``sources.jsonl`` and ``sources.lines``: a record per line, resumed by byte offset."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from typing import IO, Any

from midway._model.jsonutil import JSONValue
from midway.sources import _files
from midway.sources.base import Chunk, KeySpec, key_function


class LineRecordSource(_files.FileSource):
    """A file with one record per line; ``parse`` turns a line into an item."""

    seekable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: KeySpec,
        *,
        kind: str,
        parse: Callable[[str], Any],
        skip_blank: bool,
        encoding: str = "utf-8",
        total: int | None = None,
    ) -> None:
        self._total = total
        self.kind = kind
        self.path = _files.resolve(path)
        self._key = key_function(key)
        self._parse = parse
        self._skip_blank = skip_blank
        self._encoding = encoding

    def fingerprint(self) -> dict[str, JSONValue]:
        return _files.file_fingerprint(self.path, self.kind)

    def total(self) -> int | None:
        return self._total

    def open(self, position: JSONValue) -> LineRecordCursor:
        offset, record = _files.file_position(position, self.path)
        offset = max(offset, 0)
        f, anchor = _files.open_at(self.path, offset, position)
        return LineRecordCursor(self, f, offset, record, anchor)


class LineRecordCursor:
    def __init__(
        self,
        source: LineRecordSource,
        f: IO[bytes],
        offset: int,
        record: int,
        anchor: _files.Anchor | None,
    ) -> None:
        self._source = source
        self._f = f
        self._offset = offset
        self._record = record
        self._anchor = anchor

    def __iter__(self) -> Iterator[Chunk]:
        src = self._source
        feed = _files.LineFeed(self._f, self._offset, src._encoding, src.path)
        return _files.chunk_records(self._records(feed), feed, self._record, src._key, self._anchor)

    def _records(self, feed: _files.LineFeed) -> Iterator[Any]:
        """One item per line; ``SKIP`` for a blank line (jsonl) or a line that cannot be
        read, which becomes a failing item."""
        src = self._source
        parse, skip_blank = src._parse, src._skip_blank
        record, at = self._record, feed.offset
        for line in feed:
            if skip_blank and not line.strip():
                yield _files.SKIP
            else:
                record += 1
                if feed.bad is not None:
                    yield feed.reject(record, at, f"has {feed.bad}", line.rstrip("\r\n"))
                else:
                    try:
                        item = parse(line)
                    except ValueError as exc:
                        yield feed.reject(record, at, f"cannot be read: {exc}", line.rstrip("\r\n"))
                    except RecursionError:
                        why = "cannot be read: it is nested too deeply"
                        yield feed.reject(record, at, why, line.rstrip("\r\n")[:200])
                    else:
                        yield item
            at = feed.offset

    def close(self) -> None:
        self._f.close()


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON (no key, state or ledger could hold it)")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"{text} is too large for a number midway can store")
    return value


def _strict_json(line: str) -> Any:
    """JSON as the standard has it: NaN and Infinity (or a number that overflows to it)
    are refused, not read as floats that no key, state or ledger could hold."""
    return json.loads(line, parse_constant=_no_constant, parse_float=_finite)


def _strip_newline(line: str) -> str:
    return line.rstrip("\r\n")


def jsonl(
    path: str | os.PathLike[str],
    key: KeySpec = None,
    *,
    encoding: str = "utf-8",
    total: int | None = None,
) -> LineRecordSource:
    """One parsed JSON value per line (blank lines are skipped).

    ``key=`` names the field that identifies a record (default: its record number). A line
    that is not JSON becomes a failing item; the lines after it carry on. A ``.gz`` path is
    decompressed on the fly."""
    return LineRecordSource(
        path, key, kind="jsonl", parse=_strict_json, skip_blank=True, encoding=encoding, total=total
    )


def lines(
    path: str | os.PathLike[str],
    key: KeySpec = None,
    *,
    encoding: str = "utf-8",
    total: int | None = None,
) -> LineRecordSource:
    """Each line of a text file, without its line ending (blank lines included). A ``.gz``
    path is decompressed on the fly."""
    return LineRecordSource(
        path,
        key,
        kind="lines",
        parse=_strip_newline,
        skip_blank=False,
        encoding=encoding,
        total=total,
    )
