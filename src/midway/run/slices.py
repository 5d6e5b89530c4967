"""The fast path: the input cut into slices that end where a checkpoint is due.

How the per-item path stays free
--------------------------------
Items come from the source in chunks (lists). The run cuts a chunk into *slices* that end
exactly where a checkpoint is due and walks each slice with a plain list iterator: the only
per-item work is the handler call. Counters, positions and the clock are touched once per
slice, and slices are sized so that the clock is read a few times a second.

A slice that is not a whole chunk is walked through a copy (``items[start:stop]``), which
costs a few nanoseconds per item, mostly in memory traffic. So an item is copied once at
most: on a fresh start ``sources.sequence`` hands over the caller's own list as a single
chunk marked ``shared`` rather than copies of it, and the loop walks copies of at most
``MAX_COPY`` items of it (never the list itself: a list that grows meanwhile is walked to
its old length).

A stop request (SIGINT / SIGTERM, or a lost lease) must not cost a flag test per item, so it
*exhausts the current slice iterator* instead (``list_iterator.__setstate__``): the item in
hand finishes, the iterator then ends, and the loop sees why. The iterator's own index
(``__reduce__``) tells which item is in hand, which is also how ``ctx.key`` is found lazily.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.run.commits import Commits
from midway.run.progress import Silent
from midway.run.runstate import RunState
from midway.sources.base import Chunk, chunk_errors

MAX_SLICE = 1 << 16
MAX_COPY = 1 << 12  # a slice that is copied stays this small, so the copy stays in the cache
SLICE_SECONDS = 0.1


class InHand:
    """The slice being walked, and which of its items is in hand."""

    def __init__(self) -> None:
        self.iterator: Iterator[Any] | None = None
        self.chunk: Chunk | None = None
        self.start = 0
        self.length = 0
        self.stop_index: int | None = None
        """Set when a stop ended the slice early: how many of its items were reached."""

    def begin(self, chunk: Chunk, start: int, items: Sequence[Any]) -> Iterator[Any]:
        """``items``: a list, or a range (batches: their first indices); either iterator
        tells its index (``__reduce__``) and can be exhausted (``__setstate__``)."""
        self.chunk, self.start, self.length = chunk, start, len(items)
        self.stop_index = None
        self.iterator = iter(items)
        return self.iterator

    def index(self) -> int | None:
        """Index, in the slice, of the item in hand (None when no item is in hand)."""
        it = self.iterator
        if it is None:
            return None
        if self.stop_index is not None:
            return self.stop_index - 1
        reduced = it.__reduce__()
        if len(reduced) < 3:  # exhausted: the last item is in hand
            return self.length - 1
        return int(reduced[2]) - 1

    def place(self) -> tuple[Chunk, int] | None:
        """The chunk of the item in hand and its index in that chunk."""
        index = self.index()
        if index is None or self.chunk is None:
            return None
        return self.chunk, self.start + index

    def key(self) -> JSONValue:
        place = self.place()
        return None if place is None else place[0].key(place[1])

    def position(self) -> JSONValue:
        place = self.place()
        return None if place is None else place[0].position_before(place[1])

    def interrupt(self) -> None:
        """End the current slice after the item in hand (see the module docstring)."""
        it = self.iterator
        if it is None or self.stop_index is not None:
            return
        reduced = it.__reduce__()
        self.stop_index = int(reduced[2]) if len(reduced) >= 3 else self.length
        it.__setstate__(self.length)  # type: ignore[attr-defined]


class Pace:
    """How long items take, measured per slice: it sizes the next slice (so the clock is read
    every ``slice_seconds``) and tells the lag bound what an item costs."""

    def __init__(self, slice_seconds: float) -> None:
        self.slice_seconds = slice_seconds
        self.stride = 1  # grows x4 per slice: slow items are checkpointed on time
        self.item_seconds = 0.0
        # The slices timed since the last window of slice_seconds / 2 began, and that window:
        # one short slice that the keeper thread or the scheduler held up says nothing.
        self._timed, self._timed_items = 0.0, 0
        self._window = (0.0, 0)

    @classmethod
    def for_run(cls, every_seconds: float | None, max_lag: float) -> Pace:
        return cls(min(SLICE_SECONDS, (every_seconds or math.inf) / 4, (max_lag or math.inf) / 2))

    def took(self, seconds: float, done: int) -> None:
        stride = self.stride * 4  # x4 at most: slow items are checkpointed on time
        if seconds > 0:
            fits = int(self.slice_seconds / (seconds / done))  # the next slice's items
            if fits < stride:
                stride = fits if fits > 1 else 1
        self.stride = stride if stride < MAX_SLICE else MAX_SLICE
        timed, timed_items = self._timed + seconds, self._timed_items + done
        window_seconds, window_items = self._window
        if timed + window_seconds > 0:  # (a coarse clock may not have moved yet)
            self.item_seconds = (timed + window_seconds) / (timed_items + window_items)
        if timed >= self.slice_seconds / 2:
            self._window, timed, timed_items = (timed, timed_items), 0.0, 0
        self._timed, self._timed_items = timed, timed_items


class SliceLoop:
    """Yields list iterators over consecutive items; checkpoints between them."""

    def __init__(
        self, run: RunState, in_hand: InHand, commits: Commits, careful: Callable[[], bool]
    ) -> None:
        self.run = run
        self.in_hand = in_hand
        self.commits = commits
        self.pace = Pace(SLICE_SECONDS)
        self._careful = careful
        """Whether every item goes through the careful per-item path (asked when the walk
        begins: after the retry pass, which may use up what earlier runs left)."""
        self.one_per_slice = False
        self.slow = False
        """The slice in hand goes item by item through the careful path."""

    def slices(self) -> Generator[Iterator[Any], None, None]:
        """The consumer walks each iterator to its end (or until a stop exhausts it). If it
        raises instead, it calls :meth:`abandon` before closing this generator."""
        run = self.run
        keeper = self.commits.keeper
        careful = self._careful()
        assert run.cursor is not None
        for chunk in run.cursor:
            self.slow = careful or bool(chunk_errors(chunk))
            start, n = 0, len(chunk.items)
            while start < n:
                if run.stop_requested:
                    return
                sub = self._cut(chunk, start, n)
                if sub is None:
                    break
                size = len(sub)
                it = self.in_hand.begin(chunk, start, sub)
                began = time.monotonic()
                if not run.stop_requested:
                    yield it
                else:
                    self.in_hand.stop_index = 0
                done = size if self.in_hand.stop_index is None else self.in_hand.stop_index
                self.in_hand.iterator = None
                self.advance(chunk, start, done)
                start += done
                if keeper is not None and keeper.error is not None:
                    self.commits.raise_writer_error()
                if done < size:
                    return
                self._between(time.monotonic(), began, done)
        run.finished = True

    def _cut(self, chunk: Chunk, start: int, n: int) -> list[Any] | None:
        """The next slice: the rest of the chunk up to the stride, ending where the next
        checkpoint is due (one item when each item's mark is a checkpoint). None: the
        caller's own list shrank meanwhile."""
        items = chunk.items
        size = n - start if n - start < self.pace.stride else self.pace.stride
        if self.one_per_slice:  # at-most-once: each item's mark is a checkpoint
            size = 1
        processed, seconds = self.run.counters.processed, self.pace.item_seconds
        until = self.commits.items_until_due(processed, size, seconds)
        if until is not None and size > until:  # end the slice where a checkpoint is due
            size = until if until > 1 else 1
        if not chunk.shared and size >= n:
            return items  # the whole chunk: no copy
        sub = items[start : start + (size if size < MAX_COPY else MAX_COPY)]
        return sub or None

    def _between(self, now: float, began: float, done: int) -> None:
        """After a whole slice: pace, lag bound, checkpoint if due, progress."""
        run, commits = self.run, self.commits
        self.pace.took(now - began if now > began else 0.0, done)
        processed = run.counters.processed
        keeper = commits.keeper
        if keeper is not None and keeper.pending_or_busy:
            commits.bound_lag(processed, self.pace.item_seconds)
        if not self.one_per_slice and commits.due(processed, now):
            commits.checkpoint_or_skip(processed)
        if not isinstance(run.progress, Silent):
            run.show_progress()

    def advance(self, chunk: Chunk, start: int, done: int) -> None:
        if done:
            self.run.counters.succeeded += done
            self.run.mark(chunk, start + done)

    def abandon(self) -> None:
        """The consumer raised on the item in hand: count only the items before it."""
        index = self.in_hand.index()
        chunk = self.in_hand.chunk
        if index is not None and chunk is not None:
            self.advance(chunk, self.in_hand.start, max(index, 0))
        self.in_hand.iterator = None
