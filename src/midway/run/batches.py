"""``batch=N``: the handler gets lists of up to N items, and a batch is one unit of work.

Where batches are cut
---------------------
A batch is cut from the input by counting items from where the run resumed: N, then N
again. Checkpoints fall only between batches (``every`` is rounded up to whole batches in
``Settings``), so every checkpoint position is a batch boundary, and the next process, which
resumes there and counts N again, cuts the very same batches: after a crash a batch is
handled again whole or not at all, never split differently. A partial batch handed over
early (``batch_seconds``) is checkpointed at once, so the next boundary is again where a
resumed run would start counting.

Per-record outcomes
-------------------
``ctx.fail(key, error)`` / ``ctx.skip(key, reason)`` are staged while the handler runs and
take effect when it returns (a handler that raises after them leaves no trace of them): the
records go to the ledger as a failing item's would, through
:meth:`~midway.run.itemflow.ItemFlow.record_outcome`, and the rest of the batch succeeds.

A raising batch
---------------
``retry=`` retries the batch as a whole. When the tries are spent and a failure policy
(``skip_on`` / ``max_failures``) says to record the failure, the batch is split in halves,
and the halves again, each tried once, until the records that raise are alone: those are
recorded (failed or skipped), the others succeed. At-most-once never runs a record twice,
so there the whole batch is recorded instead of split.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord, ItemStatus, drop
from midway.errors import ConfigError, MidwayError, SourceError, TooManyFailures
from midway.run.commits import Commits
from midway.run.failures import Action
from midway.run.guarantees import Guarantee
from midway.run.itemflow import NO_POLICY, ItemFlow
from midway.run.progress import Silent
from midway.run.retrypass import RetryPass
from midway.run.runstate import RunState
from midway.sources.base import Chunk, chunk_errors

Handler = Callable[[Any, Any], Any]
Outcome = tuple[JSONValue, ItemStatus, "BaseException | str | None", JSONValue, Any]
"""A record's outcome: key, status, error (or reason), position, the item."""
NOT_IN_BATCH = "ctx.{what}({key!r}): that key is not in the batch in hand (ctx.keys lists them)"
OUTSIDE = (
    "ctx.{what} is for a batch handler, while its batch is in hand: "
    "job.run(source, handler, batch=N) or job.loop(source, batch=N)"
)


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
        "drops",
        "end",
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
        self.end: tuple[Chunk, int] | None = None
        self._segments = segments or []
        if segments:
            self.size = sum(stop - start for _, start, stop in segments)
            chunk, _, stop = segments[-1]
            self.end = (chunk, stop)
            if keys is None:
                self._keys = [c.key(i) for c, a, b in segments for i in range(a, b)]
                self._positions = None
        self._index: dict[str, int] | None = None
        self.outcomes: dict[str, Outcome] = {}
        self.drops: list[JSONValue] = []
        """Keys whose ledger records go when the batch is done (started marks, earlier
        runs' records)."""
        self.waited_out = False
        """A stop came while the batch waited (a retry, the rate): it is not done."""

    def keys(self) -> list[JSONValue]:
        assert self._keys is not None
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
        return Batch(
            self.items[start:stop],
            None,
            self.keys()[start:stop],
            self.positions()[start:stop],
        )

    def outcome(self, i: int, status: ItemStatus, error: BaseException | str | None) -> Outcome:
        return (self.keys()[i], status, error, self.positions()[i], self.items[i])


