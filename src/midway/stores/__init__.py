"""Stores keep checkpoints, the item ledger, leases and run history. Chosen by URL."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import unquote

from midway.errors import ConfigError, StoreNotFound
from midway.ledger import ItemRecord
from midway.redaction import redact_url
from midway.stores.base import JobRecord, Lease, LeaseInfo, RunRecord, Store

DEFAULT_STORE = "sqlite:///.midway/state.db"

__all__ = [
    "DEFAULT_STORE",
    "ItemRecord",
    "JobRecord",
    "Lease",
    "LeaseInfo",
    "RunRecord",
    "Store",
    "default_url",
    "open_store",
]


def default_url() -> str:
    """``MIDWAY_STORE`` if set, else ``sqlite:///.midway/state.db`` in the working directory."""
    return os.environ.get("MIDWAY_STORE") or DEFAULT_STORE


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

        return SQLiteStore(
            _existing(url, _path_of(url, rest, sqlalchemy=True), create), url, durable=durable
        )
    if scheme == "file":
        from midway.stores.filesystem import FileStore

        return FileStore(
            _existing(url, _path_of(url, rest, sqlalchemy=False), create), url, durable=durable
        )
    if scheme in ("postgresql", "postgres"):
        from midway.stores.postgresql import PostgreSQLStore  # ConfigError without psycopg

        return PostgreSQLStore(url, durable=durable, create=create)
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        from midway.stores.sqlite import SQLiteStore

        path = _existing(url, Path(url).expanduser().absolute(), create)
        return SQLiteStore(path, f"sqlite:///{url}", durable=durable)
    raise ConfigError(
        f"store {redact_url(url)!r} is not a store URL midway knows. Use sqlite:///path.db "
        "(embedded, the default), postgresql://user:password@host/db (shared), or "
        "file:///abs/dir (plain JSON files)"
    )
