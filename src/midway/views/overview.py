"""Read-side views of the store for people: the status rows and job details that
``status``, ``show`` and the dashboard show (:mod:`midway.views.models`)."""

from __future__ import annotations

import time
from typing import Any, cast

from midway._model.checkpoint import COUNTER_NAMES
from midway._model.identity import partition_of
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ATTENTION
from midway._model.owner import iso
from midway._model.redaction import redact_text, resume_note
from midway._model.result import FINISHED_OK, RunStatus
from midway.errors import JobNotFound
from midway.stores import JobRecord, Store
from midway.stores.base import RunRecord
from midway.views.models import ItemView, JobDetail, LeaseView, NoteView, RunView, StatusRow
from midway.views.waiting import waiting_items

LEDGER_STATUSES = ATTENTION


def resolve(store: Store, name: str) -> JobRecord:
    """A job by its key, or by its name when only one set of params uses that name (a
    distributed job's name: :func:`midway.views.whole.find`)."""
    record = store.get_job(name)
    if record is not None:
        return record
    matches = [r for r in store.list_jobs() if r.name == name and partition_of(r.job) is None]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise JobNotFound(
            f"no job {name!r} in store {store.url}; `midway status` lists the jobs it holds"
        )
    keys = ", ".join(r.job for r in matches)
    raise JobNotFound(
        f"{len(matches)} jobs are named {name!r} (different params): {keys}; "
        "name one of them by its key"
    )


def job_summary(store: Store, record: JobRecord, now: float | None = None) -> StatusRow:
    """One job as ``midway status --json`` shows it."""
    now = time.time() if now is None else now
    cp = record.checkpoint
    summary = record.summary or {}
    if cp is not None:
        counters: dict[str, Any] = cp.counters.as_dict()
        state: Any = cp.state
        position: JSONValue = cp.position
        updated_at: float | None = cp.updated_at
        total = cp.total
    else:
        counters = dict(summary.get("counters") or {})
        state = summary.get("state")
        position = None
        updated_at = record.updated_at
        total = summary.get("total") if isinstance(summary.get("total"), int) else None
    processed = sum(int(counters.get(k, 0)) for k in COUNTER_NAMES)
    status = record.effective_status
    if cp is None and total is None and status in FINISHED_OK:
        total = processed  # it read its whole input: a source of unknown size has its size now
    rate = eta = None
    if cp is not None:
        runs = store.list_runs(record.job, limit=1)
        if runs:
            run = runs[0]
            elapsed = cp.updated_at - run.started_at
            done = cp.counters.processed - run.start_processed
            if elapsed > 0 and done > 0:
                rate = done / elapsed
                if total is not None and status == RunStatus.RUNNING:
                    eta = max(0, total - processed) / rate
    lease = record.lease
    expires_in = None
    if lease is not None and lease.owner is not None:
        expires_in = round(lease.expires_at - now, 1)
    return StatusRow(
        job=record.job,
        name=record.name,
        params=record.params,
        status=status,
        processed=processed,
        succeeded=int(counters.get("succeeded", 0)),
        failed=int(counters.get("failed", 0)),
        skipped=int(counters.get("skipped", 0)),
        in_doubt=int(counters.get("in_doubt", 0)),
        waiting=int(counters.get("waiting", 0)),
        total=total,
        position=position,
        state=state,
        checkpoint=None if cp is None else cp.version,
        updated_at=iso(updated_at),
        checkpoint_age_seconds=None if cp is None else round(now - cp.updated_at, 3),
        rate_per_second=None if rate is None else round(rate, 3),
        eta_seconds=None if eta is None else round(eta, 1),
        owner=lease.owner.label if lease and lease.owner and lease.is_live(now) else None,
        lease_expires_in_seconds=expires_in,
        partition_of=partition_of(record.job),
    )


def status_rows(store: Store, now: float | None = None) -> list[StatusRow]:
    """``midway status --json``: every job; a distributed job as one row for the whole job
    (``partitions``, ``workers``) followed by a row for each of its partitions."""
    now = time.time() if now is None else now
    order: list[StatusRow | str] = []  # a job's row, or where a distributed job goes
    groups: dict[str, list[StatusRow]] = {}
    for record in store.list_jobs():
        row = job_summary(store, record, now)
        base = row.partition_of
        if base is None:
            order.append(row)
        else:
            if base not in groups:
                order.append(base)
            groups.setdefault(base, []).append(row)
    out: list[StatusRow] = []
    for entry in order:
        if isinstance(entry, str):
            parts = sorted(groups[entry], key=lambda r: r.job)
            out.append(distributed_summary(store, entry, parts))
            out.extend(parts)
        else:
            out.append(entry)
    return out


