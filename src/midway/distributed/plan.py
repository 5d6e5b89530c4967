"""``job.run(source, handler, distributed=True)``: every process that calls it is a worker.

The source splits itself into partitions (``Job(partitions=N)``; ``sources.shards`` has one per
shard): index ranges of a sequence, byte ranges of a file cut where records begin, key ranges
of a table, ranges of file names, or the shards. The first worker works the split out and
records it in the store (the *plan*); every later worker reads that plan, so all of them cut
the input at the same places even if the input would be cut elsewhere now (a table that
grew). A worker whose input no longer matches the plan's fingerprint, or that asks for
another number of partitions, is refused.

Each partition is a job of its own in the store (key ``<job>~p03of16``), with its own
checkpoint, ledger and lease. A worker *claims* a partition that no live runner holds (on
PostgreSQL with ``SELECT ... FOR UPDATE SKIP LOCKED``, so workers claiming at once pass over
each other instead of queueing), including one whose runner died (same host: at once) or
stopped renewing its lease (once it expires), and continues it from its checkpoint. Leases
are fenced, so a worker that was paused past its lease and wakes up cannot write to a
partition another worker has since taken.

When every partition has completed, each worker returns the whole job's result: the
partitions' counters added up, and their states combined in partition order: keys with a
declared reducer (``midway.Sum()``, ...) by it, the others with ``merge=`` (by default
numbers add up, lists extend, dicts merge). A completed distributed job stays completed: to run it
again from the start, ``midway reset`` it (which forgets its partitions and plan too).
"""

from __future__ import annotations

import os
import random
import shlex
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from midway._model.checkpoint import Counters, describe_drift
from midway._model.jsonutil import JSONValue
from midway._model.owner import Owner
from midway._model.result import RunResult
from midway.console import say
from midway.errors import ConfigError, InputDrift, LeaseLost, RefusedError
from midway.run.engine import Engine, PartitionDone
from midway.run.reducers import Reducers, merge_partitions, split_state
from midway.run.workers import merge_state
from midway.sources.base import Source
from midway.stores import JobRecord, Store, open_store

if TYPE_CHECKING:
    from midway.job import Job

WORKER_ENV = "MIDWAY_WORKER"
POLL_SECONDS = 0.2


def worker_mode() -> bool:
    """``midway worker`` sets this: every ``job.run`` in the script runs distributed."""
    return os.environ.get(WORKER_ENV) == "1"


def settle_plan(store: Store, job: Job, source: Source) -> dict[str, JSONValue]:
    """The job's plan as recorded in the store (recording this worker's if it is the
    first), checked against this worker's input and ``partitions=``."""
    plan_parts = getattr(source, "plan_parts", None)
    if plan_parts is None or not hasattr(source, "partition"):
        raise ConfigError(
            f"{source.describe()} cannot be split into partitions; distributed runs need a "
            "source that can: a list, tuple or range, sources.csv / jsonl / lines, "
            "sources.sql, sources.files or sources.shards"
        )
    shard_count = getattr(source, "shard_count", None)
    count: int = shard_count() if shard_count is not None else job.partitions
    if shard_count is None and count < 2:
        raise ConfigError(
            "a distributed run shares the job's partitions among workers: give "
            "Job(..., partitions=N) with N of 2 or more (a few per worker)"
        )
    fingerprint = source.fingerprint()
    plan = store.load_plan(job.key)
    if plan is None:
        parts = plan_parts(count)
        assert len(parts) == count, (source.kind, count, len(parts))
        plan = store.settle_plan(
            job.key,
            {
                "kind": source.kind,
                "partitions": count,
                "input": fingerprint,
                "parts": parts,
                "planned_by": Owner.current().label,
                "planned_at": time.time(),
            },
        )
    asks = f"{count} shards" if shard_count is not None else f"partitions={count}"
    _check_plan(job, plan, count, fingerprint, asks)
    return plan


