"""A PostgreSQL server for the tests, and a fresh database for each test.

The server is ``MIDWAY_TEST_POSTGRES_URL`` when set (a URL whose user may create databases),
else a throwaway server from the ``pgserver`` package, started once per session in a
temporary folder and stopped (and deleted) at the end. Each test gets a database of its own,
dropped afterwards, so that no test sees another's jobs. In CI (``CI`` set) a server that
cannot be had fails the session instead of skipping the PostgreSQL tests.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

ENV_URL = "MIDWAY_TEST_POSTGRES_URL"


def with_database(url: str, name: str) -> str:
    """``url`` pointed at database ``name`` (everything else kept)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def database_of(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def connect(url: str) -> Any:
    import psycopg

    return psycopg.connect(url, autocommit=True)


class PgServer:
    """The session's server: databases to hand out, and ways to be unkind to them."""

    def __init__(self, admin_url: str, handle: Any = None, pgdata: Path | None = None) -> None:
        self.admin_url = admin_url
        self.handle = handle  # pgserver's, when the server is ours
        self.pgdata = pgdata
        self.restarted = False

    @property
    def ours(self) -> bool:
        """True for the throwaway server, which a test may restart."""
        return self.handle is not None

    def create_database(self) -> str:
        name = "midway_test_" + uuid.uuid4().hex[:12]
        with connect(self.admin_url) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return with_database(self.admin_url, name)

    def drop_database(self, url: str) -> None:
        name = database_of(url)
        with connect(self.admin_url) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def terminate(self, url: str) -> int:
        """End every session on ``url``'s database (as a server restart would); how many."""
        with connect(self.admin_url) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database_of(url),),
            ).fetchall()
        return sum(1 for (ok,) in rows if ok)

    def sessions(self, url: str) -> list[tuple[int, str, str]]:
        """(pid, state, query) of the sessions on ``url``'s database."""
        with connect(self.admin_url) as conn:
            rows = conn.execute(
                "SELECT pid, coalesce(state, ''), coalesce(query, '') FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (database_of(url),),
            ).fetchall()
        return [(int(pid), str(state), str(query)) for pid, state, query in rows]

    def pg_ctl(self, *args: str) -> None:
        if self.handle is None or self.pgdata is None:
            raise RuntimeError(f"the server at {self.admin_url} is not ours to control")
        from pgserver import pg_ctl

        pg_ctl(list(args), pgdata=self.pgdata, user=self.handle.system_user, timeout=60)

    def restart(self) -> None:
        """Restart the server (fast shutdown: sessions are cut, as in a real restart)."""
        self.restarted = True
        self.pg_ctl("-w", "-m", "fast", "restart")

    def stop(self) -> None:
        self.pg_ctl("-w", "-m", "fast", "stop")


def store_is_busy(url: str) -> bool:
    """True while a session on the store's database is inside a statement or a transaction:
    a runner stopped then could hold a row lock the others wait for."""
    with connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IS NOT NULL AND state <> 'idle'"
        ).fetchone()
    return bool(row and row[0])


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Hold a lock that makes every checkpoint write wait (a store slow to commit)."""
    with connect(url) as conn, conn.transaction():
        conn.execute("LOCK TABLE midway_checkpoints IN SHARE MODE")
        yield


def _start_throwaway(folder: Path) -> PgServer:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pgserver warns that XDG_RUNTIME_DIR is unset
        import pgserver

        pgdata = folder / "pgdata"
        handle = pgserver.get_server(pgdata, cleanup_mode="delete")
    url = handle.get_uri()
    # A throwaway server need not survive a power cut; without fsync, creating a database
    # per test takes ~50 ms instead of ~400 ms on a busy disk. What clients see is the same.
    with connect(url) as conn:
        conn.execute("ALTER SYSTEM SET fsync = off")
        conn.execute("SELECT pg_reload_conf()")
    return PgServer(url, handle, pgdata)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """The session's PostgreSQL server (see the module docstring)."""
    given = os.environ.get(ENV_URL)
    if given:
        yield PgServer(given)
        return
    # Not under pytest's temporary folder: as root, the server runs as another user, who
    # must be able to reach its folder, and pytest makes its own folder private again at
    # the start of every session (of any project on the machine).
    folder = Path(tempfile.mkdtemp(prefix="midway-test-pg-"))
    try:
        server = _start_throwaway(folder)
    except Exception as exc:
        shutil.rmtree(folder, ignore_errors=True)
        why = f"no PostgreSQL server for the tests: set {ENV_URL}, or install pgserver ({exc})"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    try:
        yield server
    finally:
        # After a restart pgserver no longer knows the server's pid: stop it ourselves.
        try:
            if server.restarted:
                server.stop()
        finally:
            server.handle.cleanup()
            shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgresql_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)
