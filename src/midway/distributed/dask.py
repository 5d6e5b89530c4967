"""``job.run(source, handler, distributed=client)``: a Dask cluster places the workers.

The plan is the one ``distributed=True`` records (:mod:`midway.distributed.plan`); each of its
partitions becomes one Dask task (``pure=False``: Dask never takes two runs of a job for one
result). The task runs the same loop a hand-started worker runs
(:func:`midway.distributed.worker.work`), on that one partition: it claims the partition's
lease, continues from its checkpoint, and returns once the partition has completed, by it or
by another copy of the task. So what Dask does on its own stays safe:

* a Dask worker that dies: Dask runs its tasks again elsewhere; the partition's lease is taken
  over (at once on the same machine, once it expires on another), and the new run continues
  from the last checkpoint;
* a task run twice at once: the second copy waits for the partition's lease; if it takes it
  over from a copy that stalled past its lease, the fence refuses the stalled copy's late
  writes (its task then returns what the other copy completed).

The handler, the partition's source and the job travel to the workers with Dask's own
serialization (cloudpickle); midway's state in the store stays JSON. The store must be one
every Dask worker reaches: PostgreSQL for a real cluster; a SQLite file or the file store only
when every worker runs on this machine (a ``LocalCluster``), which :func:`check_store_shared`
checks before anything is submitted.

A partition that fails for good (its handler raised and stopped it, a store error) fails its
task with a :class:`~midway.errors.MidwayError` saying which partition and why; the others go
on, and the whole result is ``failed`` with ``partition_errors`` naming each. The submitting
process shows the whole job's progress (read from the store while the tasks run), and
``midway status`` shows it as for any distributed job.

This module never imports Dask at load time: ``job.run`` only comes here when handed a
``distributed.Client`` (recognised by its type's module), and Dask is imported then.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from typing import Any

from midway._model.checkpoint import Counters
from midway._model.identity import JobId
from midway._model.owner import hostname
from midway._model.result import RunResult, RunStatus
from midway.distributed.plan import DistributedJob, planned_partitions
from midway.distributed.worker import RunPartition, whole_result, work
from midway.errors import ConfigError, MidwayError
from midway.run.progress import reporter
from midway.run.reducers import split_state
from midway.sources.base import Source
from midway.stores import Store, open_store

EXTRA = "pip install 'midway[dask]'"
PROGRESS_SECONDS = 0.5
"""How often the submitting process reads the partitions' progress from the store."""
SHARED_SCHEMES = ("postgresql", "postgres")


def is_dask_client(value: object) -> bool:
    """``distributed=`` was given a ``dask.distributed.Client`` (without importing Dask);
    anything else but True or False is refused."""
    if isinstance(value, bool):
        return False
    for kind in type(value).__mro__:
        if kind.__module__.split(".")[0] == "distributed" and kind.__name__ == "Client":
            return True
    raise ConfigError(
        f"distributed= takes True, False or a dask.distributed.Client, not "
        f"{type(value).__module__}.{type(value).__qualname__}; for a Dask cluster, pass "
        "Client(cluster)"
    )


def require_dask() -> Any:
    """``distributed``'s ``as_completed``, or a ConfigError naming the extra."""
    try:
        from distributed import as_completed
    except ImportError as exc:
        raise ConfigError(
            f"distributed=client needs Dask's distributed scheduler, which is not installed "
            f"({exc}). Install it with: {EXTRA}"
        ) from None
    return as_completed


def check_store_shared(store_url: str, client: Any) -> None:
    """Refuse a store the Dask workers cannot share: a SQLite file or the file store is
    shared only by processes on this machine."""
    scheme = store_url.partition(":")[0].lower()
    if scheme in SHARED_SCHEMES:
        return
    hosts: dict[str, str] = client.run(socket.gethostname)
    elsewhere = sorted({host for host in hosts.values() if host != hostname()})
    if elsewhere:
        raise ConfigError(
            f"the store is a {scheme} one on this machine ({hostname()}), but Dask workers run "
            f"on {', '.join(elsewhere)}, which cannot share it. Use a PostgreSQL store "
            "(store='postgresql://...'), which every worker reaches; a SQLite file or the "
            "file store suits a LocalCluster only."
        )


