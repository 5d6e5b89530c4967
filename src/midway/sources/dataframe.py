"""``sources.dataframe``: the rows of a pandas or polars DataFrame, one dict per row,
resumed by row number in O(1).

Neither library is imported here: a frame is recognised by its type's module and name, and
read only through the methods both have had for years (``len``, ``columns``, and
``iloc[a:b].to_dict("records")`` / ``slice(a, n).to_dicts()``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, overload

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources.base import FieldKey, KeySpec, part_range, refuse_key
from midway.sources.sequence import SequenceSource

_SAMPLE = 64


def frame_library(obj: object) -> str | None:
    """``"pandas"`` or ``"polars"`` for a DataFrame of that library (or a subclass of one),
    ``"polars-lazy"`` for a polars LazyFrame, else None. Nothing is imported to find out."""
    for cls in type(obj).__mro__:
        top = cls.__module__.partition(".")[0]
        if top in ("pandas", "polars") and cls.__name__ == "DataFrame":
            return top
        if top == "polars" and cls.__name__ == "LazyFrame":
            return "polars-lazy"
    return None


class _Rows(Sequence[dict[str, Any]]):
    """A frame seen as a sequence of row dicts, read a slice at a time."""

    def __init__(self, frame: Any, library: str) -> None:
        self.frame = frame
        self.library = library

    def __len__(self) -> int:
        return len(self.frame)

    def rows(self, lo: int, hi: int) -> list[dict[str, Any]]:
        n = len(self.frame)
        lo, hi = max(0, min(lo, n)), max(0, min(hi, n))
        if hi <= lo:
            return []
        if self.library == "pandas":
            part = self.frame.iloc[lo:hi]
            rows: list[dict[str, Any]] = part.to_dict("records")
            return rows
        polars_rows: list[dict[str, Any]] = self.frame.slice(lo, hi - lo).to_dicts()
        return polars_rows

    @overload
    def __getitem__(self, index: int) -> dict[str, Any]: ...

    @overload
    def __getitem__(self, index: slice) -> list[dict[str, Any]]: ...

    def __getitem__(self, index: int | slice) -> dict[str, Any] | list[dict[str, Any]]:
        if isinstance(index, slice):
            lo, hi, step = index.indices(len(self.frame))
            if step != 1:
                raise ValueError("rows of a frame are read in order")
            return self.rows(lo, hi)
        n = len(self.frame)
        i = index + n if index < 0 else index
        if not 0 <= i < n:
            raise IndexError(index)
        return self.rows(i, i + 1)[0]

    def window(self, lo: int, hi: int) -> Any:
        """The frame's rows ``lo`` to ``hi`` as a frame (a view, not a copy, where it can)."""
        if self.library == "pandas":
            return self.frame.iloc[lo:hi]
        return self.frame.slice(lo, hi - lo)


class DataFrameSource(SequenceSource):
    kind = "dataframe"
    seekable = True

    def __init__(self, frame: Any, key: KeySpec = None, *, name: str = "", offset: int = 0) -> None:
        library = frame_library(frame)
        if library is None or library == "polars-lazy":
            what = "a polars LazyFrame" if library else f"a {type(frame).__name__}"
            raise ConfigError(
                f"sources.dataframe() needs a pandas or polars DataFrame, not {what}"
                + ("; call .collect() on it first" if library else "")
            )
        self._rows = _Rows(frame, library)
        self.columns = [str(c) for c in frame.columns]
        super().__init__(self._rows, key, name=name, offset=offset)
        key_fn: Callable[[Any], JSONValue] | None = self._key
        if isinstance(key_fn, FieldKey) and key_fn.field not in self.columns:
            raise refuse_key(key_fn.field, self.columns, self.describe())

    def partition(self, part: JSONValue, index: int) -> DataFrameSource:
        """The rows of one range; a row keeps its number in the whole frame as its key."""
        bounds = part_range(part, len(self._rows))
        if bounds is None:
            raise SourceError(
                f"partition {index} of {self.describe()} is recorded as {part!r}, which does "
                "not fit this frame; `midway reset` the job to split it again"
            )
        lo, hi = bounds
        return DataFrameSource(
            self._rows.window(lo, hi),
            self._key_spec,
            name=f"rows {lo:,} to {hi:,} of {self.describe()}",
            offset=self._offset + lo,
        )

    def fingerprint(self) -> dict[str, JSONValue]:
        """Columns, row count and a hash of the first and last rows: cheap, and a frame
        with other columns, more or fewer rows, or other data at its ends is drift."""
        n = len(self._rows)
        head = self._rows.rows(0, _SAMPLE)
        tail = self._rows.rows(max(_SAMPLE, n - _SAMPLE), n)
        text = json.dumps([head, tail], sort_keys=True, default=repr)
        return {
            "kind": self.kind,
            "columns": list(self.columns),
            "rows": n,
            "sample": hashlib.sha256(text.encode("utf-8", "backslashreplace")).hexdigest(),
        }

    def describe(self) -> str:
        if self._name:
            return self._name
        return f"a {self._rows.library} DataFrame of {len(self._rows):,} rows"

    def describe_position(self, position: JSONValue) -> str:
        return f"row {super().describe_position(position).removeprefix('index ')}"


def dataframe(frame: Any, key: KeySpec = None, *, name: str = "") -> DataFrameSource:
    """The rows of a pandas or polars DataFrame, each a dict of column name to value.

    ``key=`` names the column that identifies a row (default: its row number, 0-based).
    The position is the row number, so a resumed run starts at its row at once. The
    fingerprint is the columns, the row count and a hash of the first and last 64 rows.
    ``job.run(df, handler)`` wraps a DataFrame in this by itself."""
    return DataFrameSource(frame, key, name=name)


__all__ = ["DataFrameSource", "dataframe", "frame_library"]
