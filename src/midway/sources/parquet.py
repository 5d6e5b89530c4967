"""``sources.parquet``: the rows of a Parquet file, one dict per row, read as Arrow record
batches and resumed at a row group and a row within it in O(1).

A Parquet file is stored in row groups, each readable on its own; the file's footer says
how many rows each holds. A position names the row group and the row inside it, so a
resumed run reads the footer, opens that row group and starts at its row: it never reads
the row groups before it. Distributed runs split the file into ranges of row groups.

pyarrow is imported only when a source is made (``pip install 'midway[parquet]'``).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources._files import resolve
from midway.sources.base import (
    Chunk,
    FieldKey,
    KeySpec,
    NumberedChunk,
    key_function,
    part_range,
    refuse_key,
)

CHUNK = 4096


def _import_parquet() -> Any:
    try:
        return importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ConfigError(
            "reading Parquet needs pyarrow, which is not installed: pip install 'midway[parquet]'"
        ) from None


class _Footer:
    """What the file's footer says: its schema and the rows of each row group."""

    def __init__(self, path: os.PathLike[str]) -> None:
        pq = _import_parquet()
        try:
            self.file: Any = pq.ParquetFile(path)
        except FileNotFoundError:
            raise SourceError(f"input file {path} does not exist; check the path") from None
        except Exception as exc:  # pyarrow's own errors (ArrowInvalid, OSError...)
            raise SourceError(f"{path} cannot be read as Parquet: {exc}") from None
        meta = self.file.metadata
        self.group_rows = [meta.row_group(g).num_rows for g in range(meta.num_row_groups)]
        self.columns: list[str] = list(self.file.schema_arrow.names)
        self.schema = [f"{field.name}: {field.type}" for field in self.file.schema_arrow]

    def rows_before(self, group: int) -> int:
        return sum(self.group_rows[:group])


