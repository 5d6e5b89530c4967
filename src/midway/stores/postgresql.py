"""``postgresql://user:pass@host:port/db``: one store shared by many processes and machines.

The tables are those of the SQLite store (``midway_`` prefixed, in the first schema of the
connection's ``search_path``), created by the numbered migrations in ``sql/postgresql`` under
an advisory lock, so that two runners opening a new store at once do not race.

Fencing: a checkpoint is written by one statement that locks the lease row ``FOR SHARE`` and
writes only while the runner's token is still the lease's; a takeover (``SELECT ... FOR
UPDATE`` in ``acquire_lease``) waits for a write in progress, and once it has committed no
write of the old token gets through.

Clocks: a lease's start and expiry are the *server's* clock, and so is the decision whether
it has expired, so runners on machines whose clocks disagree still agree on when a lease is
free. Timestamps the engine records (checkpoints, runs) are the runner's own clock, as in the
other stores.

Durable (the default) is PostgreSQL's own ``synchronous_commit = on``: a commit is flushed to
the server's WAL before midway reports the checkpoint written. ``durable=False`` turns it off
for the session (a crash of the server may lose the last commits; a crash of the runner loses
nothing); taking a lease always commits synchronously, as its token must never be handed out
twice.

A dropped connection (the server restarted, a network blip) is retried with backoff for
``retry_seconds`` (30 s; ``?midway_retry_seconds=N`` in the URL changes it; see
``pgconnection``), then the call fails with ``StoreUnavailable`` (exit 3) and the last
checkpoint stands. Every write here is safe to do again when the answer to its commit was
lost: a checkpoint written twice with the same version and token is the same row, a run is
inserted once, and an end of run that already committed is recognised as such.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from midway import faults
from midway._model import jsonutil, ledger
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DROP, ItemRecord
from midway._model.owner import Owner
from midway.errors import LeaseLost, StoreNotFound, StoreTooNew
from midway.stores import sqlfiles
from midway.stores.base import (
    HistoryPoint,
    JobRecord,
    Lease,
    LeaseInfo,
    Note,
    RunRecord,
    check_lease_free,
    lost_message,
    plan_from_text,
)
from midway.stores.pgconnection import (  # first: a ConfigError if psycopg is missing
    OPEN_RETRY_SECONDS,
    Connection,
    PgConnection,
    PgError,
)
from midway.stores.sqlite import (
    _checkpoint_from_row,
    _checkpoint_params,
    _item_from_row,
    _item_params,
    _load,
    _run_from_row,
    _run_params,
)

Q = sqlfiles.queries("postgresql")
SCHEMA_VERSION = max(v for v, _ in sqlfiles.migrations("postgresql"))


class PostgreSQLStore:
    def __init__(
        self,
        url: str,
        *,
        durable: bool = True,
        create: bool = True,
        retry_seconds: float | None = None,
    ) -> None:
        self._db = PgConnection(url, durable=durable, retry_seconds=retry_seconds)
        self.url = self._db.url  # the password hidden
        self.durable = durable
        self._in_transaction = False  # an exactly-once run's transaction is open
        try:
            self._db.call(
                "open",
                lambda conn, attempt: self._migrate(conn, create=create),
                retry_seconds=min(self._db.retry_seconds, OPEN_RETRY_SECONDS),
            )
        except BaseException:
            self._db.close()
            raise

    def _migrate(self, conn: Connection, *, create: bool) -> None:
        version = self._schema_version(conn)
        if version == SCHEMA_VERSION:
            return  # the usual case: two reads, no lock
        if version is None and not create:
            raise StoreNotFound(
                f"there is no store at {self.url}: that database holds no midway tables "
                "(no job has run with it yet). Check --store or $MIDWAY_STORE."
            )
        with conn.transaction():
            conn.execute(Q["migration_lock"])
            conn.execute(Q["create_schema_table"])
            current = int(self._one(conn, Q["schema_version"]))
            if current > SCHEMA_VERSION:
                raise self._too_new(current)
            for number, statements in sqlfiles.migrations("postgresql"):
                if number > current:
                    for statement in statements:
                        conn.execute(statement)  # our own files: no parameters
                        if faults.ACTIVE:
                            faults.hit("migrate.between")
                    conn.execute(Q["record_migration"], {"version": number})

    def _schema_version(self, conn: Connection) -> int | None:
        if not self._one(conn, Q["schema_table"]):
            return None
        version = int(self._one(conn, Q["schema_version"]))
        if version > SCHEMA_VERSION:
            raise self._too_new(version)
        return version

    def _too_new(self, version: int) -> StoreTooNew:
        return StoreTooNew(
            f"store {self.url} has schema version {version}, written by a newer midway; this "
            f"midway knows versions up to {SCHEMA_VERSION}. Upgrade midway "
            "(pip install -U midway); nothing was changed."
        )

    @staticmethod
    def _one(conn: Connection, query: str, params: dict[str, Any] | None = None) -> Any:
        row = conn.execute(query, params).fetchone()
        assert row is not None
        return row[0]

    def close(self) -> None:
        self._db.close()

    # -- leases -------------------------------------------------------------------------

    @staticmethod
    def _lease_info(conn: Connection, job: str) -> LeaseInfo | None:
        row = conn.execute(Q["get_lease"], {"job": job}).fetchone()
        return None if row is None else _lease_from_row(row)

    def acquire_lease(self, job: JobId, owner: Owner, ttl: float) -> Lease:
        first_seen: list[LeaseInfo | None] = []

        def op(conn: Connection, attempt: int) -> Lease:
            with conn.transaction():
                if not self.durable:
                    conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute(Q["ensure_lease_row"], {"job": job.key})
                row = conn.execute(Q["lock_lease"], {"job": job.key}).fetchone()
                assert row is not None
                current, now = _lease_from_row(row[:7]), float(row[7])
                check_lease_free(job.key, current, owner, now)
                # A retry whose first try committed finds its own lease: report what the
                # first try found instead.
                if not first_seen:
                    first_seen.append(current)
                seen = first_seen[0]
                took_over = seen if seen is not None and seen.owner is not None else None
                token = (current.token if current else 0) + 1
                self._take(conn, job, owner, ttl, token, now)
            return Lease(job.key, token, owner, ttl, took_over)

        return self._db.call("take the lease in", op)

    def renew_lease(self, lease: Lease) -> bool:
        params = {"job": lease.job, "token": lease.token, "ttl": float(lease.ttl)}

        def op(conn: Connection, attempt: int) -> bool:
            return conn.execute(Q["renew_lease"], params).rowcount == 1

        # No longer than a heartbeat: the keeper tries again at the next one.
        return self._db.call(
            "renew the lease in", op, retry_seconds=min(self._db.retry_seconds, lease.ttl / 3)
        )

    def release_lease(self, lease: Lease) -> None:
        params = {"job": lease.job, "token": lease.token}
        self._db.call(
            "release the lease in", lambda conn, _: conn.execute(Q["release_lease"], params)
        )

    @staticmethod
    def _fence(conn: Connection, lease: Lease) -> None:
        """Inside a transaction: the lease is still ours, and stays so until it ends."""
        if conn.execute(Q["holds_lease"], {"job": lease.job, "token": lease.token}).fetchone():
            return
        raise LeaseLost(lost_message(lease))

    # -- checkpoints and runs -----------------------------------------------------------

    def load_checkpoint(self, job: str) -> Checkpoint | None:
        return self._db.call("read", lambda conn, _: self._checkpoint(conn, job))

    def _checkpoint(self, conn: Connection, job: str) -> Checkpoint | None:
        row = conn.execute(Q["load_checkpoint"], {"job": job}).fetchone()
        if row is None:
            return None
        return _checkpoint_from_row(row, f"store {self.url}, job {job!r}")

    def write_checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        params = _checkpoint_params(checkpoint)
        params["token"] = lease.token

        if self._in_transaction:  # exactly-once: the handler's writes commit with it
            self._commit_checkpoint(lease, checkpoint, params)
            return

        def op(conn: Connection, attempt: int) -> None:
            if not (checkpoint.ledger or checkpoint.sample or faults.ACTIVE):
                # One statement is one transaction: the fence check and the write commit
                # together. Done again after a lost answer, it writes the very same row.
                cur = conn.execute(Q["write_checkpoint"], params)  # prepared from the 5th on
                if cur.rowcount != 1:
                    raise LeaseLost(lost_message(lease))
                return
            with conn.transaction():
                self._checkpoint_parts(conn, lease, checkpoint, params)
            if faults.ACTIVE:
                faults.hit("checkpoint.after_commit")

        self._db.call("write a checkpoint to", op)

    def _checkpoint_parts(
        self, conn: Connection, lease: Lease, checkpoint: Checkpoint, params: dict[str, Any]
    ) -> None:
        """The checkpoint, its ledger records and its history point, in the open transaction.
        Each part is the same when done again (a retry after a lost answer)."""
        if conn.execute(Q["write_checkpoint"], params).rowcount != 1:
            raise LeaseLost(lost_message(lease))
        self._apply(conn, checkpoint.job, checkpoint.ledger)
        if checkpoint.sample:
            conn.execute(Q["insert_history"], params)
        if faults.ACTIVE:
            faults.hit("checkpoint.before_commit")

    def _commit_checkpoint(
        self, lease: Lease, checkpoint: Checkpoint, params: dict[str, Any]
    ) -> None:
        """Exactly-once: no retry here. If the connection drops, the handler's writes and
        the checkpoint are lost together, and the run redoes them from the last one."""
        conn = self._db.connection()
        try:
            self._checkpoint_parts(conn, lease, checkpoint, params)
            conn.execute("COMMIT")
        except PgError as exc:
            self._in_transaction = False
            raise self._db.translate_now(exc, "write a checkpoint to") from exc
        self._in_transaction = False
        if faults.ACTIVE:
            faults.hit("checkpoint.after_commit")

    @staticmethod
    def _apply(conn: Connection, job: str, records: list[ItemRecord]) -> None:
        for record in records:
            key = jsonutil.dumps(record.key)
            if record.status == DROP:
                conn.execute(Q["drop_item"], {"job": job, "key": key})
            else:
                conn.execute(Q["put_item"], _item_params(job, key, record))

    def write_items(self, lease: Lease, records: list[ItemRecord]) -> None:
        def op(conn: Connection, attempt: int) -> None:
            with conn.transaction():
                self._fence(conn, lease)
                self._apply(conn, lease.job, records)

        self._db.call("write to the item ledger of", op)

    def begin_transaction(self, lease: Lease) -> Any:
        conn = self._db.connection()
        try:
            if not self._in_transaction:
                conn.execute("BEGIN")
                self._in_transaction = True
            self._fence(conn, lease)
        except PgError as exc:
            self._in_transaction = False
            raise self._db.translate_now(exc, "open a transaction in") from exc
        return conn

    def rollback_transaction(self) -> None:
        if not self._in_transaction:
            return
        self._in_transaction = False
        with contextlib.suppress(PgError):  # a broken connection has rolled back
            self._db.connection().execute("ROLLBACK")

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
        chosen: list[ItemRecord] = []

        def op(conn: Connection, attempt: int) -> list[ItemRecord]:
            nonlocal chosen
            with conn.transaction():
                row = conn.execute(Q["lock_lease"], {"job": job}).fetchone()
                if row is not None:
                    check_lease_free(job, _lease_from_row(row[:7]), me, float(row[7]))
                now = time.time()
                found = [
                    r
                    for r in self._items(conn, job, statuses)
                    if ledger.matches(r, keys, error_type)
                ]
                if attempt == 1 or found:
                    chosen = found  # after a lost answer the first try's choice stands
                for record in found:
                    key = jsonutil.dumps(record.key)
                    if to_status == DROP:
                        conn.execute(Q["drop_item"], {"job": job, "key": key})
                    else:
                        conn.execute(
                            Q["set_item_status"],
                            {"job": job, "key": key, "status": to_status, "now": now},
                        )
                if count_as is not None and found:
                    self._move_counts(conn, job, found, count_as)
            return chosen

        return self._db.call("change the item ledger of", op)

    def _move_counts(
        self, conn: Connection, job: str, chosen: list[ItemRecord], count_as: str
    ) -> None:
        checkpoint = self._checkpoint(conn, job)
        if checkpoint is not None:
            counters = checkpoint.counters.moved(chosen, count_as)
            conn.execute(Q["set_counters"], {"job": job, **counters.as_dict()})
            return
        row = conn.execute(Q["get_job"], {"job": job}).fetchone()
        summary = _load(row[6], f"store {self.url}, job {job!r}") if row and row[6] else None
        if isinstance(summary, dict):
            counters = Counters.from_dict(summary.get("counters") or {}).moved(chosen, count_as)
            summary["counters"] = counters.as_dict()
            conn.execute(Q["set_summary"], {"job": job, "summary": jsonutil.dumps(summary)})

    def add_note(self, job: str, text: str, author: str) -> Note:
        note = Note(time.time(), author, text)

        def op(conn: Connection, attempt: int) -> None:
            conn.execute(Q["add_note"], {"job": job, "at": note.at, "author": author, "text": text})

        self._db.call("add a note to", op, retry_seconds=0.0)  # not twice
        return note

    def list_notes(self, job: str) -> list[Note]:
        rows = self._db.call(
            "read", lambda conn, _: conn.execute(Q["list_notes"], {"job": job}).fetchall()
        )
        return [Note(float(at), author, text) for at, author, text in rows]

    def list_history(self, job: str) -> list[HistoryPoint]:
        rows = self._db.call(
            "read", lambda conn, _: conn.execute(Q["list_history"], {"job": job}).fetchall()
        )
        return [
            HistoryPoint(float(at), run_id, version, Counters(s, f, k, d))
            for at, run_id, version, s, f, k, d in rows
        ]

    def begin_run(self, lease: Lease, run: RunRecord) -> None:
        def op(conn: Connection, attempt: int) -> None:
            with conn.transaction():
                self._fence(conn, lease)
                conn.execute(
                    Q["crash_stale_runs"],
                    {"job": run.job, "now": run.started_at, "run_id": run.run_id},
                )
                conn.execute(Q["insert_run"], _run_params(run))
                conn.execute(
                    Q["set_job_status"],
                    {"job": run.job, "status": run.status, "now": run.started_at},
                )

        self._db.call("record the run in", op)

    def end_run(
        self,
        lease: Lease,
        run: RunRecord,
        *,
        completed: bool,
        summary: dict[str, JSONValue] | None,
    ) -> None:
        now = run.ended_at or time.time()
        summary_json = jsonutil.dumps(summary) if summary is not None else None

        def op(conn: Connection, attempt: int) -> None:
            with conn.transaction():
                ended = {"run_id": run.run_id, "status": run.status}
                if attempt > 1 and conn.execute(Q["run_ended"], ended).fetchone():
                    return  # the first try committed; only its answer was lost
                self._fence(conn, lease)
                if completed:
                    conn.execute(Q["delete_checkpoint"], {"job": run.job})
                    conn.execute(Q["delete_settled_items"], {"job": run.job})
                    if faults.ACTIVE:
                        faults.hit("complete.before_commit")
                conn.execute(Q["release_lease"], {"job": lease.job, "token": lease.token})
                conn.execute(
                    Q["end_run"],
                    {
                        "run_id": run.run_id,
                        "status": run.status,
                        "ended_at": now,
                        "processed": run.processed,
                        "message": run.message,
                    },
                )
                if summary_json is not None:
                    conn.execute(
                        Q["finish_job"],
                        {"job": run.job, "status": run.status, "now": now, "summary": summary_json},
                    )
                else:
                    conn.execute(
                        Q["set_job_status"], {"job": run.job, "status": run.status, "now": now}
                    )

        self._db.call("record the end of the run in", op)

    # -- reading for people -------------------------------------------------------------

    def list_jobs(self) -> list[JobRecord]:
        def op(conn: Connection, attempt: int) -> list[JobRecord]:
            rows = conn.execute(Q["list_jobs"]).fetchall()
            return [self._job_record(conn, row) for row in rows]

        return self._db.call("read", op)

    def get_job(self, job: str) -> JobRecord | None:
        def op(conn: Connection, attempt: int) -> JobRecord | None:
            row = conn.execute(Q["get_job"], {"job": job}).fetchone()
            return None if row is None else self._job_record(conn, row)

        return self._db.call("read", op)

    def _job_record(self, conn: Connection, row: tuple[Any, ...]) -> JobRecord:
        job, name, params, status, created_at, updated_at, summary = row
        where = f"store {self.url}, job {job!r}"
        return JobRecord(
            job=job,
            name=name,
            params=_load(params, where),
            status=status,
            created_at=created_at,
            updated_at=updated_at,
            summary=_load(summary, where) if summary else None,
            checkpoint=self._checkpoint(conn, job),
            lease=self._lease_info(conn, job),
        )

    def list_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        def op(conn: Connection, attempt: int) -> list[tuple[Any, ...]]:
            return conn.execute(Q["list_runs"], {"job": job, "limit": limit}).fetchall()

        rows = self._db.call("read", op)
        where = f"store {self.url}, runs of {job!r}"
        return [_run_from_row(r, where) for r in rows]

    def list_items(self, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]:
        return self._db.call("read", lambda conn, _: self._items(conn, job, statuses))

    def _items(self, conn: Connection, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]:
        params = {"job": job, "statuses": list(statuses)}
        rows = conn.execute(Q["list_items"], params).fetchall()
        where = f"store {self.url}, items of {job!r}"
        return [_item_from_row(r, where) for r in rows]

    def reset(self, job: str, me: Owner) -> bool:
        found_before = False

        def op(conn: Connection, attempt: int) -> bool:
            nonlocal found_before
            with conn.transaction():
                row = conn.execute(Q["lock_lease"], {"job": job}).fetchone()
                if row is not None:
                    check_lease_free(job, _lease_from_row(row[:7]), me, float(row[7]))
                    # A runner whose lease lapsed unnoticed must not write into the empty job.
                    conn.execute(Q["release_any_lease"], {"job": job})
                # Found by a try whose commit went unanswered counts as found.
                found_before |= conn.execute(Q["delete_job"], {"job": job}).rowcount > 0
                for query in (
                    "delete_items",
                    "delete_runs",
                    "delete_notes",
                    "delete_history",
                    "delete_plan",
                ):
                    conn.execute(Q[query], {"job": job})
            return found_before

        return self._db.call("reset a job in", op)

    # -- distributed jobs ---------------------------------------------------------------

    def settle_plan(self, job: str, plan: dict[str, JSONValue]) -> dict[str, JSONValue]:
        params = {"job": job, "plan": jsonutil.dumps(plan)}

        def op(conn: Connection, attempt: int) -> Any:
            with conn.transaction():
                conn.execute(Q["insert_plan"], params)
                return self._one(conn, Q["get_plan"], {"job": job})

        text = self._db.call("record the partitions of a job in", op)
        return plan_from_text(text, f"store {self.url}, partitions of job {job!r}")

    def load_plan(self, job: str) -> dict[str, JSONValue] | None:
        def op(conn: Connection, attempt: int) -> Any:
            row = conn.execute(Q["get_plan"], {"job": job}).fetchone()
            return None if row is None else row[0]

        text = self._db.call("read", op)
        if text is None:
            return None
        return plan_from_text(text, f"store {self.url}, partitions of job {job!r}")

    def claim_lease(self, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
        """The first of ``jobs`` (in the caller's order) that no live runner holds, taken
        with ``FOR UPDATE SKIP LOCKED``: workers claiming at the same moment pass over each
        other's rows instead of queueing on them, and never take the same partition."""
        if not jobs:
            return None
        keys = [job.key for job in jobs]

        def op(conn: Connection, attempt: int) -> Lease | None:
            with conn.transaction():
                if not self.durable:
                    conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute(Q["ensure_lease_rows"], {"jobs": keys})
                rows = conn.execute(Q["claim_candidates"], {"jobs": keys}).fetchall()
                found = {row[0]: row for row in rows}
                for job in jobs:
                    row = found.get(job.key)
                    if row is None:
                        continue  # another worker is claiming it right now
                    current, now = _lease_from_row(row[:7]), float(row[7])
                    if current.is_live(now) and current.owner != owner:
                        continue
                    token = current.token + 1
                    self._take(conn, job, owner, ttl, token, now)
                    took_over = current if current.owner not in (None, owner) else None
                    return Lease(job.key, token, owner, ttl, took_over)
            return None

        return self._db.call("claim a partition in", op)

    def completed_among(self, jobs: list[str]) -> set[str]:
        def op(conn: Connection, attempt: int) -> set[str]:
            rows = conn.execute(Q["completed_among"], {"jobs": list(jobs)}).fetchall()
            return {row[0] for row in rows}

        return self._db.call("read", op)

    @staticmethod
    def _take(
        conn: Connection, job: JobId, owner: Owner, ttl: float, token: int, now: float
    ) -> None:
        """Inside a transaction that locks the lease row: make ``owner`` its holder."""
        conn.execute(
            Q["put_lease"],
            {
                "job": job.key,
                "token": token,
                "host": owner.host,
                "pid": owner.pid,
                "pid_started": owner.pid_started,
                "now": now,
                "ttl": float(ttl),
            },
        )
        conn.execute(
            Q["ensure_job"],
            {
                "job": job.key,
                "name": job.name,
                "params": jsonutil.canonical(job.params),
                "now": now,
            },
        )


def _lease_from_row(row: tuple[Any, ...]) -> LeaseInfo:
    job, token, host, pid, pid_started, since, expires_at = row
    owner = Owner(host, pid, pid_started) if host is not None else None
    return LeaseInfo(job, token, owner, since, expires_at)
