"""Stores keep checkpoints, the item ledger, leases and run history. Chosen by URL."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from midway._model.ledger import ItemRecord
from midway._model.redaction import redact_url
from midway.errors import ConfigError, StoreNotFound
from midway.stores import location
from midway.stores.base import JobRecord, Lease, LeaseInfo, RunRecord, Store

DEFAULT_STORE = "sqlite:///.midway/state.db"  # found from the script's folder: see location

__all__ = [
    "DEFAULT_STORE",
    "ItemRecord",
    "JobRecord",
    "Lease",
    "LeaseInfo",
    "RunRecord",
    "Store",
    "absolute_url",
    "default_url",
    "open_store",
]


def default_url() -> str:
    """``MIDWAY_STORE`` if set, else the nearest ``.midway/state.db`` at or above the
    running script's folder (see :mod:`midway.stores.location`), as an absolute URL."""
    return absolute_url(location.default_url())


def absolute_url(url: str) -> str:
    """``url`` with a relative SQLite or file path made absolute (from the working
    directory, now), so that it names the same store wherever it is used or shown later.

    ``sqlite:///rel.db`` becomes ``sqlite:////cwd/rel.db``, ``file:rel/dir``
    ``file:///cwd/rel/dir``, a bare ``rel.db`` ``sqlite:////cwd/rel.db``; other URLs are
    returned as they are."""
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite3"):
        return f"sqlite:///{_path_of(url, rest, sqlalchemy=True)}"
    if scheme == "file":
        return f"file://{_path_of(url, rest, sqlalchemy=False)}"
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        return f"sqlite:///{Path(url).expanduser().absolute()}"
    return url


def _path_of(url: str, rest: str, *, sqlalchemy: bool) -> Path:
    """The local path a store URL names.

    SQLite follows SQLAlchemy: ``sqlite:///rel.db`` is relative to the working directory and
    ``sqlite:////abs.db`` absolute. ``file:`` follows RFC 8089: ``file:///abs/dir`` is absolute,
    ``file:rel/dir`` relative.
    """
    if rest.startswith("//"):
        host, slash, tail = rest[2:].partition("/")
        if host not in ("", "localhost"):
            raise ConfigError(
                f"store {redact_url(url)!r} names host {host!r}; a local path is needed"
            )
        rest = tail if sqlalchemy else slash + tail
    if not rest:
        raise ConfigError(f"store {redact_url(url)!r} has no path, e.g. sqlite:///.midway/state.db")
    return Path(unquote(rest)).expanduser().absolute()


def _existing(url: str, path: Path, create: bool) -> Path:
    if not create and not path.exists():
        raise StoreNotFound(
            f"there is no store at {redact_url(url)} ({path} does not exist): no job has run "
            "with it yet. Check --store or $MIDWAY_STORE."
        )
    return path


def open_store(url: str | None = None, *, durable: bool = True, create: bool = True) -> Store:
    """Open (creating if needed) the store at ``url``.

    ``sqlite:///relative.db`` and ``sqlite:////absolute.db``; ``file:///absolute/dir`` and
    ``file:relative/dir``; ``postgresql://user:password@host:port/database`` (needs
    ``pip install 'midway[postgres]'``); a bare path ending in .db / .sqlite is taken as SQLite.
    ``create=False`` (for commands that only read) raises ``StoreNotFound`` instead of
    creating a store that is not there.
    """
    url = url or default_url()
    scheme, _, rest = url.partition(":")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite3"):
        from midway.stores.sqlite import SQLiteStore

        path = _path_of(url, rest, sqlalchemy=True)
        url = f"sqlite:///{path}"  # absolute: every message names the store it means
        return SQLiteStore(_existing(url, path, create), url, durable=durable)
    if scheme == "file":
        from midway.stores.filesystem import FileStore

        path = _path_of(url, rest, sqlalchemy=False)
        url = f"file://{path}"
        return FileStore(_existing(url, path, create), url, durable=durable)
    if scheme in ("postgresql", "postgres"):
        from midway.stores.postgresql import PostgreSQLStore  # ConfigError without psycopg

        return PostgreSQLStore(url, durable=durable, create=create)
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        from midway.stores.sqlite import SQLiteStore

        path = Path(url).expanduser().absolute()
        url = f"sqlite:///{path}"
        return SQLiteStore(_existing(url, path, create), url, durable=durable)
    raise ConfigError(
        f"store {redact_url(url)!r} is not a store URL midway knows. Use sqlite:///path.db "
        "(embedded, the default), postgresql://user:password@host/db (shared), or "
        "file:///abs/dir (plain JSON files)"
    )
