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

# What a run needs (the engine, the stores, the sources, the distributed workers) is imported
# by the method that needs it: ``import midway`` stays fast for a command line.
if TYPE_CHECKING:
    from midway._model.ledger import ItemRecord
    from midway._model.result import RunResult
    from midway.distributed.worker import RunPartition
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
    that have failed. Hooks ``on_item_failed(record, exc)``, ``on_checkpoint(info)`` and
    ``on_finish(result)`` are called on the job's thread; they also go to the ``midway``
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
        distributed: bool = False,
    ) -> RunResult:
        """Call ``handler(item, ctx)`` for every item not yet done, checkpointing as it goes.

        ``distributed=True`` (or running under ``midway worker``): this process is one of any
        number of workers sharing the job's ``partitions`` through the store; see
        :mod:`midway.distributed.worker`. Each partition starts from ``state``.

        ``state`` seeds ``ctx.state`` on a fresh start; a resumed run continues from the
        saved state. A value that is a reducer (``{"imported": midway.Sum()}``) declares how
        that key combines, so the final state is the same whatever ``workers`` is; see
        :mod:`midway.run.reducers`. An exception from the handler propagates after the checkpoint
        is saved at the last finished item. SIGINT / SIGTERM stop after the item in hand and raise
        :class:`midway.Stopped` (exit code 130 / 143 when uncaught).
        """
        from midway.run.engine import Engine
        from midway.run.handlers import prepare as prepare_handler
        from midway.sources._input import as_source

        source = as_source(source)
        handler, owned = prepare_handler(
            handler, workers=self.settings.workers, executor=self.settings.executor
        )
        try:
            if distributed or worker_mode():
                from midway.distributed.worker import run_distributed

                return run_distributed(self, source, self._partition_runner(handler, state), state)
            engine = Engine(self, source, state)
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

    def partition_job(self, index: int, count: int | None = None) -> Job:
        """Partition ``index`` of ``count`` (default: ``partitions``): a job of its own."""
        part = copy.copy(self)
        part.id = self.id.partition(index, count or self.partitions)
        return part

    def loop(self, source: Source | Iterable[Any], *, state: dict[str, Any] | None = None) -> Loop:
        """The same engine as a plain ``for`` loop: ``for item in job.loop(source): ...``.

        An item counts as done when the loop asks for the next one. If the body raises, or
        breaks out, the checkpoint keeps every item before the one in hand.

        A record the source cannot read never reaches the body: it stops the loop, or, with
        ``max_failures=`` (or ``skip_on=`` naming ``midway.SourceError``), it is recorded as
        failed (skipped) and the loop goes on. An exception from the body always stops it.
        """
        from midway.sources._input import as_source

        self.settings.check_for_loop()
        return Loop(self, as_source(source), state)

    def info(self) -> JobRecord | None:
        """What the store holds about this job (checkpoint, status, lease), or None."""
        from midway.stores import open_store

        store = open_store(self.store_url, durable=self.durable)
        try:
            return store.get_job(self.key)
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
