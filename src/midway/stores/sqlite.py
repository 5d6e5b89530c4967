"""The embedded default store: one SQLite file in WAL mode, one transaction per checkpoint.

Durable (the default) means ``synchronous=FULL``: a commit is on disk before midway reports
the checkpoint written, so it survives a power cut. ``durable=False`` uses ``NORMAL``, which in
WAL mode survives any crash of the process but may lose the last commits to a power cut.

The methods are :class:`~midway.stores.sqlbase.SQLStore`'s; this module keeps what is
SQLite's own: the file, its pragmas, ``BEGIN IMMEDIATE`` as the write lock, and sqlite3's
errors. Every call runs once (there is no connection to lose).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from midway._model import jsonutil
from midway._model.identity import JobId
from midway._model.owner import Owner
from midway.errors import StoreCorrupt, StoreUnavailable
from midway.stores import fileguard
from midway.stores.base import Lease, LeaseInfo, claim_in_turn
from midway.stores.sqlbase import SQLStore
from midway.stores.sqlcore import Commit, Op, T


class SQLiteStore(SQLStore):
    dialect = "sqlite"

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
        self._open(create=True)

    def close(self) -> None:
        self.conn.close()

    # -- hooks --------------------------------------------------------------------------

    def _call(
        self, doing: str, op: Op[T], commit: Commit | None = None, patience: float | None = None
    ) -> T:
        if commit is not None:
            self._synchronous(full=commit is Commit.REPORTED)
        with self._errors(doing):
            return op(self.conn, 1)

    @contextmanager
    def _transaction(self, conn: sqlite3.Connection, commit: Commit) -> Iterator[None]:
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def _synchronous(self, *, full: bool) -> None:
        """FULL (fsync at each commit) for what midway reports as saved: checkpoints and a
        job's completion; NORMAL for leases and run records, whose loss in a power cut is
        harmless (the machine that held the lease went down too). In WAL mode the next FULL
        commit makes every earlier one durable as well, so the order of events is kept."""
        mode = "FULL" if (full and self.durable) else "NORMAL"
        if mode != self._sync_mode:
            self.conn.execute(f"PRAGMA synchronous = {mode}")
            self._sync_mode = mode

    def _lock_lease(
        self, conn: sqlite3.Connection, job: str, *, create: bool
    ) -> tuple[LeaseInfo | None, float]:
        # BEGIN IMMEDIATE holds the database's write lock already.
        return self._lease_info(conn, job), time.time()

    def _list_param(self, values: list[str]) -> str:
        return jsonutil.dumps(values)  # read by json_each()

    def _transaction_open(self) -> bool:
        return self.conn.in_transaction

    def begin_transaction(self, lease: Lease) -> sqlite3.Connection:
        self._synchronous(full=True)
        with self._errors("open a transaction in"):
            if not self.conn.in_transaction:
                self.conn.execute("BEGIN IMMEDIATE")
            self._fence(self.conn, lease)
        return self.conn

    def _commit_open_transaction(self, parts: Callable[[Any], None]) -> None:
        self._synchronous(full=True)
        conn = self.conn
        with self._errors("write a checkpoint to"):
            try:
                parts(conn)
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def rollback_transaction(self) -> None:
        with self._errors("roll back a transaction in"):
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")

    def claim_lease(self, jobs: list[JobId], owner: Owner, ttl: float) -> Lease | None:
        return claim_in_turn(self, jobs, owner, ttl)

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


SCHEMA_VERSION = SQLiteStore.SCHEMA_VERSION
