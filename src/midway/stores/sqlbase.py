"""The SQL stores' methods, written once: SQLite and PostgreSQL override hooks, not bodies.

Both keep the same tables, read and written by the named queries of ``sql/<dialect>/`` (a
name may be spelled differently per dialect: placeholders, upserts, row locks, whose clock
a lease runs on). What else differs is a hook of :class:`SQLStore` (the methods marked
abstract, and the few with an empty default): how a call runs and fails (``_call``: once on
SQLite; again after a dropped connection on PostgreSQL, so every ``op`` here is safe to run
twice), transactions and the write lock, lease locks, the exactly-once transaction left
open between checkpoints, and how a list is bound. Each write says how durable its commit
must be (:class:`Commit`); the dialect decides what that takes.
"""

from __future__ import annotations

import contextlib
import time
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import Enum
from typing import Any, ClassVar, TypeVar

from midway import faults
from midway._model import jsonutil
from midway._model.checkpoint import Checkpoint
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DROP, ItemRecord
from midway._model.owner import Owner
from midway.errors import LeaseLost, StoreNotFound, StoreTooNew
from midway.stores import rows, sqlfiles
from midway.stores.base import (
    HistoryPoint,
    ItemChange,
    JobRecord,
    Lease,
    LeaseInfo,
    Note,
    RunRecord,
    Store,
    Summary,
    check_lease_free,
    lost_message,
    moved_summary,
    plan_from_text,
)

T = TypeVar("T")
Op = Callable[[Any, int], T]
"""A piece of work on the store's connection: ``op(connection, attempt)``."""

_JOB_PARTS = ("load_checkpoint", "get_lease")
"""What a job's record holds besides its row: its checkpoint and its lease."""

RESET_QUERIES = ("delete_items", "delete_runs", "delete_notes", "delete_history", "delete_plan")


class Commit(Enum):
    """How durable a write's commit must be."""

    BOOKKEEPING = "bookkeeping"
    """Lease renewals and run records: their loss in a power cut is harmless (the machine
    that held the lease went down too)."""
    TOKEN = "token"
    """A new fencing token: it must never be handed out twice, even with ``durable=False``
    on a server that may crash on its own."""
    REPORTED = "reported"
    """What midway reports as saved: checkpoints, the item ledger, a job's completion."""


