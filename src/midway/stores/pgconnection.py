"""One connection to PostgreSQL that survives a drop: reconnects, retries, clear errors.

A call runs a function of the connection; when the connection drops (the server restarted,
the network blinked), it reconnects and runs it again with backoff, for ``retry_seconds``
(30 s by default; ``?midway_retry_seconds=N`` in the store URL changes it), and then raises
``StoreUnavailable`` (exit 3). The function is told which attempt it is on: a write whose
commit went unanswered may have committed, and the function must be safe to run again.
Errors no retry can mend (a wrong password, a missing table) are raised at once, as
midway's errors with a word on what to do.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from midway._model.redaction import redact_url
from midway.errors import ConfigError, MidwayError, StoreCorrupt, StoreUnavailable
from midway.stores import reuse

try:
    import psycopg
    from psycopg import errors as pg_errors
    from psycopg import pq
    from psycopg.conninfo import conninfo_to_dict, make_conninfo
    from psycopg.rows import TupleRow
except ImportError as exc:  # the optional extra is not installed
    raise ConfigError(
        f"the PostgreSQL store needs psycopg, which is not installed ({exc}). "
        "Install it with: pip install 'midway[postgres]'"
    ) from None

PgError = psycopg.Error
"""psycopg's root error, for modules that must not import psycopg before this one."""
Pipeline = psycopg.Pipeline
UndefinedTable = pg_errors.UndefinedTable
DivisionByZero = pg_errors.DivisionByZero

RETRY_SECONDS = 30.0
"""How long a call keeps reconnecting after the connection dropped, before giving up."""
OPEN_RETRY_SECONDS = 5.0
"""The first connection gives up sooner: a server that never answered is likely a wrong URL."""
LOCK_TIMEOUT = "30s"
"""A row lock held longer than this (a runner paused mid-transaction) fails the call."""
RETRY_PARAM = "midway_retry_seconds"

# Connection settings midway picks unless the URL sets them: a name that shows in
# pg_stat_activity, keepalives that notice a server gone without a word within ~20 s, and a
# bound on how long sent data may go unacknowledged (a dead network mid-write), so that a
# call hangs for seconds, not for the kernel's quarter of an hour.
CONNECT_DEFAULTS = {
    "application_name": "midway",
    "connect_timeout": "10",
    "keepalives": "1",
    "keepalives_idle": "10",
    "keepalives_interval": "3",
    "keepalives_count": "3",
    "tcp_user_timeout": "20000",
}

# Connection failures no retry can mend: a wrong database, user, password or permission.
_PERMANENT_CONNECT = re.compile(
    r"does not exist|authentication failed|pg_hba\.conf|permission denied|no password supplied"
    r"|not permitted|invalid",
    re.IGNORECASE,
)

# Per URL, when a store last gave up on the server: other stores of the same process (the
# runner's second connection) then try once instead of waiting through a whole retry window.
_GAVE_UP: dict[str, float] = {}
_GAVE_UP_LOCK = threading.Lock()

T = TypeVar("T")
Connection = psycopg.Connection[TupleRow]
Cursor = psycopg.Cursor[TupleRow]


# Connections a closed store left idle while a distributed worker runs (see stores.reuse),
# for the next store of this process on the same URL and settings. Kept briefly, and only
# by the process that made them (never across a fork).
IDLE_SECONDS = 10.0
IDLE_MAX = 2
_IdleKey = tuple[str, bool]
_IDLE: dict[_IdleKey, list[tuple[float, int, Connection]]] = {}
_IDLE_LOCK = threading.Lock()


def _keep_idle(key: _IdleKey, conn: Connection) -> bool:
    """Keep ``conn`` for the next store if it is healthy and outside any transaction."""
    if not reuse.active() or conn.closed or conn.broken:
        return False
    if conn.info.transaction_status != pq.TransactionStatus.IDLE:
        return False
    with _IDLE_LOCK:
        kept = _IDLE.setdefault(key, [])
        if len(kept) >= IDLE_MAX:
            return False
        kept.append((time.monotonic(), os.getpid(), conn))
    return True


