"""Where items come from. Each source knows its position, item keys and fingerprint.

Each name is imported from its module when first used (PEP 562), so that ``import midway``
does not load every kind of source (SQL, files, DataFrames) for a job that reads one list.
"""

import importlib as _importlib
import sys as _sys
import typing as _typing
from types import ModuleType as _ModuleType

if _typing.TYPE_CHECKING:
    from midway.sources.base import (
        ByteProgress,
        Chunk,
        Cursor,
        KeySpec,
        Malformed,
        Sharded,
        Source,
        Splittable,
    )
    from midway.sources.csvfile import csv
    from midway.sources.dataframe import dataframe
    from midway.sources.iterable import iterable
    from midway.sources.jsonl import jsonl, lines
    from midway.sources.listing import files
    from midway.sources.paged import pages
    from midway.sources.parquet import parquet
    from midway.sources.sequence import sequence
    from midway.sources.shards import shards
    from midway.sources.sqlquery import sql

__all__ = [
    "ByteProgress",
    "Chunk",
    "Cursor",
    "KeySpec",
    "Malformed",
    "Sharded",
    "Source",
    "Splittable",
    "csv",
    "dataframe",
    "files",
    "iterable",
    "jsonl",
    "lines",
    "pages",
    "parquet",
    "sequence",
    "shards",
    "sql",
]

_HOME = {
    "ByteProgress": "base",
    "Chunk": "base",
    "Cursor": "base",
    "KeySpec": "base",
    "Malformed": "base",
    "Sharded": "base",
    "Source": "base",
    "Splittable": "base",
    "csv": "csvfile",
    "dataframe": "dataframe",
    "files": "listing",
    "iterable": "iterable",
    "jsonl": "jsonl",
    "lines": "jsonl",
    "pages": "paged",
    "parquet": "parquet",
    "sequence": "sequence",
    "shards": "shards",
    "sql": "sqlquery",
}
"""Each public name and the module (in this package) that defines it."""


def __getattr__(name: str) -> _typing.Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _Package(_ModuleType):
    """This package, keeping ``sequence``, ``jsonl``... the functions: the first import of a
    module of the same name (``midway.sources.sequence``) would bind the module over them."""

    def __setattr__(self, name: str, value: _typing.Any) -> None:
        if isinstance(value, _ModuleType) and name in _HOME:
            return
        super().__setattr__(name, value)


_sys.modules[__name__].__class__ = _Package