def run_on_dask(
    job: DistributedJob,
    source: Source,
    run_partition: RunPartition,
    state: dict[str, Any] | None,
    client: Any,
) -> RunResult:
    """Submit each partition as a Dask task, gather them as they finish, and return the
    whole job's result (as ``distributed=True`` does)."""
    as_completed = require_dask()
    check_store_shared(job.store_url, client)
    started = time.monotonic()
    store = open_store(job.store_url, durable=job.durable)
    try:
        parts, ids = planned_partitions(store, job, source)
        count = len(parts)
        futures = {
            client.submit(
                partition_task,
                job,
                part,
                i,
                count,
                run_partition,
                pure=False,
                key=f"midway-{ids[i].key}-{time.time_ns()}",
            ): i
            for i, part in enumerate(parts)
        }
        total = source.total()
        handled, errors = _gather(job, store, ids, futures, as_completed(futures), total)
        records = store.get_jobs([part.key for part in ids])
        result = whole_result(
            job, records, handled, time.monotonic() - started, split_state(state)[1]
        )
    finally:
        store.close()
    if errors:
        result.status = RunStatus.FAILED
        result.partition_errors = errors
    return result


def _gather(
    job: DistributedJob,
    store: Store,
    ids: list[JobId],
    futures: dict[Any, int],
    pending: Any,
    total: int | None,
) -> tuple[int, dict[str, str]]:
    """Collect the tasks as they finish, showing the whole job's progress meanwhile: the
    items handled, and each failed partition's error."""
    progress = reporter(job.id.name, job.progress, job.quiet)
    progress.start(0, total)
    handled = 0
    errors: dict[str, str] = {}
    shown = 0.0
    try:
        while not pending.is_empty():
            for future in pending.next_batch(block=False):
                key = ids[futures[future]].key
                if future.status == "error":
                    errors[key] = _why(future.exception())
                else:
                    handled += int(future.result()["handled"])
            if time.monotonic() - shown >= PROGRESS_SECONDS:
                shown = time.monotonic()
                progress.update(*_progress(store, ids))
            time.sleep(0.05)
        progress.update(*_progress(store, ids))
    finally:
        progress.close()
    return handled, errors


def _progress(store: Store, ids: list[JobId]) -> tuple[int, int]:
    """Items processed and failed so far, over every partition (checkpoints, or summaries
    of the completed ones)."""
    processed = failed = 0
    for part in ids:
        record = store.get_job(part.key)
        if record is None:
            continue
        if record.checkpoint is not None:
            counters = record.checkpoint.counters
        else:
            counters = Counters.from_dict((record.summary or {}).get("counters") or {})
        processed += counters.processed
        failed += counters.failed
    return processed, failed


def _why(exc: BaseException | None) -> str:
    if isinstance(exc, MidwayError):
        return str(exc)
    return "unknown" if exc is None else f"{type(exc).__name__}: {exc}"


def partition_task(
    job: DistributedJob, part: Source, index: int, count: int, run_partition: RunPartition
) -> dict[str, Any]:
    """One Dask task, run on a Dask worker: partition ``index`` of ``count`` until it has
    completed (by this task or another copy of it). What it handled, and the leases it lost
    to another copy; a partition that fails for good raises a MidwayError naming it."""
    key = job.id.partition(index, count).key
    store = open_store(job.store_url, durable=job.durable)
    try:
        run_one: Callable[[int, Any], RunResult] = lambda _, lease: run_partition(  # noqa: E731
            index, count, part, lease, store
        )
        worked = work(job, store, [job.id.partition(index, count)], run_one)
    except MidwayError as exc:
        raise MidwayError(f"partition {key!r} failed: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        raise MidwayError(
            f"partition {key!r} stopped at an item whose handler raised "
            f"{type(exc).__name__}: {exc}; its checkpoint stands, and running the job again "
            "continues it"
        ) from None
    finally:
        store.close()
    return {"partition": key, "handled": worked.handled, "lost": worked.lost}