def _check_plan(
    job: Job,
    plan: dict[str, JSONValue],
    count: int,
    fingerprint: dict[str, JSONValue],
    asks: str,
) -> None:
    parts = plan["parts"]
    assert isinstance(parts, list)
    reset = f"midway reset {shlex.quote(job.key)} --yes"
    if plan.get("partitions") != count or len(parts) != count:
        raise RefusedError(
            f"job {job.key!r} was split into {len(parts)} partitions by its first worker "
            f"({plan.get('planned_by')}); this worker has {asks}. Give every worker the same "
            f"code and input, or, to split the job again, forget it first: {reset}"
        )
    saved = plan.get("input")
    drift = describe_drift(saved if isinstance(saved, dict) else {}, fingerprint)
    if not drift:
        return
    details = "\n".join(f"    {line}" for line in drift)
    if job.on_drift == "continue":
        say(
            f"the input of job {job.key!r} changed since it was split into partitions:\n"
            f"{details}\ngoing on with the recorded partitions, as on_drift='continue' asks",
            quiet=job.quiet,
        )
        return
    raise InputDrift(
        f"the input of job {job.key!r} changed since it was split into partitions:\n"
        f"{details}\nIts partitions would no longer cut the input where the other workers "
        "do, so midway refuses. Restore the original input, or pass on_drift='continue' to "
        f"go on with the recorded partitions anyway, or start the job over: {reset}",
        saved=saved if isinstance(saved, dict) else {},
        current=fingerprint,
    )


def run_distributed(
    job: Job,
    source: Source,
    handler: Callable[[Any, Any], Any],
    state: dict[str, Any] | None,
) -> RunResult:
    started = time.monotonic()
    store = open_store(job.store_url, durable=job.durable)
    try:
        plan = settle_plan(store, job, source)
        parts_plan = plan["parts"]
        assert isinstance(parts_plan, list)
        count = len(parts_plan)
        partition: Callable[[JSONValue, int], Source] = source.partition  # type: ignore[attr-defined]
        parts = [partition(part, i) for i, part in enumerate(parts_plan)]
        jobs = [job.partition_job(i, count) for i in range(count)]
        index = {part.key: i for i, part in enumerate(jobs)}
        order = list(range(count))
        random.Random(os.getpid()).shuffle(order)  # workers start on different partitions
        owner = Owner.current()
        handled = 0
        keys = [part.key for part in jobs]
        while True:
            completed = store.completed_among(keys)  # completed partitions stay completed
            pending = [i for i in order if keys[i] not in completed]
            if not pending:
                break
            lease = store.claim_lease([jobs[i].id for i in pending], owner, job.lease_ttl)
            if lease is None:
                # Others hold every one: look again soon, to take over a partition whose
                # worker dies, and to return as soon as the last one completes.
                time.sleep(min(POLL_SECONDS, job.lease_ttl / 3))
                continue
            i = index[lease.job]
            engine = Engine(jobs[i], parts[i], state, lease=lease, store=store)
            try:
                engine.start()
                result = engine.run_handler(handler)
            except PartitionDone:
                continue  # another worker completed it before this one took it
            except LeaseLost as lost:
                say(f"{lost}; going on with the other partitions", quiet=job.quiet)
                continue
            handled += result.processed_this_run
        records = [store.get_job(key) for key in keys]
        return _whole(job, records, handled, time.monotonic() - started, split_state(state)[1])
    finally:
        store.close()


def _whole(
    job: Job,
    records: list[JobRecord | None],
    handled: int,
    elapsed: float,
    reducers: Reducers,
) -> RunResult:
    counters = Counters()
    states: list[dict[str, Any]] = []
    for record in records:
        summary = (record.summary if record is not None else None) or {}
        part = Counters.from_dict(summary.get("counters") or {})
        for name in ("succeeded", "failed", "skipped", "in_doubt"):
            setattr(counters, name, getattr(counters, name) + getattr(part, name))
        part_state = summary.get("state")
        if isinstance(part_state, dict):
            states.append(part_state)
    state = merge_partitions(states, reducers, job.merge or merge_state)
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
