"""``sources.csv``: one dict per row, resumed by seeking to a byte offset."""

from __future__ import annotations

import csv as _csv
import os
from collections.abc import Iterator
from typing import IO, Any

from midway.errors import SourceError
from midway.jsonutil import JSONValue
from midway.sources import _files
from midway.sources.base import Chunk, KeySpec, key_function

_BOM = b"\xef\xbb\xbf"


class CsvSource:
    kind = "csv"
    seekable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: KeySpec = None,
        *,
        encoding: str = "utf-8",
        total: int | None = None,
        **fmtparams: Any,
    ) -> None:
        self.path = _files.resolve(path)
        self._total = total
        self._key = key_function(key)
        self._encoding = encoding
        self._fmt = fmtparams

    def _header(self, f: IO[bytes]) -> tuple[list[str], int]:
        """The header row and the byte offset just after it (a UTF-8 BOM is skipped)."""
        start = 3 if f.read(3) == _BOM else 0
        f.seek(start)
        feed = _files.LineFeed(f, start, self._encoding, self.path)
        try:
            header = next(_csv.reader(feed, **self._fmt))
        except StopIteration:
            raise SourceError(f"{self.path} is empty: a CSV source needs a header row") from None
        except _csv.Error as exc:
            raise SourceError(f"{self.path}: cannot read the header row: {exc}") from None
        return header, feed.offset

    def fingerprint(self) -> dict[str, JSONValue]:
        fp = _files.file_fingerprint(self.path, self.kind)
        with _files.open_binary(self.path) as f:
            fp["header"] = self._header(f)[0]
        return fp

    def total(self) -> int | None:
        return self._total

    def open(self, position: JSONValue) -> CsvCursor:
        offset, record = _files.file_position(position, self.path)
        f = _files.open_binary(self.path)
        header, body = self._header(f)
        return CsvCursor(self, f, header, body if offset < 0 else offset, record)

    def describe(self) -> str:
        return self.path.name

    def describe_position(self, position: JSONValue) -> str:
        return _files.describe_file_position(position, self.path)


class CsvCursor:
    def __init__(
        self, source: CsvSource, f: IO[bytes], header: list[str], offset: int, record: int
    ) -> None:
        self._source = source
        self._f = f
        self._header = header
        self._offset = offset
        self._record = record

    def __iter__(self) -> Iterator[Chunk]:
        src = self._source
        self._f.seek(self._offset)
        feed = _files.LineFeed(self._f, self._offset, src._encoding, src.path)
        return _files.chunk_records(self._rows(feed), feed, self._record, src._key)

    def _rows(self, feed: _files.LineFeed) -> Iterator[Any]:
        """One dict per row (``SKIP`` for a blank line); csv.reader reads no further ahead
        than the row it returns, so ``feed.offset`` is where the next row starts."""
        src, header = self._source, self._header
        width, record = len(header), self._record
        reader = _csv.reader(feed, **src._fmt)
        while True:
            at = feed.offset
            try:
                row = next(reader)
            except StopIteration:
                return
            except _csv.Error as exc:
                raise SourceError(
                    f"{src.path}: record {record + 1:,} (byte {at:,}) is not valid CSV: {exc}"
                ) from None
            if not row:
                yield _files.SKIP
                continue
            if len(row) != width:
                raise SourceError(
                    f"{src.path}: record {record + 1:,} (byte {at:,}) has {len(row)} fields "
                    f"where the header has {width}; fix the row"
                )
            record += 1
            yield dict(zip(header, row, strict=True))

    def close(self) -> None:
        self._f.close()


def csv(
    path: str | os.PathLike[str],
    key: KeySpec = None,
    *,
    encoding: str = "utf-8",
    total: int | None = None,
    **fmtparams: Any,
) -> CsvSource:
    """Rows of a CSV file with a header, each a dict of column name to string.

    ``key=`` names the column that identifies a row (default: its record number).
    ``total=`` (the number of rows, if you know it) enables a progress bar with an ETA.
    Extra keyword arguments go to :func:`csv.reader` (``delimiter=";"``, ...).
    Resuming seeks straight to the saved byte offset."""
    return CsvSource(path, key, encoding=encoding, total=total, **fmtparams)


__all__ = ["CsvSource", "csv"]
