"""A job as a person names it: one job, or a distributed job read as one.

Each partition of a distributed job is a job of its own in the store (``spread~p1of3``,
with its own checkpoint, ledger, lease and runs), and its plan is kept under the whole job's
key (:mod:`midway.distributed.plan`). :func:`find` turns the name a person gives (``spread``)
into a :class:`Target`: the job's own record, or the whole job's key with its plan and the
partitions that have started so far. Every screen and the Python API act on a target, so
``show``, ``report``, ``retry`` and ``resolve`` of a distributed job reach every partition.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import cast

from midway._model.checkpoint import COUNTER_NAMES, Counters
from midway._model.identity import partition_key, partition_of
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord
from midway._model.owner import iso
from midway._model.redaction import resume_note
from midway.errors import JobNotFound
from midway.stores import JobRecord, Store
from midway.stores.base import HistoryPoint, Note, RunRecord
from midway.views.models import ItemView, JobDetail, NoteView, StatusRow
from midway.views.overview import (
    LEDGER_STATUSES,
    distributed_summary,
    job_detail,
    job_summary,
    resolve,
    run_views,
)


@dataclass(frozen=True)
class Target:
    """What a name stands for: ``record`` for one job; for a distributed job its key, its
    plan (None before the first worker recorded one) and its partitions' records so far."""

    key: str
    record: JobRecord | None = None
    plan: dict[str, JSONValue] | None = None
    parts: list[JobRecord] = field(default_factory=list)

    @property
    def distributed(self) -> bool:
        return self.record is None

    @property
    def keys(self) -> list[str]:
        """The keys whose ledgers, runs and notes make up the job (a distributed job's own
        key holds its notes)."""
        return [self.key] if self.record is not None else [self.key, *self.part_keys]

    @property
    def part_keys(self) -> list[str]:
        return [part.job for part in self.parts]

    @property
    def planned(self) -> int:
        parts = (self.plan or {}).get("parts")
        return len(parts) if isinstance(parts, list) else len(self.parts)


def find(store: Store, name: str) -> Target:
    """The job named ``name`` (its key, or its name when one set of params uses it),
    distributed or not; :class:`JobNotFound` when the store has none, or several."""
    record = store.get_job(name)
    if record is not None and partition_of(record.job) is None and not _has_plan(store, name):
        return Target(record.job, record)
    records = store.list_jobs()
    bases = {
        base
        for r in records
        if (base := partition_of(r.job)) is not None and name in (base, r.name)
    }
    if len(bases) > 1:
        raise JobNotFound(
            f"{len(bases)} distributed jobs are named {name!r} (different params): "
            f"{', '.join(sorted(bases))}; name one of them by its key"
        )
    base = bases.pop() if bases else (name if _has_plan(store, name) else None)
    if base is None:
        found = resolve(store, name)
        return Target(found.job, found)
    parts = sorted((r for r in records if partition_of(r.job) == base), key=lambda r: r.job)
    return Target(base, None, store.load_plan(base), parts)


def every_job(store: Store) -> list[Target]:
    """Every job in the store, in the store's order, a distributed job as one target
    where its first partition stands (one listing of the store, and a plan per
    distributed job)."""
    order: list[str] = []
    plain: dict[str, JobRecord] = {}
    parts: dict[str, list[JobRecord]] = {}
    for record in store.list_jobs():
        base = partition_of(record.job)
        key = record.job if base is None else base
        if key not in plain and key not in parts:
            order.append(key)
        if base is None:
            plain[key] = record
        else:
            parts.setdefault(base, []).append(record)
    return [
        Target(key, None, store.load_plan(key), sorted(parts[key], key=lambda r: r.job))
        if key in parts
        else Target(key, plain[key])
        for key in order
    ]


def _has_plan(store: Store, key: str) -> bool:
    return store.load_plan(key) is not None


