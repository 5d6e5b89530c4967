"""Which database ``sources.sql`` reads, and how: SQLite or PostgreSQL, from a URL (opened,
and closed, by midway) or a connection (the caller's), with the few things that differ
between the two drivers (placeholders, errors, a cursor of tuples)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from midway.errors import ConfigError, SourceError


@dataclass(frozen=True)
class Dialect:
    name: str
    positional: str  # the driver's placeholder for a positional parameter
    named: str  # ... and for a named one, with {} for the name
    errors: tuple[type[BaseException], ...]
    cursor: Callable[[Any], Any]  # a cursor whose rows are tuples, whatever the connection's


def _sqlite_cursor(conn: Any) -> Any:
    return conn.cursor()  # sqlite3.Row and tuples both index and iterate as tuples do


SQLITE = Dialect("sqlite", "?", ":{}", (sqlite3.Error,), _sqlite_cursor)


def postgres() -> Dialect:
    psycopg = import_psycopg()
    from psycopg.rows import tuple_row

    def cursor(conn: Any) -> Any:
        return conn.cursor(row_factory=tuple_row)

    return Dialect("postgresql", "%s", "%({})s", (psycopg.Error,), cursor)


def import_psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "reading PostgreSQL needs psycopg 3, which is not installed: "
            "pip install 'midway[postgres]'"
        ) from None
    return psycopg


def quote(name: str) -> str:
    """A SQL identifier in double quotes (the same in SQLite and PostgreSQL)."""
    if not isinstance(name, str) or not name or "\0" in name:
        raise ConfigError(f"{name!r} is not a usable SQL identifier (a table or column name)")
    return '"' + name.replace('"', '""') + '"'


def redact(url: str) -> str:
    """``url`` without a password (in the authority or in the query string)."""
    parts = urlsplit(url)
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        user = userinfo.partition(":")[0]
        netloc = f"{user}@{hostport}" if user else hostport
    query = urlencode([(k, v) for k, v in parse_qsl(parts.query) if k.lower() != "password"])
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def sqlite_path(url: str) -> Path:
    """``sqlite:///rel.db`` (relative to the working directory) or ``sqlite:////abs.db``,
    as for midway's own store URLs."""
    rest = url.partition(":")[2]
    if not rest.startswith("///"):
        raise ConfigError(f"{url!r} is not a SQLite URL like sqlite:///path/to/file.db")
    path = unquote(rest[3:])
    if not path:
        raise ConfigError(f"{url!r} names no database file, e.g. sqlite:///data.db")
    return Path(path).expanduser().absolute()


class Database:
    """The database to read: ``conn``, a connection the caller owns, or ``url``, which
    :meth:`connect` opens for each read (the SQLite file read-only)."""

    def __init__(self, connection_or_url: Any) -> None:
        self.conn: Any = None
        self.url: str | None = None
        self._database = ""  # for a connection: asked of it when first needed
        if isinstance(connection_or_url, str):
            self.url = connection_or_url
            scheme = connection_or_url.partition(":")[0].lower()
            if scheme in ("sqlite", "sqlite3"):
                self.dialect = SQLITE
                self._database = "sqlite:///" + str(sqlite_path(connection_or_url))
            elif scheme in ("postgresql", "postgres"):
                self.dialect = postgres()
                self._database = redact(connection_or_url)
            else:
                raise ConfigError(
                    f"sources.sql cannot read {redact(connection_or_url)!r}: give a "
                    "sqlite:///path or postgresql:// URL, or a sqlite3 / psycopg connection"
                )
        elif isinstance(connection_or_url, sqlite3.Connection):
            self.conn = connection_or_url
            self.dialect = SQLITE
        elif type(connection_or_url).__module__.partition(".")[0] == "psycopg":
            self.conn = connection_or_url
            self.dialect = postgres()
        else:
            raise ConfigError(
                f"sources.sql cannot use a {type(connection_or_url).__name__}: pass a "
                "sqlite3.Connection, a psycopg 3 connection, or a sqlite:/// or "
                "postgresql:// URL"
            )

    def name(self) -> str:
        """Which database, as a URL without password (the same for a URL or a connection
        to the same SQLite file)."""
        if not self._database:
            if self.dialect is SQLITE:
                self._database = _sqlite_name(self.conn)
            else:
                self._database = _postgres_name(self.conn)
        return self._database

    def connect(self) -> tuple[Any, bool]:
        """The connection to read with, and whether it is ours to close."""
        if self.conn is not None:
            return self.conn, False
        assert self.url is not None
        if self.dialect is SQLITE:
            path = sqlite_path(self.url)
            if not path.exists():
                raise SourceError(f"the SQLite database {path} does not exist; check the URL")
            try:
                return sqlite3.connect(path.as_uri() + "?mode=ro", uri=True), True
            except sqlite3.Error as exc:
                raise SourceError(f"cannot open the SQLite database {path}: {exc}") from None
        psycopg = import_psycopg()
        try:
            return psycopg.connect(self.url, autocommit=True), True
        except psycopg.Error as exc:
            raise SourceError(f"cannot connect to {self._database}: {str(exc).strip()}") from None


def _sqlite_name(conn: sqlite3.Connection) -> str:
    for _, name, file in conn.execute("PRAGMA database_list").fetchall():
        if name == "main":
            return "sqlite:///" + (file or ":memory:")
    return "sqlite:///:memory:"


def _postgres_name(conn: Any) -> str:
    info = conn.info
    host = info.host or ""
    return f"postgresql://{info.user}@{host}:{info.port}/{info.dbname}"
