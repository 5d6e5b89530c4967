"""What the file sources share: fingerprints, byte-offset positions, decoded line feeds, and
chunks in which a malformed record becomes a failing item instead of the end of the run."""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from midway._model.jsonutil import JSONValue
from midway.errors import SourceError
from midway.sources import _fileparts
from midway.sources.base import KeySpec, Malformed, key_function, screen

HEAD_BYTES = 64 * 1024
CHUNK = 1024
SKIP = object()
"""Yielded by a record reader for input that holds no record (a blank line), or, with
``feed.malformed`` set, for a record that could not be read."""

FilePath = str | os.PathLike[str]
"""A path as the file sources take it."""

Anchor = Callable[[int], list[int]]
"""For a compressed input: the resume anchor (see ``_gzip``) for an uncompressed offset."""


def resolve(path: str | os.PathLike[str]) -> Path:
    return Path(path).expanduser().absolute()


def is_gzip(path: Path) -> bool:
    return path.suffix.lower() == ".gz"


def open_binary(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        raise SourceError(f"input file {path} does not exist; check the path") from None
    except OSError as exc:
        raise SourceError(f"cannot open input file {path}: {exc.strerror}") from None


def open_at(path: Path, offset: int, position: JSONValue) -> tuple[IO[bytes], Anchor | None]:
    """The file's (uncompressed) bytes from ``offset`` on, and for a ``.gz`` file the
    function that names resume anchors for the chunks read from it."""
    if is_gzip(path):
        from midway.sources import _gzip

        member, member_offset = _gzip.anchor_of(position, offset, path)
        reader = _gzip.MemberReader(open_binary(path), path, member, member_offset)
        try:
            reader.skip(offset - member_offset)
        except BaseException:
            reader.close()
            raise
        return _gzip.buffered(reader), reader.anchor
    f = open_binary(path)
    f.seek(offset)
    return f, None


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


RecordReader = Callable[["LineFeed", int], Iterator[Any]]
"""Reads records from a feed (the argument: how many records come before the first): yields
an item per record, or ``SKIP`` (see :func:`chunk_records`)."""


class FileSource(ABC):
    """What csv, jsonl and lines have in common: the file, its fingerprint, positions and
    their names, progress by bytes and partitions. Each says where its records begin and
    how to read them (:meth:`reader`)."""

    kind: str
    seekable = True

    def __init__(
        self, path: str | os.PathLike[str], key: KeySpec, *, encoding: str, total: int | None
    ) -> None:
        self.path = resolve(path)
        self._key = key_function(key)
        self._encoding = encoding
        self._total = total

    @abstractmethod
    def reader(self) -> tuple[int, RecordReader]:
        """The byte offset of the first record, and the function that reads the records."""

    def fingerprint(self) -> dict[str, JSONValue]:
        return file_fingerprint(self.path, self.kind)

    def total(self) -> int | None:
        return self._total

    def open(self, position: JSONValue) -> FileCursor:
        offset, record = file_position(position, self.path)
        body, read = self.reader()
        offset = body if offset < 0 else offset
        f, anchor = open_at(self.path, offset, position)
        feed = LineFeed(f, offset, self._encoding, self.path)
        return FileCursor(f, chunk_records(read(feed, record), feed, record, self._key, anchor))

    def describe(self) -> str:
        return self.path.name

    def describe_position(self, position: JSONValue) -> str:
        offset, record = file_position(position, self.path)
        if offset < 0:
            return "the start"
        where = "uncompressed byte" if is_gzip(self.path) else "byte"
        return f"record {record + 1:,} ({where} {offset:,})"

    def plan_parts(self, count: int) -> list[JSONValue]:
        """Byte ranges of about equal size, cut where records begin (for distributed runs;
        this reads the file once: see ``_fileparts``)."""
        return _fileparts.plan_parts(self, count)

    def partition(self, part: JSONValue, index: int) -> _fileparts.FilePartition:
        return _fileparts.partition(self, part, index)

    def size_bytes(self) -> int | None:
        """The file's size on disk (compressed, for a ``.gz``)."""
        try:
            return self.path.stat().st_size
        except OSError:
            return None

    def progress(self, position: JSONValue, size: int | None = None) -> float | None:
        """The fraction of the file's bytes before ``position``. For a ``.gz`` file, the
        compressed bytes the decoder had read when the position's chunk began (so it runs
        ahead by at most a read buffer); None for a position without that. ``size``: the
        file's size when the caller knows it (else it is looked up)."""
        if not isinstance(position, dict):
            return 0.0 if position is None else None
        size = self.size_bytes() if size is None else size
        if not size:
            return None
        if is_gzip(self.path):
            anchor = position.get("gzip")
            done = anchor[2] if isinstance(anchor, list) and len(anchor) == 3 else None
        else:
            done = position.get("offset")
        if not isinstance(done, int):
            return None
        return min(1.0, max(0.0, done / size))


class FileCursor:
    """The chunks of a file source from where it was opened; closing it closes the file."""

    def __init__(self, f: IO[bytes], chunks: Iterator[FileChunk]) -> None:
        self._f = f
        self._chunks = chunks

    def __iter__(self) -> Iterator[FileChunk]:
        return self._chunks

    def close(self) -> None:
        self._f.close()


class RecordTooLong(Exception):
    """Raised by a :class:`LineFeed` with a ``limit`` when a record grows past it."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


class LineFeed:
    """Decoded lines of a binary file; ``offset`` is the byte just after the last line read.

    A line that is not valid in the encoding is decoded with replacement characters, and
    ``bad`` says where and why, for the record reader to turn that record into a failing item.
    ``malformed`` is how a reader hands such an item to :func:`chunk_records`."""

    def __init__(self, f: IO[bytes], offset: int, encoding: str, path: Path) -> None:
        self._f = f
        self.offset = offset
        self._encoding = encoding
        self._path = path
        self.bad: str | None = None
        self.malformed: Malformed | None = None
        self.end_mark: str | None = None
        """Yielded once after the last line, when set: a reader that finds it inside a
        record knows the file ended inside that record (see ``csvfile``)."""
        self.limit: int | None = None
        """With ``start``: the bytes a record may take; past them, :class:`RecordTooLong`."""
        self.start = offset

    def __iter__(self) -> Iterator[str]:
        encoding, limit = self._encoding, self.limit
        for raw in self._f:
            start = self.offset
            self.offset += len(raw)
            if limit is not None and self.offset - self.start > limit:
                raise RecordTooLong(self.offset - self.start)
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                if self.bad is None:
                    self.bad = f"invalid {encoding} at byte {start + exc.start:,}"
                line = raw.decode(encoding, "replace")
            yield line
        if self.end_mark is not None:
            yield self.end_mark

    def resync(self, at: int) -> bool:
        """Go back to the line after the one at byte ``at`` (where a record that could not
        be read began), so that the lines it swallowed are read as records again. False
        when the input cannot seek (a ``.gz`` file): reading goes on where it is."""
        f = self._f
        if not f.seekable():
            return False
        f.seek(at)
        self.offset = at + len(f.readline())
        return True

    def line_of(self, at: int) -> int | None:
        """The 1-based line number of byte ``at`` (read from the start: for messages
        only), or None when the input cannot seek."""
        f = self._f
        if not f.seekable():
            return None
        here = f.tell()
        try:
            f.seek(0)
            count, left = 1, at
            while left > 0:
                block = f.read(min(left, 1 << 20))
                if not block:
                    break
                count += block.count(b"\n")
                left -= len(block)
            return count
        finally:
            f.seek(here)

    def reject(self, record: int, at: int, what: str, text: str = "") -> object:
        """Note record ``record`` (1-based, starting at byte ``at``) as malformed; the reader
        yields what this returns."""
        self.bad = None
        error = f"{self._path.name}: record {record:,} (byte {at:,}) {what}"
        self.malformed = Malformed(record, at, error, text)
        return SKIP


class FileChunk:
    """Records with the byte offset before each; the position is offset + record count
    (and, for a ``.gz`` file, the anchor a resume decompresses from)."""

    __slots__ = ("_key", "anchor", "errors", "first", "items", "offsets")
    shared = False

    def __init__(
        self,
        items: list[Any],
        offsets: list[int],
        first: int,
        key: Callable[[Any], JSONValue] | None,
        errors: dict[int, str] | None = None,
        anchor: list[int] | None = None,
    ) -> None:
        self.items = items
        self.offsets = offsets
        self.first = first
        self._key = key
        self.errors = screen(items, key, first, errors)
        self.anchor = anchor

    def key(self, index: int) -> JSONValue:
        if self._key is None:
            return self.first + index + 1
        if self.errors is not None and index in self.errors:
            return f"record {self.first + index + 1}"  # it has no field to take a key from
        return self._key(self.items[index])

    def head(self, count: int) -> FileChunk:
        """The first ``count`` records, as a chunk of their own."""
        errors = self.errors
        if errors is not None:
            errors = {i: e for i, e in errors.items() if i < count} or None
        return FileChunk(
            self.items[:count],
            self.offsets[: count + 1],
            self.first,
            self._key,
            errors,
            self.anchor,
        )

    def position_before(self, index: int) -> JSONValue:
        if self.anchor is None:
            return {"offset": self.offsets[index], "record": self.first + index}
        return {"offset": self.offsets[index], "record": self.first + index, "gzip": self.anchor}


def chunk_records(
    records: Iterator[Any],
    feed: LineFeed,
    first: int,
    key: Callable[[Any], JSONValue] | None,
    anchor: Anchor | None = None,
) -> Iterator[FileChunk]:
    """Group the records a reader yields into chunks, noting the byte offset after each.

    ``feed.offset`` is read after every record, so the reader must not read ahead; a
    ``SKIP`` moves the position past input that holds no record, or, when the reader set
    ``feed.malformed``, delivers that placeholder and notes its index in ``errors``."""
    items: list[Any] = []
    offsets = [feed.offset]
    errors: dict[int, str] | None = None
    mark = None if anchor is None else anchor(feed.offset)
    for record in records:
        item = record
        if item is SKIP:
            bad = feed.malformed
            if bad is None:
                offsets[-1] = feed.offset
                continue
            feed.malformed = None
            if errors is None:
                errors = {}
            errors[len(items)] = bad.error
            item = bad
        items.append(item)
        offsets.append(feed.offset)
        if len(items) == CHUNK:
            yield FileChunk(items, offsets, first, key, errors, mark)
            first += len(items)
            items, offsets, errors = [], [feed.offset], None
            if anchor is not None:
                mark = anchor(feed.offset)
    if items:
        yield FileChunk(items, offsets, first, key, errors, mark)
