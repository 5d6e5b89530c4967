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
"""

from __future__ import annotations

import asyncio
import concurrent.futures as cf
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DONE, FAILED, IN_DOUBT, STARTED, ItemRecord, drop
from midway.errors import ConfigError, SourceError, TooManyFailures
from midway.run.failures import (
    FAIL,
    STOP,
    Action,
    Decision,
    FailurePolicy,
    describe,
    short_traceback,
)
from midway.run.handlers import check_result
from midway.run.reducers import undeclared_message
from midway.sources.base import Chunk

if TYPE_CHECKING:
    from midway.run.engine import Engine

EXECUTORS = ("thread", "process", "async")
SUCCEEDED = "succeeded"
STOP_JOB = "raise"


class WorkerContext:
    """``ctx`` inside a parallel handler: about this item only."""

    __slots__ = (
        "attempt",
        "idempotency_key",
        "job",
        "key",
        "position",
        "seed",
        "state",
        "transaction",
    )

    def __init__(
        self,
        job: str,
        key: JSONValue,
        position: JSONValue,
        idem: str,
        seed: dict[str, Any] | None = None,
    ) -> None:
        self.job = job
        self.seed = seed or {}
        self.key = key
        self.position = position
        self.idempotency_key = idem
        self.attempt = 1
        self.state: dict[str, Any] = self.fresh()
        self.transaction = None

    def fresh(self) -> dict[str, Any]:
        """A new contribution: each declared reducer's key at its start (lists new)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self.seed.items()}

    def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("ctx.step() is not available with workers= in this version")


@dataclass
class Outcome:
    """What a worker sends back: the contribution to merge, or why the item failed."""

    status: str  # SUCCEEDED, FAILED, SKIPPED, or STOP_JOB (no tolerance: stop the job)
    state: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    traceback: str | None = None
    attempts: int = 1
    exception: BaseException | None = None


def attempt_item(
    handler: Callable[[Any, Any], Any],
    item: Any,
    ctx: WorkerContext,
    policy: FailurePolicy,
) -> Outcome:
    """One item, with its retries, in a worker (a thread, or a process of the pool)."""
    first = time.time()
    while True:
        ctx.state = ctx.fresh()
        try:
            returned = handler(item, ctx)
        except Exception as exc:
            decision = policy.decide(exc, ctx.attempt, first, time.time())
            if decision.action is not Action.RETRY:
                return _failed(decision, exc, ctx.attempt)
            time.sleep(decision.delay)
            ctx.attempt += 1
            continue
        if returned is not None:
            check_result(returned)  # raises: the job stops, this item not done
        return Outcome(SUCCEEDED, ctx.state, attempts=ctx.attempt)


async def attempt_item_async(
    handler: Callable[[Any, Any], Any],
    item: Any,
    ctx: WorkerContext,
    policy: FailurePolicy,
    limit: asyncio.Semaphore,
) -> Outcome:
    """One item, with its retries, as a coroutine on the run's event loop."""
    async with limit:
        first = time.time()
        while True:
            ctx.state = ctx.fresh()
            try:
                await handler(item, ctx)
                return Outcome(SUCCEEDED, ctx.state, attempts=ctx.attempt)
            except Exception as exc:
                decision = policy.decide(exc, ctx.attempt, first, time.time())
                if decision.action is not Action.RETRY:
                    return _failed(decision, exc, ctx.attempt)
                await asyncio.sleep(decision.delay)
                ctx.attempt += 1


def _failed(decision: Decision, exc: BaseException, attempts: int) -> Outcome:
    """The outcome of an item that will not be tried again: recorded (skipped, failed) and
    the run goes on, or the job stops on ``exc``."""
    status = decision.record or STOP_JOB
    outcome = Outcome(status, {}, describe(exc), short_traceback(exc), attempts)
    if status == STOP_JOB:
        outcome.exception = exc
    return outcome


def merge_state(state: dict[str, Any], part: dict[str, Any]) -> None:
    """The default merge: numbers add up, lists extend, dicts merge, the rest replaces."""
    for name, value in part.items():
        old = state.get(name)
        if isinstance(value, bool) or old is None:
            state[name] = value
        elif isinstance(value, int | float) and isinstance(old, int | float):
            state[name] = old + value
        elif isinstance(value, list) and isinstance(old, list):
            old.extend(value)
        elif isinstance(value, dict) and isinstance(old, dict):
            merge_state(old, value)
        else:
            state[name] = value


