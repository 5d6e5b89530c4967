"""``workers=N``: items handled in parallel, checkpointed at the *watermark*.

Items are handed to a pool (threads, processes, or coroutines on one event loop) in the
source's order and finish in any order. The checkpoint's position is the watermark: just
after the longest run of finished items from the start of the window. Items that finished
above it are written to the ledger as ``done`` in the checkpoint's transaction, so a resume
skips them; records fall away as the watermark passes them. The window of items between the
watermark and the newest item handed out is bounded (``window=``): when a slow item holds
the watermark back, no new item starts until it finishes (back-pressure), so the ledger above
the watermark stays as small as the window.

``guarantee="at-most-once"``: an item is marked *started* on disk before it is handed to a
worker, so a crash leaves the items in flight in doubt, never run again. Items are handed
out only as workers come free (at most ``workers`` in flight, not a whole window), and the
items handed out together are marked in one commit, with the checkpoint at the watermark
and the ``done`` records of the items finished above it: a commit per item at most, fewer
when several workers come free at once.

``ctx.state`` under concurrency: each item's handler gets a ``ctx.state`` of its own, holding
each declared reducer's start value (``midway.Sum()``: 0, see :mod:`midway.run.reducers`), and
writes its *contribution* there; this thread combines contributions into the job's state as
items finish, by the reducers, and the keys without one by ``merge=fn(state, contribution)``.
A key written without a reducer when there is no ``merge=`` stops the job at that item. No
two handlers ever touch the same dict, and the saved state always holds exactly the finished
items' contributions.

The runner sees the run only through :class:`ParallelHost`, the few things it needs (the
engine provides them); the worker side is :mod:`midway.run.workers`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DONE, FAILED, IN_DOUBT, STARTED, ItemRecord, ItemStatus, drop
from midway.errors import ConfigError, SourceError, TooManyFailures
from midway.run.failures import FAIL, STOP, FailurePolicy
from midway.run.guarantees import Guarantee
from midway.run.ratelimit import RateLimit
from midway.run.workers import (
    Outcome,
    WorkerContext,
    attempt_item,
    attempt_item_async,
    end_with_parent,
    gave_up,
)

if TYPE_CHECKING:
    from midway._model.checkpoint import Counters
    from midway.run.reducers import Combiner
    from midway.sources.base import Chunk

EXECUTORS = ("thread", "process", "async")
__all__ = ["EXECUTORS", "Parallel", "ParallelHost", "RateLimit"]  # RateLimit: its old home


class ParallelOptions(Protocol):
    """The job's options a parallel run reads (a :class:`midway.Job` has them)."""

    @property
    def workers(self) -> int: ...
    @property
    def window(self) -> int | None: ...
    @property
    def merge(self) -> Callable[[dict[str, Any], dict[str, Any]], Any] | None: ...
    @property
    def rate(self) -> str | None: ...
    @property
    def executor(self) -> str: ...
    @property
    def on_item_failed(self) -> Callable[[ItemRecord, BaseException | None], Any] | None: ...


