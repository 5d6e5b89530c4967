"""Where items come from. Each source knows its position, item keys and fingerprint."""

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
