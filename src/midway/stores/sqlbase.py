"""The SQL stores' methods, written once: SQLite and PostgreSQL override hooks, not bodies.

Both keep the same tables, read and written by the named queries of ``sql/<dialect>/`` (a
name may be spelled differently per dialect: placeholders, upserts, row locks, whose clock
a lease runs on). What else differs is a hook of :class:`~midway.stores.sqlcore.SQLCore`,
which also runs the queries and migrates the schema; every ``op`` here is safe to run twice
(PostgreSQL runs it again after a dropped connection).
"""

from __future__ import annotations

import time
from typing import Any

from midway import faults
from midway._model import jsonutil
from midway._model.checkpoint import Checkpoint
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ALL, DROP, ItemRecord
from midway._model.owner import Owner
from midway.errors import LeaseLost
from midway.stores import rows
from midway.stores.base import (
    ForRun,
    HistoryPoint,
    ItemChange,
    JobRecord,
    Lease,
    LeaseInfo,
    Note,
    RunRecord,
    Summary,
    check_lease_free,
    lost_message,
    moved_summary,
    plan_from_text,
)
from midway.stores.sqlcore import Commit, SQLCore

_JOB_PARTS = ("load_checkpoint", "get_lease")
"""What a job's record holds besides its row: its checkpoint and its lease."""
_JOB_QUERIES = ("get_job", *_JOB_PARTS)

RESET_QUERIES = ("delete_items", "delete_runs", "delete_notes", "delete_history", "delete_plan")


class SQLStore(SQLCore):
    """A store in a SQL database. Subclasses name their ``dialect`` and implement the hooks
    (and ``begin_transaction``, ``rollback_transaction``, ``claim_lease``, ``close``)."""

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
            status = summary.get("status")  # (COALESCE: a summary without one keeps the job's)
            params = {"job": job, "summary": jsonutil.dumps(summary), "status": status}
            conn.execute(self.Q["set_summary"], params)

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
        return self.get_jobs([job])[0]

    def get_jobs(self, jobs: list[str]) -> list[JobRecord | None]:
        def op(conn: Any, attempt: int) -> list[JobRecord | None]:
            with self._batched(conn):  # three questions a job, one round trip where it can
                asked = [[self._run(conn, q, {"job": j}) for q in _JOB_QUERIES] for j in jobs]
                found = [[rows.first(cursor) for cursor in each] for each in asked]
            return [None if row is None else self._record(row, cp, ls) for row, cp, ls in found]

        return self._call("read", op)

    def load_for_run(self, job: str) -> ForRun:
        def op(conn: Any, attempt: int) -> ForRun:
            with self._batched(conn):  # four questions, one round trip where it can
                asked = [self._run(conn, q, {"job": job}) for q in _JOB_QUERIES]
                items = self._items(conn, job, ALL)
                row, cp, lease = (rows.first(cursor) for cursor in asked)
            if row is None:
                return (
                    None if cp is None else rows.checkpoint_from_row(cp, self._where("job", job)),
                    items,
                    None,
                )
            record = self._record(row, cp, lease)
            return record.checkpoint, items, record

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
