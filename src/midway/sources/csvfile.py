"""``sources.csv``: one dict per row, resumed by seeking to a byte offset."""

from __future__ import annotations

import csv as _csv
import os
from collections.abc import Iterator
from functools import partial
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources import _files
from midway.sources.base import FieldKey, KeySpec, Malformed, refuse_key

MAX_RECORD_BYTES = 16 * 1024 * 1024
_END = "\ue000end of file\ue000"
"""What the feed yields after the last line: no CSV text holds these private-use
characters, so a row that ends with it is a record the file ended inside of."""


class CsvSource(_files.FileSource):
    kind = "csv"

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: KeySpec,
        *,
        encoding: str,
        total: int | None,
        max_record_bytes: int,
        **fmtparams: Any,
    ) -> None:
        """See :func:`csv`, which holds the defaults."""
        if (
            not isinstance(max_record_bytes, int)
            or isinstance(max_record_bytes, bool)
            or max_record_bytes < 1
        ):
            raise ConfigError(
                f"max_record_bytes={max_record_bytes!r}: give a number of bytes, 1 or more"
            )
        super().__init__(path, key, encoding=encoding, total=total)
        self._max_record_bytes = max_record_bytes
        self._fmt = fmtparams

    def _header(self) -> tuple[list[str], int]:
        """The header row and the byte offset just after it (a UTF-8 BOM is skipped)."""
        f, _ = _files.open_at(self.path, 0, None)
        with f:
            feed = _files.LineFeed(f, 0, self._encoding, self.path)
            try:
                header = next(_csv.reader(_without_bom(iter(feed)), **self._fmt))
            except StopIteration:
                raise SourceError(
                    f"{self.path} is empty: a CSV source needs a header row"
                ) from None
            except _csv.Error as exc:
                raise SourceError(f"{self.path}: cannot read the header row: {exc}") from None
            if feed.bad is not None:
                raise SourceError(
                    f"{self.path}: the header row has {feed.bad}; re-encode the file or "
                    "pass encoding="
                )
            return header, feed.offset

    def _checked_header(self) -> tuple[list[str], int]:
        """The header, once ``key=`` is known to name one of its columns."""
        header, body = self._header()
        if isinstance(self._key, FieldKey) and self._key.field not in header:
            raise refuse_key(self._key.field, header, self.path.name)
        return header, body

    def fingerprint(self) -> dict[str, JSONValue]:
        fp = super().fingerprint()
        fp["header"] = self._checked_header()[0]
        return fp

    def reader(self) -> tuple[int, _files.RecordReader]:
        header, body = self._checked_header()
        return body, partial(self._rows, header)

    def _rows(self, header: list[str], feed: _files.LineFeed, record: int) -> Iterator[Any]:
        """One dict per row (``SKIP`` for a blank line or a malformed row); csv.reader reads
        no further ahead than the row it returns, so ``feed.offset`` is where the next row
        starts.

        A quote that is never closed would make csv.reader read the rest of the file into
        one field, and a runaway record would stop at the field size limit. So the feed
        marks the end of the file (a record that holds the mark ended inside quotes) and
        stops a record at ``max_record_bytes``; either becomes a failing record, and reading
        starts again at the line after the one where it began."""
        width = len(header)
        limit = self._max_record_bytes
        if _csv.field_size_limit() < limit:
            _csv.field_size_limit(limit)  # our own limit, in bytes, is the one that holds
        feed.end_mark, feed.limit = _END, limit
        reader = _csv.reader(feed, **self._fmt)
        while True:
            at = feed.start = feed.offset
            try:
                row = next(reader)
            except StopIteration:
                return
            except _files.RecordTooLong as exc:
                record += 1
                what = (
                    f"is longer than max_record_bytes={limit:,} (it reached {exc.size:,} "
                    "bytes): a quote that is not closed? To accept such a record, pass "
                    "max_record_bytes= a larger size"
                )
                yield _runaway(feed, record, at, what)
                reader = _csv.reader(feed, **self._fmt)
                continue
            except _csv.Error as exc:
                record += 1
                yield feed.reject(record, at, f"is not valid CSV: {exc}")
                continue
            if not row:
                yield _files.SKIP
                continue
            if row[-1].endswith(_END):
                if row == [_END]:
                    return  # the end of the file, between records
                record += 1
                what = (
                    "has a quoted field that is not closed before the end of the file; "
                    "close the quote (or fix the quoting) and run again"
                )
                yield _runaway(feed, record, at, what)
                reader = _csv.reader(feed, **self._fmt)
                continue
            record += 1
            if feed.bad is not None:
                yield feed.reject(record, at, f"has {feed.bad}", ",".join(row))
            elif len(row) != width:
                yield feed.reject(
                    record, at, f"has {len(row)} fields where the header has {width}", ",".join(row)
                )
            else:
                yield dict(zip(header, row, strict=True))


def _runaway(feed: _files.LineFeed, record: int, at: int, what: str) -> object:
    """A record that ran to the end of the file or past the size limit: failing, named
    by its line and byte, and reading goes on at the line after its first."""
    line = feed.line_of(at)
    where = "" if line is None else f"line {line:,}, "
    if not feed.resync(at):
        what += " (the lines it took in are not read again in a compressed file)"
    feed.bad = None
    error = f"{feed._path.name}: record {record:,} ({where}byte {at:,}) {what}"
    feed.malformed = Malformed(record, at, error, "")
    return _files.SKIP


def _without_bom(lines: Iterator[str]) -> Iterator[str]:
    first = next(lines, None)
    if first is None:
        return
    yield first.removeprefix("\ufeff")
    yield from lines


def csv(
    path: str | os.PathLike[str],
    key: KeySpec = None,
    *,
    encoding: str = "utf-8",
    total: int | None = None,
    max_record_bytes: int = MAX_RECORD_BYTES,
    **fmtparams: Any,
) -> CsvSource:
    """Rows of a CSV file with a header, each a dict of column name to string.

    ``key=`` names the column that identifies a row (default: its record number).
    ``total=`` (the number of rows, if you know it) enables a progress bar with an ETA.
    Extra keyword arguments go to :func:`csv.reader` (``delimiter=";"``, ...).
    A ``.gz`` path is decompressed on the fly (see ``midway.sources._gzip`` for what a
    resume costs then). A row that cannot be read (wrong number of fields, invalid bytes)
    becomes a failing item, and the rows after it carry on.
    A record that reaches the end of the file inside quotes, or grows past
    ``max_record_bytes`` (16 MiB unless given; raise it to accept larger fields), is a
    failing item naming its line and byte, and reading goes on at the line after its first.
    Resuming seeks straight to the saved byte offset."""
    return CsvSource(
        path, key, encoding=encoding, total=total, max_record_bytes=max_record_bytes, **fmtparams
    )


__all__ = ["CsvSource", "csv"]
