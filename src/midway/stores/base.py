"""The Store protocol and the records every backend reads and writes.

A store keeps checkpoints, the item ledger, leases and run history, apart from the data the
job processes. Every write that a runner makes carries its lease's fencing token: a runner
whose lease was taken over cannot write (``LeaseLost``).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from midway._model import jsonutil, ledger
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord
from midway._model.owner import Owner, describe_age, iso
from midway._model.result import FINISHED_OK, RunStatus, completed_status
from midway.errors import LeaseHeld, StoreCorrupt

LIVE = RunStatus.RUNNING
FINISHED = FINISHED_OK
"""The statuses of a job that completed (it keeps its summary, not a checkpoint)."""
NEW = "new"
"""The status of a job whose lease was taken and whose first run has not begun."""
CRASHED_MESSAGE = "the runner ended without a word: killed, crashed, or the machine went down"
"""What a run left ``running`` by a dead runner says (the SQL stores spell it in SQL too)."""
Summary = dict[str, JSONValue] | None
"""A job's last summary (the counters and state of its last finished run), if any."""


@dataclass(frozen=True)
class LeaseInfo:
    """A lease as recorded. ``owner`` is None once released."""

    job: str
    token: int
    owner: Owner | None
    since: float
    expires_at: float

    @classmethod
    def from_store(cls, job: str, record: Mapping[str, Any], where: str) -> LeaseInfo:
        fields = checked(record, LEASE_FIELDS, where)
        token, host, pid = fields["token"], fields["host"], fields["pid"]
        if not 0 <= token < 1 << 62 or (host and pid is None):  # the next token must fit
            raise StoreCorrupt(f"{where}: the lease is damaged ({dict(record)!r:.200})")
        owner = Owner(host, pid, fields["pid_started"]) if host else None
        return cls(job, token, owner, float(fields["since"]), float(fields["expires_at"]))

    def is_live(self, now: float | None = None) -> bool:
        if self.owner is None:
            return False
        if self.owner.is_dead_here():
            return False
        return self.expires_at > (time.time() if now is None else now)

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "token": self.token,
            "owner": self.owner.label if self.owner else None,
            "host": self.owner.host if self.owner else None,
            "pid": self.owner.pid if self.owner else None,
            "since": iso(self.since),
            "expires_at": iso(self.expires_at),
            "live": self.is_live(),
        }


@dataclass(frozen=True)
class Lease:
    """The lease this runner holds. ``took_over`` names the dead owner it replaced, if any."""

    job: str
    token: int
    owner: Owner
    ttl: float
    took_over: LeaseInfo | None = None


def lost_message(lease: Lease) -> str:
    """What a runner that lost its lease says (the same wherever it finds out)."""
    return (
        f"this runner (pid {lease.owner.pid}) lost its lease on job {lease.job!r}: another "
        "runner took it over (this one was paused or cut off for longer than the lease "
        "lasts). It stopped without writing; the other runner carries on from the last "
        "checkpoint."
    )


def check_lease_free(job: str, current: LeaseInfo | None, me: Owner, now: float) -> None:
    """Raise ``LeaseHeld`` when a live runner other than ``me`` owns the job."""
    if current is None or not current.is_live(now) or current.owner == me:
        return
    owner = current.owner
    assert owner is not None
    raise LeaseHeld(
        f"job {job!r} is already running: owned by pid {owner.pid} on {owner.host} "
        f"since {iso(current.since)} ({describe_age(now - current.since)}), lease renewed "
        f"until {iso(current.expires_at)}. Wait for it to finish, or stop it "
        f"(kill -TERM {owner.pid} on {owner.host}); a crashed runner's lease is taken over "
        "automatically once it expires.",
        owner=current.to_json(),
    )


