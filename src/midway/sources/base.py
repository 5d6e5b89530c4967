"""The Source protocol: what the engine needs from any input.

A source opens a *cursor* at a position and hands the engine *chunks*: a list of items plus
a way to name an item's key and the position just before it. Positions are worked out only
when a checkpoint or a stop asks for them, so the per-item path stays a plain list walk.

Optional parts, which the engine looks up with ``getattr`` (a source or chunk without them
keeps working):

- ``chunk.errors``: ``{index in chunk: message}`` for input that could not be read as an item
  (a malformed CSV row, a JSON line that does not parse, bytes that are not valid UTF-8). Such
  an item is delivered as a placeholder (``Malformed``) so that the records after it still come
  through, and the engine counts it as failed with that message. None on clean chunks, which
  are nearly all of them: the hot path tests it once per chunk.
- ``source.size_bytes() -> int | None``: the input's size on disk, for byte-based progress.
- ``source.progress(position) -> float | None``: the fraction done (0..1) at ``position``, for
  an input whose item count is unknown but whose bytes are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol, runtime_checkable

from midway.errors import ConfigError, SourceError
from midway.jsonutil import JSONValue

KeySpec = str | Callable[[Any], JSONValue] | None
"""``key=``: a field name, a function of the item, or None for the item's number."""


class Chunk(Protocol):
    """A run of consecutive items from a cursor."""

    items: list[Any]
    shared: bool
    """``items`` is the caller's own list: the engine walks copies of it, never the list."""
    errors: dict[int, str] | None
    """Indices of placeholder items that stand for unreadable input, each with a message
    naming the record, its byte offset and what is wrong; None when every item is real."""

    def key(self, index: int) -> JSONValue:
        """The identity of ``items[index]``: a string or number, stable across runs."""
        ...

    def position_before(self, index: int) -> JSONValue:
        """Where to resume so that ``items[index]`` is read next (``len(items)``: after all)."""
        ...


class Cursor(Protocol):
    def __iter__(self) -> Iterator[Chunk]: ...

    def close(self) -> None: ...


@runtime_checkable
class Source(Protocol):
    """An input with a stable order. ``seekable`` sources open at a position in O(1)."""

    kind: str
    seekable: bool

    def fingerprint(self) -> dict[str, JSONValue]:
        """What identifies the input (path, size, mtime, header...): a change means drift."""
        ...

    def total(self) -> int | None:
        """How many items there are, when that is cheap to know; else None."""
        ...

    def open(self, position: JSONValue) -> Cursor:
        """Start reading at ``position`` (None: the beginning)."""
        ...

    def describe(self) -> str:
        """A short name for messages, e.g. ``contacts.csv``."""
        ...

    def describe_position(self, position: JSONValue) -> str:
        """A position in words, e.g. ``record 7,301 (byte 512,334)``."""
        ...


@dataclass(frozen=True, slots=True)
class Malformed:
    """The placeholder item for a record that could not be read.

    It keeps the record's place, so positions, record numbers and the records after it stay
    right. ``record`` is its 1-based number, ``offset`` the byte where it starts, ``error``
    what is wrong (the same text as in the chunk's ``errors``), and ``text`` the record as
    far as it could be decoded (invalid bytes replaced)."""

    record: int
    offset: int
    error: str
    text: str = ""

    def __str__(self) -> str:
        return self.error


def key_function(key: KeySpec) -> Callable[[Any], JSONValue] | None:
    """Turn ``key=`` into a function of the item (None keeps the item's number)."""
    if key is None:
        return None
    if isinstance(key, str):
        getter = itemgetter(key)

        def by_field(item: Any) -> JSONValue:
            try:
                return getter(item)
            except (KeyError, TypeError, IndexError):
                raise SourceError(
                    f"an item has no field {key!r} to use as its key (item: {str(item)[:120]}); "
                    "pass key= a field every item has, or a function"
                ) from None

        return by_field
    if callable(key):
        return key
    raise ConfigError(f"key= must be a field name, a function or None, not {type(key).__name__}")


class NumberedChunk:
    """Items numbered from ``start``; the position is the number of the next item."""

    __slots__ = ("_key", "items", "start")
    shared = False
    errors: dict[int, str] | None = None

    def __init__(
        self, items: list[Any], start: int, key: Callable[[Any], JSONValue] | None
    ) -> None:
        self.items = items
        self.start = start
        self._key = key

    def key(self, index: int) -> JSONValue:
        if self._key is None:
            return self.start + index
        return self._key(self.items[index])

    def position_before(self, index: int) -> JSONValue:
        return self.start + index


def position_as_count(position: JSONValue, where: str) -> int:
    """Validate a numeric position read back from a checkpoint."""
    if position is None:
        return 0
    if isinstance(position, int) and not isinstance(position, bool) and position >= 0:
        return position
    raise SourceError(
        f"the checkpoint position {position!r} is not an item number, so it was not written "
        f"by a {where} source; run with on_drift='restart', or `midway reset` the job"
    )
