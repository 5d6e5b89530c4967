"""What the file sources share: fingerprints, byte-offset positions, decoded line feeds."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from midway.errors import SourceError
from midway.jsonutil import JSONValue

HEAD_BYTES = 64 * 1024
CHUNK = 1024
SKIP = object()
"""Yielded by a record reader for input that holds no record (a blank line)."""


def resolve(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().absolute()


def open_binary(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SourceError(f"input file {path} does not exist; check the path") from None
    except OSError as exc:
        raise SourceError(f"cannot open input file {path}: {exc.strerror}") from None


def file_fingerprint(path: Path, kind: str) -> dict[str, JSONValue]:
    """Path, size, mtime and a hash of the first 64 KiB: cheap, and any edit shows."""
    try:
        st = path.stat()
        with path.open("rb") as f:
            head = f.read(HEAD_BYTES)
    except FileNotFoundError:
        raise SourceError(f"input file {path} does not exist; check the path") from None
    return {
        "kind": kind,
        "path": str(path),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "head_sha256": hashlib.sha256(head).hexdigest(),
    }


def file_position(position: JSONValue, path: Path) -> tuple[int, int]:
    """(byte offset, records before it) from a checkpoint position; None is the start."""
    if position is None:
        return (-1, 0)
    if isinstance(position, dict):
        offset, record = position.get("offset"), position.get("record")
        if isinstance(offset, int) and isinstance(record, int) and offset >= 0 and record >= 0:
            return (offset, record)
    raise SourceError(
        f"the checkpoint position {position!r} is not a file position for {path}; "
        "run with on_drift='restart', or `midway reset` the job"
    )


def describe_file_position(position: JSONValue, path: Path) -> str:
    offset, record = file_position(position, path)
    if offset < 0:
        return "the start"
    return f"record {record + 1:,} (byte {offset:,})"


class LineFeed:
    """Decoded lines of a binary file; ``offset`` is the byte just after the last line read."""

    def __init__(self, f: IO[bytes], offset: int, encoding: str, path: Path) -> None:
        self._f = f
        self.offset = offset
        self._encoding = encoding
        self._path = path

    def __iter__(self) -> Iterator[str]:
        encoding = self._encoding
        for raw in self._f:
            start = self.offset
            self.offset += len(raw)
            try:
                yield raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise SourceError(
                    f"{self._path}: invalid {encoding} at byte {start + exc.start:,}; "
                    "re-encode the file or pass encoding="
                ) from None


class FileChunk:
    """Records with the byte offset before each; the position is offset + record count."""

    __slots__ = ("_key", "first", "items", "offsets")
    shared = False

    def __init__(
        self,
        items: list[Any],
        offsets: list[int],
        first: int,
        key: Callable[[Any], JSONValue] | None,
    ) -> None:
        self.items = items
        self.offsets = offsets
        self.first = first
        self._key = key

    def key(self, index: int) -> JSONValue:
        if self._key is None:
            return self.first + index + 1
        return self._key(self.items[index])

    def position_before(self, index: int) -> JSONValue:
        return {"offset": self.offsets[index], "record": self.first + index}


def chunk_records(
    records: Iterator[Any], feed: LineFeed, first: int, key: Callable[[Any], JSONValue] | None
) -> Iterator[FileChunk]:
    """Group the records a reader yields into chunks, noting the byte offset after each.

    ``feed.offset`` is read after every record, so the reader must not read ahead; a
    ``SKIP`` moves the position past input that holds no record."""
    items: list[Any] = []
    offsets = [feed.offset]
    for item in records:
        if item is SKIP:
            offsets[-1] = feed.offset
            continue
        items.append(item)
        offsets.append(feed.offset)
        if len(items) == CHUNK:
            yield FileChunk(items, offsets, first, key)
            first += len(items)
            items, offsets = [], [feed.offset]
    if items:
        yield FileChunk(items, offsets, first, key)