class ParquetSource:
    """The rows of row groups ``first`` to ``end`` (exclusive; None: to the last) of one file."""

    kind = "parquet"
    seekable = True

    def __init__(
        self,
        path: str | os.PathLike[str],
        key: KeySpec = None,
        *,
        first: int = 0,
        end: int | None = None,
    ) -> None:
        self.path = resolve(path)
        self._key_spec = key
        self._key = key_function(key)
        self._footer = _Footer(self.path)
        self._first = first
        self._end = len(self._footer.group_rows) if end is None else end
        if isinstance(self._key, FieldKey) and self._key.field not in self._footer.columns:
            raise refuse_key(self._key.field, self._footer.columns, self.path.name)

    # -- what identifies the input -------------------------------------------------------

    def fingerprint(self) -> dict[str, JSONValue]:
        """Path, size, mtime, the schema and the row count: a rewritten file shows in the
        mtime, another file in the size, another shape in the schema or the rows."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            raise SourceError(f"input file {self.path} does not exist; check the path") from None
        fingerprint: dict[str, JSONValue] = {
            "kind": self.kind,
            "path": str(self.path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "schema": list(self._footer.schema),
            "rows": sum(self._footer.group_rows),
        }
        if not self._whole():  # a partition: which of the file's row groups it reads
            fingerprint["row_groups"] = [self._first, self._end]
        return fingerprint

    def total(self) -> int:
        return sum(self._footer.group_rows[self._first : self._end])

    # -- partitions ----------------------------------------------------------------------

    def plan_parts(self, count: int) -> list[JSONValue]:
        """``count`` consecutive ranges of row groups, cut where the rows are about evenly
        shared (a part may be empty when there are fewer row groups than parts)."""
        rows = self._footer.group_rows[self._first : self._end]
        total = sum(rows)
        cuts = [self._first]
        seen = 0
        for part in range(1, count):
            target = total * part // count
            group = cuts[-1]
            while group < self._end and seen + rows[group - self._first] <= target:
                seen += rows[group - self._first]
                group += 1
            cuts.append(group)
        cuts.append(self._end)
        return [[cuts[i], cuts[i + 1]] for i in range(count)]

    def partition(self, part: JSONValue, index: int) -> ParquetSource:
        """The rows of one recorded range of row groups; a row keeps its number in the whole
        file as its default key."""
        groups = len(self._footer.group_rows)
        bounds = part_range(part, groups)
        if bounds is None:
            raise SourceError(
                f"partition {index} of {self.describe()} is recorded as {part!r}, which does "
                f"not fit its {groups} row groups; `midway reset` the job to split it again"
            )
        return ParquetSource(self.path, self._key_spec, first=bounds[0], end=bounds[1])

    # -- reading -------------------------------------------------------------------------

    def open(self, position: JSONValue) -> ParquetCursor:
        group, row = self._position(position)
        return ParquetCursor(self, group, row)

    def _position(self, position: JSONValue) -> tuple[int, int]:
        """(row group, row in it) from a checkpoint position; None is the first row."""
        if position is None:
            return self._first, 0
        if isinstance(position, dict):
            group, row = position.get("row_group"), position.get("row")
            if (
                isinstance(group, int)
                and isinstance(row, int)
                and not isinstance(group, bool)
                and not isinstance(row, bool)
                and self._first <= group <= self._end
                and 0 <= row <= (self._footer.group_rows[group] if group < self._end else 0)
            ):
                return group, row
        raise SourceError(
            f"the checkpoint position {position!r} is not a row of {self.describe()}; "
            "run with on_drift='restart', or `midway reset` the job"
        )

    def _whole(self) -> bool:
        return self._first == 0 and self._end == len(self._footer.group_rows)

    def describe(self) -> str:
        if self._whole():
            return self.path.name
        return f"row groups {self._first} to {self._end - 1} of {self.path.name}"

    def describe_position(self, position: JSONValue) -> str:
        group, row = self._position(position)
        number = self._footer.rows_before(group) + row
        return f"row {number:,} (row group {group}, row {row:,})"


class ParquetCursor:
    """Reads from row group ``group``, row ``row`` on, a record batch at a time."""

    def __init__(self, source: ParquetSource, group: int, row: int) -> None:
        self._source = source
        self._group = group
        self._row = row

    def __iter__(self) -> Iterator[Chunk]:
        footer = self._source._footer
        before = footer.rows_before(self._group)
        row = self._row
        for group in range(self._group, self._source._end):
            if row < footer.group_rows[group]:  # else resumed at the end of this group
                yield from self._chunks(group, row, before)
            before += footer.group_rows[group]
            row = 0

    def _chunks(self, group: int, row: int, before: int) -> Iterator[Chunk]:
        """Row group ``group`` from its row ``row`` on (the batches before it are read and
        dropped: a row group is the smallest part of a Parquet file that can be read)."""
        lo = 0
        batches = self._source._footer.file.iter_batches(batch_size=CHUNK, row_groups=[group])
        for batch in batches:
            hi = lo + batch.num_rows
            if hi > row:
                start = max(row, lo)
                rows = batch.slice(start - lo).to_pylist()
                yield RowGroupChunk(rows, group, start, before + start, self._source._key)
            lo = hi

    def close(self) -> None:
        pass


class RowGroupChunk(NumberedChunk):
    """Rows of one row group from its row ``row`` on; ``start`` (the default key) counts
    the rows in the whole file, the position names the row group and the row in it."""

    __slots__ = ("group", "row")

    def __init__(self, items: list[Any], group: int, row: int, number: int, key: Any) -> None:
        super().__init__(items, number, key)
        self.group = group
        self.row = row

    def position_before(self, index: int) -> JSONValue:
        return {"row_group": self.group, "row": self.row + index}


def parquet(path: str | os.PathLike[str], key: KeySpec = None) -> ParquetSource:
    """The rows of a Parquet file, each a dict of column name to value, read as Arrow record
    batches (needs pyarrow: ``pip install 'midway[parquet]'``).

    ``key=`` names the column that identifies a row (default: its row number in the file,
    0-based). The position is the row group and the row within it, so a resumed run opens
    that row group at once, whatever its place in the file. The fingerprint is the path,
    size, mtime, schema and row count. Distributed runs split the file by row groups."""
    return ParquetSource(path, key)


__all__ = ["ParquetSource", "parquet"]