RANK = (RunStatus.FAILED, RunStatus.CRASHED, RunStatus.STOPPED)


def distributed_summary(store: Store, job: str, parts: list[StatusRow]) -> StatusRow:
    """A distributed job as a whole: its partitions' counters added up, how many are in
    each state, and the workers holding them now."""
    plan = store.load_plan(job)
    planned = len(plan["parts"]) if plan and isinstance(plan["parts"], list) else len(parts)
    counts: dict[str, int] = {}
    for part in parts:
        counts[part.status] = counts.get(part.status, 0) + 1
    counts["waiting"] = max(0, planned - len(parts))
    status: str
    if counts.get(RunStatus.RUNNING):
        status = RunStatus.RUNNING
    elif sum(counts.get(s, 0) for s in FINISHED_OK) == planned:
        status = (
            RunStatus.COMPLETED_WITH_FAILURES
            if counts.get(RunStatus.COMPLETED_WITH_FAILURES)
            else RunStatus.COMPLETED
        )
    else:
        status = next((s for s in RANK if counts.get(s)), RunStatus.STOPPED)
    totals = [p.total for p in parts]
    total = (
        sum(t for t in totals if t is not None)
        if len(parts) == planned and None not in totals
        else None
    )
    rates = [p.rate_per_second for p in parts if p.status == RunStatus.RUNNING]
    rate = sum(r for r in rates if r) or None
    processed = sum(p.processed for p in parts)
    eta = None
    if rate and total is not None and status == RunStatus.RUNNING:
        eta = round(max(0, total - processed) / rate, 1)
    ages = [p.checkpoint_age_seconds for p in parts if p.checkpoint_age_seconds is not None]
    updated = [p.updated_at for p in parts if p.updated_at]
    return StatusRow(
        job=job,
        name=parts[0].name,
        params=parts[0].params,
        status=status,
        processed=processed,
        succeeded=sum(p.succeeded for p in parts),
        failed=sum(p.failed for p in parts),
        skipped=sum(p.skipped for p in parts),
        in_doubt=sum(p.in_doubt for p in parts),
        total=total,
        position=None,
        state=None,
        checkpoint=None,
        updated_at=max(updated) if updated else None,
        checkpoint_age_seconds=min(ages) if ages else None,
        rate_per_second=None if rate is None else round(rate, 3),
        eta_seconds=eta,
        owner=None,
        lease_expires_in_seconds=None,
        partition_of=None,
        partitions={"planned": planned, **dict(sorted(counts.items()))},
        workers=sorted({p.owner for p in parts if p.owner}),
    )


def job_detail(store: Store, record: JobRecord) -> JobDetail:
    """One job as ``midway show --json`` shows it: the summary plus ledger, runs, lease.

    The store records' ``to_json()`` are the shapes of :mod:`midway.views.models`' rows."""
    runs, command = run_views(store.list_runs(record.job, limit=20))
    items = store.list_items(record.job, LEDGER_STATUSES)
    return JobDetail.extending(
        job_summary(store, record),
        fingerprint=record.checkpoint.fingerprint if record.checkpoint else None,
        items=[cast(ItemView, item.to_json()) for item in items],
        runs=runs,
        resume_command=command,
        resume_note=resume_note(command),
        notes=[cast(NoteView, note.to_json()) for note in store.list_notes(record.job)],
        lease=cast(LeaseView, record.lease.to_json()) if record.lease else None,
        created_at=iso(record.created_at),
        waiting_items=waiting_items(store, record.job),
    )


def run_views(records: list[RunRecord]) -> tuple[list[RunView], str | None]:
    """The runs as shown, without passwords in their commands (kept without one since it
    is; older records too), and the last command recorded: the one that resumes the job."""
    runs = [cast(RunView, run.to_json()) for run in records]
    for run in runs:
        if run["command"]:
            run["command"] = redact_text(run["command"])
    return runs, next((run["command"] for run in runs if run["command"]), None)
