"""How the SQL stores talk to their database: the hooks a dialect fills in, named queries,
transactions, and bringing the tables up to this midway's schema.

:class:`SQLCore` is what :class:`~midway.stores.sqlbase.SQLStore` (the store's methods,
written once) stands on. What differs per dialect is a hook here (the methods marked
abstract, and the few with an empty default): how a call runs and fails (``_call``: once on
SQLite; again after a dropped connection on PostgreSQL, so every ``op`` must be safe to run
twice), transactions and the write lock, lease locks, the exactly-once transaction left
open between checkpoints, and how a list is bound. Each write says how durable its commit
must be (:class:`Commit`); the dialect decides what that takes.
"""

from __future__ import annotations

import contextlib
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from enum import Enum
from typing import Any, ClassVar, TypeVar

from midway import faults
from midway.errors import StoreNotFound, StoreTooNew
from midway.stores import rows, sqlfiles
from midway.stores.base import LeaseInfo, Store

T = TypeVar("T")
Op = Callable[[Any, int], T]
"""A piece of work on the store's connection: ``op(connection, attempt)``."""


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


class SQLCore(Store):
    """The ground a SQL store stands on. A dialect names itself (``dialect``: its queries
    are ``sql/<dialect>/``) and implements the hooks."""

    dialect: ClassVar[str]
    Q: ClassVar[dict[str, str]]  # the dialect's named queries
    SCHEMA_VERSION: ClassVar[int]
    durable: bool

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "dialect" in cls.__dict__:
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
        version = self._stored_version(conn)
        if version is not None and version > self.SCHEMA_VERSION:
            raise self._too_new(version)
        return version

    def _stored_version(self, conn: Any) -> int | None:
        """The version the tables are at (None: no tables), outside any transaction."""
        if not self._scalar(conn, "schema_table"):
            return None
        return int(self._scalar(conn, "schema_version"))

    def _too_new(self, version: int) -> StoreTooNew:
        return StoreTooNew(
            f"store {self.url} has schema version {version}, written by a newer midway; this "
            f"midway knows versions up to {self.SCHEMA_VERSION}. Upgrade midway "
            "(pip install -U midway); nothing was changed."
        )