@dataclass(eq=False)
class BatchLoop:
    """Cuts batches, hands them to the handler, settles them; see the module docstring."""

    run: RunState
    commits: Commits
    flow: ItemFlow
    retries: RetryPass
    guarantee: Guarantee
    ctx: Any
    current: Batch | None = field(default=None, init=False)
    """The batch (or part of it) the handler has in hand."""
    _staged: dict[str, Outcome] = field(default_factory=dict, init=False)

    @property
    def size(self) -> int:
        batch = self.run.settings.batch
        assert batch is not None
        return batch

    # -- job.run ------------------------------------------------------------------------

    def run_handler(self, handler: Handler) -> None:
        run = self.run
        self.retry_pass(handler)
        if run.main_done:
            run.finished = run.stop_error is None and run.stop_signal is None
            return
        batches = self.batches()
        try:
            for batch in batches:
                self.handle(batch, handler)
        finally:
            batches.close()

    def loop_lists(self) -> Generator[list[Any], None, None]:
        """``job.loop(source, batch=N)``: a batch is done when the body asks for the next."""
        batches = self.batches()
        try:
            for batch in batches:
                self.current, self._staged = batch, {}
                try:
                    yield batch.items
                finally:
                    self.current = None
                batch.outcomes.update(self._staged)
        finally:
            batches.close()

    # -- cutting the input --------------------------------------------------------------

    def batches(self) -> Generator[Batch, None, None]:
        """Batches of the input from where the run resumed; each one the consumer returns
        from is settled and counted (one that raises into this generator is not)."""
        run, size = self.run, self.size
        assert run.cursor is not None
        segments: list[tuple[Chunk, int, int]] = []
        count = 0
        for chunk in run.cursor:
            start, n = 0, len(chunk.items)
            while start < n:
                take = min(n - start, size - count)
                segments.append((chunk, start, start + take))
                count, start = count + take, start + take
                if count == size:
                    if not (yield from self._one(segments)):
                        return
                    segments, count = [], 0
        if segments and not (yield from self._one(segments)):
            return
        run.finished = True

    def _one(self, segments: list[tuple[Chunk, int, int]]) -> Generator[Batch, None, bool]:
        """Hand over one batch and settle it: False when the run is to stop."""
        run = self.run
        if run.stop_requested:
            return False
        batch = self._cut(segments)
        began = time.monotonic()
        if batch.items:
            if self.guarantee.marks_started:
                self.mark_started(batch)
                batch.drops.extend(batch.keys())  # the marks go when it is done
            yield batch
        if batch.waited_out:
            return False
        self.settle(batch)
        assert batch.end is not None
        chunk, stop = batch.end
        run.counters.succeeded += batch.size
        run.mark(chunk, stop)
        self._between(batch, time.monotonic() - began)
        return not run.stop_requested

    def _cut(self, segments: list[tuple[Chunk, int, int]]) -> Batch:
        """The batch of ``segments``, less the records settled before the handler: those
        the source could not read, and those an earlier run left settled."""
        flow = self.flow
        if not flow.prior and not any(chunk_errors(c) for c, _, _ in segments):
            if len(segments) == 1:
                chunk, start, stop = segments[0]
                items = chunk.items[start:stop] if (stop - start) < len(chunk.items) else None
                if items is None:
                    items = chunk.items[:] if chunk.shared else chunk.items
                return Batch(items, segments)
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

    def _between(self, batch: Batch, seconds: float) -> None:
        """After a batch: lag bound, checkpoint if due, progress, too many failures."""
        run, commits = self.run, self.commits
        processed = run.counters.processed
        if batch.outcomes:
            self._judge_failures(processed)
        keeper = commits.keeper
        if keeper is not None and keeper.error is not None:
            commits.raise_writer_error()
        if keeper is not None and keeper.pending_or_busy:
            commits.bound_lag(processed, seconds / batch.size if batch.size else 0.0)
        now = time.monotonic()
        if not self.guarantee.marks_started and commits.due(processed, now):
            commits.checkpoint_or_skip(processed)
        if not isinstance(run.progress, Silent):
            run.show_progress()

    def _judge_failures(self, processed: int) -> None:
        policy = self.flow.policy
        run = self.run
        if policy is None or run.stop_error is not None:
            return
        if policy.exceeded(run.counters.failed, processed, run.total):
            run.stop_error = TooManyFailures(self.flow.too_many_message())

    # -- one batch ----------------------------------------------------------------------

    def mark_started(self, batch: Batch) -> None:
        """At-most-once: every record of the batch is marked started, on disk, before the
        handler runs; a crash leaves each of them in doubt."""
        marks = [
            self.guarantee.start_mark(key, position, 1)
            for key, position in zip(batch.keys(), batch.positions(), strict=True)
        ]
        self.run.pending.extend(m for m in marks if m is not None)
        self.commits.checkpoint(wait=True)

    def handle(self, batch: Batch, handler: Handler) -> None:
        """Call the handler for the batch (retries, splits): its outcomes end in
        ``batch.outcomes``; ``batch.waited_out`` when a stop came while it waited."""
        if not batch.items:
            return
        rate, run = self.flow.rate, self.run
        if rate is not None and not rate.wait(lambda: run.stopping):
            batch.waited_out = True
            return
        attempt, first_try = 1, time.time()
        while True:
            try:
                batch.outcomes.update(self.call(batch, handler, attempt))
                return
            except Exception as exc:
                if isinstance(exc, MidwayError) and not isinstance(exc, SourceError):
                    raise
                policy = self.flow.policy
                if policy is None and not self.guarantee.in_doubt_on_failure:
                    raise
                decision = (policy or NO_POLICY).decide(exc, attempt, first_try, time.time())
                if decision.action is not Action.RETRY:
                    self.give_up(batch, handler, exc, decision.record)
                    return
                if not self.flow.pause(decision.delay):
                    batch.waited_out = True
                    return
                attempt += 1

    def call(self, batch: Batch, handler: Handler, attempt: int) -> dict[str, Outcome]:
        """One call of the handler; the per-record outcomes it staged (none if it raised)."""
        ctx = self.ctx
        self.current, self._staged = batch, {}
        ctx.attempt = attempt
        try:
            self.guarantee.call(handler, batch.items, ctx)
            return self._staged
        finally:
            self.current, self._staged = None, {}
            ctx.attempt = 1

    def give_up(
        self, batch: Batch, handler: Handler, exc: Exception, status: ItemStatus | None
    ) -> None:
        """No more tries: record the batch's records, split it to find the ones that raise,
        or stop the job at it."""
        if status is None:
            if not self.guarantee.in_doubt_on_failure:
                raise exc
            status = ItemStatus.IN_DOUBT  # at-most-once: it ran and raised, took effect?
            self.run.stop_error = exc
        if status == ItemStatus.IN_DOUBT or self.guarantee.marks_started or len(batch.items) < 2:
            for i in range(len(batch.items)):
                outcome = batch.outcome(i, status, exc)
                batch.outcomes[jsonutil.dumps(outcome[0])] = outcome
            return
        self.split(batch, handler, batch.outcomes)

    def split(self, batch: Batch, handler: Handler, outcomes: dict[str, Outcome]) -> None:
        """Halves, each tried once, until the records that raise are alone."""
        half = len(batch.items) // 2
        for part in (batch.sub(0, half), batch.sub(half, len(batch.items))):
            try:
                outcomes.update(self.call(part, handler, 1))
            except Exception as exc:
                if isinstance(exc, MidwayError) and not isinstance(exc, SourceError):
                    raise
                if len(part.items) > 1:
                    self.split(part, handler, outcomes)
                    continue
                policy = self.flow.policy or NO_POLICY
                if policy.skips(exc):
                    status = ItemStatus.SKIPPED
                elif policy.tolerant:
                    status = ItemStatus.FAILED
                else:
                    raise
                outcome = part.outcome(0, status, exc)
                outcomes[jsonutil.dumps(outcome[0])] = outcome

    def settle(self, batch: Batch) -> None:
        """The handler returned: its per-record outcomes to the ledger, the rest done."""
        flow, pending = self.flow, self.run.pending
        for key, status, error, position, item in batch.outcomes.values():
            exc = error if isinstance(error, BaseException) else None
            why = None if exc is not None else str(error or status.replace("_", " "))
            flow.record_outcome(key, status, exc, 1, position, item, why)
        done = batch.outcomes
        pending.extend(drop(key) for key in batch.drops if jsonutil.dumps(key) not in done)

    # -- what ctx asks ------------------------------------------------------------------

    def keys_in_hand(self) -> list[JSONValue]:
        batch = self.current
        if batch is None:
            raise ConfigError(OUTSIDE.format(what="keys"))
        return list(batch.keys())

    def stage(self, what: str, key: JSONValue, status: ItemStatus, error: Any) -> None:
        """``ctx.fail`` / ``ctx.skip``: staged until the handler returns."""
        batch = self.current
        if batch is None:
            raise ConfigError(OUTSIDE.format(what=what))
        if error is not None and not isinstance(error, BaseException | str):
            raise ConfigError(f"ctx.{what}(key, error): give an exception or a text as error")
        i = batch.index_of(key, what)
        outcome = batch.outcome(i, status, error)
        self._staged[jsonutil.dumps(outcome[0])] = outcome

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
            if self.guarantee.marks_started:
                self.mark_started(batch)
            self.handle(batch, handler)
        except BaseException:
            counters.failed, counters.succeeded = counters.failed + n, counters.succeeded - n
            raise
        if batch.waited_out:
            counters.failed, counters.succeeded = counters.failed + n, counters.succeeded - n
            return False
        self.settle(batch)
        self.commits.checkpoint(wait=True)
        return True
