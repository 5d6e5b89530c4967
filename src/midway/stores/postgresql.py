"""``postgresql://user:pass@host:port/db``: one store shared by many processes and machines.

The tables are those of the SQLite store (``midway_`` prefixed, in the first schema of the
connection's ``search_path``), created by the numbered migrations in ``sql/postgresql`` under
an advisory lock, so that two runners opening a new store at once do not race.

Fencing: the checkpoint row carries the token of the lease it was written under, and taking
a lease (``SELECT ... FOR UPDATE`` in ``acquire_lease``, or the claim) re-marks the row with
the new token in the same transaction. So the usual checkpoint is one plain ``UPDATE ...
WHERE token = mine`` (one round trip, no lock on the lease row: a row lock is a write of its
own, and cost ``every=1`` a third of the server's rate); an UPDATE racing a takeover re-reads
the row once the takeover commits and no longer matches. A run's first checkpoint, or one
the row refused, is written by the statement that locks the lease row ``FOR SHARE`` and
writes only while the runner's token is still the lease's: once a takeover has committed, no
write of the old token gets through.

Clocks: a lease's start and expiry are the *server's* clock, and so is the decision whether
it has expired, so runners on machines whose clocks disagree still agree on when a lease is
free. Timestamps the engine records (checkpoints, runs) are the runner's own clock, as in the
other stores.

Durable (the default) is PostgreSQL's own ``synchronous_commit = on``: a commit is flushed to
the server's WAL before midway reports the checkpoint written. ``durable=False`` turns it off
for the session (a crash of the server may lose the last commits; a crash of the runner loses
nothing); taking a lease always commits synchronously, as its token must never be handed out
twice. Run records (bookkeeping) commit without waiting for the disk even when durable.

A dropped connection (the server restarted, a network blip) is retried with backoff for
``retry_seconds`` (30 s; ``?midway_retry_seconds=N`` in the URL changes it; see
``pgconnection``), then the call fails with ``StoreUnavailable`` (exit 3) and the last
checkpoint stands. Every write here is safe to do again when the answer to its commit was
lost: a checkpoint written twice with the same version and token is the same row, a run is
inserted once, and an end of run that already committed is recognised as such.

The methods are :class:`~midway.stores.sqlbase.SQLStore`'s; this module keeps what is
PostgreSQL's own: the connection that retries (``pgconnection``), row locks and the server's
clock for leases, the claim that skips locked rows, and the advisory lock on migrations.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

from midway._model.checkpoint import Checkpoint
from midway._model.identity import JobId
from midway._model.owner import Owner
from midway.errors import LeaseLost
from midway.stores import rows
from midway.stores.base import Lease, LeaseInfo, lost_message
from midway.stores.pgconnection import (  # first: a ConfigError if psycopg is missing
    OPEN_RETRY_SECONDS,
    Connection,
    Cursor,
    DivisionByZero,
    PgConnection,
    PgError,
    Pipeline,
    UndefinedTable,
)
from midway.stores.sqlbase import SQLStore
from midway.stores.sqlcore import Commit, Op, T


class PostgreSQLStore(SQLStore):
    dialect = "postgresql"

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
        self._pipeline: Pipeline | None = None  # while a transaction of _transact runs
        self._fenced: Lease | None = None  # the lease fence_or_fail checks in that one
        self._cursor: Cursor | None = None  # the usual checkpoint's, kept with its connection
        self._wrote: tuple[str, int] | None = None  # the job and token last written here
        self._written: tuple[Any, ...] | None = None
        """The columns a run writes once (``rows.fixed_part``), as this store last wrote
        them in full and saw committed: the next checkpoint with the same ones is only its
        progress (``update_progress``)."""
        # A connection another store of this process left idle comes with its schema
        # checked: two round trips fewer for each partition a distributed worker runs.
        if self._db.take_kept() is None:
            self._open(create=create, patience=OPEN_RETRY_SECONDS)
            self._db.schema_checked = True

    def close(self) -> None:
        self._db.close()

    # -- hooks --------------------------------------------------------------------------

    def _call(
        self, doing: str, op: Op[T], commit: Commit | None = None, patience: float | None = None
    ) -> T:
        window = None if patience is None else min(self._db.retry_seconds, patience)
        return self._db.call(doing, op, retry_seconds=window)

    @contextlib.contextmanager
    def _batched(self, conn: Connection) -> Iterator[None]:
        # psycopg's pipeline mode, with BEGIN and COMMIT sent as plain statements (psycopg's
        # own transaction block waits for each): taking a lease, starting and ending a run
        # each wait for one or two answers instead of six to eight, which was most of a
        # small partition's fixed cost. Rows read (the lease) still wait for their answer.
        try:
            with conn.pipeline() as pipeline:
                self._pipeline = pipeline
                yield
        except BaseException as exc:
            self._pipeline = None
            # A statement that failed left the transaction open and aborted: end it, so the
            # connection is clean for the retry or the next call.
            if not conn.closed and not conn.broken and conn.info.transaction_status:
                with contextlib.suppress(PgError):
                    conn.execute("ROLLBACK")
            fenced = self._fenced
            if fenced is not None and isinstance(exc, DivisionByZero):
                raise LeaseLost(lost_message(fenced)) from None  # see _fence
            raise
        finally:
            self._pipeline = None
            self._fenced = None

    def _fence(self, conn: Connection, lease: Lease) -> None:
        if self._pipeline is None:  # the exactly-once transaction's: ask, and wait
            super()._fence(conn, lease)
            return
        # In a pipelined transaction (starting and ending a run, writing the ledger) the
        # fence's answer comes with the commit's, a round trip fewer: a lease no longer
        # held fails the statement, so the transaction commits nothing (fence_or_fail).
        conn.execute(self.Q["fence_or_fail"], {"job": lease.job, "token": lease.token})
        self._fenced = lease

    def _affected(self, cursor: Any) -> int:
        if self._pipeline is not None:
            self._pipeline.sync()  # the answers so far; the transaction stays open
        return int(cursor.rowcount)

    @contextlib.contextmanager
    def _transaction(self, conn: Connection, commit: Commit) -> Iterator[None]:
        if self._pipeline is None:  # migrations: psycopg's own transaction block
            with conn.transaction():
                self._commit_as(conn, commit)
                yield
            return
        conn.execute("BEGIN")
        self._commit_as(conn, commit)
        yield  # an exception: no COMMIT; _batched rolls back
        conn.execute("COMMIT")

    def _commit_as(self, conn: Connection, commit: Commit) -> None:
        if commit is Commit.TOKEN and not self.durable:
            conn.execute("SET LOCAL synchronous_commit = on")
        elif commit is Commit.BOOKKEEPING and self.durable:
            # A run record need not wait for the disk (its loss in a power cut is harmless,
            # see Commit); the next durable commit flushes it along, WAL being in order.
            conn.execute("SET LOCAL synchronous_commit = off")

    def _lock_lease(
        self, conn: Connection, job: str, *, create: bool
    ) -> tuple[LeaseInfo | None, float]:
        if create:  # a row to lock: two first runners then queue on it
            conn.execute(self.Q["ensure_lease_row"], {"job": job})
        row = self._one(conn, "lock_lease", {"job": job})
        if row is None:
            return None, time.time()
        return rows.lease_from_row(job, row, self._where("lease of job", job)), float(row["now"])

    def _forget_lapsed_lease(self, conn: Connection, job: str) -> None:
        # A runner whose lease lapsed unnoticed must not write into the empty job.
        conn.execute(self.Q["release_any_lease"], {"job": job})

    def _mark_taken(self, conn: Connection, job: str, token: int) -> None:
        conn.execute(self.Q["mark_checkpoint"], {"job": job, "token": token})

    def _write_fenced(self, conn: Connection, lease: Lease, params: dict[str, Any]) -> None:
        """The usual checkpoint is one UPDATE of the row this runner wrote last, fenced by
        the token the row carries (see ``update_checkpoint``): no lock on the lease row,
        whose every lock is a write of its own. The first checkpoints of a run (this store
        wrote none under this token yet: on a fresh job the UPDATE would find no row, a
        round trip in vain), or one a takeover fenced out, go the locked way, where the
        lease decides."""
        mine = (params["job"], lease.token)
        if (
            self._wrote == mine
            and self._affected(conn.execute(self.Q["update_checkpoint"], params)) == 1
        ):
            return
        super()._write_fenced(conn, lease, params)
        self._wrote = mine

    def _write_alone(self, conn: Connection, lease: Lease, checkpoint: Checkpoint) -> None:
        """At ``every=1`` this is the per-item cost: one statement on a kept cursor (psycopg
        prepares it on the server after a few uses), sending only what moved since the
        last checkpoint of the run (not the input's fingerprint, total, start, run id). A
        row that no longer matches (a takeover, a reset) is written whole, as before."""
        fixed = rows.fixed_part(checkpoint, lease.token)
        if fixed == self._written:
            cursor = self._cursor
            if cursor is None or cursor.connection is not conn:
                cursor = self._cursor = conn.cursor()
            params = (*rows.progress_values(checkpoint), checkpoint.job, lease.token)
            if cursor.execute(self.Q["update_progress"], params).rowcount == 1:
                return
        self._written = None
        self._write_fenced(conn, lease, rows.checkpoint_params(checkpoint, lease.token))
        self._written = fixed  # committed: the statement was a transaction of its own

    def _stored_version(self, conn: Connection) -> int | None:
        # One question, not two: a store's start pays a round trip for each. Outside a
        # transaction, the error a missing table raises leaves the connection as it was.
        try:
            return int(self._scalar(conn, "schema_version"))
        except UndefinedTable:
            return None

    def _lock_migrations(self, conn: Connection) -> None:
        conn.execute(self.Q["migration_lock"])

    def _list_param(self, values: list[str]) -> list[str]:
        return values

    def _transaction_open(self) -> bool:
        return self._in_transaction

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

    def _commit_open_transaction(self, parts: Callable[[Any], None]) -> None:
        conn = self._db.connection()
        try:
            parts(conn)
            conn.execute("COMMIT")
        except PgError as exc:
            self._in_transaction = False
            raise self._db.translate_now(exc, "write a checkpoint to") from exc
        self._in_transaction = False

    def rollback_transaction(self) -> None:
        if not self._in_transaction:
            return
        self._in_transaction = False
        with contextlib.suppress(PgError):  # a broken connection has rolled back
            self._db.connection().execute("ROLLBACK")

    # -- distributed jobs ---------------------------------------------------------------

    def claim_lease(self, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
        """The first of ``jobs`` (in the caller's order) that has not completed and no live
        runner holds, taken with ``FOR UPDATE SKIP LOCKED``: workers claiming at the same
        moment pass over each other's rows instead of queueing on them, and never take the
        same partition. Which have completed is asked in the same round trip."""
        if not jobs:
            return None
        keys = [job.key for job in jobs]

        def op(conn: Connection, attempt: int) -> Lease | None:
            completed = self._run(conn, "completed_among", {"jobs": keys})
            conn.execute(self.Q["ensure_lease_rows"], {"jobs": keys})
            found = {row["job"]: row for row in self._all(conn, "claim_candidates", {"jobs": keys})}
            done = {row["job"] for row in rows.every(completed)}
            for job in jobs:
                row = found.get(job.key)
                if row is None or job.key in done:
                    continue  # another worker is claiming it right now, or it completed
                current = rows.lease_from_row(job.key, row, self._where("lease of job", job.key))
                now = float(row["now"])
                if current.is_live(now) and current.owner != owner:
                    continue
                token = current.token + 1
                self._take(conn, job, owner, ttl, token, now)
                took_over = current if current.owner not in (None, owner) else None
                return Lease(job.key, token, owner, ttl, took_over)
            return None

        return self._transact("claim a partition in", op, Commit.TOKEN)


SCHEMA_VERSION = PostgreSQLStore.SCHEMA_VERSION