class ParallelHost(Protocol):
    """What a parallel run needs of the run it belongs to, and all it touches of it.

    The run owns the input, the counters, the state, the ledger records waiting for the next
    checkpoint, the checkpoints and their timing, the stop signals and the progress line; the
    parallel runner hands items to a pool, takes their outcomes in, and moves the watermark.
    """

    @property
    def key(self) -> str:
        """The job's key (``ctx.job``)."""

    @property
    def job(self) -> ParallelOptions: ...
    @property
    def guarantee(self) -> Guarantee:
        """The job's guarantee: at-most-once marks items started before they are handed
        out, and records an item that ran and raised as in doubt."""

    @property
    def combiner(self) -> Combiner:
        """The state's reducers, and how many items of the input were seen."""

    @property
    def state(self) -> dict[str, Any]:
        """The job's ``ctx.state``: contributions are combined into it here."""

    @property
    def policy(self) -> FailurePolicy | None: ...
    @property
    def counters(self) -> Counters: ...
    @property
    def total(self) -> int | None: ...
    @property
    def prior(self) -> Mapping[str, ItemRecord]:
        """Records a run before this one left, by item key (``done``, ``started``...)."""

    def chunks(self) -> Iterator[Chunk]:
        """The input, from where this run resumes."""

    def stop_requested(self) -> bool:
        """A signal, a lost lease or a stop error: hand out no more items."""

    def stop_with(self, error: BaseException) -> None:
        """End the run with ``error`` once the items in hand are in."""

    def too_many_message(self) -> str: ...
    def idempotency_key(self, key: JSONValue) -> str:
        """``ctx.idempotency_key`` of the item with that key."""

    def add_records(self, records: Iterable[ItemRecord]) -> None:
        """Ledger records to commit with the next checkpoint."""

    def advance_to(self, chunk: Chunk, end: int) -> None:
        """The watermark: every item before ``chunk.items[end]`` has an outcome."""

    def checkpoint_due(self) -> bool:
        """``every=`` items or ``every_seconds=`` have passed since the last checkpoint."""

    def keep_up(self) -> None:
        """If the store is behind, wait until the unsaved work is within the lag bound."""

    def checkpoint(self, *, wait: bool = False) -> None:
        """Snapshot the position, counters, state and waiting records; ``wait``: committed
        before this returns."""

    def show_progress(self) -> None: ...
    def report_item_failed(self, record: ItemRecord) -> None:
        """Call the job's ``on_item_failed``, if any."""

    def input_finished(self) -> None:
        """Every item of the input has an outcome: the run completes."""


@dataclass
class Slot:
    """One item of the window: where it is, and whether it has finished."""

    chunk: Chunk
    index: int
    key: JSONValue
    at: int = 0  # its place in the input (for ``Last``)
    future: Any = None
    done: bool = False
    logged: bool = False  # it has a record in the ledger (``done``, ``started`` or its own)
    started: bool = False  # that record is its at-most-once ``started`` mark


Queued = tuple[Slot, Any, WorkerContext]
"""An item about to be handed out: its place in the window, the item, its ``ctx``."""


