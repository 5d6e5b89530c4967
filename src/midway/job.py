"""``Job``: a named piece of work, run with ``job.run(source, handler)`` or ``job.loop(source)``."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from midway._model.identity import JobId, make_job_id, worker_mode
from midway._model.redaction import redact_url
from midway._model.settings import DriftPolicy, Executor, Guarantee, Settings
from midway.errors import ConfigError

# What a run needs (the engine, the stores, the sources, the distributed workers) and what
# the operator's calls need (midway.ops) is imported by the method that needs it:
# ``import midway`` stays fast for a command line.
if TYPE_CHECKING:
    from midway._model.ledger import ItemRecord
    from midway._model.result import RunResult
    from midway.distributed.worker import RunPartition
    from midway.ops.models import JobStatus
    from midway.run.context import Context
    from midway.run.engine import Engine
    from midway.run.failures import Retry
    from midway.sources.base import Source
    from midway.stores import Lease, Store
    from midway.stores.base import JobRecord

_OPTION_NAMES = frozenset(field.name for field in dataclasses.fields(Settings))


class Job:
    """A named, resumable piece of work. Its identity is ``name`` plus ``params``.

    ``every`` / ``every_seconds``: checkpoint after that many items or seconds, whichever
    comes first (after a crash, at most that much is handled again). ``durable=False``
    skips the fsync of each checkpoint: it still survives a crash of the process, but not
    a power cut. ``on_drift`` says what to do when the input changed since the checkpoint.
    ``lease_ttl``: how long a runner that stopped renewing its lease keeps the job.

    ``guarantee``: ``"at-least-once"`` (after a crash at most one interval is handled
    again), ``"exactly-once"`` (``ctx.transaction`` writes into the store's database commit
    with the checkpoint), ``"at-most-once"`` (a handler never runs twice for an item; one
    whose fate a crash left unknown is reported *in doubt*).

    Failures: by default the first item whose handler raises stops the job, and the next
    run starts with that item. ``retry=midway.Retry(...)`` tries again; ``skip_on`` records
    items raising those exceptions as *skipped* and goes on; ``max_failures`` (a count, or
    a fraction of the items) records failing items as *failed* and goes on until more than
    that have failed. Hooks ``on_item_failed(record, exc)``, ``on_checkpoint(info)``,
    ``on_waiting(record)`` (an item asked ``ctx.approval``) and ``on_finish(result)`` are
    called on the job's thread; they also go to the ``midway``
    logger. ``record_items`` keeps each failed item itself (as JSON) in the ledger.

    ``workers=N`` handles N items at a time (``executor``: ``"thread"``, ``"process"`` for
    CPU-bound handlers, ``"async"`` for ``async def`` handlers on one event loop); the
    checkpoint is the watermark, at most ``window`` items run ahead of it, and each item's
    ``ctx.state`` is its own contribution, combined as items finish by the reducers declared
    in ``state=`` (``midway.Sum()``, ``Max``, ``Min``, ``Last``, ``Append``) or by
    ``merge=``. ``rate``
    (``"50/s"``, ``"600/m"``) caps how fast items start.

    ``partitions=N``: for ``run(..., distributed=True)``, the source is split in N parts
    that any number of worker processes (on any machines sharing the store) share out.

    Checkpoints are committed in the background (group commit); ``max_lag`` bounds how far
    the loop may run ahead of the last checkpoint on disk: one interval plus that many
    seconds' worth of items, after which it waits for the store. ``every=1`` and
    ``max_lag=0`` always wait: each checkpoint is on disk before the next item starts.
    """

    def __init__(
        self,
        name: str,
        *,
        store: str | None = None,
        every: int | None = 1000,
        every_seconds: float | None = 10.0,
        params: dict[str, Any] | None = None,
        guarantee: Guarantee = "at-least-once",
        durable: bool = True,
        on_drift: DriftPolicy = "refuse",
        lease_ttl: float = 5.0,
        max_lag: float = 0.05,
        progress: bool | None = None,
        quiet: bool = False,
        retry: Retry | None = None,
        skip_on: type[BaseException] | tuple[type[BaseException], ...] | None = None,
        max_failures: int | float | None = None,
        record_items: bool = True,
        on_item_failed: Callable[[ItemRecord, BaseException | None], Any] | None = None,
        on_checkpoint: Callable[[dict[str, Any]], Any] | None = None,
        on_finish: Callable[[RunResult], Any] | None = None,
        workers: int = 1,
        executor: Executor = "thread",
        window: int | None = None,
        merge: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None,
        rate: str | None = None,
        partitions: int = 1,
        on_waiting: Callable[[ItemRecord], Any] | None = None,
    ) -> None:
        from midway.stores import absolute_url, default_url

        self.id: JobId = make_job_id(name, params)
        # absolute now: the same store wherever the process goes, and in every message
        self.store_url = absolute_url(store or default_url())
        self.settings = Settings(
            every=every,
            every_seconds=every_seconds,
            guarantee=guarantee,
            durable=durable,
            on_drift=on_drift,
            lease_ttl=lease_ttl,
            max_lag=max_lag,
            progress=progress,
            quiet=quiet,
            retry=retry,
            skip_on=skip_on,  # type: ignore[arg-type]  # normalised to a tuple when built
            max_failures=max_failures,
            record_items=record_items,
            on_item_failed=on_item_failed,
            on_checkpoint=on_checkpoint,
            on_finish=on_finish,
            workers=workers,
            executor=executor,
            window=window,
            merge=merge,
            rate=rate,
            partitions=partitions,
            on_waiting=on_waiting,
        )

    def __getattr__(self, name: str) -> Any:
        """The options read as attributes too (``job.every``), from :attr:`settings`."""
        if name in _OPTION_NAMES:
            return getattr(self.__dict__["settings"], name)
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def option_text(self, name: str, value: str) -> str:
        """How a message tells the user to set an option: ``on_drift='restart'``."""
        return f"{name}={value!r}"

    @property
    def name(self) -> str:
        return self.id.name

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.id.params)

    @property
    def key(self) -> str:
        """The job's key in the store: the name, plus ``@hash`` of the params if any."""
        return self.id.key

    def __repr__(self) -> str:
        return f"midway.Job({self.key!r}, store={redact_url(self.store_url)!r})"

    def run(
        self,
        source: Source | Iterable[Any],
        handler: Callable[[Any, Context], Any],
        *,
        state: dict[str, Any] | None = None,
        distributed: bool | Any = False,
        batch: int | None = None,
        batch_seconds: float | None = None,
    ) -> RunResult:
        """Call ``handler(item, ctx)`` for every item not yet done, checkpointing as it goes.

        ``distributed=True`` (or running under ``midway worker``): this process is one of any
        number of workers sharing the job's ``partitions`` through the store; see
        :mod:`midway.distributed.worker`. Each partition starts from ``state``.
        ``distributed=client`` (a ``dask.distributed.Client``, ``pip install 'midway[dask]'``):
        each partition runs as a task on that Dask cluster; see :mod:`midway.distributed.dask`.

        ``state`` seeds ``ctx.state`` on a fresh start; a resumed run continues from the
        saved state. A value that is a reducer (``{"imported": midway.Sum()}``) declares how
        that key combines, so the final state is the same whatever ``workers`` is; see
        :mod:`midway.run.reducers`. An exception from the handler propagates after the checkpoint
        is saved at the last finished item. SIGINT / SIGTERM stop after the item in hand and raise
        :class:`midway.Stopped` (exit code 130 / 143 when uncaught).

        ``batch=N``: ``handler(items, ctx)`` gets lists of up to N items, each list one
        unit of work: a checkpoint never falls inside one (``every`` is rounded up to whole
        batches), and after a crash a batch is handled again whole or not at all. Inside it,
        ``ctx.keys`` lists the items' keys, and ``ctx.fail(key, error)`` /
        ``ctx.skip(key, reason)`` record single records; the rest succeed. A batch that
        raises is retried whole (``retry=``), then, with ``skip_on`` / ``max_failures``,
        split in halves until the records that raise are alone. ``workers=N`` runs N
        batches at a time (threads); ``rate=`` paces handler calls (one per batch).
        ``batch_seconds=T``: a batch that began filling T seconds ago goes out, partial,
        with the next records the source gives (for a slow source: an API's pages).
        """
        from midway.run.engine import Engine
        from midway.run.handlers import prepare as prepare_handler
        from midway.sources._input import as_source

        job = self.batched(batch, batch_seconds)
        source = as_source(source)
        handler, owned = prepare_handler(
            handler, workers=job.settings.workers, executor=job.settings.executor
        )
        try:
            if not isinstance(distributed, bool):  # a dask.distributed.Client, or refused
                from midway.distributed.dask import is_dask_client, run_on_dask

                if is_dask_client(distributed):
                    runner = job._partition_runner(handler, state)
                    return run_on_dask(job, source, runner, state, distributed)
            if distributed or worker_mode():
                from midway.distributed.worker import run_distributed

                return run_distributed(job, source, job._partition_runner(handler, state), state)
            engine = Engine(job, source, state)
            engine.start()
            return engine.run_handler(handler)
        finally:
            if owned is not None:
                owned.close()

    def _partition_runner(
        self, handler: Callable[[Any, Context], Any], state: dict[str, Any] | None
    ) -> RunPartition:
        """How a distributed worker runs a partition it claimed: as a job of its own."""

        def run_partition(
            index: int, count: int, part: Source, lease: Lease, store: Store
        ) -> RunResult:
            from midway.run.engine import Engine

            engine = Engine(self.partition_job(index, count), part, state, lease=lease, store=store)
            engine.start()
            return engine.run_handler(handler)

        return run_partition

    def batched(self, batch: int | None, batch_seconds: float | None) -> Job:
        """This job with ``batch=`` / ``batch_seconds=`` (checked: a ConfigError now)."""
        if batch is None and batch_seconds is None:
            return self
        job = copy.copy(self)
        job.settings = dataclasses.replace(self.settings, batch=batch, batch_seconds=batch_seconds)
        return job

    def partition_job(self, index: int, count: int | None = None) -> Job:
        """Partition ``index`` of ``count`` (default: ``partitions``): a job of its own."""
        part = copy.copy(self)
        part.id = self.id.partition(index, count or self.partitions)
        return part

    def loop(
        self,
        source: Source | Iterable[Any],
        *,
        state: dict[str, Any] | None = None,
        batch: int | None = None,
        batch_seconds: float | None = None,
    ) -> Loop:
        """The same engine as a plain ``for`` loop: ``for item in job.loop(source): ...``.

        An item counts as done when the loop asks for the next one. If the body raises, or
        breaks out, the checkpoint keeps every item before the one in hand.

        A record the source cannot read never reaches the body: it stops the loop, or, with
        ``max_failures=`` (or ``skip_on=`` naming ``midway.SourceError``), it is recorded as
        failed (skipped) and the loop goes on. An exception from the body always stops it.

        ``batch=N``: the loop yields lists of up to N items, as ``run(..., batch=N)``
        hands them; ``loop.ctx.keys``, ``loop.ctx.fail`` and ``loop.ctx.skip`` work on the
        list in hand.
        """
        from midway.sources._input import as_source

        job = self.batched(batch, batch_seconds)
        job.settings.check_for_loop()
        return Loop(job, as_source(source), state)

    # -- for people: where the job stands, and what to do about it (midway.ops) ----------

    def status(self) -> JobStatus:
        """Where the job stands in its store: counters, total, rate, ETA, checkpoint, owner,
        runs, notes; for a distributed job its partitions summed, and each one.

        Example::

            s = job.status()
            print(s.status, s.processed, s.remaining, s.eta_seconds)
            if s.checkpoint:
                print("resumes at", s.checkpoint.position, "saved", s.checkpoint.saved_at)
        """
        from midway.ops.api import on_job
        from midway.ops.status import status_of  # the views load on first use

        return on_job(self.store_url, self.key, status_of)

    def items(self, status: str = "failed") -> Iterator[ItemRecord]:
        """The items of the ledger with ``status``: ``"failed"``, ``"skipped"``,
        ``"in_doubt"`` (or ``"retry"``: put back for the next run). Every partition's, for
        a distributed job.

        Example::

            for record in job.items("failed"):
                print(record.key, record.error, record.attempts, record.at)
        """
        from midway.ops import actions
        from midway.ops.api import on_job

        return iter(on_job(self.store_url, self.key, actions.listed_items, status))

    def retry(self, keys: Iterable[Any] | None = None, error: str | None = None) -> int:
        """Put failed items back: the next run handles them (only them, if the job had
        completed). ``keys``: only these; ``error``: only those that failed with this
        exception type (``"TimeoutError"``). Returns how many were put back; a key that
        names no failed item raises :class:`midway.ConfigError` and changes nothing.

        Example::

            job.retry()                          # every failed item
            job.retry(error="TimeoutError")      # only the timeouts
            job.retry(keys=[4711, 4712])
        """
        from midway.ops import actions
        from midway.ops.api import on_job

        return on_job(self.store_url, self.key, actions.retry, keys, error)

    def resolve(self, keys: Iterable[Any] | None, done: bool = True) -> int:
        """Decide in-doubt items after checking by hand: ``done=True`` they took effect
        (counted as succeeded), ``done=False`` they did not (the next run handles them
        again). ``keys=None`` decides every in-doubt item. Returns how many; a key that
        names no in-doubt item raises :class:`midway.ConfigError` and changes nothing.

        Example::

            job.resolve(["INV-7"], done=True)
        """
        from midway.ops import actions
        from midway.ops.api import on_job

        return on_job(self.store_url, self.key, actions.resolve, keys, done=done)

    def note(self, text: str, author: str | None = None) -> None:
        """Leave a timestamped note on the job (``author`` defaults to ``$USER@host``);
        ``midway show``, ``report`` and :attr:`JobStatus.notes` show it.

        Example::

            job.note("paused for the CRM upgrade; resume after 18:00")
        """
        from midway.ops import actions
        from midway.ops.api import on_job

        on_job(self.store_url, self.key, actions.note, text, author)

    def reset(self) -> None:
        """Forget the job: checkpoint, ledger, summary, runs and notes (a distributed job:
        every partition, and how it was split). The next run starts from the first item.
        Refused (:class:`midway.LeaseHeld`) while a runner holds it."""
        from midway.ops import actions
        from midway.ops.api import on_job

        on_job(self.store_url, self.key, actions.reset)

    def report(self, format: str = "md") -> str:
        """The handoff document: where the job stands and how to carry on, as Markdown
        (``"md"``), one self-contained HTML page (``"html"``) or ``"json"``.

        Example::

            Path("handoff.html").write_text(job.report("html"))
        """
        from midway.ops import actions
        from midway.ops.api import on_job

        return on_job(self.store_url, self.key, actions.report, format)

    def info(self) -> JobRecord | None:
        """What the store holds about this job (checkpoint, status, lease), or None."""
        from midway.stores import open_store

        store = open_store(self.store_url, durable=self.durable)
        try:
            return store.get_job(self.key)
        finally:
            store.close()

    def approve(
        self,
        keys: Iterable[Any] | None,
        approved: bool = True,
        note: str | None = None,
        *,
        by: str | None = None,
    ) -> int:
        """Decide items waiting for a person (``ctx.approval``): ``approved=False`` rejects.
        ``keys=None`` decides every waiting item. Returns how many were decided; a key that
        matches no waiting item is refused (``ConfigError``) and nothing is decided. The
        next run hands the decided items back. Refused while a runner holds the job."""
        if isinstance(keys, str | bytes):
            raise ConfigError(f"keys={keys!r}: give a list of item keys (or None for all)")
        from midway.stores import open_store
        from midway.stores.approvals import decide

        store = open_store(self.store_url, durable=self.durable)
        try:
            chosen = None if keys is None else list(keys)
            return len(decide(store, self.id, chosen, approved=bool(approved), note=note, by=by))
        finally:
            store.close()


