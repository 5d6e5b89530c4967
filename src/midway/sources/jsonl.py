"""``sources.jsonl`` and ``sources.lines``: a record per line, resumed by byte offset."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Iterator
from typing import Any

from midway.sources import _files
from midway.sources.base import KeySpec


class LineRecordSource(_files.FileSource):
    """A file with one record per line; ``parse`` turns a line into an item."""

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
        self.kind = kind
        super().__init__(path, key, encoding=encoding, total=total)
        self._parse = parse
        self._skip_blank = skip_blank

    def reader(self) -> tuple[int, _files.RecordReader]:
        return 0, self._records

    def _records(self, feed: _files.LineFeed, record: int) -> Iterator[Any]:
        """One item per line; ``SKIP`` for a blank line (jsonl) or a line that cannot be
        read, which becomes a failing item."""
        parse, skip_blank = self._parse, self._skip_blank
        at = feed.offset
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
    path: _files.FilePath, key: KeySpec = None, *, encoding: str = "utf-8", total: int | None = None
) -> LineRecordSource:
    """One parsed JSON value per line (blank lines are skipped).

    ``key=`` names the field that identifies a record (default: its record number). A line
    that is not JSON becomes a failing item; the lines after it carry on. A ``.gz`` path is
    decompressed on the fly."""
    return LineRecordSource(
        path, key, kind="jsonl", parse=_strict_json, skip_blank=True, encoding=encoding, total=total
    )


def lines(
    path: _files.FilePath, key: KeySpec = None, *, encoding: str = "utf-8", total: int | None = None
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
