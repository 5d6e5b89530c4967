"""``job.run(source, handler, distributed=True)``: every process that calls it is a worker.

The source splits itself into ``partitions`` (``Job(partitions=N)``); each partition is a job
of its own in the store (key ``<job>~p03of16``), with its own checkpoint, ledger and lease.
A worker goes round the partitions and runs each one it can take: one that no live runner
holds, or whose runner stopped renewing its lease (taken over once the lease expires, and
continued from its checkpoint). Leases are fenced, so a worker that was paused past its
lease and wakes up cannot write to a partition another worker has since taken.

When every partition has completed, each worker returns the whole job's result: the
partitions' counters added up, and their states merged with ``merge=`` (by default numbers
add up, lists extend, dicts merge). A completed distributed job stays completed: to run it
again from the start, ``midway reset`` it (which resets its partitions too).
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from midway.checkpoint import Counters
from midway.console import say
from midway.engine import PartitionDone
from midway.errors import ConfigError, LeaseHeld, LeaseLost
from midway.parallel import merge_state
from midway.result import RunResult
from midway.sources.base import Source
from midway.stores import JobRecord, open_store

if TYPE_CHECKING:
    from midway.job import Job

DONE = ("completed", "completed_with_failures")
WORKER_ENV = "MIDWAY_WORKER"


def worker_mode() -> bool:
    """``midway worker`` sets this: every ``job.run`` in the script runs distributed."""
    return os.environ.get(WORKER_ENV) == "1"


def split(job: Job, source: Source) -> list[Source]:
    cut: Callable[[int], list[Source]] | None = getattr(source, "partitions", None)
    if cut is None:
        raise ConfigError(
            f"{source.describe()} cannot be split into partitions; distributed runs need a "
            "source that can (a list, tuple or range: midway.sources.sequence)"
        )
    return cut(job.partitions)


def run_distributed(
    job: Job,
    source: Source,
    handler: Callable[[Any, Any], Any],
    state: dict[str, Any] | None,
) -> RunResult:
    parts = split(job, source)
    jobs = [job.partition_job(i) for i in range(len(parts))]
    started = time.monotonic()
    order = list(range(len(parts)))
    random.Random(os.getpid()).shuffle(order)  # workers start on different partitions
    handled = 0
    while True:
        records = _records(job, jobs)
        pending = [i for i in order if not _done(records[i])]
        if not pending:
            break
        progressed = False
        for i in pending:
            try:
                result = jobs[i].run(parts[i], handler, state=state)
            except (LeaseHeld, PartitionDone):
                continue  # another worker has it (its lease says it is alive), or did it
            except LeaseLost as lost:
                say(f"{lost}; going on with the other partitions", quiet=job.quiet)
                continue
            handled += result.processed_this_run
            progressed = True
        if not progressed:
            time.sleep(min(1.0, job.lease_ttl / 3))  # others are on it: wait, then look again
    return _whole(job, _records(job, jobs), handled, time.monotonic() - started)


def _records(job: Job, jobs: list[Job]) -> list[JobRecord | None]:
    store = open_store(job.store_url, durable=job.durable)
    try:
        return [store.get_job(part.key) for part in jobs]
    finally:
        store.close()


def _done(record: JobRecord | None) -> bool:
    return record is not None and record.status in DONE and record.checkpoint is None


def _whole(job: Job, records: list[JobRecord | None], handled: int, elapsed: float) -> RunResult:
    counters = Counters()
    state: dict[str, Any] = {}
    merge = job.merge or merge_state
    for record in records:
        summary = (record.summary if record is not None else None) or {}
        part = Counters.from_dict(summary.get("counters") or {})
        for name in ("succeeded", "failed", "skipped", "in_doubt"):
            setattr(counters, name, getattr(counters, name) + getattr(part, name))
        part_state = summary.get("state")
        if isinstance(part_state, dict):
            merge(state, part_state)
    status = "completed_with_failures" if counters.failed or counters.in_doubt else "completed"
    return RunResult(
        job=job.key,
        status=status,
        succeeded=counters.succeeded,
        failed=counters.failed,
        skipped=counters.skipped,
        in_doubt=counters.in_doubt,
        state=state,
        resumed_from=None,
        run_id="",
        processed_this_run=handled,
        elapsed=elapsed,
        position=None,
    )
