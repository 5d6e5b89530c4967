"""``sources.shards``: named sources one after another; in a distributed run, one partition each.

Some work comes already divided: one CSV export per client account, one table per region, one
API account per tenant. ``shards({"acme": sources.csv("acme.csv"), ...})`` reads them in
order as one job; with ``run(..., distributed=True)`` each shard is a partition of its own,
so workers take whole accounts. An item's key is ``<shard>/<key in the shard>``, which keeps
keys (and idempotency keys) apart when two shards number their items alike.

The position is ``{"shard": name, "at": the position in that shard}``: a resume opens that
shard at its saved position (in O(1) if it seeks) and the shards after it from the start.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources.base import Chunk, Cursor, Source, chunk_errors


class ShardsSource:
    kind = "shards"

    def __init__(self, shards: Mapping[str, Source | Iterable[Any]]) -> None:
        from midway.job import as_source

        if not isinstance(shards, Mapping) or not shards:
            raise ConfigError(
                "sources.shards needs a dict of shard name to source, e.g. "
                "{'acme': sources.csv('acme.csv'), 'globex': sources.csv('globex.csv')}"
            )
        for name in shards:
            if not isinstance(name, str) or not name or "/" in name:
                raise ConfigError(
                    f"shard name {name!r} is not usable: give each shard a non-empty name "
                    "without '/' (it starts the key of each of its items)"
                )
        self._shards = {name: as_source(source) for name, source in shards.items()}
        self._names = list(self._shards)
        self.seekable = all(s.seekable for s in self._shards.values())

    def shard_count(self) -> int:
        """A distributed run has one partition per shard, whatever ``partitions=`` says."""
        return len(self._names)

    def plan_parts(self, count: int) -> list[JSONValue]:
        return list(self._names)

    def partition(self, part: JSONValue, index: int) -> ShardsSource:
        if not isinstance(part, str) or part not in self._shards:
            raise SourceError(
                f"partition {index} is recorded as shard {part!r}, which is not one of "
                f"{', '.join(self._names)}; `midway reset` the job to split it again"
            )
        return ShardsSource({part: self._shards[part]})

    def fingerprint(self) -> dict[str, JSONValue]:
        return {
            "kind": self.kind,
            "shards": {name: source.fingerprint() for name, source in self._shards.items()},
        }

    def total(self) -> int | None:
        total = 0
        for source in self._shards.values():
            count = source.total()
            if count is None:
                return None
            total += count
        return total

    def open(self, position: JSONValue) -> ShardsCursor:
        name, at = self._position(position)
        return ShardsCursor(self._shards, self._names.index(name) if name else 0, at)

    def describe(self) -> str:
        if len(self._names) == 1:
            name = self._names[0]
            return f"shard {name} ({self._shards[name].describe()})"
        shown = ", ".join(self._names[:3]) + (", ..." if len(self._names) > 3 else "")
        return f"{len(self._names)} shards ({shown})"

    def describe_position(self, position: JSONValue) -> str:
        name, at = self._position(position)
        if name is None:
            return "the start"
        return f"shard {name}, {self._shards[name].describe_position(at)}"

    def _position(self, position: JSONValue) -> tuple[str | None, JSONValue]:
        if position is None:
            return None, None
        if isinstance(position, dict) and position.get("shard") in self._shards:
            name = position["shard"]
            assert isinstance(name, str)
            return name, position.get("at")
        raise SourceError(
            f"the checkpoint position {str(position)[:120]!r} names no shard of this source "
            f"({', '.join(self._names)}); run with on_drift='restart', or `midway reset` the job"
        )


class ShardsCursor:
    def __init__(self, shards: dict[str, Source], first: int, at: JSONValue) -> None:
        self._shards = shards
        self._first = first
        self._at = at
        self._open: Cursor | None = None

    def __iter__(self) -> Iterator[Chunk]:
        names = list(self._shards)
        for i in range(self._first, len(names)):
            name = names[i]
            cursor = self._shards[name].open(self._at if i == self._first else None)
            self._open = cursor
            try:
                for chunk in cursor:
                    yield ShardChunk(chunk, name)
            finally:
                cursor.close()
                self._open = None

    def close(self) -> None:
        if self._open is not None:
            self._open.close()
            self._open = None


class ShardChunk:
    """A shard's chunk: keys prefixed with the shard's name, positions naming the shard."""

    __slots__ = ("_inner", "_name", "errors", "items", "shared")

    def __init__(self, inner: Chunk, name: str) -> None:
        self._inner = inner
        self._name = name
        self.items = inner.items
        self.shared = inner.shared
        self.errors = chunk_errors(inner)

    def key(self, index: int) -> JSONValue:
        return f"{self._name}/{self._inner.key(index)}"

    def position_before(self, index: int) -> JSONValue:
        return {"shard": self._name, "at": self._inner.position_before(index)}


def shards(sources: Mapping[str, Source | Iterable[Any]]) -> ShardsSource:
    """Named sources read one after another (``{"acme": sources.csv("acme.csv"), ...}``); in
    a distributed run each shard is one partition. Keys are ``<shard>/<key>``."""
    return ShardsSource(sources)


__all__ = ["ShardsSource", "shards"]