class RateLimit:
    """``rate="50/s"``: at most that many items start per second (also ``/m``, ``/h``)."""

    def __init__(self, spec: str) -> None:
        count, _, per = str(spec).partition("/")
        seconds = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}.get(per.strip())
        try:
            rate = float(count)
        except ValueError:
            rate = 0.0
        if seconds is None or rate <= 0:
            raise ConfigError(f"rate={spec!r}: give items per time, e.g. '50/s', '600/m', '1000/h'")
        self.interval = seconds / rate
        self.next_at = 0.0
        self.spec = spec

    def wait(self, stopped: Callable[[], bool]) -> bool:
        """Sleep until the next item may start; False if a stop came meanwhile."""
        now = time.monotonic()
        if self.next_at <= now:
            self.next_at = max(self.next_at + self.interval, now - self.interval)
            return True
        while True:
            left = self.next_at - time.monotonic()
            if stopped():
                return False
            if left <= 0:
                self.next_at += self.interval
                return True
            time.sleep(min(left, 0.05))


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

    def __init__(self, engine: Engine, handler: Callable[[Any, Any], Any]) -> None:
        job = engine.job
        self.engine = engine
        self.handler = handler
        self.workers = job.workers
        self.window: deque[Slot] = deque()
        self.window_size = job.window or max(4 * self.workers, 64)
        self.pending: dict[Any, Slot] = {}
        self.finished: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.logged: set[str] = set()
        self.merge = job.merge
        self.combiner = engine.combiner
        self.seed = self.combiner.seed()
        self.at = engine.combiner.seen  # the place in the input of the next item read
        self.rate = RateLimit(job.rate) if job.rate else None
        self.failure: BaseException | None = None
        # No policy: no retry, no skip, no tolerance (a failure stops the job).
        self.policy = engine.policy or FailurePolicy(retry=None, skip_on=(), max_failures=None)
        self.loop: asyncio.AbstractEventLoop | None = None
        self.at_most_once = job.guarantee == "at-most-once"
        # At-most-once: hand out an item only when a worker is free to start it, so that an
        # item marked started has started (or is about to).
        self.limit = self.workers if self.at_most_once else None
        self.is_async = job.executor == "async"

    # -- pool ---------------------------------------------------------------------------

    def _start_pool(self) -> cf.Executor | None:
        executor = self.engine.job.executor
        if executor == "thread":
            return cf.ThreadPoolExecutor(self.workers, thread_name_prefix="midway-worker")
        if executor == "process":
            return cf.ProcessPoolExecutor(self.workers)
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
        engine = self.engine
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
        engine._finished = not self._stopped()

    def _stopped(self) -> bool:
        engine = self.engine
        return (
            engine._stop_signal is not None
            or engine._lease_lost
            or engine.stop_error is not None
            or self.failure is not None
        )

    def _feed(self, pool: cf.Executor | None) -> None:
        engine = self.engine
        job = engine.job
        # What runs before a crash left: ``done`` (finished above the watermark: skip it)
        # and ``started`` (an at-most-once item in flight: in doubt, not run again).
        prior = {n: r for n, r in engine.prior.items() if r.status in (DONE, STARTED)}
        ident = job.id.idempotency_key
        cursor = engine._cursor
        assert cursor is not None
        queued: list[Queued] = []
        for chunk in cursor:
            for i, item in enumerate(chunk.items):
                while self._full(len(queued)):
                    if queued:
                        self._launch(pool, queued)
                        queued = []
                    elif self.pending:
                        self._take(block=True)  # back-pressure: a slow item holds the window
                    else:
                        break
                if self._stopped():
                    return  # what is queued was neither marked nor handed out
                key = chunk.key(i)
                slot = Slot(chunk, i, key, self.at)
                self.at += 1
                name = jsonutil.dumps(key) if prior else ""
                if prior and name in prior:
                    if queued:  # the window stays in the source's order
                        self._launch(pool, queued)
                        queued = []
                    self._settle_prior(slot, prior.pop(name))
                    self.window.append(slot)
                    self._advance()
                    continue
                errors = chunk.errors
                if errors is not None and i in errors:  # unreadable: never reaches a worker
                    if queued:  # the window stays in the source's order
                        self._launch(pool, queued)
                        queued = []
                    self.window.append(slot)
                    self._unreadable(slot, errors[i])
                    self._advance()
                    continue
                if self.rate is not None:
                    if queued:
                        self._launch(pool, queued)
                        queued = []
                    if not self.rate.wait(self._stopped):
                        return
                position = chunk.position_before(i)
                ctx = WorkerContext(engine.key, key, position, ident(key), self.seed)
                queued.append((slot, item, ctx))
                if self.limit is None:
                    self._launch(pool, queued)
                    queued = []
                if not self.finished.empty():
                    self._take(block=False)
        if queued and not self._stopped():
            self._launch(pool, queued)

    def _full(self, queued: int) -> bool:
        """No room for one more item: the window is full, or (at-most-once) every worker
        has an item."""
        if len(self.window) + queued >= self.window_size:
            return True
        return self.limit is not None and len(self.pending) + queued >= self.limit

    def _launch(
        self, pool: cf.Executor | None, queued: list[tuple[Slot, Any, WorkerContext]]
    ) -> None:
        """Hand ``queued`` to the pool; at-most-once, after one commit that marks them all
        started (with the checkpoint and ``done`` records due)."""
        if self.at_most_once:
            now = time.time()
            self.engine.ledger_pending.extend(
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

    def _unreadable(self, slot: Slot, message: str) -> None:
        """A record the source could not read: failing under the policy, else the job stops
        there (as with one worker)."""
        exc = SourceError(message)
        self._finish(slot, _failed(FAIL if self.policy.tolerant else STOP, exc, 1))

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
        engine = self.engine
        share = engine.share
        engine._progress.update(
            engine.counters.processed,
            engine.counters.failed,
            share(engine.position()) if share else None,
        )

    def _finish(self, slot: Slot, outcome: Outcome) -> None:
        engine = self.engine
        counters = engine.counters
        if outcome.status == SUCCEEDED:
            if outcome.state and not self._combine(slot, outcome.state):
                return  # the job stops; this item is not done
            counters.succeeded += 1
            slot.done = True
            return
        if outcome.status == STOP_JOB:  # no tolerance: the job stops
            if self.failure is None:
                self.failure = outcome.exception
            if not self.at_most_once:
                return  # this item not done: the next run handles it again
            # At-most-once, it ran and raised: whether it took effect is unknown.
            self._record(slot, IN_DOUBT, outcome.error, outcome.traceback, outcome.attempts)
            return
        record = self._record(
            slot, outcome.status, outcome.error, outcome.traceback, outcome.attempts
        )
        policy = self.policy
        if outcome.status == FAILED:
            policy.note(record.error_type or FAILED, jsonutil.dumps(slot.key))
            if policy.exceeded(counters.failed, counters.processed, engine.total):
                engine.stop_error = TooManyFailures(engine.too_many_message())
        hook = engine.job.on_item_failed
        if hook is not None:
            engine.call_hook("on_item_failed", hook, record, None)

    def _combine(self, slot: Slot, part: dict[str, Any]) -> bool:
        """The item's contribution into the job's state: declared keys by their reducers,
        the others by ``merge=``. False (the job stops) when it cannot be combined."""
        engine = self.engine
        combiner = self.combiner
        reducers = combiner.reducers
        problem = combiner.refuse(part)
        others = {k: v for k, v in part.items() if k not in reducers}
        if problem is None and others and self.merge is None:
            problem = undeclared_message(next(iter(others)), reducers, self.workers)
        if problem is not None:
            if self.failure is None:
                self.failure = ConfigError(problem)
            return False
        if reducers:
            combiner.combine(engine.state, part, slot.at)
        if others and self.merge is not None:
            self.merge(engine.state, others)
        return True

    def _record(
        self,
        slot: Slot,
        status: str,
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
        engine = self.engine
        engine.ledger_pending.append(record)
        counters = engine.counters
        setattr(counters, status, getattr(counters, status) + 1)
        slot.done = slot.logged = True
        slot.started = False
        self.logged.discard(jsonutil.dumps(slot.key))
        return record

    def _advance(self) -> None:
        """Move the watermark past the finished items at the start of the window."""
        engine = self.engine
        window = self.window
        while window and window[0].done:
            slot = window.popleft()
            engine._mark_chunk, engine._mark_index = slot.chunk, slot.index + 1
            self.combiner.seen = slot.at + 1
            if slot.logged:
                name = jsonutil.dumps(slot.key)
                if name in self.logged:
                    self.logged.discard(name)
                    engine.ledger_pending.append(drop(slot.key))

    def _maybe_checkpoint(self) -> None:
        engine = self.engine
        job = engine.job
        processed = engine.counters.processed
        due = (job.every and processed >= engine._next_due) or (
            job.every_seconds and time.monotonic() - engine._cp_time >= job.every_seconds
        )
        keeper = engine._keeper
        if keeper is not None and keeper.pending_or_busy:
            engine._bound_lag(processed)  # the store is behind: wait rather than run ahead
        if due:
            self.checkpoint()

    def checkpoint(self, *, wait: bool = False) -> None:
        """Write the ``done`` records of the items finished above the watermark, with it."""
        self.keep_done_records()
        self.engine.checkpoint(wait=wait)

    def keep_done_records(self) -> None:
        """The run ends: items that finished above the watermark get their ``done`` record
        with the last checkpoint, so the next run skips them."""
        now = time.time()
        for slot in self.window:
            if slot.done and (not slot.logged or slot.started):
                slot.logged, slot.started = True, False
                self.logged.add(jsonutil.dumps(slot.key))
                self.engine.ledger_pending.append(
                    ItemRecord(slot.key, DONE, position=None, updated_at=now)
                )