class Parallel:
    """Runs a job's items on a pool; see the module docstring."""

    def __init__(self, host: ParallelHost, handler: Callable[[Any, Any], Any]) -> None:
        job = host.job
        self.host = host
        self.handler = handler
        self.workers = job.workers
        self.window: deque[Slot] = deque()
        self.window_size = job.window or max(4 * self.workers, 64)
        self.pending: dict[Any, Slot] = {}
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.logged: set[str] = set()
        self.merge = job.merge
        self.combiner = host.combiner
        self.seed = self.combiner.seed()
        self.at = host.combiner.seen  # the place in the input of the next item read
        self.rate = RateLimit(job.rate) if job.rate else None
        self.failure: BaseException | None = None
        # No policy: no retry, no skip, no tolerance (a failure stops the job).
        self.policy = host.policy or FailurePolicy(retry=None, skip_on=(), max_failures=None)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.at_most_once = host.guarantee.marks_started
        self.in_doubt_on_failure = host.guarantee.in_doubt_on_failure
        # At-most-once: hand out an item only when a worker is free to start it, so that an
        # item marked started has started (or is about to).
        self.limit = self.workers if self.at_most_once else None
        self.is_async = job.executor == "async"

    # -- pool ---------------------------------------------------------------------------

    def _start_pool(self) -> cf.Executor | None:
        executor = self.host.job.executor
        if executor == "thread":
            return cf.ThreadPoolExecutor(self.workers, thread_name_prefix="midway-worker")
        if executor == "process":
            return cf.ProcessPoolExecutor(self.workers, initializer=end_with_parent)
        loop = asyncio.new_event_loop()
        self.loop = loop
        self.semaphore = asyncio.Semaphore(self.workers)
        thread = threading.Thread(target=loop.run_forever, name="midway-async", daemon=True)
        thread.start()
        self.loop_thread = thread
        return None

    def _submit(self, pool: cf.Executor | None, item: Any, ctx: WorkerContext) -> Any:
        policy = self.policy
        if pool is not None:
            return pool.submit(attempt_item, self.handler, item, ctx, policy)
        assert self.loop is not None
        coro = attempt_item_async(self.handler, item, ctx, policy, self.semaphore)
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def _stop_pool(self, pool: cf.Executor | None) -> None:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.loop is not None:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.loop_thread.join()
            self.loop.close()

    # -- the run ------------------------------------------------------------------------

    def run(self) -> None:
        """Hand out every item and take in every outcome; the engine then ends the run."""
        pool = self._start_pool()
        try:
            self._feed(pool)
            while self.pending:  # a stop or the end of the input: let the items in hand end
                self._take(block=True)
        except BaseException:
            for future in self.pending:
                future.cancel()
            self._stop_pool(pool)
            raise
        self._stop_pool(pool)
        self.keep_done_records()
        if self.failure is not None:
            raise self.failure
        if not self._stopped():
            self.host.input_finished()

    def _stopped(self) -> bool:
        return self.failure is not None or self.host.stop_requested()

    def _feed(self, pool: cf.Executor | None) -> None:
        """Read the input and hand its items out, the window and the pool permitting."""
        host = self.host
        # What runs before a crash left: ``done`` (finished above the watermark: skip it)
        # and ``started`` (an at-most-once item in flight: in doubt, not run again).
        prior = {n: r for n, r in host.prior.items() if r.status in (DONE, STARTED)}
        queued: list[Queued] = []
        for chunk in host.chunks():
            for i, item in enumerate(chunk.items):
                while self._full(len(queued)):
                    if queued:
                        self._launch(pool, queued)
                    elif self.pending:
                        self._take(block=True)  # back-pressure: a slow item holds the window
                    else:
                        break
                if self._stopped():
                    return  # what is queued was neither marked nor handed out
                key = chunk.key(i)
                slot = Slot(chunk, i, key, self.at)
                self.at += 1
                record = prior.pop(jsonutil.dumps(key), None) if prior else None
                errors = chunk.errors
                unreadable = errors[i] if errors is not None and i in errors else None
                if record is not None or unreadable is not None:
                    self._launch(pool, queued)  # the window stays in the source's order
                    self.window.append(slot)
                    if record is not None:
                        self._settle_prior(slot, record)
                    else:  # never reaches a worker
                        assert unreadable is not None
                        self._unreadable(slot, unreadable)
                    self._advance()
                    continue
                if self.rate is not None:
                    self._launch(pool, queued)
                    if not self.rate.wait(self._stopped):
                        return
                position = chunk.position_before(i)
                ctx = WorkerContext(host.key, key, position, host.idempotency_key(key), self.seed)
                queued.append((slot, item, ctx))
                if self.limit is None:
                    self._launch(pool, queued)
                if not self.finished.empty():
                    self._take(block=False)
        if not self._stopped():
            self._launch(pool, queued)

    def _full(self, queued: int) -> bool:
        """No room for one more item: the window is full, or (at-most-once) every worker
        has an item."""
        if len(self.window) + queued >= self.window_size:
            return True
        return self.limit is not None and len(self.pending) + queued >= self.limit

    def _launch(self, pool: cf.Executor | None, queued: list[Queued]) -> None:
        """Hand ``queued`` to the pool and empty it; at-most-once, after one commit that
        marks them all started (with the checkpoint and ``done`` records due)."""
        if not queued:
            return
        if self.at_most_once:
            now = time.time()
            self.host.add_records(
                ItemRecord(slot.key, STARTED, attempts=1, position=ctx.position, updated_at=now)
                for slot, _, ctx in queued
            )
            self.checkpoint(wait=True)
        for slot, item, ctx in queued:
            if self.at_most_once:
                slot.started = slot.logged = True
                self.logged.add(jsonutil.dumps(slot.key))
            self.window.append(slot)
            future = self._submit(pool, item, ctx)
            self.pending[future] = slot
            future.add_done_callback(self.finished.put)
        queued.clear()

    def _unreadable(self, slot: Slot, message: str) -> None:
        """A record the source could not read: failing under the policy, else the job stops
        there (as with one worker)."""
        exc = SourceError(message)
        self._finish(slot, gave_up(FAIL if self.policy.tolerant else STOP, exc, 1))

    def _settle_prior(self, slot: Slot, record: ItemRecord) -> None:
        """An item a run before the crash finished above its watermark (skip it), or began
        at-most-once and never finished (in doubt)."""
        name = jsonutil.dumps(slot.key)
        slot.done = slot.logged = True
        if record.status == DONE:
            self.logged.add(name)
            return
        self._record(
            slot,
            IN_DOUBT,
            "its handler started in a run that ended before it finished (killed or "
            "crashed): it may or may not have taken effect",
            None,
            record.attempts or 1,
        )

    def _take(self, *, block: bool) -> None:
        """Take in the items that finished (at least one if ``block``); then move the
        watermark and checkpoint if one is due."""
        finished = self.finished
        if block:
            future = finished.get()
            self._finish(self.pending.pop(future), future.result())
        while not finished.empty():
            future = finished.get()
            self._finish(self.pending.pop(future), future.result())
        self._advance()
        self._maybe_checkpoint()
        self.host.show_progress()

    def _finish(self, slot: Slot, outcome: Outcome) -> None:
        host = self.host
        counters = host.counters
        if outcome.decision is None:  # it succeeded
            if outcome.state and not self._combine(slot, outcome.state):
                return  # the job stops; this item is not done
            counters.succeeded += 1
            slot.done = True
            return
        status = outcome.decision.record
        if status is None:  # no tolerance: the job stops
            if self.failure is None:
                self.failure = outcome.exception
            if not self.in_doubt_on_failure:
                return  # this item not done: the next run handles it again
            # At-most-once, it ran and raised: whether it took effect is unknown.
            self._record(slot, IN_DOUBT, outcome.error, outcome.traceback, outcome.attempts)
            return
        record = self._record(slot, status, outcome.error, outcome.traceback, outcome.attempts)
        policy = self.policy
        if status is FAILED:
            policy.note(record.error_type or FAILED, jsonutil.dumps(slot.key))
            # The worker decided without the counts: the tolerance is judged here.
            if policy.exceeded(counters.failed, counters.processed, host.total):
                host.stop_with(TooManyFailures(host.too_many_message()))
        host.report_item_failed(record)

    def _combine(self, slot: Slot, part: dict[str, Any]) -> bool:
        """The item's contribution into the job's state: declared keys by their reducers,
        the others by ``merge=``. False (the job stops) when it cannot be combined."""
        problem = self.combiner.take(self.host.state, part, slot.at, self.merge, self.workers)
        if problem is not None:
            if self.failure is None:
                self.failure = ConfigError(problem)
            return False
        return True

    def _record(
        self,
        slot: Slot,
        status: ItemStatus,
        error: str | None,
        traceback: str | None,
        attempts: int,
    ) -> ItemRecord:
        """The item's own ledger record (failed, skipped, in doubt), counted; it stays when
        the watermark passes (no ``done`` record, no ``started`` mark left)."""
        record = ItemRecord(
            key=slot.key,
            status=status,
            error=error,
            traceback=traceback,
            attempts=attempts,
            position=slot.chunk.position_before(slot.index),
            item=None,
            updated_at=time.time(),
        )
        self.host.add_records([record])
        counters = self.host.counters
        setattr(counters, status, getattr(counters, status) + 1)
        slot.done = slot.logged = True
        slot.started = False
        self.logged.discard(jsonutil.dumps(slot.key))
        return record

    def _advance(self) -> None:
        """Move the watermark past the finished items at the start of the window."""
        host = self.host
        window = self.window
        while window and window[0].done:
            slot = window.popleft()
            host.advance_to(slot.chunk, slot.index + 1)
            self.combiner.seen = slot.at + 1
            if slot.logged:
                name = jsonutil.dumps(slot.key)
                if name in self.logged:
                    self.logged.discard(name)
                    host.add_records([drop(slot.key)])

    def _maybe_checkpoint(self) -> None:
        host = self.host
        due = host.checkpoint_due()
        host.keep_up()  # the store is behind: wait rather than run ahead
        if due:
            self.checkpoint()

    def checkpoint(self, *, wait: bool = False) -> None:
        """Write the ``done`` records of the items finished above the watermark, with it."""
        self.keep_done_records()
        self.host.checkpoint(wait=wait)

    def keep_done_records(self) -> None:
        """The run ends: items that finished above the watermark get their ``done`` record
        with the last checkpoint, so the next run skips them."""
        now = time.time()
        done = []
        for slot in self.window:
            if slot.done and (not slot.logged or slot.started):
                slot.logged, slot.started = True, False
                self.logged.add(jsonutil.dumps(slot.key))
                done.append(ItemRecord(slot.key, DONE, position=None, updated_at=now))
        self.host.add_records(done)
