"""What the Python API hands back: a job's status, as frozen dataclasses.

Built from the read models of :mod:`midway.views` (a status row, the store's records),
with times as aware ``datetime`` objects in UTC. ``to_json()`` is what ``--json`` prints
and the dashboard's ``/api`` serves: the fields in order, times as ISO 8601 text, plus a
few keys scripts written against earlier versions read (``position``, ``state``,
``updated_at``, ``rate_per_second``, ``checkpoint_age_seconds``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from midway._model.identity import partition_of
from midway._model.jsonutil import JSONValue


def _when(value: datetime | None) -> str | None:
    """A time as ``--json`` has always printed it: ``2026-01-02T03:04:05Z``."""
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return _when(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


class _Shown:
    """``to_json()`` of a frozen dataclass: its fields in order, times as text."""

    __slots__ = ()

    def to_json(self) -> dict[str, Any]:
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}  # type: ignore[arg-type]


@dataclass(frozen=True, kw_only=True, slots=True)
class CheckpointInfo(_Shown):
    """The checkpoint a job resumes from: its ``version`` (1, 2, ... per write), the
    source's ``position`` there, and when it was ``saved_at``."""

    version: int
    position: JSONValue
    saved_at: datetime | None


@dataclass(frozen=True, kw_only=True, slots=True)
class RunInfo(_Shown):
    """One run of a job (newest first in :attr:`JobStatus.runs`); ``job`` names the
    partition it ran for a distributed job. ``command`` is shown without passwords."""

    job: str
    run_id: str
    status: str
    host: str
    pid: int
    started_at: datetime | None
    ended_at: datetime | None
    start_processed: int
    processed: int | None
    message: str | None
    command: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class NoteInfo(_Shown):
    """A note a person left on the job (``job.note(...)``, ``midway note``)."""

    at: datetime | None
    author: str
    text: str


@dataclass(frozen=True, kw_only=True, slots=True)
class _Standing(_Shown):
    """What a job and a partition both say: its key, status and counters."""

    job: str
    status: str
    total: int | None
    processed: int
    succeeded: int
    failed: int
    skipped: int
    in_doubt: int
    waiting: int
    """Items waiting for a person's decision (``ctx.approval``; ``job.approve`` decides)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class PartitionStatus(_Standing):
    """One partition of a distributed job: ``waiting`` until a worker first claims it,
    then as any job (``owner``: the worker holding it now; ``lease_expires_in_seconds``:
    when another may take it over unless that worker's heartbeat renews it)."""

    index: int
    checkpoint: CheckpointInfo | None
    owner: str | None
    lease_expires_in_seconds: float | None


@dataclass(frozen=True, kw_only=True, slots=True)
class JobStatus(_Standing):
    """Where a job stands, as ``midway.jobs()`` and ``job.status()`` return it.

    ``status``: ``running``, ``completed``, ``completed_with_failures``, ``stopped``,
    ``failed`` or ``crashed`` (its runner died without a word). ``remaining`` and
    ``eta_seconds`` need the source's ``total``; ``rate`` is items per second in the last
    run. ``checkpoint`` is None once the job completed (the next run starts fresh).
    ``runs`` are the last runs, newest first; ``notes`` oldest first. For a distributed job
    the counters are its partitions' added up, and ``partitions`` lists each one (None for
    any other job); ``workers`` are the processes holding partitions now.

    Example::

        status = job.status()          # or: for status in midway.jobs(): ...
        print(status.status, f"{status.processed:,} of {status.total or '?'}")
        if status.eta_seconds is not None:
            print(f"done in about {status.eta_seconds / 60:.0f} min at {status.rate:.0f}/s")
        for part in status.partitions or ():      # a distributed job
            print(part.index, part.status, part.processed, part.owner)
    """

    name: str
    params: dict[str, JSONValue]
    remaining: int | None
    rate: float | None
    eta_seconds: float | None
    checkpoint: CheckpointInfo | None
    owner: str | None
    runs: tuple[RunInfo, ...]
    notes: tuple[NoteInfo, ...]
    partitions: tuple[PartitionStatus, ...] | None
    workers: tuple[str, ...]
    state: Any
    updated_at: datetime | None
    checkpoint_age_seconds: float | None
    lease_expires_in_seconds: float | None

    @property
    def distributed(self) -> bool:
        return self.partitions is not None

    @property
    def partitions_done(self) -> int:
        """How many partitions completed (0 for a job that is not distributed)."""
        done = ("completed", "completed_with_failures")
        return sum(part.status in done for part in self.partitions or ())

    def to_json(self) -> dict[str, Any]:
        """The JSON object (``--json``, ``/api``); ``partitions`` and ``workers`` only for
        a distributed job."""
        data = super(JobStatus, self).to_json()
        if self.partitions is None:
            del data["partitions"], data["workers"]
        data["position"] = None if self.checkpoint is None else self.checkpoint.position
        data["rate_per_second"] = self.rate
        data["partition_of"] = partition_of(self.job)
        return data
