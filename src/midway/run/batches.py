"""``batch=N``: the handler gets lists of up to N items, and a batch is one unit of work.

Where batches are cut
---------------------
A batch is cut from the input by counting items from where the run resumed: N, then N
again. Checkpoints fall only between batches (``every`` is rounded up to whole batches in
``Settings``), so every checkpoint position is a batch boundary, and the next process, which
resumes there and counts N again, cuts the very same batches: after a crash a batch is
handled again whole or not at all, never split differently.

The fast path
-------------
As for items (``slices.py``), the whole batches inside one chunk are walked by a bare loop,
``for items in lists: handler(items, ctx)``, in runs that end where a checkpoint is due and
are sized so the clock is read a few times a second: the per-batch cost is the handler call
and the slice that makes its list. Counters, the mark and the clock are touched once per run.
A stop exhausts the run's iterator (``InHand.interrupt``): the batch in hand finishes. A batch
that raises leaves the loop, goes to :mod:`~midway.run.batchcalls` (retries, halving) and the
loop goes on after it. Batches that cross a chunk's end, the first batch (whose result is
checked for an un-awaited coroutine), and every batch under at-most-once, exactly-once,
``rate=`` or records an earlier run left take the careful path, one batch at a time.

Per-record outcomes (``ctx.fail`` / ``ctx.skip``) go to the ledger as a failing item's
would, through :meth:`~midway.run.itemflow.ItemFlow.record_outcome`, once the handler
returned; the rest of the batch succeeds.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord, ItemStatus, drop
from midway.errors import TooManyFailures
from midway.run.batch import Batch, BatchRun, Outcome
from midway.run.batchcalls import BatchCalls, stage
from midway.run.commits import Commits
from midway.run.guarantees import Guarantee
from midway.run.itemflow import ItemFlow
from midway.run.progress import Silent
from midway.run.retrypass import RetryPass
from midway.run.runstate import RunState
from midway.run.slices import SLICE_SECONDS, InHand, Pace
from midway.sources.base import Chunk, chunk_errors

Handler = Callable[[Any, Any], Any]
Unit = Batch | BatchRun


@dataclass(eq=False)
class BatchLoop:
    """Cuts batches, hands them to the handler, settles them; see the module docstring."""

    run: RunState
    commits: Commits
    flow: ItemFlow
    retries: RetryPass
    guarantee: Guarantee
    in_hand: InHand
    calls: BatchCalls
    pace: Pace = field(default_factory=lambda: Pace(SLICE_SECONDS))
    walking: BatchRun | None = field(default=None, init=False)
    """The run of batches the fast path walks."""

    @property
    def size(self) -> int:
        batch = self.run.settings.batch
        assert batch is not None
        return batch

    # -- job.run, job.loop --------------------------------------------------------------

    def before_input(self, handler: Handler) -> bool:
        """The records ``midway retry`` put back first; False when no input is left."""
        run = self.run
        self.retry_pass(handler)
        if run.main_done:
            run.finished = run.stop_error is None and run.stop_signal is None
            return False
        return True

    def run_handler(self, handler: Handler) -> None:
        """One batch at a time (with ``workers=N``: ``parallelbatches.py``)."""
        flow = self.flow
        fast = not (self.guarantee.careful or flow.prior or flow.rate)
        units = self.units(fast)
        try:
            for unit in units:
                if isinstance(unit, BatchRun):
                    self.walk(unit, handler)
                else:
                    self.calls.handle(unit, handler)
        finally:
            units.close()

    def walk(self, unit: BatchRun, handler: Handler) -> None:
        """The fast path: a bare loop over the run's batches (see the module docstring)."""
        ctx, in_hand = self.calls.ctx, self.in_hand
        it = in_hand.iterator
        assert it is not None
        items, size = unit.chunk.items, unit.size
        self.walking = unit
        try:
            while True:
                try:
                    for i in it:
                        handler(items[i : i + size], ctx)
                except Exception as exc:
                    if not self.walk_failed(unit, handler, exc):
                        return
                    continue
                break
            stopped = in_hand.stop_index
            unit.done = len(unit.starts) if stopped is None else stopped
        finally:
            self.walking = None

    def walk_failed(self, unit: BatchRun, handler: Handler, exc: Exception) -> bool:
        """Batch ``k`` of the run raised: handle it carefully; False ends the run there."""
        k = self.in_hand.index()
        assert k is not None
        unit.staged.pop(k, None)
        batch = unit.batch(k)
        try:
            self.calls.handle(batch, handler, exc)
        except BaseException as error:
            unit.done, unit.error = k, error
            return False
        if batch.waited_out:
            unit.done = k
            return False
        unit.outcomes.update(batch.outcomes)
        if batch.error is not None:  # (at-most-once is never on the fast path)
            unit.done, unit.error = k + 1, batch.error
            return False
        return True

    def loop_lists(self) -> Generator[list[Any], None, None]:
        """``job.loop(source, batch=N)``: a batch is done when the body asks for the next."""
        units = self.units(fast=False)
        calls = self.calls
        try:
            for batch in units:
                assert isinstance(batch, Batch)
                calls.current, calls.staged = batch, {}
                try:
                    yield batch.items
                finally:
                    calls.current = None
                batch.outcomes.update(calls.staged)
        finally:
            units.close()

    # -- cutting the input --------------------------------------------------------------

    def units(self, fast: bool) -> Generator[Unit, None, None]:
        """The input from where the run resumed, as batches (and, ``fast``, runs of whole
        batches); each unit the consumer returns from is settled and counted (one that
        raises into this generator is not)."""
        run, size = self.run, self.size
        assert run.cursor is not None
        carry: list[tuple[Chunk, int, int]] = []
        count, first, began = 0, True, 0.0
        for chunk in run.cursor:
            start, n = 0, len(chunk.items)
            if count and n:  # the batch begun at the end of an earlier chunk
                take = min(n, size - count)
                carry.append((chunk, 0, take))
                count, start = count + take, take
                partial = count < size
                if partial and not self.waited_long(began):
                    continue
                if not (yield from self.one(carry, partial)):
                    return
                carry, count = [], 0
            while n - start >= size:
                if fast and not first and not chunk_errors(chunk):
                    done = yield from self.run_of(chunk, start, (n - start) // size)
                    if done is None:
                        return
                    start += done
                    continue
                first = False
                if not (yield from self.one([(chunk, start, start + size)])):
                    return
                start += size
            if start < n:
                carry, count, began = [(chunk, start, n)], n - start, time.monotonic()
        if carry and not (yield from self.one(carry)):
            return
        run.finished = True

    def one(
        self, segments: list[tuple[Chunk, int, int]], partial: bool = False
    ) -> Generator[Unit, None, bool]:
        """Hand over one batch and settle it: False when the run is to stop. A ``partial``
        batch (``batch_seconds``) is checkpointed at once, so that a resumed run counts
        the next batches from its end, as this one did."""
        run = self.run
        if run.stop_requested:
            return False
        batch = self.cut(segments)
        began = time.monotonic()
        if batch.items:
            if not self.paced():
                return False
            if self.guarantee.marks_started:
                self.mark_started(batch)
                batch.drops.extend(batch.keys())  # the marks go when it is done
            yield batch
        if batch.waited_out:
            return False
        if batch.error is not None:
            run.stop_error = batch.error
        self.settle(batch.outcomes, batch.drops)
        assert batch.end is not None
        chunk, stop = batch.end
        self.advance(chunk, stop, batch.size, time.monotonic() - began, bool(batch.outcomes))
        if partial:
            self.commits.checkpoint(wait=True)
        return not run.stop_requested

    def waited_long(self, began: float) -> bool:
        """``batch_seconds``: the batch in hand began filling that long ago."""
        seconds = self.run.settings.batch_seconds
        return seconds is not None and time.monotonic() - began >= seconds

    def run_of(self, chunk: Chunk, start: int, whole: int) -> Generator[Unit, None, int | None]:
        """Hand over a run of whole batches of ``chunk`` and settle it: the records done,
        or None when the run is to stop."""
        run, size, commits = self.run, self.size, self.commits
        count = min(whole, max(self.pace.stride // size, 1))
        processed, seconds = run.counters.processed, self.pace.item_seconds
        until = commits.items_until_due(processed, count * size, seconds)
        if until is not None:  # end the run where the next checkpoint is due
            count = min(count, max(until // size, 1))
        if run.stop_requested:
            return None
        unit = BatchRun(chunk, start, size, count)
        self.in_hand.begin(chunk, start, unit.starts)
        began = time.monotonic()
        try:
            yield unit
        finally:
            self.in_hand.iterator = None
        for k, staged in unit.staged.items():
            if k < unit.done:  # (the batch in hand when a stop came finished too)
                unit.outcomes.update(staged)
        self.settle(unit.outcomes, ())
        done = unit.done * size
        self.advance(chunk, start + done, done, time.monotonic() - began, bool(unit.outcomes))
        if unit.error is not None:
            raise unit.error
        return done if unit.done == count and not run.stop_requested else None

    def cuts(self) -> Iterator[tuple[list[tuple[Chunk, int, int]], bool]]:
        """The input from where the run resumed, cut into batches (as the chunks' parts
        each covers), unsettled: for ``workers=N``, which settles them at the watermark.
        With each, whether it is a partial batch handed over early (``batch_seconds``)."""
        size = self.size
        assert self.run.cursor is not None
        parts: list[tuple[Chunk, int, int]] = []
        count, began = 0, 0.0
        for chunk in self.run.cursor:
            start, n = 0, len(chunk.items)
            while start < n:
                if not count:
                    began = time.monotonic()
                take = min(n - start, size - count)
                parts.append((chunk, start, start + take))
                count, start = count + take, start + take
                if count == size:
                    yield parts, False
                    parts, count = [], 0
            if count and self.waited_long(began):
                yield parts, True
                parts, count = [], 0
        if parts:
            yield parts, False

    def cut(self, segments: list[tuple[Chunk, int, int]]) -> Batch:
        """The batch of ``segments``, less the records settled before the handler: those
        the source could not read, and those an earlier run left settled."""
        flow = self.flow
        if not flow.prior and not any(chunk_errors(c) for c, _, _ in segments):
            if len(segments) == 1:
                chunk, start, stop = segments[0]
                return Batch(chunk.items[start:stop], segments)
            return Batch([x for c, a, b in segments for x in c.items[a:b]], segments)
        items, keys, positions, drops = [], [], [], []
        for chunk, start, stop in segments:
            errors = chunk_errors(chunk) or {}
            for i in range(start, stop):
                key, position, item = chunk.key(i), chunk.position_before(i), chunk.items[i]
                if i in errors:
                    flow.malformed(key, errors[i], position, getattr(item, "text", None))
                    continue
                prior = flow.prior.pop(jsonutil.dumps(key), None) if flow.prior else None
                if prior is not None:
                    if flow.resolved_by_prior(prior, key, position, item):
                        continue
                    drops.append(key)
                items.append(item)
                keys.append(key)
                positions.append(position)
        batch = Batch(items, segments, keys, positions)
        batch.drops = drops
        return batch

    # -- after a unit -------------------------------------------------------------------

    def settle(self, outcomes: dict[str, Outcome], drops: Any) -> None:
        """The handler returned: its per-record outcomes to the ledger, the rest done."""
        flow, pending = self.flow, self.run.pending
        for key, status, error, position, item, attempts in outcomes.values():
            exc = error if isinstance(error, BaseException) else None
            why = None if exc is not None else str(error or status.replace("_", " "))
            flow.record_outcome(key, status, exc, attempts, position, item, why)
        pending.extend(drop(key) for key in drops if jsonutil.dumps(key) not in outcomes)

    def advance(self, chunk: Chunk, stop: int, done: int, seconds: float, failed: bool) -> None:
        """``done`` records more are finished, up to ``chunk[stop]``: count them, then the
        lag bound, a checkpoint if due, progress, too many failures."""
        if done:
            self.run.counters.succeeded += done
            self.run.mark(chunk, stop)
            self.pace.took(seconds if seconds > 0 else 0.0, done)
        self.after_unit(failed)

    def after_unit(self, failed: bool) -> None:
        """After records were counted: too many failures, the lag bound, a checkpoint if
        due, progress."""
        run, commits = self.run, self.commits
        processed = run.counters.processed
        if failed:
            self.judge_failures(processed)
        keeper = commits.keeper
        if keeper is not None and keeper.error is not None:
            commits.raise_writer_error()
        if keeper is not None and keeper.pending_or_busy:
            commits.bound_lag(processed, self.pace.item_seconds)
        if not self.guarantee.marks_started and commits.due(processed, time.monotonic()):
            commits.checkpoint_or_skip(processed)
        if not isinstance(run.progress, Silent):
            run.show_progress()

    def judge_failures(self, processed: int) -> None:
        policy = self.flow.policy
        run = self.run
        if policy is None or run.stop_error is not None:
            return
        if policy.exceeded(run.counters.failed, processed, run.total):
            run.stop_error = TooManyFailures(self.flow.too_many_message())

    def paced(self) -> bool:
        """``rate=``: wait for the next handler call's turn; False if a stop came first."""
        rate, run = self.flow.rate, self.run
        return rate is None or rate.wait(lambda: run.stopping)

    def mark_started(self, batch: Batch) -> None:
        """At-most-once: every record of the batch is marked started, on disk, before the
        handler runs; a crash leaves each of them in doubt."""
        marks = [
            self.guarantee.start_mark(key, position, 1)
            for key, position in zip(batch.keys(), batch.positions(), strict=True)
        ]
        self.run.pending.extend(m for m in marks if m is not None)
        self.commits.checkpoint(wait=True)

    # -- what ctx asks ------------------------------------------------------------------

    def in_hand_batch(self, what: str) -> tuple[Batch, dict[str, Outcome]]:
        """The batch the handler has in hand, and where its outcomes are staged."""
        unit = self.walking
        k = self.in_hand.index() if unit is not None else None
        if self.calls.current is not None or unit is None or k is None:
            return self.calls.in_hand(what)
        return unit.batch(k), unit.staged.setdefault(k, {})

    def batch_keys(self) -> list[JSONValue]:
        return list(self.in_hand_batch("keys")[0].keys())

    def batch_outcome(self, what: str, key: JSONValue, status: ItemStatus, error: Any) -> None:
        """``ctx.fail`` / ``ctx.skip``: staged until the handler returns."""
        stage(self.in_hand_batch(what), what, key, status, error)

    # -- records put back by `midway retry` ---------------------------------------------

    def retry_pass(self, handler: Handler) -> None:
        """The records ``midway retry`` put back, in batches of up to N, before the input."""
        queue, self.retries.queue = self.retries.queue, []
        if not queue:
            return
        run, flow = self.run, self.flow
        flow.say_item(f"retrying {len(queue):,} item(s) put back by `midway retry`")
        found = self.retries.find_items(queue)
        hits: list[tuple[ItemRecord, Any, JSONValue]] = []
        for record in queue:
            name = jsonutil.dumps(record.key)
            if name not in found:
                flow.say_item(
                    f"item {name} is not in {run.source.describe()} any more: left in the "
                    "ledger as it was"
                )
                continue
            flow.prior.pop(name, None)
            hits.append((record, *found[name]))
        size = self.size
        for start in range(0, len(hits), size):
            if run.stop_requested or not self._retry_batch(hits[start : start + size], handler):
                return

    def _retry_batch(self, hits: list[tuple[ItemRecord, Any, JSONValue]], handler: Handler) -> bool:
        keys = [record.key for record, _, _ in hits]
        batch = Batch([item for _, item, _ in hits], None, keys, [p for _, _, p in hits])
        batch.drops = list(keys)
        counters, n = self.run.counters, len(hits)
        counters.failed, counters.succeeded = max(counters.failed - n, 0), counters.succeeded + n
        try:
            if not self.paced():
                batch.waited_out = True
            else:
                if self.guarantee.marks_started:
                    self.mark_started(batch)
                self.calls.handle(batch, handler)
        except BaseException:
            counters.failed, counters.succeeded = counters.failed + n, counters.succeeded - n
            raise
        if batch.waited_out:
            counters.failed, counters.succeeded = counters.failed + n, counters.succeeded - n
            return False
        if batch.error is not None:
            self.run.stop_error = batch.error
        self.settle(batch.outcomes, batch.drops)
        self.commits.checkpoint(wait=True)
        return True
