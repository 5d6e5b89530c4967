"""The plan of a distributed run: how the input is cut into partitions, recorded once.

The source splits itself into partitions (``Job(partitions=N)``; ``sources.shards`` has one per
shard): index ranges of a sequence, byte ranges of a file cut where records begin, key ranges
of a table, ranges of file names, or the shards. What a source must offer for that is
:class:`midway.sources.base.Splittable` (and :class:`~midway.sources.base.Sharded` for one
partition per shard). The first worker works the split out and records it in the store (the
*plan*); every later worker reads that plan, so all of them cut the input at the same places
even if the input would be cut elsewhere now (a table that grew). A worker whose input no
longer matches the plan's fingerprint, or that asks for another number of partitions, is
refused. The loop each worker runs over the partitions is :mod:`midway.distributed.worker`.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any, Protocol

from midway._model.checkpoint import describe_drift
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.owner import Owner
from midway.console import say
from midway.errors import ConfigError, InputDrift, RefusedError
from midway.sources.base import Sharded, Source, Splittable
from midway.stores import Store


class DistributedJob(Protocol):
    """What a distributed run reads of the job (a :class:`midway.Job` has it): the plan its
    key, ``partitions``, ``on_drift`` and ``quiet``; the worker loop the rest."""

    id: JobId
    store_url: str
    partitions: int
    quiet: bool
    progress: bool | None
    durable: bool
    lease_ttl: float
    merge: Callable[[dict[str, Any], dict[str, Any]], Any] | None

    @property
    def key(self) -> str: ...
    @property
    def on_drift(self) -> str: ...


def settle_plan(store: Store, job: DistributedJob, source: Source) -> dict[str, JSONValue]:
    """The job's plan as recorded in the store (recording this worker's if it is the
    first), checked against this worker's input and ``partitions=``."""
    if not isinstance(source, Splittable):
        raise ConfigError(
            f"{source.describe()} cannot be split into partitions; distributed runs need a "
            "source that can: a list, tuple or range, sources.csv / jsonl / lines, "
            "sources.sql, sources.files or sources.shards"
        )
    if isinstance(source, Sharded):
        count = source.shard_count()
        asks = f"{count} shards"
    else:
        count = job.partitions
        asks = f"partitions={count}"
        if count < 2:
            raise ConfigError(
                "a distributed run shares the job's partitions among workers: give "
                "Job(..., partitions=N) with N of 2 or more (a few per worker)"
            )
    fingerprint = source.fingerprint()
    plan = store.load_plan(job.key)
    if plan is None:
        parts = source.plan_parts(count)
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
    _check_plan(job, plan, count, fingerprint, asks)
    return plan


def planned_partitions(
    store: Store, job: DistributedJob, source: Source
) -> tuple[list[Source], list[JobId]]:
    """The job's partitions by its recorded plan: each one's source, and its key."""
    plan = settle_plan(store, job, source)
    assert isinstance(source, Splittable)  # settle_plan refuses any other
    parts_plan = plan["parts"]
    assert isinstance(parts_plan, list)
    count = len(parts_plan)
    parts = [source.partition(part, i) for i, part in enumerate(parts_plan)]
    return parts, [job.id.partition(i, count) for i in range(count)]


def _check_plan(
    job: DistributedJob,
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