class Loop:
    """``job.loop(source)``: iterate it once. ``state``, ``ctx`` and ``result`` as in run()."""

    def __init__(self, job: Job, source: Source, state: dict[str, Any] | None) -> None:
        self._job = job
        self._source = source
        self._initial = state
        self._engine: Engine | None = None
        self._used = False

    def _started(self) -> Engine:
        if self._engine is None:
            from midway.run.engine import Engine

            engine = Engine(self._job, self._source, self._initial)
            engine.start()
            self._engine = engine
        return self._engine

    @property
    def state(self) -> dict[str, Any]:
        return self._started().state

    @property
    def ctx(self) -> Context:
        return self._started().ctx

    @property
    def resumed_from(self) -> dict[str, Any] | None:
        return self._started().resumed_from

    @property
    def result(self) -> RunResult | None:
        return None if self._engine is None else self._engine.result

    def __iter__(self) -> Iterator[Any]:
        if self._used:
            raise ConfigError("a loop runs once; call job.loop(source) again for another run")
        self._used = True
        # The generator is not kept on self: when the body raises, the interpreter drops
        # the last reference at once and the generator's cleanup saves the checkpoint.
        return _walk(self._started())


def _walk(engine: Engine) -> Iterator[Any]:
    lists = engine.batch_lists()
    if lists is not None:
        yield from _walk_batches(engine, lists)
        return
    slices = engine.slices()
    try:
        for it in slices:
            if engine.slow:  # a chunk with records the source could not read
                for item in it:
                    if engine.check_loop_item(item):
                        yield item
            else:
                yield from it
    except GeneratorExit:  # the body raised or broke out: the item in hand is not done
        engine.abandon_slice()
        slices.close()
        engine.leave()
        raise
    except BaseException as exc:
        engine.abandon_slice()
        slices.close()
        engine.fail(exc)
        raise
    engine.finish()


def _walk_batches(engine: Engine, lists: Iterator[list[Any]]) -> Iterator[list[Any]]:
    """``job.loop(source, batch=N)``: a list is done when the body asks for the next."""
    try:
        yield from lists
    except GeneratorExit:  # the body raised or broke out: the batch in hand is not done
        engine.leave()
        raise
    except BaseException as exc:
        engine.fail(exc)
        raise
    engine.finish()