class SQLStore(Store):
    """A store in a SQL database. Subclasses name their ``dialect`` and implement the hooks
    (and ``begin_transaction``, ``rollback_transaction``, ``claim_lease``, ``close``)."""

    dialect: ClassVar[str]
    Q: ClassVar[dict[str, str]]  # the dialect's named queries
    SCHEMA_VERSION: ClassVar[int]
    durable: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.Q = sqlfiles.queries(cls.dialect)
        cls.SCHEMA_VERSION = max(v for v, _ in sqlfiles.migrations(cls.dialect))

    # -- hooks --------------------------------------------------------------------------

    @abstractmethod
    def _call(
        self, doing: str, op: Op[T], commit: Commit | None = None, patience: float | None = None
    ) -> T:
        """Run ``op`` on the connection; the driver's errors as midway's, naming ``doing``.
        ``commit``: how durable the writes of ``op`` must be (None: it only reads).
        ``patience``: a shorter bound on retries than the store's own, where it has one."""

    @abstractmethod
    def _transaction(self, conn: Any, commit: Commit) -> AbstractContextManager[None]:
        """A transaction on ``conn`` that takes the write lock; commits at the end, rolls
        back on an exception."""

    @abstractmethod
    def _lock_lease(self, conn: Any, job: str, *, create: bool) -> tuple[LeaseInfo | None, float]:
        """Inside a transaction: the job's lease, locked until the transaction ends (with
        ``create``, even for a job never leased), and the time now by the clock that
        decides whether it has expired."""

    @abstractmethod
    def close(self) -> None: ...

    def _forget_lapsed_lease(self, conn: Any, job: str) -> None:
        """Inside :meth:`reset`, once no live runner holds the job: fence out a runner whose
        lease lapsed unnoticed, where the dialect needs to (nothing by default)."""

    @abstractmethod
    def _transaction_open(self) -> bool:
        """An exactly-once run's transaction is open (``begin_transaction``)."""

    @abstractmethod
    def _commit_open_transaction(self, parts: Callable[[Any], None]) -> None:
        """Exactly-once: ``parts(connection)`` inside the open transaction, then commit it.
        No retry: if the connection drops, the handler's writes and the checkpoint are
        lost together, and the run redoes them from the last checkpoint."""

    @abstractmethod
    def _list_param(self, values: list[str]) -> Any:
        """A list of strings as one query parameter (``completed_among``, ``list_items``)."""

    def _batched(self, conn: Any) -> AbstractContextManager[None]:
        """Around a transaction of :meth:`_transact`: send its statements in as few round
        trips as the driver can (nothing by default). A statement whose rows are read waits
        for its answer; the others go with the next one that does, or with the commit."""
        return contextlib.nullcontext()

    def _affected(self, cursor: Any) -> int:
        """How many rows the statement of ``cursor`` changed (its answer awaited first)."""
        return int(cursor.rowcount)

    def _mark_taken(self, conn: Any, job: str, token: int) -> None:
        """Inside the transaction that gives ``job``'s lease the new ``token``: what else
        the dialect's fence needs to know (nothing by default)."""

    def _lock_migrations(self, conn: Any) -> None:
        """Inside the migration's transaction: make a second process opening a new store
        at once wait for this one (nothing where the transaction's lock does it)."""

    # -- plumbing -----------------------------------------------------------------------

    def _transact(self, doing: str, op: Op[T], commit: Commit) -> T:
        """``op`` in one transaction (run again whole after a dropped connection)."""

        def whole(conn: Any, attempt: int) -> T:
            with self._batched(conn), self._transaction(conn, commit):
                return op(conn, attempt)

        return self._call(doing, whole, commit)

    def _one(self, conn: Any, query: str, params: dict[str, Any] | None = None) -> Any:
        """The first row of a named query, by column name, or None."""
        return rows.first(self._run(conn, query, params))

    def _all(self, conn: Any, query: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every row of a named query, by column name."""
        return rows.every(self._run(conn, query, params))

    def _scalar(self, conn: Any, query: str, params: dict[str, Any] | None = None) -> Any:
        row = self._run(conn, query, params).fetchone()
        return None if row is None else row[0]

    def _run(self, conn: Any, query: str, params: dict[str, Any] | None) -> Any:
        """Execute a named query; its cursor."""
        sql = self.Q[query]
        return conn.execute(sql) if params is None else conn.execute(sql, params)

    def _where(self, what: str, job: str) -> str:
        return f"store {self.url}, {what} {job!r}"

    # -- schema -------------------------------------------------------------------------

    def _open(self, *, create: bool, patience: float | None = None) -> None:
        """Bring the tables up to this midway's schema (or refuse a newer one, and close)."""
        try:
            self._call("open", lambda conn, _: self._migrate(conn, create=create), None, patience)
        except BaseException:
            self.close()
            raise

    def _migrate(self, conn: Any, *, create: bool) -> None:
        version = self._schema_version(conn)
        if version == self.SCHEMA_VERSION:
            return  # the usual case: reads, no lock
        if version is None and not create:
            raise StoreNotFound(
                f"there is no store at {self.url}: that database holds no midway tables "
                "(no job has run with it yet). Check --store or $MIDWAY_STORE."
            )
        with self._transaction(conn, Commit.REPORTED):
            self._lock_migrations(conn)
            conn.execute(self.Q["create_schema_table"])
            current = int(self._scalar(conn, "schema_version"))
            if current > self.SCHEMA_VERSION:
                raise self._too_new(current)
            for number, statements in sqlfiles.migrations(self.dialect):
                if number > current:
                    for statement in statements:
                        conn.execute(statement)  # our own files: no parameters
                        if faults.ACTIVE:
                            faults.hit("migrate.between")
                    conn.execute(self.Q["record_migration"], {"version": number})

    def _schema_version(self, conn: Any) -> int | None:
        """None for a database without midway's tables."""
        if not self._scalar(conn, "schema_table"):
            return None
        version = int(self._scalar(conn, "schema_version"))
        if version > self.SCHEMA_VERSION:
            raise self._too_new(version)
        return version

    def _too_new(self, version: int) -> StoreTooNew:
        return StoreTooNew(
            f"store {self.url} has schema version {version}, written by a newer midway; this "
            f"midway knows versions up to {self.SCHEMA_VERSION}. Upgrade midway "
            "(pip install -U midway); nothing was changed."
        )

    # -- leases -------------------------------------------------------------------------

    def _lease_info(self, conn: Any, job: str) -> LeaseInfo | None:
        row = self._one(conn, "get_lease", {"job": job})
        if row is None:
            return None
        return rows.lease_from_row(job, row, self._where("lease of job", job))

    def acquire_lease(self, job: JobId, owner: Owner, ttl: float) -> Lease:
        first_seen: list[LeaseInfo | None] = []

        def op(conn: Any, attempt: int) -> Lease:
            current, now = self._lock_lease(conn, job.key, create=True)
            check_lease_free(job.key, current, owner, now)
            # A retry whose first try committed finds its own lease: report what the first
            # try found instead.
            if not first_seen:
                first_seen.append(current)
            seen = first_seen[0]
            took_over = seen if seen is not None and seen.owner is not None else None
            token = (current.token if current else 0) + 1
            self._take(conn, job, owner, ttl, token, now)
            return Lease(job.key, token, owner, ttl, took_over)

        return self._transact("take the lease in", op, Commit.TOKEN)

    def _take(
        self, conn: Any, job: JobId, owner: Owner, ttl: float, token: int, now: float
    ) -> None:
        """Inside a transaction that locks the lease: make ``owner`` its holder."""
        conn.execute(self.Q["put_lease"], rows.lease_params(job.key, token, owner, now, ttl))
        self._mark_taken(conn, job.key, token)
        params = jsonutil.canonical(job.params)
        conn.execute(
            self.Q["ensure_job"], {"job": job.key, "name": job.name, "params": params, "now": now}
        )

    def renew_lease(self, lease: Lease) -> bool:
        params = {**_held(lease), "now": time.time(), "ttl": float(lease.ttl)}

        def op(conn: Any, attempt: int) -> bool:
            return bool(conn.execute(self.Q["renew_lease"], params).rowcount == 1)

        # No longer than a heartbeat: the keeper tries again at the next one.
        return self._call("renew the lease in", op, Commit.BOOKKEEPING, patience=lease.ttl / 3)

    def release_lease(self, lease: Lease) -> None:
        params = _held(lease)
        self._call(
            "release the lease in",
            lambda conn, _: conn.execute(self.Q["release_lease"], params),
            Commit.BOOKKEEPING,
        )

    def _fence(self, conn: Any, lease: Lease) -> None:
        """Inside a transaction: the lease is still ours, and stays so until it ends."""
        if self._one(conn, "holds_lease", _held(lease)) is None:
            raise LeaseLost(lost_message(lease))

    # -- checkpoints and the item ledger ------------------------------------------------

    def load_checkpoint(self, job: str) -> Checkpoint | None:
        return self._call("read", lambda conn, _: self._checkpoint(conn, job))

    def _checkpoint(self, conn: Any, job: str) -> Checkpoint | None:
        row = self._one(conn, "load_checkpoint", {"job": job})
        return None if row is None else rows.checkpoint_from_row(row, self._where("job", job))

    def write_checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        doing = "write a checkpoint to"
        if self._transaction_open():  # exactly-once: the handler's writes commit with it
            params = rows.checkpoint_params(checkpoint, lease.token)
            self._commit_open_transaction(
                lambda conn: self._checkpoint_parts(conn, lease, checkpoint, params)
            )
        elif checkpoint.ledger or checkpoint.sample or faults.ACTIVE:
            params = rows.checkpoint_params(checkpoint, lease.token)
            self._transact(
                doing,
                lambda conn, _: self._checkpoint_parts(conn, lease, checkpoint, params),
                Commit.REPORTED,
            )
        else:
            # The usual case, nothing else rides along: one statement is one transaction, the
            # fence check and the write commit together. Done again after a lost answer, it
            # writes the very same row.
            self._call(
                doing, lambda conn, _: self._write_alone(conn, lease, checkpoint), Commit.REPORTED
            )
        if faults.ACTIVE:
            faults.hit("checkpoint.after_commit")

    def _write_alone(self, conn: Any, lease: Lease, checkpoint: Checkpoint) -> None:
        """The usual checkpoint, in a statement of its own (committed when it returns)."""
        self._write_fenced(conn, lease, rows.checkpoint_params(checkpoint, lease.token))

    def _write_fenced(self, conn: Any, lease: Lease, params: dict[str, Any]) -> None:
        """The checkpoint row, written only while ``lease`` is held (in the same statement)."""
        if self._affected(conn.execute(self.Q["write_checkpoint"], params)) != 1:
            raise LeaseLost(lost_message(lease))

    def _checkpoint_parts(
        self, conn: Any, lease: Lease, checkpoint: Checkpoint, params: dict[str, Any]
    ) -> None:
        """The checkpoint, its ledger records and its history point, in the open transaction.
        Each part is the same when done again (a retry after a lost answer)."""
        self._write_fenced(conn, lease, params)
        self._apply(conn, checkpoint.job, checkpoint.ledger)
        if checkpoint.sample:
            conn.execute(self.Q["insert_history"], params)
        if faults.ACTIVE:
            faults.hit("checkpoint.before_commit")

    def _apply(self, conn: Any, job: str, records: list[ItemRecord]) -> None:
        for record in records:
            if record.status == DROP:
                conn.execute(self.Q["drop_item"], {"job": job, "key": rows.item_key(record)})
            else:
                conn.execute(self.Q["put_item"], rows.item_params(job, record))

    def write_items(self, lease: Lease, records: list[ItemRecord]) -> None:
        def op(conn: Any, attempt: int) -> None:
            self._fence(conn, lease)
            self._apply(conn, lease.job, records)

        self._transact("write to the item ledger of", op, Commit.REPORTED)

    def change_ledger(self, job: str, me: Owner, change: ItemChange) -> list[ItemRecord]:
        chosen: list[ItemRecord] = []

        def op(conn: Any, attempt: int) -> list[ItemRecord]:
            nonlocal chosen
            current, now = self._lock_lease(conn, job, create=False)
            check_lease_free(job, current, me, now)
            now = time.time()
            found = [r for r in self._items(conn, job, change.statuses) if change.chooses(r)]
            if attempt == 1 or found:
                chosen = found  # after a lost answer the first try's choice stands
            for record in found:
                key = rows.item_key(record)
                if change.to_status == DROP:
                    conn.execute(self.Q["drop_item"], {"job": job, "key": key})
                else:
                    params = {"job": job, "key": key, "status": change.to_status, "now": now}
                    conn.execute(self.Q["set_item_status"], params)
            if change.count_as is not None and found:
                self._move_counts(conn, job, found, change.count_as)
            return chosen

        return self._transact("change the item ledger of", op, Commit.REPORTED)

    def _move_counts(self, conn: Any, job: str, chosen: list[ItemRecord], count_as: str) -> None:
        """Move the changed records' counts in the checkpoint or, without one, the summary."""
        checkpoint = self._checkpoint(conn, job)
        if checkpoint is not None:
            counters = checkpoint.counters.moved(chosen, count_as)
            conn.execute(self.Q["set_counters"], {"job": job, **counters.as_dict()})
            return
        row = self._one(conn, "get_job", {"job": job})
        summary = moved_summary(rows.summary_of(row, self._where("job", job)), chosen, count_as)
        if summary is not None:
            conn.execute(self.Q["set_summary"], {"job": job, "summary": jsonutil.dumps(summary)})

    # -- runs ---------------------------------------------------------------------------

    def begin_run(self, lease: Lease, run: RunRecord) -> None:
        def op(conn: Any, attempt: int) -> None:
            self._fence(conn, lease)
            stale = {"job": run.job, "now": run.started_at, "run_id": run.run_id}
            conn.execute(self.Q["crash_stale_runs"], stale)
            conn.execute(self.Q["insert_run"], rows.run_params(run))
            status = {"job": run.job, "status": run.status, "now": run.started_at}
            conn.execute(self.Q["set_job_status"], status)

        self._transact("record the run in", op, Commit.BOOKKEEPING)

    def end_run(self, lease: Lease, run: RunRecord, *, completed: bool, summary: Summary) -> None:
        now = run.ended_at or time.time()
        job = {"job": run.job, "status": run.status, "now": now}
        if summary is not None:
            job["summary"] = jsonutil.dumps(summary)

        def op(conn: Any, attempt: int) -> None:
            ended = {"run_id": run.run_id, "status": run.status}
            if attempt > 1 and self._one(conn, "run_ended", ended) is not None:
                return  # the first try committed; only its answer was lost
            self._fence(conn, lease)
            if completed:
                conn.execute(self.Q["delete_checkpoint"], {"job": run.job})
                conn.execute(self.Q["delete_settled_items"], {"job": run.job})
                if faults.ACTIVE:
                    faults.hit("complete.before_commit")
            conn.execute(self.Q["release_lease"], _held(lease))
            conn.execute(self.Q["end_run"], rows.end_run_params(run, now))
            conn.execute(self.Q["finish_job" if summary is not None else "set_job_status"], job)

        # "completed" is reported to the user: make it stick.
        commit = Commit.REPORTED if completed else Commit.BOOKKEEPING
        self._transact("record the end of the run in", op, commit)

    # -- reading for people -------------------------------------------------------------

    def list_jobs(self) -> list[JobRecord]:
        def op(conn: Any, attempt: int) -> list[JobRecord]:
            return [self._job_record(conn, row) for row in self._all(conn, "list_jobs")]

        return self._call("read", op)

    def get_job(self, job: str) -> JobRecord | None:
        def op(conn: Any, attempt: int) -> JobRecord | None:
            params = {"job": job}
            with self._batched(conn):  # three questions, one round trip where it can
                asked = [self._run(conn, q, params) for q in ("get_job", *_JOB_PARTS)]
                row, checkpoint, lease = (rows.first(cursor) for cursor in asked)
            return None if row is None else self._record(row, checkpoint, lease)

        return self._call("read", op)

    def _job_record(self, conn: Any, row: rows.Row) -> JobRecord:
        params = {"job": row["job"]}
        checkpoint, lease = (self._one(conn, query, params) for query in _JOB_PARTS)
        return self._record(row, checkpoint, lease)

    def _record(
        self, row: rows.Row, checkpoint: rows.Row | None, lease: rows.Row | None
    ) -> JobRecord:
        job = row["job"]
        where = self._where("job", job)
        return JobRecord(
            **rows.job_fields(row, where),
            checkpoint=None if checkpoint is None else rows.checkpoint_from_row(checkpoint, where),
            lease=None
            if lease is None
            else rows.lease_from_row(job, lease, self._where("lease of job", job)),
        )

    def list_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        params = {"job": job, "limit": limit}
        found = self._call("read", lambda conn, _: self._all(conn, "list_runs", params))
        where = self._where("runs of", job)
        return [rows.run_from_row(row, where) for row in found]

    def list_items(self, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]:
        return self._call("read", lambda conn, _: self._items(conn, job, statuses))

    def _items(self, conn: Any, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]:
        params = {"job": job, "statuses": self._list_param([str(s) for s in statuses])}
        where = self._where("items of", job)
        return [rows.item_from_row(row, where) for row in self._all(conn, "list_items", params)]

    def list_notes(self, job: str) -> list[Note]:
        found = self._call("read", lambda conn, _: self._all(conn, "list_notes", {"job": job}))
        return [rows.note_from_row(row) for row in found]

    def list_history(self, job: str) -> list[HistoryPoint]:
        found = self._call("read", lambda conn, _: self._all(conn, "list_history", {"job": job}))
        return rows.history_from_rows(found, self._where("history of", job))

    # -- for people: notes, reset -------------------------------------------------------

    def add_note(self, job: str, text: str, author: str) -> Note:
        note = Note(time.time(), author, text)
        params = {"job": job, "at": note.at, "author": author, "text": text}
        self._call(
            "add a note to",
            lambda conn, _: conn.execute(self.Q["add_note"], params),
            Commit.REPORTED,
            patience=0.0,  # not twice
        )
        return note

    def reset(self, job: str, me: Owner) -> bool:
        found_before = False

        def op(conn: Any, attempt: int) -> bool:
            nonlocal found_before
            current, now = self._lock_lease(conn, job, create=False)
            check_lease_free(job, current, me, now)
            if current is not None:
                self._forget_lapsed_lease(conn, job)
            # Found by a try whose commit went unanswered counts as found.
            found_before |= self._affected(conn.execute(self.Q["delete_job"], {"job": job})) > 0
            for query in RESET_QUERIES:
                conn.execute(self.Q[query], {"job": job})
            return found_before

        return self._transact("reset a job in", op, Commit.REPORTED)

    # -- distributed jobs ---------------------------------------------------------------

    def settle_plan(self, job: str, plan: dict[str, JSONValue]) -> dict[str, JSONValue]:
        params = {"job": job, "plan": jsonutil.dumps(plan), "now": time.time()}

        def op(conn: Any, attempt: int) -> Any:
            conn.execute(self.Q["insert_plan"], params)
            return self._scalar(conn, "get_plan", {"job": job})

        text = self._transact("record the partitions of a job in", op, Commit.REPORTED)
        return plan_from_text(text, self._where("partitions of job", job))

    def load_plan(self, job: str) -> dict[str, JSONValue] | None:
        text = self._call("read", lambda conn, _: self._scalar(conn, "get_plan", {"job": job}))
        if text is None:
            return None
        return plan_from_text(text, self._where("partitions of job", job))

    def completed_among(self, jobs: list[str]) -> set[str]:
        params = {"jobs": self._list_param([str(job) for job in jobs])}
        found = self._call("read", lambda conn, _: self._all(conn, "completed_among", params))
        return {row["job"] for row in found}


def _held(lease: Lease) -> dict[str, Any]:
    """The parameters that name a lease as held: the job and the fencing token."""
    return {"job": lease.job, "token": lease.token}