def claim_in_turn(store: Store, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
    """``claim_lease`` for stores without a claim query: try each job's lease in turn."""
    completed = store.completed_among([job.key for job in jobs]) if jobs else set()
    for job in jobs:
        if job.key in completed:
            continue
        try:
            return store.acquire_lease(job, owner, ttl)
        except LeaseHeld:
            continue
    return None


def plan_from_text(text: Any, where: str) -> dict[str, JSONValue]:
    """A distributed job's plan read back: a JSON object with a list of ``parts``."""
    try:
        plan = jsonutil.loads(text) if isinstance(text, str) else None
    except ValueError:
        plan = None
    if not isinstance(plan, dict) or not isinstance(plan.get("parts"), list):
        raise StoreCorrupt(
            f"{where}: the record of how the job is split is damaged ({str(text)[:80]!r}). "
            "`midway reset` the job to split it again."
        )
    return plan


# What each field of a record read back from a store must hold ("?": or null). A value of
# another type was not written by midway: the store is damaged, and says so (StoreCorrupt)
# rather than failing later, somewhere else, with a TypeError.
RUN_FIELDS = {
    "run_id": "str",
    "job": "str",
    "status": "str",
    "host": "str",
    "pid": "int",
    "started_at": "number",
    "ended_at": "number?",
    "resumed_from": "dict?",
    "start_processed": "int",
    "processed": "int?",
    "message": "str?",
    "command": "str?",
}
JOB_FIELDS = {
    "job": "str",
    "name": "str",
    "params": "dict",
    "status": "str",
    "created_at": "number",
    "updated_at": "number",
    "summary": "dict?",
}
LEASE_FIELDS = {
    "token": "int",
    "host": "str?",
    "pid": "int?",
    "pid_started": "int?",
    "since": "number",
    "expires_at": "number",
}
HISTORY_FIELDS = {"at": "number", "run_id": "str", "version": "int"}


def _has_type(value: Any, kind: str) -> bool:
    if kind == "str":
        return isinstance(value, str)
    if kind == "dict":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if kind == "int":
        return isinstance(value, int)
    return math.isfinite(value)


def checked(record: Mapping[str, Any], fields: dict[str, str], where: str) -> dict[str, Any]:
    """``record``'s ``fields``, each of the type midway writes there, or ``StoreCorrupt``."""
    out = {}
    for name, kind in fields.items():
        value = record.get(name)
        if not (value is None and kind.endswith("?")) and not _has_type(value, kind.rstrip("?")):
            raise StoreCorrupt(
                f"{where}: field {name!r} holds {str(value)[:60]!r}, which midway never writes "
                "there: the store is damaged. Restore it from a backup, or `midway reset` "
                "the job."
            )
        out[name] = value
    return out


@dataclass
class RunRecord:
    run_id: str
    job: str
    status: str
    host: str
    pid: int
    started_at: float
    ended_at: float | None = None
    resumed_from: dict[str, JSONValue] | None = None
    start_processed: int = 0
    processed: int | None = None
    message: str | None = None
    command: str | None = None

    @classmethod
    def from_store(cls, record: Mapping[str, Any], where: str) -> RunRecord:
        return cls(**checked(record, RUN_FIELDS, where))

    def to_store(self) -> dict[str, Any]:
        """Every field, as the file store keeps a run (and the SQL stores' columns)."""
        return asdict(self)

    def to_json(self) -> dict[str, JSONValue]:
        data = self.to_store()
        del data["job"]
        data.update(started_at=iso(self.started_at), ended_at=iso(self.ended_at))
        return data


@dataclass(frozen=True)
class Note:
    """An operator's note on a job (``midway note``): who decided what, and why."""

    at: float
    author: str
    text: str

    def to_json(self) -> dict[str, JSONValue]:
        return {"at": iso(self.at), "author": self.author, "text": self.text}

    def to_store(self) -> dict[str, JSONValue]:
        return {"at": self.at, "author": self.author, "text": self.text}

    @classmethod
    def from_store(cls, row: Mapping[str, Any]) -> Note:
        """Lenient: a note is for people, and a damaged one still says something."""
        at: Any = row.get("at")
        when = float(at) if _has_type(at, "number") else 0.0
        return cls(when, str(row.get("author")), str(row.get("text")))


@dataclass(frozen=True)
class HistoryPoint:
    """A job's counters when a checkpoint was written (sampled), for throughput charts."""

    at: float
    run_id: str
    version: int
    counters: Counters

    @classmethod
    def from_store(cls, row: Mapping[str, Any], where: str) -> HistoryPoint | None:
        """None for a damaged point (or one torn by a crash): a chart does without it."""
        try:
            fields = checked(row, HISTORY_FIELDS, where)
            counters = Counters.from_dict(dict(row))
            return cls(fields["at"], fields["run_id"], fields["version"], counters)
        except StoreCorrupt:
            return None

    def to_json(self) -> dict[str, JSONValue]:
        return {
            "at": iso(self.at),
            "run_id": self.run_id,
            "version": self.version,
            "processed": self.counters.processed,
            **self.counters.as_dict(),
        }


@dataclass
class JobRecord:
    job: str
    name: str
    params: dict[str, JSONValue]
    status: str
    created_at: float
    updated_at: float
    summary: dict[str, JSONValue] | None = None
    checkpoint: Checkpoint | None = None
    lease: LeaseInfo | None = None
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def effective_status(self) -> str:
        """``running`` only while a live runner holds the lease; a dead one is ``crashed``."""
        if self.status == LIVE and not (self.lease and self.lease.is_live()):
            return RunStatus.CRASHED
        return self.status


ForRun = tuple[Checkpoint | None, list[ItemRecord], JobRecord | None]
"""``Store.load_for_run``: the checkpoint, the item ledger, the job's record."""


@dataclass(frozen=True)
class ItemChange:
    """What ``retry`` and ``resolve`` change in a job's item ledger (see
    :meth:`Store.change_items`)."""

    statuses: tuple[str, ...]
    keys: list[JSONValue] | None
    error_type: str | None
    to_status: str
    count_as: str | None = None

    def chooses(self, record: ItemRecord) -> bool:
        return record.status in self.statuses and ledger.matches(record, self.keys, self.error_type)


def moved_summary(summary: Any, chosen: list[ItemRecord], count_as: str) -> Summary:
    """A job's last summary with the counts of ``chosen`` moved to ``count_as`` (None
    when there is no summary to change). A job that reached its end takes the status its
    counters now give: people deciding its last in-doubt item complete it."""
    if not isinstance(summary, dict):
        return None
    counters = Counters.from_dict(summary.get("counters") or {}).moved(chosen, count_as)
    summary["counters"] = counters.as_dict()
    if summary.get("status") in FINISHED_OK:
        summary["status"] = completed_status(counters.failed, counters.in_doubt, counters.waiting)
    return summary


class Store(Protocol):
    """What the engine and the command line need from a backend. The stores subclass it
    (:meth:`change_items` is written once, here)."""

    url: str

    def acquire_lease(self, job: JobId, owner: Owner, ttl: float) -> Lease: ...

    def renew_lease(self, lease: Lease) -> bool: ...

    def release_lease(self, lease: Lease) -> None: ...

    def load_checkpoint(self, job: str) -> Checkpoint | None: ...

    def load_for_run(self, job: str) -> ForRun:
        """What a run opens with: the checkpoint, the whole item ledger and the job's
        record, in one round trip where the store can."""
        ...

    def begin_run(self, lease: Lease, run: RunRecord) -> None: ...

    def write_checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        """Write the checkpoint, apply ``checkpoint.ledger`` (upserts; status ``"-"``
        deletes) and, if ``checkpoint.sample``, a history point: one transaction, fenced by
        the lease. Inside an open :meth:`begin_transaction`, commit that transaction."""
        ...

    def write_items(self, lease: Lease, records: list[ItemRecord]) -> None:
        """Apply ledger records on their own, durably, fenced by the lease."""
        ...

    def change_items(
        self,
        job: str,
        me: Owner,
        *,
        statuses: tuple[str, ...],
        keys: list[JSONValue] | None,
        error_type: str | None,
        to_status: str,
        count_as: str | None = None,
    ) -> list[ItemRecord]:
        """For people (``retry``, ``resolve``): set the status of the matching records
        (``"-"`` deletes them). ``count_as`` also moves each one's count in the checkpoint's
        (or the last summary's) counters from its old status to that counter. Refused while
        a live runner holds the job. Returns the records as they were."""
        change = ItemChange(statuses, keys, error_type, to_status, count_as)
        return self.change_ledger(job, me, change)

    def change_ledger(self, job: str, me: Owner, change: ItemChange) -> list[ItemRecord]:
        """:meth:`change_items`, what to change in one record (each store's own)."""
        ...

    def add_note(self, job: str, text: str, author: str) -> Note: ...

    def list_notes(self, job: str) -> list[Note]: ...

    def list_history(self, job: str) -> list[HistoryPoint]: ...

    def begin_transaction(self, lease: Lease) -> Any:
        """Open a transaction on this store's own connection and return the connection:
        ``guarantee="exactly-once"`` hands it to handlers as ``ctx.transaction``, and the
        next :meth:`write_checkpoint` commits it. Stores without one raise ConfigError."""
        ...

    def rollback_transaction(self) -> None:
        """Roll back what :meth:`begin_transaction` opened (nothing if it is not open)."""
        ...

    def end_run(self, lease: Lease, run: RunRecord, *, completed: bool, summary: Summary) -> None:
        """Record how the run ended and release the lease, in one transaction.
        ``completed`` also drops the resume checkpoint and keeps ``summary`` as the job's
        last result."""
        ...

    def list_jobs(self) -> list[JobRecord]: ...

    def get_job(self, job: str) -> JobRecord | None: ...

    def get_jobs(self, jobs: list[str]) -> list[JobRecord | None]:
        """``get_job`` of each, in one round trip where the store can (a distributed job's
        result reads every partition's)."""
        ...

    def list_runs(self, job: str, limit: int = 20) -> list[RunRecord]: ...

    def list_items(self, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]: ...

    def reset(self, job: str, me: Owner) -> bool:
        """Forget the job (its checkpoint, ledger, runs, notes, history and, for a
        distributed job's own key, how it was split). Refused while a runner holds it."""
        ...

    def settle_plan(self, job: str, plan: dict[str, JSONValue]) -> dict[str, JSONValue]:
        """How distributed job ``job`` is split: record ``plan`` unless a plan is recorded
        already, atomically, and return the recorded one. The first worker's plan is every
        worker's, so all of them cut the input at the same places."""
        ...

    def load_plan(self, job: str) -> dict[str, JSONValue] | None: ...

    def claim_lease(self, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
        """The lease of the first of ``jobs`` that has not completed (``completed_among``)
        and no live runner holds (a distributed job's partitions, in the worker's order),
        or None when every one has completed or is held."""
        ...

    def completed_among(self, jobs: list[str]) -> set[str]:
        """Which of ``jobs`` have completed and left no checkpoint nor items put back by
        ``midway retry`` (one query where the store can: a distributed worker asks this of
        every partition between two)."""
        ...

    def close(self) -> None: ...
