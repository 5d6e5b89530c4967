"""The units of a batched run (``batch=N``): one :class:`Batch`, or a :class:`BatchRun` of
whole batches of one chunk that the fast path walks in one go."""

from __future__ import annotations

from typing import Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemStatus
from midway.errors import ConfigError
from midway.sources.base import Chunk

Outcome = tuple[JSONValue, ItemStatus, "BaseException | str | None", JSONValue, Any, int]
"""A record's outcome: key, status, error (or reason), position, the item, and how many
calls of the handler it was in."""
NOT_IN_BATCH = "ctx.{what}({key!r}): that key is not in the batch in hand (ctx.keys lists them)"


def batch_identity(keys: list[JSONValue]) -> JSONValue:
    """What ``ctx.idempotency_key`` of a batch hashes: its first and last keys and its size,
    the same in every run, since a batch is always cut the same."""
    return {"batch": [keys[0], keys[-1], len(keys)] if keys else []}


class Batch:
    """Up to N consecutive records of the input (or records put back by ``midway retry``).

    ``items`` are what the handler gets; ``size`` counts every record the batch covers,
    including the ones settled before the handler (unreadable, or left by an earlier run).
    Keys and positions are worked out only when asked."""

    __slots__ = (
        "_index",
        "_keys",
        "_positions",
        "_segments",
        "attempts",
        "drops",
        "end",
        "error",
        "items",
        "outcomes",
        "size",
        "waited_out",
    )

    def __init__(
        self,
        items: list[Any],
        segments: list[tuple[Chunk, int, int]] | None,
        keys: list[JSONValue] | None = None,
        positions: list[JSONValue] | None = None,
    ) -> None:
        self.items = items
        self.size = len(items)
        self._keys = keys
        self._positions = positions
        self._segments = segments or []
        self.end: tuple[Chunk, int] | None = None
        if segments:
            self.size = sum(stop - start for _, start, stop in segments)
            chunk, _, stop = segments[-1]
            self.end = (chunk, stop)
        self._index: dict[str, int] | None = None
        self.outcomes: dict[str, Outcome] = {}
        self.drops: list[JSONValue] = []
        """Keys whose ledger records go when the batch is done (started marks, earlier
        runs' records)."""
        self.waited_out = False
        """A stop came while the batch waited (a retry, the rate): it is not done."""
        self.attempts = 1
        """How many calls of the handler its records were in (tries, then halves)."""
        self.error: BaseException | None = None
        """The error that stops the job once this batch is settled (at-most-once: its
        handler raised, so its records are in doubt)."""

    def keys(self) -> list[JSONValue]:
        if self._keys is None:
            self._keys = [c.key(i) for c, a, b in self._segments for i in range(a, b)]
        return self._keys

    def positions(self) -> list[JSONValue]:
        if self._positions is None:
            self._positions = [
                c.position_before(i) for c, a, b in self._segments for i in range(a, b)
            ]
        return self._positions

    def index_of(self, key: JSONValue, what: str) -> int:
        index = self._index
        if index is None:
            index = self._index = {jsonutil.dumps(k): i for i, k in enumerate(self.keys())}
        try:
            return index[jsonutil.dumps(key)]
        except (KeyError, TypeError, ValueError):
            raise ConfigError(NOT_IN_BATCH.format(what=what, key=key)) from None

    def sub(self, start: int, stop: int) -> Batch:
        """Records ``start:stop``, to be called on their own: one call more for them."""
        part = Batch(
            self.items[start:stop],
            None,
            self.keys()[start:stop],
            self.positions()[start:stop],
        )
        part.attempts = self.attempts + 1
        return part

    def outcome(self, i: int, status: ItemStatus, error: BaseException | str | None) -> Outcome:
        return (self.keys()[i], status, error, self.positions()[i], self.items[i], self.attempts)

    def fail_all(self, status: ItemStatus, error: BaseException) -> None:
        for i in range(len(self.items)):
            outcome = self.outcome(i, status, error)
            self.outcomes[jsonutil.dumps(outcome[0])] = outcome


class BatchRun:
    """``count`` whole batches of ``size`` records of ``chunk`` from ``start``, walked by
    the fast path with a bare loop over ``starts`` (each batch's first index; its list is
    sliced as it is handed over). ``done`` says how many finished; ``outcomes`` holds the
    per-record outcomes of those, ``staged`` those of the batch in hand, by its number."""

    __slots__ = ("_made", "chunk", "done", "error", "outcomes", "size", "staged", "start", "starts")

    def __init__(self, chunk: Chunk, start: int, size: int, count: int) -> None:
        self.chunk, self.start, self.size = chunk, start, size
        self.starts = range(start, start + count * size, size)
        self.done = 0
        self.error: BaseException | None = None
        """The handler's error that ends the run (after ``done`` batches)."""
        self.outcomes: dict[str, Outcome] = {}
        self.staged: dict[int, dict[str, Outcome]] = {}
        self._made: tuple[int, Batch] | None = None

    def batch(self, k: int) -> Batch:
        """Batch ``k`` of the run, as a :class:`Batch` (made when ctx or a failure asks)."""
        made = self._made
        if made is None or made[0] != k:
            start = self.start + k * self.size
            segment = (self.chunk, start, start + self.size)
            made = self._made = (k, Batch(self.chunk.items[start : start + self.size], [segment]))
        return made[1]
