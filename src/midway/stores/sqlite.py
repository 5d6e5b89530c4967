"""The embedded default store: one SQLite file in WAL mode, one transaction per checkpoint.

Durable (the default) means ``synchronous=FULL``: a commit is on disk before midway reports
the checkpoint written, so it survives a power cut. ``durable=False`` uses ``NORMAL``, which in
WAL mode survives any crash of the process but may lose the last commits to a power cut.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from midway import faults
from midway._model import jsonutil, ledger
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import DROP, ItemRecord
from midway._model.owner import Owner
from midway.errors import LeaseLost, StoreCorrupt, StoreTooNew, StoreUnavailable
from midway.stores import fileguard, sqlfiles
from midway.stores.base import (
    JOB_FIELDS,
    HistoryPoint,
    JobRecord,
    Lease,
    LeaseInfo,
    Note,
    RunRecord,
    check_lease_free,
    checked,
    claim_in_turn,
    lost_message,
    plan_from_text,
)

Q = sqlfiles.queries("sqlite")
SCHEMA_VERSION = max(v for v, _ in sqlfiles.migrations("sqlite"))


class SQLiteStore:
    def __init__(self, path: Path, url: str, *, durable: bool = True) -> None:
        self.url = url
        self.path = path
        self.durable = durable
        with self._errors("open"):
            try:
                # 0700 folders and a 0600 file (SQLite gives its -wal and -shm files the
                # database file's mode): the state and params are nobody else's to read.
                fileguard.make_dirs(path.parent)
                fileguard.create_private(path)
            except OSError as exc:
                raise StoreUnavailable(
                    f"cannot create the folder for store {url}: {exc.strerror}; "
                    "choose another --store or fix the permissions"
                ) from None
            self.conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
            self.conn.execute("PRAGMA busy_timeout = 30000")
            mode = self.conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise StoreUnavailable(f"store {url} could not switch to WAL mode (got {mode})")
            self._sync_mode = ""
            self._synchronous(full=durable)
            self.conn.execute("PRAGMA foreign_keys = ON")
            try:
                self._migrate()
            except BaseException:
                self.conn.close()
                raise

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """Turn sqlite3's errors into midway's: corrupt, too new, or unavailable (exit 3)."""
        try:
            yield
        except sqlite3.DatabaseError as exc:
            text = str(exc)
            if isinstance(exc, sqlite3.OperationalError) and "locked" in text:
                raise StoreUnavailable(
                    f"store {self.url} stayed locked by another process for 30 s while trying "
                    f"to {doing}; check for a stuck process holding it"
                ) from exc
            if "not a database" in text or "malformed" in text or "corrupt" in text:
                raise StoreCorrupt(
                    f"store {self.url} is not a readable midway database ({text}). Nothing was "
                    "changed. Restore it from a backup, or move it aside to start afresh."
                ) from exc
            raise StoreUnavailable(
                f"cannot {doing} store {self.url}: {text}. Check that the disk has space and "
                "that the file and its folder are writable."
            ) from exc
        except OSError as exc:  # the disk itself, where sqlite3 lets it through
            raise StoreUnavailable(
                f"cannot {doing} store {self.url}: {exc.strerror or exc}. Check that the disk "
                "has space and that the file and its folder are writable."
            ) from exc

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def _synchronous(self, *, full: bool) -> None:
        """FULL (fsync at each commit) for what midway reports as saved: checkpoints and a
        job's completion; NORMAL for leases and run records, whose loss in a power cut is
        harmless (the machine that held the lease went down too). In WAL mode the next FULL
        commit makes every earlier one durable as well, so the order of events is kept."""
        mode = "FULL" if (full and self.durable) else "NORMAL"
        if mode != self._sync_mode:
            self.conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync_mode = mode

    def _schema_version(self) -> int:
        known = self.conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'midway_schema'"
        ).fetchone()
        if not known:
            return 0
        return int(self.conn.execute("SELECT max(version) FROM midway_schema").fetchone()[0] or 0)

    def _migrate(self) -> None:
        if self._schema_version() == SCHEMA_VERSION:
            return  # the usual case: a read, no write lock
        with self._transaction() as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS midway_schema (version INTEGER NOT NULL)")
            current = conn.execute("SELECT max(version) FROM midway_schema").fetchone()[0] or 0
            if current > SCHEMA_VERSION:
                raise StoreTooNew(
                    f"store {self.url} has schema version {current}, written by a newer midway; "
                    f"this midway knows versions up to {SCHEMA_VERSION}. Upgrade midway "
                    "(pip install -U midway); nothing was changed."
                )
            for version, statements in sqlfiles.migrations("sqlite"):
                if version > current:
                    for statement in statements:
                        conn.execute(statement)
                        if faults.ACTIVE:
                            faults.hit("migrate.between")
                    conn.execute("INSERT INTO midway_schema (version) VALUES (?)", (version,))

    def close(self) -> None:
        self.conn.close()

    # -- leases -------------------------------------------------------------------------

    def _lease_info(self, job: str) -> LeaseInfo | None:
        row = self.conn.execute(Q["get_lease"], {"job": job}).fetchone()
        if row is None:
            return None
        names = ("job", "token", "host", "pid", "pid_started", "since", "expires_at")
        record = dict(zip(names, row, strict=True))
        return LeaseInfo.from_store(job, record, f"store {self.url}, lease of job {job!r}")

    def acquire_lease(self, job: JobId, owner: Owner, ttl: float) -> Lease:
        self._synchronous(full=False)
        with self._errors("take the lease in"), self._transaction() as conn:
            now = time.time()
            current = self._lease_info(job.key)
            check_lease_free(job.key, current, owner, now)
            took_over = current if current is not None and current.owner is not None else None
            token = (current.token if current else 0) + 1
            conn.execute(
                Q["put_lease"],
                {
                    "job": job.key,
                    "token": token,
                    "host": owner.host,
                    "pid": owner.pid,
                    "pid_started": owner.pid_started,
                    "since": now,
                    "expires_at": now + ttl,
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
        return Lease(job.key, token, owner, ttl, took_over)

    def renew_lease(self, lease: Lease) -> bool:
        self._synchronous(full=False)
        with self._errors("renew the lease in"):
            cur = self.conn.execute(
                Q["renew_lease"],
                {"job": lease.job, "token": lease.token, "expires_at": time.time() + lease.ttl},
            )
            return cur.rowcount == 1

    def release_lease(self, lease: Lease) -> None:
        self._synchronous(full=False)
        with self._errors("release the lease in"):
            self.conn.execute(Q["release_lease"], {"job": lease.job, "token": lease.token})

    def _fence(self, lease: Lease) -> None:
        if self.conn.execute(Q["holds_lease"], {"job": lease.job, "token": lease.token}).fetchone():
            return
        raise LeaseLost(lost_message(lease))

    # -- checkpoints and runs -----------------------------------------------------------

    def load_checkpoint(self, job: str) -> Checkpoint | None:
        with self._errors("read"):
            row = self.conn.execute(Q["load_checkpoint"], {"job": job}).fetchone()
            if row is None:
                return None
            return _checkpoint_from_row(row, f"store {self.url}, job {job!r}")

    def write_checkpoint(self, lease: Lease, checkpoint: Checkpoint) -> None:
        params = _checkpoint_params(checkpoint)
        params["token"] = lease.token
        self._synchronous(full=True)
        conn = self.conn
        with self._errors("write a checkpoint to"):
            if not (checkpoint.ledger or checkpoint.sample or conn.in_transaction or faults.ACTIVE):
                # One statement is one transaction: the fence check and the write commit
                # together. The usual case: nothing else rides along.
                if conn.execute(Q["write_checkpoint"], params).rowcount != 1:
                    raise LeaseLost(lost_message(lease))
                return
            if not conn.in_transaction:
                conn.execute("BEGIN IMMEDIATE")
            try:
                if conn.execute(Q["write_checkpoint"], params).rowcount != 1:
                    raise LeaseLost(lost_message(lease))
                self._apply(checkpoint.job, checkpoint.ledger)
                if checkpoint.sample:
                    conn.execute(Q["insert_history"], params)
                if faults.ACTIVE:
                    faults.hit("checkpoint.before_commit")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
            if faults.ACTIVE:
                faults.hit("checkpoint.after_commit")

    def _apply(self, job: str, records: list[ItemRecord]) -> None:
        for record in records:
            key = jsonutil.dumps(record.key)
            if record.status == DROP:
                self.conn.execute(Q["drop_item"], {"job": job, "key": key})
            else:
                self.conn.execute(Q["put_item"], _item_params(job, key, record))

    def write_items(self, lease: Lease, records: list[ItemRecord]) -> None:
        self._synchronous(full=True)
        with self._errors("write to the item ledger of"), self._transaction():
            self._fence(lease)
            self._apply(lease.job, records)

    def begin_transaction(self, lease: Lease) -> sqlite3.Connection:
        self._synchronous(full=True)
        with self._errors("open a transaction in"):
            if not self.conn.in_transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            self._fence(lease)
        return self.conn

    def rollback_transaction(self) -> None:
        with self._errors("roll back a transaction in"):
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def begin_run(self, lease: Lease, run: RunRecord) -> None:
        self._synchronous(full=False)
        with self._errors("record the run in"), self._transaction() as conn:
            self._fence(lease)
            conn.execute(Q["crash_stale_runs"], {"job": run.job, "now": run.started_at})
            conn.execute(Q["insert_run"], _run_params(run))
            conn.execute(
                Q["set_job_status"], {"job": run.job, "status": run.status, "now": run.started_at}
            )

    def end_run(
        self,
        lease: Lease,
        run: RunRecord,
        *,
        completed: bool,
        summary: dict[str, JSONValue] | None,
    ) -> None:
        self._synchronous(full=completed)  # "completed" is reported to the user: make it stick
        with self._errors("record the end of the run in"), self._transaction() as conn:
            self._fence(lease)
            now = run.ended_at or time.time()
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
            if summary is not None:
                conn.execute(
                    Q["finish_job"],
                    {
                        "job": run.job,
                        "status": run.status,
                        "now": now,
                        "summary": jsonutil.dumps(summary),
                    },
                )
            else:
                conn.execute(
                    Q["set_job_status"], {"job": run.job, "status": run.status, "now": now}
                )

    # -- reading for people -------------------------------------------------------------

    def list_jobs(self) -> list[JobRecord]:
        with self._errors("read"):
            rows = self.conn.execute(Q["list_jobs"]).fetchall()
            return [self._job_record(row) for row in rows]

    def get_job(self, job: str) -> JobRecord | None:
        with self._errors("read"):
            row = self.conn.execute(Q["get_job"], {"job": job}).fetchone()
            return None if row is None else self._job_record(row)

    def _job_record(self, row: tuple[Any, ...]) -> JobRecord:
        job, name, params, status, created_at, updated_at, summary = row
        where = f"store {self.url}, job {job!r}"
        fields = {
            "job": job,
            "name": name,
            "params": _load(params, where),
            "status": status,
            "created_at": created_at,
            "updated_at": updated_at,
            "summary": _load(summary, where) if summary else None,
        }
        return JobRecord(
            **checked(fields, JOB_FIELDS, where),
            checkpoint=self.load_checkpoint(job),
            lease=self._lease_info(job),
        )

    def list_runs(self, job: str, limit: int = 20) -> list[RunRecord]:
        with self._errors("read"):
            rows = self.conn.execute(Q["list_runs"], {"job": job, "limit": limit}).fetchall()
        where = f"store {self.url}, runs of {job!r}"
        return [_run_from_row(r, where) for r in rows]

    def list_items(self, job: str, statuses: tuple[str, ...]) -> list[ItemRecord]:
        with self._errors("read"):
            rows = self.conn.execute(Q["list_items"], {"job": job}).fetchall()
        where = f"store {self.url}, items of {job!r}"
        return [_item_from_row(r, where) for r in rows if r[1] in statuses]

    def reset(self, job: str, me: Owner) -> bool:
        with self._errors("reset a job in"), self._transaction() as conn:
            check_lease_free(job, self._lease_info(job), me, time.time())
            found = conn.execute(Q["delete_job"], {"job": job}).rowcount > 0
            for query in (
                "delete_items",
                "delete_runs",
                "delete_notes",
                "delete_history",
                "delete_plan",
            ):
                conn.execute(Q[query], {"job": job})
            return found

    # -- distributed jobs ---------------------------------------------------------------

    def settle_plan(self, job: str, plan: dict[str, JSONValue]) -> dict[str, JSONValue]:
        self._synchronous(full=True)
        where = f"store {self.url}, partitions of job {job!r}"
        with self._errors("record the partitions of a job in"), self._transaction() as conn:
            conn.execute(
                Q["insert_plan"], {"job": job, "plan": jsonutil.dumps(plan), "now": time.time()}
            )
            row = conn.execute(Q["get_plan"], {"job": job}).fetchone()
        return plan_from_text(row[0], where)

    def load_plan(self, job: str) -> dict[str, JSONValue] | None:
        with self._errors("read"):
            row = self.conn.execute(Q["get_plan"], {"job": job}).fetchone()
        if row is None:
            return None
        return plan_from_text(row[0], f"store {self.url}, partitions of job {job!r}")

    def claim_lease(self, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
        return claim_in_turn(self, jobs, owner, ttl)

    def completed_among(self, jobs: list[str]) -> set[str]:
        with self._errors("read"):
            rows = self.conn.execute(Q["completed_among"], {"jobs": jsonutil.dumps(jobs)})
            return {row[0] for row in rows}

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
        self._synchronous(full=True)
        with self._errors("change the item ledger of"), self._transaction() as conn:
            now = time.time()
            check_lease_free(job, self._lease_info(job), me, now)
            chosen = [
                r for r in self.list_items(job, statuses) if ledger.matches(r, keys, error_type)
            ]
            for record in chosen:
                key = jsonutil.dumps(record.key)
                if to_status == DROP:
                    conn.execute(Q["drop_item"], {"job": job, "key": key})
                else:
                    conn.execute(
                        Q["set_item_status"],
                        {"job": job, "key": key, "status": to_status, "now": now},
                    )
            if count_as is not None and chosen:
                self._move_counts(job, chosen, count_as)
            return chosen

    def _move_counts(self, job: str, chosen: list[ItemRecord], count_as: str) -> None:
        checkpoint = self.load_checkpoint(job)
        if checkpoint is not None:
            counters = checkpoint.counters.moved(chosen, count_as)
            self.conn.execute(Q["set_counters"], {"job": job, **counters.as_dict()})
            return
        row = self.conn.execute(Q["get_job"], {"job": job}).fetchone()
        summary = _load(row[6], f"store {self.url}, job {job!r}") if row and row[6] else None
        if isinstance(summary, dict):
            counters = Counters.from_dict(summary.get("counters") or {}).moved(chosen, count_as)
            summary["counters"] = counters.as_dict()
            self.conn.execute(Q["set_summary"], {"job": job, "summary": jsonutil.dumps(summary)})

    def add_note(self, job: str, text: str, author: str) -> Note:
        note = Note(time.time(), author, text)
        self._synchronous(full=True)
        with self._errors("add a note to"):
            self.conn.execute(
                Q["add_note"], {"job": job, "at": note.at, "author": author, "text": text}
            )
        return note

    def list_notes(self, job: str) -> list[Note]:
        with self._errors("read"):
            rows = self.conn.execute(Q["list_notes"], {"job": job}).fetchall()
        return [
            Note.from_store({"at": at, "author": author, "text": text}) for at, author, text in rows
        ]

    def list_history(self, job: str) -> list[HistoryPoint]:
        with self._errors("read"):
            rows = self.conn.execute(Q["list_history"], {"job": job}).fetchall()
        where = f"store {self.url}, history of {job!r}"
        names = ("at", "run_id", "version", "succeeded", "failed", "skipped", "in_doubt")
        points = [
            HistoryPoint.from_store(dict(zip(names, row, strict=True)), where) for row in rows
        ]
        return [point for point in points if point is not None]


def _load(text: str, where: str) -> Any:
    try:
        return jsonutil.loads(text)
    except (TypeError, ValueError):
        raise StoreCorrupt(
            f"{where}: a stored JSON value is damaged ({text[:60]!r}...). Restore the store "
            "from a backup, or `midway reset` the job."
        ) from None


def _run_from_row(r: tuple[Any, ...], where: str) -> RunRecord:
    """A ``list_runs`` row (both SQL stores), checked as every store reads runs back."""
    return RunRecord.from_store(
        {
            "run_id": r[0],
            "job": r[1],
            "status": r[2],
            "host": r[3],
            "pid": r[4],
            "started_at": r[5],
            "ended_at": r[6],
            "resumed_from": _load(r[7], where) if r[7] else None,
            "start_processed": r[8],
            "processed": r[9],
            "message": r[10],
            "command": r[11],
        },
        where,
    )


def _item_from_row(r: tuple[Any, ...], where: str) -> ItemRecord:
    """A ``list_items`` row (both SQL stores), through ``from_store`` as the file store
    reads them: a damaged field gives way to its default instead of reaching the engine as
    the wrong type."""
    return ItemRecord.from_store(
        {
            "key": _load(r[0], where),
            "status": r[1],
            "error": r[2],
            "traceback": r[3],
            "attempts": r[4],
            "position": _load(r[5], where) if r[5] else None,
            "item": _load(r[6], where) if r[6] else None,
            "updated_at": r[7],
            "steps": _load(r[8], where) if r[8] else {},
        }
    )


def _run_params(run: RunRecord) -> dict[str, Any]:
    """``insert_run``'s parameters (both SQL stores)."""
    return {
        "run_id": run.run_id,
        "job": run.job,
        "status": run.status,
        "host": run.host,
        "pid": run.pid,
        "started_at": run.started_at,
        "resumed_from": _opt_json(run.resumed_from),
        "start_processed": run.start_processed,
        "command": run.command,
    }


