"""The Source protocol: what the engine needs from any input, and what a source may add.

A source opens a *cursor* at a position and hands the engine *chunks*: a list of items plus
a way to name an item's key and the position just before it. Positions are worked out only
when a checkpoint or a stop asks for them, so the per-item path stays a plain list walk.

Required: :class:`Source` (a ``kind``, ``seekable``, a fingerprint, a total, ``open``,
descriptions), whose cursors yield :class:`Chunk` objects.

Optional capabilities, each a Protocol below (a source without one keeps working, without
what it gives):

- :class:`Splittable`: ``plan_parts(count)`` and ``partition(part, index)``. **Distributed
  runs need it** (``job.run(..., distributed=True)``, ``midway worker``): the first worker
  asks ``plan_parts(Job.partitions)`` for a JSON description of each part and records it in
  the store; every worker then opens its part with ``partition(part, index)``, which must
  give the same items for the same recorded ``part`` even if the input has grown since, and
  refuse (``SourceError``) a ``part`` it cannot read. A part's items keep the keys they
  have in the whole input. A source that is not Splittable is refused by distributed runs.
- :class:`Sharded`: a Splittable source whose number of parts is its own (one per shard),
  whatever ``Job(partitions=)`` says: ``shard_count()``.
- :class:`ByteProgress`: ``size_bytes()`` and ``progress(position)``, the fraction done
  (0..1) at a position, for an input whose item count is unknown but whose bytes are: the
  progress display then counts bytes.
- ``chunk.errors``: ``{index in chunk: message}`` for input that could not be read as an
  item (a malformed CSV row, a JSON line that does not parse, bytes that are not valid
  UTF-8). Such an item is delivered as a placeholder (``Malformed``) so that the records
  after it still come through, and the engine counts it as failed with that message. An item
  without the ``key=`` field stays as it is, noted the same way (see :func:`screen`). None on
  clean chunks, which are nearly all of them: the hot path tests it once per chunk. Every
  chunk of midway's own sources has it; a chunk from elsewhere may lack it, so readers go
  through :func:`chunk_errors`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import itemgetter
from typing import Any, Protocol, runtime_checkable

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError

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


@runtime_checkable
class Splittable(Protocol):
    """A source that distributed runs can cut into partitions (see the module's docstring)."""

    def plan_parts(self, count: int) -> list[JSONValue]:
        """``count`` parts covering the input in order, each described as JSON (an index,
        byte, key or name range...), to be recorded in the store as the job's plan."""
        ...

    def partition(self, part: JSONValue, index: int) -> Source:
        """The source of one recorded part (``index``: its number, for messages)."""
        ...


@runtime_checkable
class Sharded(Splittable, Protocol):
    """A Splittable source with one partition per shard, whatever ``partitions=`` says."""

    def shard_count(self) -> int: ...


@runtime_checkable
class ByteProgress(Protocol):
    """A source that can say how far through its bytes a position is."""

    def size_bytes(self) -> int | None:
        """The input's size on disk (None when it cannot be known)."""
        ...

    def progress(self, position: JSONValue) -> float | None:
        """The fraction done (0..1) at ``position``; None when the position cannot say."""
        ...


def chunk_errors(chunk: Chunk) -> dict[int, str] | None:
    """``chunk.errors``, or None for a chunk (of a source from elsewhere) without it."""
    return getattr(chunk, "errors", None)


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


class FieldKey:
    """``key=`` a field name: the function that reads it, and the name, so that a source
    can check its items have it (see :func:`screen`)."""

    __slots__ = ("_getter", "field")

    def __init__(self, field: str) -> None:
        self.field = field
        self._getter = itemgetter(field)

    def __call__(self, item: Any) -> JSONValue:
        try:
            return self._getter(item)
        except (KeyError, TypeError, IndexError):
            raise SourceError(
                f"an item has no field {self.field!r} to use as its key "
                f"(item: {str(item)[:120]}); pass key= a field every item has, or a function"
            ) from None

    def missing(self, item: Any) -> bool:
        try:
            self._getter(item)
        except (KeyError, TypeError, IndexError):
            return True
        return False


def key_function(key: KeySpec) -> Callable[[Any], JSONValue] | None:
    """Turn ``key=`` into a function of the item (None keeps the item's number)."""
    if key is None:
        return None
    if isinstance(key, str):
        return FieldKey(key)
    if callable(key):
        return key
    raise ConfigError(f"key= must be a field name, a function or None, not {type(key).__name__}")


def fields_of(item: Any) -> str:
    """An item's field names for a message, or what it is when it has none."""
    if isinstance(item, dict):
        names = [str(k) for k in item]
        shown = ", ".join(repr(n) for n in names[:20])
        return f"its fields: {shown}{', ...' if len(names) > 20 else ''}" if names else "no fields"
    return f"it is a {type(item).__name__}, not a dict"


def refuse_key(field: str, fields: list[str], where: str) -> ConfigError:
    """The error for ``key=`` naming a field the input does not have (known up front)."""
    shown = ", ".join(repr(f) for f in fields[:40])
    more = ", ..." if len(fields) > 40 else ""
    return ConfigError(
        f"key={field!r} is not a column of {where}, whose columns are: {shown}{more}; "
        "pass key= one of them, or a function of the item"
    )


def screen(
    items: list[Any],
    key: Callable[[Any], JSONValue] | None,
    first: int,
    errors: dict[int, str] | None = None,
) -> dict[int, str] | None:
    """Items without the ``key=`` field, as ``{index: message}`` merged into ``errors``:
    each is a failing record (the failure policy decides), never a crash in mid-run. The
    very first item of the input (``first`` is its number, 0-based) without it refuses the
    job instead: the field name is wrong, and no item has been handled yet."""
    if not isinstance(key, FieldKey) or not items:
        return errors
    try:
        deque(map(key._getter, items), maxlen=0)  # the usual case: all have it, at C speed
        return errors
    except (KeyError, TypeError, IndexError):
        pass
    for i, item in enumerate(items):
        if (errors is not None and i in errors) or not key.missing(item):
            continue
        if first + i == 0:
            raise ConfigError(
                f"the first item has no field {key.field!r} to use as its key "
                f"({fields_of(item)}); pass key= a field every item has, or a function"
            )
        if errors is None:
            errors = {}
        errors[i] = (
            f"item {first + i + 1:,} has no field {key.field!r} to use as its key "
            f"({fields_of(item)})"
        )
    return errors


class NumberedChunk:
    """Items numbered from ``start``; the position is the number of the next item."""

    __slots__ = ("_key", "errors", "items", "start")
    shared = False

    def __init__(
        self, items: list[Any], start: int, key: Callable[[Any], JSONValue] | None
    ) -> None:
        self.items = items
        self.start = start
        self._key = key
        self.errors: dict[int, str] | None = screen(items, key, start)

    def key(self, index: int) -> JSONValue:
        if self._key is None:
            return self.start + index
        if self.errors is not None and index in self.errors:
            return f"item {self.start + index + 1}"  # it has no field to take a key from
        return self._key(self.items[index])

    def position_before(self, index: int) -> JSONValue:
        return self.start + index


def part_range(part: JSONValue, limit: int) -> tuple[int, int] | None:
    """A recorded partition ``[lo, hi]`` (``0 <= lo <= hi <= limit``) as a pair; None when
    ``part`` is anything else (a plan recorded for another input)."""
    if (
        isinstance(part, list)
        and len(part) == 2
        and all(isinstance(b, int) and not isinstance(b, bool) for b in part)
    ):
        lo, hi = part
        if isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi <= limit:
            return lo, hi
    return None


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
