"""One run of one job, shared by ``Job.run`` and ``Job.loop``: the parts, put together.

The run's parts, each in its module, share one :class:`~midway.run.runstate.RunState`:

* :mod:`~midway.run.opening`: lease taken, checkpoint loaded (or a fresh start), run recorded;
* :mod:`~midway.run.slices`: the fast loop, slices that end where a checkpoint is due;
* :mod:`~midway.run.commits`: checkpoints, the keeper thread, the lag bound;
* :mod:`~midway.run.itemflow`: the careful per-item path (failures, retries, the ledger);
* :mod:`~midway.run.guarantees`: what each guarantee does before, around and after an item;
* :mod:`~midway.run.stops`: signals and the lost lease; :mod:`~midway.run.ending`: the one
  way out.

:class:`Engine` builds them, walks the items (the hot loop is :meth:`Engine._walk`: the only
per-item work is the handler call), and offers the narrow interfaces ``ctx``
(:class:`~midway.run.context.ItemView`) and a parallel run
(:class:`~midway.run.parallel.ParallelHost`) see.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from typing import Any

from midway import faults
from midway._model.checkpoint import Counters
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord, ItemStatus
from midway._model.owner import Owner
from midway._model.result import RunResult
from midway._model.settings import Settings
from midway.console import use_log_format
from midway.errors import ConfigError
from midway.run.approvals import ApprovalPending
from midway.run.batch import batch_identity
from midway.run.batchcalls import OUTSIDE, BatchCalls
from midway.run.batches import BatchLoop
from midway.run.commits import Commits, call_hook, in_background
from midway.run.context import Context
from midway.run.ending import Ending
from midway.run.failures import FailurePolicy
from midway.run.guarantees import for_settings
from midway.run.handlers import check_result
from midway.run.itemflow import ItemFlow
from midway.run.opening import Opening, PartitionDone
from midway.run.progress import reporter
from midway.run.reducers import Combiner
from midway.run.retrypass import RetryPass
from midway.run.runstate import JobSpec, RunState
from midway.run.slices import InHand, Pace, SliceLoop
from midway.run.steps import StepRecords
from midway.run.stops import Stops
from midway.run.tracing import tracing
from midway.run.writer import Keeper
from midway.sources.base import ByteProgress, Chunk, Source
from midway.stores import Lease, Store, open_store

__all__ = ["Engine", "PartitionDone"]
Handler = Callable[[Any, Context], Any]


class Engine:
    """One run of one job: see the module docstring."""

    def __init__(
        self,
        job: JobSpec,
        source: Source,
        initial_state: dict[str, Any] | None,
        *,
        lease: Lease | None = None,
        store: Store | None = None,
    ) -> None:
        self.spec = job
        # A distributed worker's: the lease it claimed, and its connection to the store,
        # which this run uses on this thread and leaves open. Else both are opened here.
        self._claimed = lease
        self._borrowed = store
        self.run = run = RunState(job, source, initial_state)
        self.in_hand = InHand()
        self.steps = StepRecords()
        self.guarantee = for_settings(run.settings)
        self.commits = Commits(run, self.guarantee, self.steps, self.in_hand.index)
        self.ctx = Context(self, run.state)
        self.flow = ItemFlow(run, self.in_hand, self.commits, self.guarantee, self.steps, self.ctx)
        self.retries = RetryPass(run, self.flow, self.commits)
        self.stops = Stops(run, self.in_hand, lambda: self.commits.keeper)
        self.slicer = SliceLoop(run, self.in_hand, self.commits, lambda: self.flow.careful)
        self.opening = Opening(run, self.flow, self.retries, self.guarantee)
        self.batcher = (
            BatchLoop(
                run,
                self.commits,
                self.flow,
                self.retries,
                self.guarantee,
                self.in_hand,
                BatchCalls(run, self.flow, self.guarantee, self.ctx),
            )
            if run.settings.batch
            else None
        )
        self.ending = Ending(
            run, self.commits, self.guarantee, self.steps, self.stops, store is not None
        )
        # For ctx (ItemView) and a parallel run (ParallelHost): set once, never replaced.
        self.key = run.key
        self.job: Settings = run.settings
        """The job's options."""
        self.combiner: Combiner = run.combiner
        self.policy: FailurePolicy | None = self.flow.policy
        self.prior: Mapping[str, ItemRecord] = self.flow.prior

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        run, settings = self.run, self.run.settings
        use_log_format()  # MIDWAY_LOG_FORMAT checked before the store is opened
        store = run.store = self._borrowed or open_store(
            self.spec.store_url, durable=settings.durable
        )
        try:
            lease = self._claimed or store.acquire_lease(
                self.spec.id, Owner.current(), settings.lease_ttl
            )
        except BaseException:
            if self._borrowed is None:
                store.close()
            run.store = None
            raise
        run.lease = lease
        if faults.ACTIVE:
            faults.hit("lease.after_acquire")
        run.tracing = tracing()  # decided once: OFF costs nothing per item
        run.tracing.start(run.key, run.run_id, settings.guarantee, run.counters.processed)
        try:
            # The keeper opens its own connection while this thread prepares the run. Were
            # it started last, it would open it while the loop runs, and each of its steps
            # would wait for the loop to give up the GIL (5 ms each: some 40 ms in all).
            # Where checkpoints commit on this thread it only renews the lease: it connects
            # at the first heartbeat (a short run never does).
            self.commits.keeper = Keeper(
                self.spec.store_url,
                settings.durable,
                lease,
                on_error=self.stops.on_writer_error,
                on_lease_lost=self.stops.on_lease_lost,
                tracing=run.tracing,
                connect_now=in_background(settings, self.guarantee),
            )
            self.opening.open(store, lease)
            run.tracing.resumed(run.resumed_from)
            self._begin(store, lease)
        except BaseException as exc:
            if not isinstance(exc, PartitionDone):
                run.tracing.error(exc)
            self.ending.release()
            raise

    def _begin(self, store: Store, lease: Lease) -> None:
        """The run is recorded: set the pace, open the input, and go."""
        run, settings = self.run, self.run.settings
        self.commits.begin()
        self.opening.began()
        self.slicer.pace = Pace.for_run(settings.every_seconds, settings.max_lag)
        if self.batcher is not None:
            self.batcher.pace = Pace.for_run(settings.every_seconds, settings.max_lag)
        self.slicer.one_per_slice = self.guarantee.marks_started
        self.ctx.state = run.state
        self.ctx.transaction = self.guarantee.begin(store, lease)
        self.stops.install()
        run.progress = reporter(self.spec.id.name, settings.progress, settings.quiet, run.key)
        source = run.source
        if run.total is None and isinstance(source, ByteProgress):
            run.share = source.progress
        run.progress.start(run.counters.processed, run.total, by_bytes=run.share is not None)

    # -- job.run -------------------------------------------------------------------------

    def run_handler(self, handler: Handler) -> RunResult:
        """``Job.run``: the tight loop. The only per-item work is the handler call; a failing
        item leaves the loop through the exception and re-enters it after the next item.
        The run's span (if traced) is the current one meanwhile: the handler's spans nest."""
        with self.run.tracing.current():
            return self._run_handler(handler)

    def _run_handler(self, handler: Handler) -> RunResult:
        if self.batcher is not None:
            return self._run_batches(self.batcher, handler)
        run = self.run
        slices = self.slices()
        self.flow.asks = True
        try:
            self.retries.walk(handler)
            if run.main_done:
                run.finished = run.stop_error is None and run.stop_signal is None
                slices.close()
            elif run.settings.workers > 1:
                from midway.run.parallel import Parallel  # asyncio, concurrent.futures

                slices.close()
                Parallel(self, handler).run()
            else:
                self._walk(slices, handler)
        except BaseException as exc:
            self.abandon_slice()
            slices.close()
            self.fail(exc)
            raise
        return self.finish()

    def _run_batches(self, batcher: BatchLoop, handler: Handler) -> RunResult:
        """``batch=N``: the handler gets lists (run/batches.py)."""
        try:
            if not batcher.before_input(handler):
                pass
            elif self.run.settings.workers > 1:
                from midway.run.parallelbatches import ParallelBatches  # concurrent.futures

                ParallelBatches(batcher, self, handler).run()
            else:
                batcher.run_handler(handler)
        except BaseException as exc:
            self.fail(exc)
            raise
        return self.finish()

    def _walk(self, slices: Generator[Iterator[Any], None, None], handler: Handler) -> None:
        ctx = self.ctx
        slicer, flow = self.slicer, self.flow
        item = None
        first = True  # the first slice (one item) looks at what the handler returns
        for it in slices:
            if slicer.slow or first:
                first = False
                for item in it:
                    if slicer.slow:
                        flow.one_item(item, handler)
                        continue
                    try:
                        returned = handler(item, ctx)
                    except Exception as exc:
                        if not flow.item_failed(item, exc, handler):
                            raise
                        continue
                    except ApprovalPending as pending:
                        flow.item_waiting(pending, item)
                        continue
                    if returned is not None:
                        check_result(returned)  # an awaitable: its work never ran
                continue
            while True:
                try:
                    for item in it:
                        handler(item, ctx)
                except Exception as exc:
                    if not flow.item_failed(item, exc, handler):
                        raise
                    continue
                except ApprovalPending as pending:  # free until raised
                    flow.item_waiting(pending, item)
                    continue
                break

    # -- job.loop, and how a run ends ----------------------------------------------------

    def slices(self) -> Generator[Iterator[Any], None, None]:
        return self.slicer.slices()

    def batch_lists(self) -> Generator[list[Any], None, None] | None:
        """``job.loop(source, batch=N)``'s lists; None without ``batch=``."""
        return None if self.batcher is None else self.batcher.loop_lists()

    @property
    def slow(self) -> bool:
        """The slice in hand needs the careful path (for ``job.loop``: unreadable records)."""
        return self.slicer.slow

    def check_loop_item(self, item: Any) -> bool:
        return self.flow.check_loop_item(item)

    def abandon_slice(self) -> None:
        self.slicer.abandon()

    def finish(self) -> RunResult:
        return self.ending.finish()

    def leave(self) -> None:
        self.ending.leave()

    def fail(self, exc: BaseException) -> None:
        self.ending.fail(exc)

    @property
    def result(self) -> RunResult | None:
        return self.ending.result

    @property
    def resumed_from(self) -> dict[str, JSONValue] | None:
        return self.run.resumed_from

    @property
    def state(self) -> dict[str, Any]:
        return self.run.state

    def position(self) -> JSONValue:
        """Where a resume would start: just after the last finished item."""
        return self.run.position()

    # -- what ctx uses (run/context.py ItemView) -----------------------------------------

    @property
    def run_id(self) -> str:
        return self.run.run_id

    def current_key(self) -> JSONValue:
        return None if self.batcher is not None else self.in_hand.key()

    def current_position(self) -> JSONValue:
        return None if self.batcher is not None else self.in_hand.position()

    def idempotency_key(self, key: JSONValue) -> str:
        if key is None and self.batcher is not None:  # ctx.idempotency_key of the batch
            key = batch_identity(self.batcher.batch_keys())
        return self.spec.id.idempotency_key(key)

    def step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        if self.batcher is not None:
            raise ConfigError("ctx.step() is for one item; a batch handler (batch=N) has none")
        return self.flow.step(name, fn, args, kwargs)

    def batch_keys(self) -> list[JSONValue]:
        return self._batches("keys").batch_keys()

    def batch_outcome(self, what: str, key: JSONValue, status: ItemStatus, error: Any) -> None:
        self._batches(what).batch_outcome(what, key, status, error)

    def _batches(self, what: str) -> BatchLoop:
        if self.batcher is None:
            raise ConfigError(OUTSIDE.format(what=what))
        return self.batcher

    def approval(self, question: Any, data: Any) -> bool:
        if self.batcher is not None:
            raise ConfigError("ctx.approval() is for one item; a batch handler (batch=N) has none")
        return self.flow.approval(question, data)

    # -- what a parallel run uses (run/parallel.py ParallelHost) -------------------------

    @property
    def counters(self) -> Counters:
        return self.run.counters

    @property
    def total(self) -> int | None:
        return self.run.total

    def chunks(self) -> Iterator[Chunk]:
        """The input, from where this run resumes."""
        assert self.run.cursor is not None
        return iter(self.run.cursor)

    def stop_requested(self) -> bool:
        """A signal, a lost lease or a stop error: start no more items."""
        return self.run.stop_requested

    def stop_with(self, error: BaseException) -> None:
        """End the run with ``error`` once the items in hand are in."""
        self.run.stop_error = error

    def too_many_message(self) -> str:
        return self.flow.too_many_message()

    def add_records(self, records: Iterable[ItemRecord]) -> None:
        """Ledger records to commit with the next checkpoint."""
        self.run.pending.extend(records)

    def advance_to(self, chunk: Chunk, end: int) -> None:
        """The watermark: every item before ``chunk.items[end]`` has an outcome."""
        self.run.mark(chunk, end)

    def checkpoint_due(self) -> bool:
        """``every=`` items or ``every_seconds=`` have passed since the last checkpoint."""
        return self.commits.due(self.run.counters.processed, time.monotonic())

    def keep_up(self) -> None:
        """If the store is behind, wait until the unsaved work is within the lag bound."""
        keeper = self.commits.keeper
        if keeper is not None and keeper.pending_or_busy:
            self.commits.bound_lag(self.run.counters.processed)

    def checkpoint(self, *, wait: bool = False) -> None:
        self.commits.checkpoint(wait=wait)

    def show_progress(self) -> None:
        self.run.show_progress()

    def report_item_failed(self, record: ItemRecord) -> None:
        """Log and trace it, and call the job's ``on_item_failed``, if any."""
        self.run.tell_item(record, record.attempts)
        hook = self.run.settings.on_item_failed
        if hook is not None:
            call_hook("on_item_failed", hook, record, None)

    def input_finished(self) -> None:
        """Every item of the input has an outcome: the run completes."""
        self.run.finished = True
