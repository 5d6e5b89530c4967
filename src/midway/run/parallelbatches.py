"""``batch=N`` with ``workers=W``: W batches at a time on threads, checkpointed at the
watermark.

Batches are cut as one at a time would cut them (from where the run resumed, N records
each), handed to a thread pool in the input's order, and finish in any order. A batch is
*settled* (its records counted, its ``ctx.fail`` / ``ctx.skip`` outcomes to the ledger, its
``ctx.state`` contribution combined by the reducers) only when every batch before it has
finished: the checkpoint's position, counters and state always describe the same records,
and a checkpoint still never falls inside a batch. After a crash the batches that finished
above the watermark are handled again, whole (at-least-once); under at-most-once their
*started* marks stay until the watermark passes them, so a crash leaves them in doubt
rather than running them twice. At most W batches run at once, and the window of batches
handed out but not yet settled holds 2W (W under at-most-once: fewer records in doubt).

Each batch has a ``ctx`` of its own (``ctx.keys``, ``ctx.fail``, ``ctx.skip``, and
``ctx.state`` for its contribution); retries and the halving of a raising batch run on its
worker thread (:mod:`~midway.run.batchcalls`), which touches nothing of the run.
"""

from __future__ import annotations

import concurrent.futures as cf
import queue
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemStatus
from midway.errors import ConfigError
from midway.run.batch import Batch, batch_identity
from midway.run.batchcalls import BatchCalls
from midway.run.batches import BatchLoop
from midway.run.context import Context, ItemView

Handler = Callable[[Any, Any], Any]


class WorkerView:
    """What a batch's own ``ctx`` asks, on its worker thread: the run's identity from the
    run, the batch in hand from its :class:`BatchCalls`."""

    def __init__(self, run: ItemView, calls: BatchCalls) -> None:
        self._run = run
        self._calls = calls

    @property
    def key(self) -> str:
        return self._run.key

    @property
    def run_id(self) -> str:
        return self._run.run_id

    def current_key(self) -> JSONValue:
        return None

    def current_position(self) -> JSONValue:
        return None

    def idempotency_key(self, key: JSONValue) -> str:
        return self._run.idempotency_key(batch_identity(self._calls.batch_keys()))

    def step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        raise ConfigError("ctx.step() is for one item; a batch handler (batch=N) has none")

    def approval(self, question: Any, data: Any) -> bool:
        raise ConfigError("ctx.approval() is for one item; a batch handler (batch=N) has none")

    def batch_keys(self) -> list[JSONValue]:
        return self._calls.batch_keys()

    def batch_outcome(self, what: str, key: JSONValue, status: ItemStatus, error: Any) -> None:
        self._calls.batch_outcome(what, key, status, error)


@dataclass(eq=False)
class Slot:
    """A batch handed out (or settled before its handler), in the window."""

    batch: Batch
    at: int
    """The place in the input of its first record (for ``Last``)."""
    done: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    failure: BaseException | None = None


class ParallelBatches:
    """See the module docstring."""

    def __init__(self, loop: BatchLoop, view: ItemView, handler: Handler) -> None:
        self.loop = loop
        self.runstate = loop.run
        self.view = view
        self.handler = handler
        settings = self.runstate.settings
        self.workers = settings.workers
        self.window_size = self.workers * (1 if loop.guarantee.marks_started else 2)
        self.window: deque[Slot] = deque()
        self.pending = 0
        self.finished: queue.SimpleQueue[tuple[Slot, cf.Future[dict[str, Any]]]] = (
            queue.SimpleQueue()
        )
        self.failure: BaseException | None = None
        self.at = self.runstate.combiner.seen

    def run(self) -> None:
        """Hand out every batch and settle every one; the engine then ends the run."""
        pool = cf.ThreadPoolExecutor(self.workers, thread_name_prefix="midway-batch")
        try:
            ended = self.feed(pool)
            while self.pending:  # a stop or the end of the input: let the batches end
                self.take(block=True)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if self.failure is not None:
            raise self.failure
        if ended and not self.stopped():
            self.runstate.finished = True

    def stopped(self) -> bool:
        return self.failure is not None or self.runstate.stop_requested

    def feed(self, pool: cf.Executor) -> bool:
        """Hand the batches out, the window permitting; True at the end of the input."""
        loop = self.loop
        for segments, early in loop.cuts():
            while len(self.window) >= self.window_size or self.pending >= self.workers:
                self.take(block=True)
            if self.stopped():
                return False
            batch = loop.cut(segments)
            slot = Slot(batch, self.at)
            self.at += batch.size
            self.window.append(slot)
            if not batch.items:
                slot.done = True  # every record settled before the handler
                self.settle()
                continue
            if not loop.paced():
                self.window.pop()
                return False
            if loop.guarantee.marks_started:
                loop.mark_started(batch)
                batch.drops.extend(batch.keys())  # the marks go when it is settled
            future = pool.submit(self.work, batch)
            self.pending += 1
            future.add_done_callback(partial(self.arrived, slot))
            if early:  # the next batches count from its end: on disk before they start
                while self.pending:
                    self.take(block=True)
                if self.stopped():
                    return False
                loop.commits.checkpoint(wait=True)
            elif not self.finished.empty():
                self.take(block=False)
        return True

    def arrived(self, slot: Slot, future: cf.Future[dict[str, Any]]) -> None:
        self.finished.put((slot, future))

    def work(self, batch: Batch) -> dict[str, Any]:
        """On a worker thread: the batch with its retries and halving; its contribution."""
        loop = self.loop
        calls = BatchCalls(self.runstate, loop.flow, loop.guarantee, None)
        ctx = Context(WorkerView(self.view, calls), self.runstate.combiner.seed())
        calls.ctx = ctx
        calls.handle(batch, self.handler)
        return ctx.state

    def take(self, *, block: bool) -> None:
        """Take in the batches that finished (at least one if ``block``), then settle."""
        finished = self.finished
        while block or not finished.empty():
            block = False
            slot, future = finished.get()
            self.pending -= 1
            slot.done = True
            error = future.exception()
            if error is not None:
                slot.failure = error
            else:
                slot.state = future.result()
        self.settle()

    def settle(self) -> None:
        """Settle the finished batches at the start of the window; checkpoint if due."""
        loop, run, window = self.loop, self.runstate, self.window
        settled = 0
        while window and window[0].done:
            slot = window[0]
            batch = slot.batch
            problem = slot.failure
            if problem is None and slot.state:
                message = run.combiner.take(
                    run.state, slot.state, slot.at, run.settings.merge, self.workers
                )
                problem = None if message is None else ConfigError(message)
            if problem is not None:  # the job stops at this batch, which is not done
                self.failure = self.failure or problem
                break
            window.popleft()
            if batch.error is not None:
                run.stop_error = batch.error
            loop.settle(batch.outcomes, batch.drops)
            if batch.end is not None:
                run.counters.succeeded += batch.size
                run.mark(*batch.end)
            run.combiner.seen = slot.at + batch.size
            settled += 1
            if batch.outcomes:
                loop.judge_failures(run.counters.processed)
        if settled:
            loop.after_unit(failed=False)
