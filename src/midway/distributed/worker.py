"""The loop each worker of a distributed run runs: ``job.run(source, handler,
distributed=True)``, or any ``job.run`` under ``midway worker``.

Each partition of the plan (:mod:`midway.distributed.plan`) is a job of its own in the store
(key ``<job>~p03of16``), with its own checkpoint, ledger and lease. A worker *claims* a
partition that no live runner holds (on PostgreSQL with ``SELECT ... FOR UPDATE SKIP
LOCKED``, so workers claiming at once pass over each other instead of queueing), including
one whose runner died (same host: at once) or stopped renewing its lease (once it expires),
and continues it from its checkpoint. Leases are fenced, so a worker that was paused past its
lease and wakes up cannot write to a partition another worker has since taken.

When every partition has completed, each worker returns the whole job's result: the
partitions' counters added up, and their states combined in partition order: keys with a
declared reducer (``midway.Sum()``, ...) by it, the others with ``merge=`` (by default
numbers add up, lists extend, dicts merge). A completed distributed job stays completed: to
run it again from the start, ``midway reset`` it (which forgets its partitions and plan too).

The job hands this loop what it needs (its options, and how to run one claimed partition);
the loop never imports the job.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midway._model.checkpoint import COUNTER_NAMES, Counters
from midway._model.identity import JobId
from midway._model.owner import Owner
from midway._model.result import RunResult, RunStatus
from midway.console import say
from midway.distributed.plan import DistributedJob, planned_partitions
from midway.errors import LeaseLost
from midway.run.engine import PartitionDone
from midway.run.reducers import Reducers, merge_partitions, split_state
from midway.run.workers import merge_state
from midway.sources.base import Source
from midway.stores import JobRecord, Lease, Store, open_store
from midway.stores.reuse import reusing_connections

POLL_SECONDS = 0.2


RunPartition = Callable[[int, int, Source, Lease, Store], RunResult]
"""Runs partition ``index`` of ``count`` (its source, the lease this worker claimed on it,
the store) to its end, as a job of its own; the job provides it."""


def run_distributed(
    job: DistributedJob,
    source: Source,
    run_partition: RunPartition,
    state: dict[str, Any] | None,
) -> RunResult:
    """Claim and run partitions until every one has completed; the whole job's result.
    ``state``: what each partition starts from (its reducers combine the partitions)."""
    started = time.monotonic()
    store = open_store(job.store_url, durable=job.durable)
    try:
        parts, ids = planned_partitions(store, job, source)
        count = len(parts)
        handled = work(
            job, store, ids, lambda i, lease: run_partition(i, count, parts[i], lease, store)
        ).handled
        records = store.get_jobs([part.key for part in ids])
        return whole_result(
            job, records, handled, time.monotonic() - started, split_state(state)[1]
        )
    finally:
        store.close()


@dataclass
class Worked:
    """What one worker did: the items it handled, and the partitions it lost to another
    worker (its lease taken over: the fence refused its late writes)."""

    handled: int = 0
    lost: list[str] = field(default_factory=list)


def work(
    job: DistributedJob,
    store: Store,
    ids: list[JobId],
    run_one: Callable[[int, Lease], RunResult],
) -> Worked:
    """Claim partitions no live runner holds and run them, until all have completed (each
    run's writer takes the connection the run before left idle)."""
    with reusing_connections():
        return _claim_and_run(job, store, ids, run_one)


def _claim_and_run(
    job: DistributedJob,
    store: Store,
    ids: list[JobId],
    run_one: Callable[[int, Lease], RunResult],
) -> Worked:
    keys = [part.key for part in ids]
    index = {key: i for i, key in enumerate(keys)}
    order = list(range(len(ids)))
    random.Random(os.getpid()).shuffle(order)  # workers start on different partitions
    owner = Owner.current()
    worked = Worked()
    pending = order
    while True:
        # A claim passes over completed partitions itself (on PostgreSQL in the same round
        # trip): which have completed is asked apart only when it finds none to take. The
        # partitions this worker ran are left out of its claims until then.
        lease = store.claim_lease([ids[i] for i in pending], owner, job.lease_ttl)
        if lease is None:
            completed = store.completed_among(keys)  # completed partitions stay completed
            pending = [i for i in order if keys[i] not in completed]
            if not pending:
                return worked
            # Others hold every one: look again soon, to take over a partition whose
            # worker dies, and to return as soon as the last one completes.
            time.sleep(min(POLL_SECONDS, job.lease_ttl / 3))
            continue
        claimed = index[lease.job]
        pending = [i for i in pending if i != claimed]
        try:
            result = run_one(claimed, lease)
        except PartitionDone:
            continue  # another worker completed it before this one took it
        except LeaseLost as lost:
            say(f"{lost}; going on with the other partitions", quiet=job.quiet)
            worked.lost.append(str(lost))
            continue
        worked.handled += result.processed_this_run


def whole_result(
    job: DistributedJob,
    records: list[JobRecord | None],
    handled: int,
    elapsed: float,
    reducers: Reducers,
) -> RunResult:
    """The whole job's result: the partitions' counters added up, their states combined."""
    whole = RunResult(job.key, RunStatus.COMPLETED, processed_this_run=handled, elapsed=elapsed)
    states: list[dict[str, Any]] = []
    for record in records:
        summary = (record.summary if record is not None else None) or {}
        part = Counters.from_dict(summary.get("counters") or {})
        for name in COUNTER_NAMES:
            setattr(whole, name, getattr(whole, name) + getattr(part, name))
        part_state = summary.get("state")
        if isinstance(part_state, dict):
            states.append(part_state)
    whole.state = merge_partitions(states, reducers, job.merge or merge_state)
    if whole.failed or whole.in_doubt:
        whole.status = RunStatus.COMPLETED_WITH_FAILURES
    return whole