def _item_params(job: str, key: str, record: ItemRecord) -> dict[str, Any]:
    return {
        "job": job,
        "key": key,
        "status": record.status,
        "position": _opt_json(record.position),
        "error": record.error,
        "traceback": record.traceback,
        "attempts": record.attempts,
        "item": _opt_json(record.item),
        "updated_at": record.updated_at or time.time(),
        "steps": jsonutil.dumps(record.steps) if record.steps else None,
    }


def _opt_json(value: JSONValue) -> str | None:
    return None if value is None else jsonutil.dumps(value)


def _checkpoint_params(cp: Checkpoint) -> dict[str, Any]:
    return {
        "job": cp.job,
        "version": cp.version,
        "run_id": cp.run_id,
        "position": jsonutil.dumps(cp.position),
        "succeeded": cp.counters.succeeded,
        "failed": cp.counters.failed,
        "skipped": cp.counters.skipped,
        "in_doubt": cp.counters.in_doubt,
        "state": cp.state_json or jsonutil.dumps_state(cp.state),
        "fingerprint": jsonutil.dumps(cp.fingerprint),
        "total": cp.total,
        "started_at": cp.started_at,
        "updated_at": cp.updated_at,
        "extra": jsonutil.dumps(cp.extra),
    }


def _checkpoint_from_row(row: tuple[Any, ...], where: str) -> Checkpoint:
    (
        job,
        version,
        run_id,
        position,
        succeeded,
        failed,
        skipped,
        in_doubt,
        state,
        fingerprint,
        total,
        started_at,
        updated_at,
        extra,
    ) = row
    return Checkpoint.from_json(
        {
            "job": job,
            "version": version,
            "run_id": run_id,
            "position": _load(position, where),
            "counters": Counters(succeeded, failed, skipped, in_doubt).as_dict(),
            "state": _load(state, where),
            "fingerprint": _load(fingerprint, where),
            "total": total,
            "started_at": started_at,
            "updated_at": updated_at,
            "extra": _load(extra, where),
        },
        where,
    )
