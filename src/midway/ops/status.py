"""A job's :class:`~midway.ops.models.JobStatus`, read from the store through the views."""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from midway._model.ledger import aware
from midway._model.redaction import redact_text
from midway.ops.models import CheckpointInfo, JobStatus, NoteInfo, PartitionStatus, RunInfo
from midway.stores import JobRecord, Store
from midway.stores.base import Note, RunRecord
from midway.views import whole
from midway.views.models import JobDetail, StatusRow


def all_statuses(store: Store, now: float | None = None) -> list[JobStatus]:
    """Every job in the store, a distributed job as one entry (its partitions inside)."""
    now = time.time() if now is None else now
    return [status_of(store, target, now) for target in whole.every_job(store)]


def status_of(store: Store, target: whole.Target, now: float | None = None) -> JobStatus:
    """Where the job stands (a distributed job: its partitions summed, and each one)."""
    now = time.time() if now is None else now
    row = whole.target_row(store, target, now)
    partitions = None
    if target.distributed:
        records = {part.job: part for part in target.parts}
        partitions = tuple(
            _partition(i, part, records.get(part.job))
            for i, part in enumerate(whole.part_rows(store, target, now))
        )
    return JobStatus(
        **_standing(row),
        name=row.name,
        params=row.params,
        remaining=row.remaining,
        rate=row.rate_per_second,
        eta_seconds=row.eta_seconds,
        checkpoint=_checkpoint(target.record),
        owner=row.owner,
        runs=tuple(run_info(run) for run in whole.runs_of(store, target)),
        notes=tuple(note_info(note) for note in whole.notes_of(store, target)),
        partitions=partitions,
        workers=tuple(row.workers or ()),
        state=row.state,
        updated_at=_updated(target),
        checkpoint_age_seconds=row.checkpoint_age_seconds,
        lease_expires_in_seconds=row.lease_expires_in_seconds,
    )


def _checkpoint(record: JobRecord | None) -> CheckpointInfo | None:
    cp = None if record is None else record.checkpoint
    if cp is None:
        return None
    return CheckpointInfo(version=cp.version, position=cp.position, saved_at=aware(cp.updated_at))


def _updated(target: whole.Target) -> datetime | None:
    """When the job (the latest of its partitions) last wrote anything."""
    records = [target.record] if target.record is not None else target.parts
    times = [r.checkpoint.updated_at if r.checkpoint else r.updated_at for r in records]
    return aware(max(times)) if times else None


STANDING = (
    "job",
    "status",
    "total",
    "processed",
    "succeeded",
    "failed",
    "skipped",
    "in_doubt",
    "waiting",
)


def _standing(row: StatusRow) -> dict[str, Any]:
    """Where a job (or a partition) stands, as a status row has it."""
    return {name: getattr(row, name) for name in STANDING}


def _partition(index: int, row: StatusRow, record: JobRecord | None) -> PartitionStatus:
    return PartitionStatus(
        **_standing(row),
        index=index,
        checkpoint=_checkpoint(record),
        owner=row.owner,
        lease_expires_in_seconds=row.lease_expires_in_seconds,
    )


def run_info(run: RunRecord) -> RunInfo:
    """A run as the API shows it: times as ``datetime``, its command without passwords."""
    shown = run.to_store()
    del shown["resumed_from"]
    command = shown["command"]
    shown.update(
        started_at=aware(run.started_at),
        ended_at=aware(run.ended_at),
        command=None if command is None else redact_text(command),
    )
    return RunInfo(**shown)


def note_info(note: Note) -> NoteInfo:
    return NoteInfo(at=aware(note.at), author=note.author, text=note.text)


def detail_json(state: JobStatus, detail: JobDetail) -> dict[str, Any]:
    """``show --json`` (and the dashboard's ``/api/jobs/<job>``): the job's status, with
    the items needing attention, the command that resumes it, its lease and input
    fingerprint."""
    return {
        **state.to_json(),
        "items": detail.items,
        "waiting_items": detail.waiting_items,
        "resume_command": detail.resume_command,
        "resume_note": detail.resume_note,
        "lease": detail.lease,
        "fingerprint": detail.fingerprint,
        "created_at": detail.created_at,
    }