def _take_idle(key: _IdleKey) -> Connection | None:
    """A connection kept by :func:`_keep_idle`, not too old, made by this process."""
    while True:
        with _IDLE_LOCK:
            kept = _IDLE.get(key)
            if not kept:
                return None
            since, pid, conn = kept.pop()
        if pid != os.getpid():
            continue  # a parent's, inherited by fork: the parent may still use the socket
        if time.monotonic() - since <= IDLE_SECONDS and not conn.closed and not conn.broken:
            return conn
        conn.close()


def _close_idle() -> None:
    with _IDLE_LOCK:
        kept = [entry for entries in _IDLE.values() for entry in entries]
        _IDLE.clear()
    for _, pid, conn in kept:
        if pid == os.getpid():
            conn.close()


reuse.on_end(_close_idle)


def redact(url: str) -> str:
    """``url`` with its password hidden, fit for messages and ``midway status``."""
    return redact_url(url)


def split_url(url: str) -> tuple[str, float | None]:
    """The libpq URL without midway's own parameter, and that parameter's value."""
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True)
    retry: float | None = None
    kept = []
    for key, value in pairs:
        if key != RETRY_PARAM:
            kept.append((key, value))
            continue
        try:
            retry = float(value)
        except ValueError:
            retry = -1.0
        if not 0 <= retry < 1e6:
            raise ConfigError(
                f"store {redact(url)!r}: {RETRY_PARAM}={value!r} is not a number of seconds; "
                f"use e.g. {RETRY_PARAM}=60"
            )
    query = urlencode(kept, safe="/,:")
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment)), retry


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class PgConnection:
    """The store's connection, made on first use and remade after a drop."""

    def __init__(self, url: str, *, durable: bool, retry_seconds: float | None = None) -> None:
        self.url = redact(url)
        self.durable = durable
        libpq_url, from_url = split_url(url)
        if retry_seconds is None:
            retry_seconds = RETRY_SECONDS if from_url is None else from_url
        self.retry_seconds = retry_seconds
        try:
            given = conninfo_to_dict(libpq_url)
        except psycopg.Error as exc:
            raise ConfigError(
                f"store {self.url!r} is not a PostgreSQL URL libpq accepts ({_one_line(exc)}); "
                "write it as postgresql://user:password@host:port/database"
            ) from None
        settings = {**CONNECT_DEFAULTS, **{k: str(v) for k, v in given.items() if v is not None}}
        self._conninfo = make_conninfo(**settings)
        self._key = (self._conninfo, durable)
        self._conn: Connection | None = None
        self._connected_once = False
        self.schema_checked = False
        """The store found midway's tables current (only such a connection is kept idle
        for the next store, which then need not ask again)."""

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not (self.schema_checked and _keep_idle(self._key, conn)):
            conn.close()

    def take_kept(self) -> Connection | None:
        """Go on with a connection a closed store of this process left idle (stores.reuse),
        if there is one: that store found the schema current moments ago."""
        idle = _take_idle(self._key)
        if idle is not None:
            self._conn = idle
            self._connected_once = self.schema_checked = True
        return idle

    def connection(self) -> Connection:
        """The open connection, or a new one (which may raise ``psycopg.Error``)."""
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            conn.close()
            self._conn = None
        idle = self.take_kept()
        if idle is not None:
            return idle
        conn = psycopg.connect(self._conninfo, autocommit=True)
        try:
            settings = f"SET lock_timeout = '{LOCK_TIMEOUT}'"
            if not self.durable:
                settings += "; SET synchronous_commit = off"
            conn.execute(settings)
        except BaseException:
            conn.close()
            raise
        self._conn = conn
        self._connected_once = True
        return conn

    def _transient(self, exc: psycopg.Error) -> bool:
        """Would the same call, on a new connection or a second try, likely go through?"""
        if isinstance(exc, pg_errors.LockNotAvailable):
            return False  # waited LOCK_TIMEOUT already: someone holds the row, say so
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            # Could not connect, or the connection died under the call.
            return not (exc.sqlstate is None and _PERMANENT_CONNECT.search(str(exc)))
        if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
            return True
        if isinstance(exc, pg_errors.CannotConnectNow | pg_errors.AdminShutdown):
            return True
        return isinstance(exc, psycopg.InterfaceError | psycopg.OperationalError) and (
            exc.sqlstate is None
        )

    def call(
        self,
        doing: str,
        op: Callable[[Connection, int], T],
        *,
        retry_seconds: float | None = None,
    ) -> T:
        """Run ``op(connection, attempt)``; on a dropped connection reconnect and run it again
        (``attempt`` counts from 1), with backoff, until ``retry_seconds`` have passed."""
        window = self.retry_seconds if retry_seconds is None else retry_seconds
        gave_up = _GAVE_UP.get(self.url)  # one read of a dict: no lock needed
        if gave_up is not None and time.monotonic() - gave_up < max(window, 1.0):
            window = 0.0  # another connection of this process just waited in vain
        started = time.monotonic()
        delay = 0.05
        attempt = 0
        while True:
            attempt += 1
            try:
                result = op(self.connection(), attempt)
            except psycopg.Error as exc:
                if not self._transient(exc):
                    raise self._translate(exc, doing) from exc
                conn = self._conn
                if conn is not None and (conn.closed or conn.broken):
                    conn.close()
                    self._conn = None
                if time.monotonic() - started + delay > window:
                    with _GAVE_UP_LOCK:
                        _GAVE_UP[self.url] = time.monotonic()
                    raise self._gave_up(exc, doing, time.monotonic() - started) from exc
                time.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            if self.url in _GAVE_UP:  # at every=1 a call per item: no lock when not needed
                with _GAVE_UP_LOCK:
                    _GAVE_UP.pop(self.url, None)
            return result

    def _gave_up(self, exc: psycopg.Error, doing: str, waited: float) -> StoreUnavailable:
        if not self._connected_once:
            return StoreUnavailable(
                f"cannot connect to store {self.url}: {_one_line(exc)}. Check that PostgreSQL "
                "is running and reachable, and the URL's host, port and database."
            )
        return StoreUnavailable(
            f"lost the connection to store {self.url} while trying to {doing}, and could not "
            f"get it back in {waited:.0f} s ({_one_line(exc)}). Nothing was half-written: the "
            "last checkpoint stands, and the job resumes from it when run again once "
            "PostgreSQL is reachable."
        )

    def translate_now(self, exc: psycopg.Error, doing: str) -> MidwayError:
        """For a call that must not be retried (an open transaction died with it)."""
        if self._transient(exc):
            return StoreUnavailable(
                f"lost the connection to store {self.url} while trying to {doing} "
                f"({_one_line(exc)}); the open transaction was rolled back with it. The last "
                "checkpoint stands, and the job resumes from it when run again."
            )
        return self._translate(exc, doing)

    def _translate(self, exc: psycopg.Error, doing: str) -> MidwayError:
        """psycopg's errors that a retry cannot mend, as midway's (exit 3)."""
        text = _one_line(exc)
        if isinstance(exc, pg_errors.UndefinedTable | pg_errors.UndefinedColumn):
            return StoreCorrupt(
                f"store {self.url}: the midway tables are not as this midway expects "
                f"({text}); someone changed or dropped them. Nothing was changed. Restore "
                "them from a backup, or drop the midway_ tables to start afresh."
            )
        if isinstance(exc, pg_errors.LockNotAvailable):
            return StoreUnavailable(
                f"store {self.url}: a row midway needs stayed locked for {LOCK_TIMEOUT} while "
                f"trying to {doing}; look in pg_stat_activity for a session idle in a "
                "transaction (a paused process) and end it"
            )
        if isinstance(exc, pg_errors.InsufficientPrivilege):
            return StoreUnavailable(
                f"cannot {doing} store {self.url}: {text}. Grant the database user the "
                "rights to create and write the midway_ tables, or use another --store."
            )
        if isinstance(exc, pg_errors.ReadOnlySqlTransaction):
            return StoreUnavailable(
                f"cannot {doing} store {self.url}: the server is read-only (a standby?). "
                "Point the URL at the primary."
            )
        if exc.sqlstate is None and not self._connected_once:
            return StoreUnavailable(
                f"cannot connect to store {self.url}: {text}. Check the URL's host, database, "
                "user and password."
            )
        return StoreUnavailable(f"cannot {doing} store {self.url}: {text}")
