"""Read-side views of the store for people: the objects behind ``status`` and ``show``."""

from __future__ import annotations

import time
from typing import Any

from midway.errors import JobNotFound
from midway.jsonutil import JSONValue
from midway.ledger import ATTENTION
from midway.owner import iso
from midway.stores import JobRecord, Store

LEDGER_STATUSES = ATTENTION


def resolve(store: Store, name: str) -> JobRecord:
    """A job by its key, or by its name when only one set of params uses that name."""
    record = store.get_job(name)
    if record is not None:
        return record
    matches = [r for r in store.list_jobs() if r.name == name]
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


def job_summary(store: Store, record: JobRecord, now: float | None = None) -> dict[str, Any]:
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
    processed = sum(int(counters.get(k, 0)) for k in ("succeeded", "failed", "skipped", "in_doubt"))
    status = record.effective_status
    rate = eta = None
    if cp is not None:
        runs = store.list_runs(record.job, limit=1)
        if runs:
            run = runs[0]
            elapsed = cp.updated_at - run.started_at
            done = cp.counters.processed - run.start_processed
            if elapsed > 0 and done > 0:
                rate = done / elapsed
                if total is not None and status == "running":
                    eta = max(0, total - processed) / rate
    lease = record.lease
    return {
        "job": record.job,
        "name": record.name,
        "params": record.params,
        "status": status,
        "processed": processed,
        "succeeded": int(counters.get("succeeded", 0)),
        "failed": int(counters.get("failed", 0)),
        "skipped": int(counters.get("skipped", 0)),
        "in_doubt": int(counters.get("in_doubt", 0)),
        "total": total,
        "position": position,
        "state": state,
        "checkpoint": None if cp is None else cp.version,
        "updated_at": iso(updated_at),
        "checkpoint_age_seconds": None if cp is None else round(now - cp.updated_at, 3),
        "rate_per_second": None if rate is None else round(rate, 3),
        "eta_seconds": None if eta is None else round(eta, 1),
        "owner": lease.owner.label if lease and lease.owner and lease.is_live(now) else None,
    }


def job_detail(store: Store, record: JobRecord) -> dict[str, Any]:
    """One job as ``midway show --json`` shows it: the summary plus ledger, runs, lease."""
    detail = job_summary(store, record)
    detail["fingerprint"] = record.checkpoint.fingerprint if record.checkpoint else None
    detail["items"] = [item.to_json() for item in store.list_items(record.job, LEDGER_STATUSES)]
    detail["runs"] = [run.to_json() for run in store.list_runs(record.job, limit=20)]
    detail["notes"] = [note.to_json() for note in store.list_notes(record.job)]
    detail["lease"] = record.lease.to_json() if record.lease else None
    detail["created_at"] = iso(record.created_at)
    return detail