def part_rows(store: Store, target: Target, now: float) -> list[StatusRow]:
    """A status row for every planned partition, in order: one not started yet is
    ``waiting``, with nothing done."""
    started = {part.job: job_summary(store, part, now) for part in target.parts}
    planned = target.planned
    keys = [partition_key(target.key, i, planned) for i in range(planned)]
    keys += [key for key in started if key not in keys]  # a stray partition still shows
    return [started.get(key) or _waiting(key, target) for key in keys]


def _waiting(key: str, target: Target) -> StatusRow:
    first = target.parts[0] if target.parts else None
    return StatusRow(
        job=key,
        name=first.name if first else target.key.partition("@")[0],
        params=first.params if first else {},
        status="waiting",
        processed=0,
        succeeded=0,
        failed=0,
        skipped=0,
        in_doubt=0,
        total=None,
        position=None,
        state=None,
        checkpoint=None,
        updated_at=None,
        checkpoint_age_seconds=None,
        rate_per_second=None,
        eta_seconds=None,
        owner=None,
        lease_expires_in_seconds=None,
        partition_of=target.key,
    )


def target_row(store: Store, target: Target, now: float | None = None) -> StatusRow:
    """The job's status row: for a distributed job, its partitions' summed."""
    now = time.time() if now is None else now
    if target.record is not None:
        return job_summary(store, target.record, now)
    started = [job_summary(store, part, now) for part in target.parts]
    if not started:
        return _waiting(target.key, target)
    return distributed_summary(store, target.key, started)


def items_of(store: Store, target: Target, statuses: tuple[str, ...]) -> list[ItemRecord]:
    """The ledger records of the job (of every partition) with these statuses."""
    return [item for key in target.keys for item in store.list_items(key, statuses)]


def runs_of(store: Store, target: Target, limit: int = 20) -> list[RunRecord]:
    """The job's last runs, newest first (of every partition)."""
    runs = [run for key in target.keys for run in store.list_runs(key, limit=limit)]
    return sorted(runs, key=lambda run: run.started_at, reverse=True)[:limit]


def notes_of(store: Store, target: Target) -> list[Note]:
    """The notes left on the job (on a distributed job or any of its partitions), oldest
    first."""
    return sorted((n for key in target.keys for n in store.list_notes(key)), key=lambda n: n.at)


def history_of(store: Store, target: Target) -> list[HistoryPoint]:
    """The job's progress over time. For a distributed job, one point at each partition's
    sample, its counters the sum of every partition's latest (read as one run)."""
    if target.record is not None:
        return store.list_history(target.key)
    samples = sorted(
        ((point, key) for key in target.part_keys for point in store.list_history(key)),
        key=lambda sample: sample[0].at,
    )
    latest: dict[str, HistoryPoint] = {}
    whole: list[HistoryPoint] = []
    for point, key in samples:
        latest[key] = point
        counters = sum_counters([p.counters for p in latest.values()])
        whole.append(HistoryPoint(point.at, target.key, len(whole) + 1, counters))
    return whole


def sum_counters(parts: list[Counters]) -> Counters:
    return Counters.from_dict(
        {name: sum(getattr(part, name) for part in parts) for name in COUNTER_NAMES}
    )


def detail(store: Store, target: Target, now: float | None = None) -> JobDetail:
    """The job as ``midway show`` shows it; a distributed job with every partition's items
    needing attention, runs and notes."""
    if target.record is not None:
        return job_detail(store, target.record)
    runs, command = run_views(runs_of(store, target))
    created = [part.created_at for part in target.parts]
    return JobDetail.extending(
        target_row(store, target, now),
        fingerprint=None,
        items=[cast(ItemView, i.to_json()) for i in items_of(store, target, LEDGER_STATUSES)],
        runs=runs,
        resume_command=command,
        resume_note=resume_note(command),
        notes=[cast(NoteView, note.to_json()) for note in notes_of(store, target)],
        lease=None,
        created_at=iso(min(created)) if created else None,
    )
