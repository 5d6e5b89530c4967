"""The read models every screen shows: a job's status row, its detail, its handoff report.

``midway status`` / ``show`` / ``report`` (tables and ``--json``), the dashboard's pages and
its ``/api`` all read a job through these, never through the store's records.

The three read models are frozen dataclasses, each extending the one before (a detail is a
status row plus the ledger, runs, notes and lease; a report is a detail plus errors and
throughput): a screen reads ``row.status`` that mypy checks and cannot change a view another
screen shows, and the questions every screen asks (how much is left, how many partitions are
done) are answered once, here. ``to_json`` is the JSON contract (``--json``, ``/api``): the
fields in their declared order, which is the order of the keys. The rows inside a detail
(items, runs, notes, the lease) stay JSON objects, typed as ``TypedDict``: each is exactly the
store record's ``to_json()``, printed as it is.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self, TypedDict

from midway._model.jsonutil import JSONValue
from midway._model.result import FINISHED_OK


class ItemView(TypedDict):
    """An item needing attention (``ItemRecord.to_json``)."""

    key: JSONValue
    status: str
    error: str | None
    attempts: int
    position: JSONValue
    updated_at: str | None


class RunView(TypedDict):
    """One run of a job (``RunRecord.to_json``), its command without a password."""

    run_id: str
    status: str
    host: str
    pid: int
    started_at: str | None
    ended_at: str | None
    resumed_from: dict[str, JSONValue] | None
    start_processed: int
    processed: int | None
    message: str | None
    command: str | None


class NoteView(TypedDict):
    """An operator's note (``Note.to_json``)."""

    at: str | None
    author: str
    text: str


class LeaseView(TypedDict):
    """The job's lease as recorded (``LeaseInfo.to_json``)."""

    token: int
    owner: str | None
    host: str | None
    pid: int | None
    since: str | None
    expires_at: str | None
    live: bool


class ErrorCount(TypedDict):
    """One kind of error, how many items had it, and a few of their keys."""

    error: str
    count: int
    example_keys: list[JSONValue]
    example: str


class ThroughputPoint(TypedDict):
    """Items per second since the history point before (``at``: seconds since the epoch)."""

    at: float
    processed: int
    rate: float


@dataclass(frozen=True, kw_only=True, slots=True)
class StatusRow:
    """One job as ``midway status --json`` shows it; for a distributed job as a whole, also
    ``partitions`` (how many in each state, and ``planned``) and ``workers``."""

    job: str
    name: str
    params: dict[str, JSONValue]
    status: str
    processed: int
    succeeded: int
    failed: int
    skipped: int
    in_doubt: int
    total: int | None
    position: JSONValue
    state: Any
    checkpoint: int | None
    updated_at: str | None
    checkpoint_age_seconds: float | None
    rate_per_second: float | None
    eta_seconds: float | None
    owner: str | None
    lease_expires_in_seconds: float | None
    partition_of: str | None
    partitions: dict[str, int] | None = None
    workers: list[str] | None = None
    waiting: int = 0
    """Items waiting for a person's decision (``ctx.approval``)."""

    @property
    def remaining(self) -> int | None:
        """Items left to process, when the total is known."""
        return None if not self.total else max(self.total - self.processed, 0)

    @property
    def partitions_done(self) -> int:
        """How many partitions of a distributed job have completed (0 for any other job)."""
        counts = self.partitions or {}
        return sum(counts.get(status, 0) for status in FINISHED_OK)

    def to_json(self) -> dict[str, Any]:
        """The JSON object (the fields in order; ``partitions`` and ``workers`` only for a
        distributed job as a whole)."""
        data = dataclasses.asdict(self)
        if self.partitions is None:
            del data["partitions"], data["workers"]
        return data

    @classmethod
    def extending(cls, view: StatusRow, **more: Any) -> Self:
        """A larger view of the same job: ``view``'s fields and ``more``."""
        return cls(**{f.name: getattr(view, f.name) for f in dataclasses.fields(view)}, **more)


@dataclass(frozen=True, kw_only=True, slots=True)
class JobDetail(StatusRow):
    """One job as ``midway show --json`` shows it: its status row plus the items needing
    attention, the last runs, the command that resumes it, the notes and the lease."""

    fingerprint: dict[str, JSONValue] | None
    items: list[ItemView]
    runs: list[RunView]
    resume_command: str | None
    resume_note: str | None
    notes: list[NoteView]
    lease: LeaseView | None
    created_at: str | None
    waiting_items: list[dict[str, JSONValue]] = dataclasses.field(default_factory=list)
    """The items waiting for a decision (or decided, not yet handed back), with their
    questions (``midway.views.waiting``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Report(JobDetail):
    """The handoff document's content (``midway report --format json``): the detail plus
    the most common errors, the in-doubt items, the throughput over time."""

    errors: list[ErrorCount]
    in_doubt_items: list[ItemView]
    throughput: list[ThroughputPoint]
    generated_at: str | None
    parts: list[StatusRow] = dataclasses.field(default_factory=list)
    """A distributed job's partitions, in order (empty for any other job)."""
