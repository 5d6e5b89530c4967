"""What ``run()`` and ``loop()`` make of an input that is not a source: a list, tuple or
range becomes ``sources.sequence``, a DataFrame ``sources.dataframe``, another iterable
``sources.iterable``; an input whose order is not the same in the next process is refused
(see ``_unordered``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from midway.errors import ConfigError
from midway.sources._unordered import refuse_unordered
from midway.sources.base import Source
from midway.sources.dataframe import DataFrameSource, dataframe, frame_library
from midway.sources.iterable import iterable
from midway.sources.sequence import sequence


def wrap_frame(items: Any) -> DataFrameSource | None:
    """``sources.dataframe(items)`` for a pandas or polars DataFrame (a polars LazyFrame is
    refused, with what to do), else None."""
    if frame_library(items) is None:
        return None
    return dataframe(items)


def as_source(source: Source | Iterable[Any]) -> Source:
    """A Source as is; a list, tuple or range as ``sequence``; a DataFrame as
    ``dataframe``; any other iterable as ``iterable`` (which cannot seek). A set is refused:
    its order is not the same in the next process."""
    if isinstance(source, Source):
        return source
    refuse_unordered(source)
    frame = wrap_frame(source)
    if frame is not None:
        return frame
    if isinstance(source, list | tuple | range):
        return sequence(source)
    if isinstance(source, str | bytes | dict):
        raise ConfigError(
            f"a {type(source).__name__} is not a source of items; wrap it, e.g. "
            "midway.sources.lines(path) for the lines of a file"
        )
    if isinstance(source, Iterable):
        return iterable(source)
    raise ConfigError(
        f"{type(source).__name__} is not a source: pass a midway.sources.* source, a list, "
        "or any iterable"
    )


__all__ = ["as_source", "refuse_unordered", "wrap_frame"]
