"""``sources.sql``: the rows of a table or query, paged by key, resumed by one indexed query.

Each page is ``SELECT * FROM <table or (query)> WHERE key > :last ORDER BY key LIMIT :batch``
(keyset pagination), so reading page 7,000 costs what reading page 1 does, and a resume is
that same query with the saved key. Composite keys compare as row values, ``(a, b) > (?, ?)``,
which SQLite (3.15 or newer) and PostgreSQL both support and both answer from an index on
``(a, b)``.

Two databases, with no dependency beyond the driver: SQLite (a ``sqlite3.Connection`` or a
``sqlite:///path`` URL, opened read-only) and PostgreSQL (a psycopg 3 connection, or a
``postgresql://`` URL, which needs the ``midway[postgres]`` extra). The SQL is small enough
(quoted identifiers, one placeholder style per driver) that a query builder such as
SQLAlchemy Core would add a dependency without removing any code.

Identifiers (table, key columns) are quoted; values (the last key, your ``params``) are always
passed as parameters.
"""

from __future__ import annotations

import copy
import re
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError, SourceError
from midway.sources._sqldb import SQLITE, Database, quote
from midway.sources._sqlrows import RowChunk, jsonable, jsonable_all, jsonable_text
from midway.sources.base import refuse_key

_QUERY = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*(select|with|values)\b", re.I | re.S)
_ALIAS = "midway_rows"


def _key_names(key: str | Sequence[str]) -> list[str]:
    """``key=`` as a list of column names."""
    if isinstance(key, str):
        return [key]
    if isinstance(key, Sequence) and key and all(isinstance(k, str) for k in key):
        return list(key)
    raise ConfigError(
        f"key= must name the column (or columns) that order and identify the rows, "
        f"e.g. key='id' or key=('day', 'id'); got {key!r}"
    )


class SqlSource:
    kind = "sql"
    seekable = True

    def __init__(
        self,
        connection_or_url: Any,
        table_or_query: str,
        key: str | Sequence[str],
        *,
        batch: int,
        version: JSONValue,
        count: bool,
        params: Sequence[Any] | Mapping[str, Any] | None,
    ) -> None:
        """See :func:`sql`, which holds the defaults."""
        self._keys = _key_names(key)
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ConfigError(f"batch= must be a positive number of rows, not {batch!r}")
        if params is not None and not isinstance(params, list | tuple | Mapping):
            raise ConfigError(
                f"params= must be a list or tuple (for ? or %s) or a dict (for named "
                f"parameters), not {type(params).__name__}"
            )
        if not isinstance(table_or_query, str) or not table_or_query.strip():
            raise ConfigError("sources.sql needs a table name or a SELECT query")
        self._batch = batch
        self._version = version
        self._count = count
        self._params = params
        self._composite = len(self._keys) > 1
        self._key_sql = ", ".join(quote(k) for k in self._keys)

        self._db = Database(connection_or_url)
        self._dialect = self._db.dialect
        if self._composite and self._dialect is SQLITE and sqlite3.sqlite_version_info < (3, 15, 0):
            raise ConfigError(
                f"a composite key needs SQLite 3.15 or newer (row values); this Python has "
                f"SQLite {sqlite3.sqlite_version}"
            )

        text = table_or_query.strip()
        if _QUERY.match(text):
            self._query: str | None = text.rstrip().rstrip(";").rstrip()
            self._from = f"({self._query}) AS {_ALIAS}"
            self._name = "a query"
        else:
            self._query = None
            self._from = ".".join(quote(part) for part in text.split("."))
            self._name = f"table {text}"
        self._text = text
        # A partition's key range (for distributed runs): after ``_lo`` (exclusive, None:
        # from the first row) up to ``_hi`` (inclusive, None: to the last); ``_empty``: none.
        self._partitioned = False
        self._lo: Any = None
        self._hi: Any = None
        self._empty = False

    # -- partitions -----------------------------------------------------------------------

    def plan_parts(self, count: int) -> list[JSONValue]:
        """``count`` key ranges of about equal row counts (for distributed runs), found by
        one ``row_number()`` query over the key order. Rows added later fall in the range
        their key belongs to (keys past the last cut: the last range)."""
        conn, owned = self._db.connect()
        try:
            total = int(
                self._execute(conn, f"SELECT COUNT(*) FROM {self._from}", self._bind([]))[1][0][0]
            )
            at = [total * i // count for i in range(count + 1)]
            wanted = sorted({r for r in at[1:-1] if r > 0})
            keys: dict[int, JSONValue] = {}
            if wanted:
                marks = ", ".join(str(int(r)) for r in wanted)
                sql = (
                    f"SELECT {self._key_sql}, midway_rn FROM (SELECT {self._key_sql}, "
                    f"row_number() OVER (ORDER BY {self._key_sql}) AS midway_rn "
                    f"FROM {self._from}) AS midway_cut WHERE midway_rn IN ({marks}) "
                    "ORDER BY midway_rn"
                )
                width = len(self._keys)
                for row in self._execute(conn, sql, self._bind([]))[1]:
                    values = list(row[:width])
                    keys[int(row[width])] = (
                        jsonable_all(values) if self._composite else jsonable(values[0])
                    )
        finally:
            if owned:
                conn.close()
        parts: list[JSONValue] = []
        for i in range(count):
            lo, hi = at[i], at[i + 1]
            parts.append(
                {
                    "after": keys.get(lo) if lo else None,
                    "upto": None if i == count - 1 else keys.get(hi),
                    "empty": i < count - 1 and hi == 0,
                }
            )
        return parts

    def partition(self, part: JSONValue, index: int) -> SqlSource:
        if not (
            isinstance(part, dict)
            and isinstance(part.get("empty"), bool)
            and all(self._key_ok(part.get(end)) for end in ("after", "upto"))
        ):
            raise SourceError(
                f"partition {index} of {self._name} is recorded as {str(part)[:120]!r}, which "
                "is not a key range of it; `midway reset` the job to split it again"
            )
        piece = copy.copy(self)
        piece._partitioned = True
        piece._lo, piece._hi, piece._empty = part["after"], part["upto"], part["empty"]
        return piece

    def _key_ok(self, value: Any) -> bool:
        if value is None:
            return True
        if self._composite:
            return isinstance(value, list) and len(value) == len(self._keys)
        return not isinstance(value, list | dict)

    # -- the Source protocol --------------------------------------------------------------

    def fingerprint(self) -> dict[str, JSONValue]:
        """The database (its URL without password), the query or table, the key, the
        parameters and ``version=``: rows added or changed are not drift, another query is."""
        params = self._params
        if isinstance(params, Mapping):
            shown: JSONValue = {str(k): _shown(v) for k, v in params.items()}
        elif params is not None:
            shown = [_shown(v) for v in params]
        else:
            shown = None
        fp: dict[str, JSONValue] = {
            "kind": self.kind,
            "database": self.database(),
            "query": self._text,
            "key": list(self._keys),
            "params": shown,
            "version": self._version,
        }
        if self._partitioned:
            fp["part"] = [self._lo, self._hi]
        return fp

    def total(self) -> int | None:
        """With ``count=True``, one ``COUNT(*)`` of the rows (run once, at the start)."""
        if not self._count:
            return None
        if self._empty:
            return 0
        conn, owned = self._db.connect()
        try:
            lo = self._lo is not None
            where = self._where(after=lo)
            params = self._bind(self._last_values(self._lo) if lo else [])
            rows = self._execute(conn, f"SELECT COUNT(*) FROM {self._from}{where}", params)[1]
            return int(rows[0][0])
        finally:
            if owned:
                conn.close()

    def open(self, position: JSONValue) -> SqlCursor:
        after, count = self._position(position)
        conn, owned = self._db.connect()
        return SqlCursor(self, conn, owned, after, count)

    def describe(self) -> str:
        if not self._partitioned:
            return self._name
        if self._empty:
            return f"{self._name}, no rows"
        keys = ", ".join(self._keys)
        if self._composite:
            keys = f"({keys})"
        bounds = []
        if self._lo is not None:
            bounds.append(f"{keys} > {jsonable_text(self._lo)}")
        if self._hi is not None:
            bounds.append(f"{keys} <= {jsonable_text(self._hi)}")
        return f"{self._name}, rows with {' and '.join(bounds) or 'any key'}"

    def database(self) -> str:
        """Which database, as a URL without password."""
        return self._db.name()

    def describe_position(self, position: JSONValue) -> str:
        after, count = self._position(position)
        if after is None:
            return "the first row"
        if self._composite:
            keys = "(" + ", ".join(self._keys) + ")"
            values = "(" + ", ".join(repr(v) for v in after) + ")"
        else:
            keys, values = self._keys[0], repr(after)
        return f"row {count + 1:,} (after {keys} = {values})"

    # -- the SQL --------------------------------------------------------------------------

    def page_sql(self, after: bool) -> str:
        """The query for one page: the first (``after=False``) or the one after a key."""
        where = self._where(after=after)
        return f"SELECT * FROM {self._from}{where} ORDER BY {self._key_sql} LIMIT {self._batch}"

    def _where(self, *, after: bool) -> str:
        """``key > last`` (with ``after``), and a partition's ``key <= upto``."""
        conditions = []
        if after:
            conditions.append(self._compare(">", "midway_k"))
        if self._hi is not None:
            conditions.append(self._compare("<=", "midway_h"))
        return " WHERE " + " AND ".join(conditions) if conditions else ""

    def _compare(self, op: str, prefix: str) -> str:
        names = [f"{prefix}{i}" for i in range(len(self._keys))]
        if isinstance(self._params, Mapping):
            marks = [self._dialect.named.format(n) for n in names]
        else:
            marks = [self._dialect.positional] * len(names)
        if self._composite:
            return f"({self._key_sql}) {op} ({', '.join(marks)})"
        return f"{self._key_sql} {op} {marks[0]}"

    def _last_values(self, last: Any) -> list[Any]:
        return list(last) if self._composite else [last]

    def _bind(self, last: Sequence[Any]) -> Any:
        """The user's parameters, the last key's values, and a partition's upper bound."""
        params = self._params
        upto = [] if self._hi is None else self._last_values(self._hi)
        if isinstance(params, Mapping):
            bound = dict(params)
            bound.update({f"midway_k{i}": v for i, v in enumerate(last)})
            bound.update({f"midway_h{i}": v for i, v in enumerate(upto)})
            return bound
        return [*(params or ()), *last, *upto]

    def _execute(self, conn: Any, sql: str, params: Any) -> tuple[list[str], list[Sequence[Any]]]:
        try:
            cur = self._dialect.cursor(conn)
            try:
                cur.execute(sql, params)
                names = [d[0] for d in cur.description or ()]
                return names, cur.fetchall()
            finally:
                cur.close()
        except self._dialect.errors as exc:
            self._refuse_unknown_key(conn)
            raise SourceError(
                f"cannot read the rows of {self._name} ({self.database()}): "
                f"{str(exc).strip()}; check the table or query and key= "
                f"(the query run was: {sql})"
            ) from None

    def _refuse_unknown_key(self, conn: Any) -> None:
        """After a query failed: if ``key=`` names a column the rows do not have, say so,
        naming the columns they have (the database's own message may not)."""
        params = self._params
        bound = dict(params) if isinstance(params, Mapping) else list(params or ())
        try:
            cur = self._dialect.cursor(conn)
            try:
                cur.execute(f"SELECT * FROM {self._from} LIMIT 0", bound)
                names = [str(d[0]) for d in cur.description or ()]
            finally:
                cur.close()
        except self._dialect.errors:
            return  # the query itself is wrong: the first error says so
        missing = [k for k in self._keys if k not in names]
        if names and missing:
            raise refuse_key(missing[0], names, self._name)

    def _position(self, position: JSONValue) -> tuple[Any, int]:
        """(last key, rows before it) from a checkpoint position; (None, 0) is the start."""
        if position is None:
            return None, 0
        if isinstance(position, dict):
            last, count = position.get("last"), position.get("count")
            width_ok = (
                isinstance(last, list) and len(last) == len(self._keys)
                if self._composite
                else not isinstance(last, list | dict)
            )
            if width_ok and isinstance(count, int) and count >= 0 and last is not None:
                return last, count
        raise SourceError(
            f"the checkpoint position {position!r} is not a key of {self._name} "
            f"(key: {', '.join(self._keys)}); run with on_drift='restart', or "
            "`midway reset` the job"
        )

    def pages(self, conn: Any, after: Any, count: int) -> Iterator[RowChunk]:
        """The pages after key ``after`` (None: from the first row, or the partition's)."""
        if self._empty:
            return
        if after is None:
            after = self._lo
        composite, batch = self._composite, self._batch
        to_json = jsonable_all if composite else jsonable
        first_sql, next_sql = self.page_sql(False), self.page_sql(True)
        while True:
            if after is None:
                names, rows = self._execute(conn, first_sql, self._bind([]))
            else:
                names, rows = self._execute(conn, next_sql, self._bind(self._last_values(after)))
            if not rows:
                return
            where = self._key_columns(names)
            if composite:
                lasts: list[Any] = [tuple(row[i] for i in where) for row in rows]
            else:
                k = where[0]
                lasts = [row[k] for row in rows]
            self._check_keys(lasts, count)
            items = [dict(zip(names, row, strict=True)) for row in rows]
            yield RowChunk(items, lasts, None if after is None else to_json(after), count, to_json)
            count += len(rows)
            after = lasts[-1]
            if len(rows) < batch:
                return

    def _key_columns(self, names: list[str]) -> list[int]:
        try:
            return [names.index(k) for k in self._keys]
        except ValueError:
            missing = [k for k in self._keys if k not in names]
            raise refuse_key(missing[0], names, self._name) from None

    def _check_keys(self, lasts: list[Any], count: int) -> None:
        """NULL or repeated keys would make pages skip rows: refuse them, naming the row."""
        nulls = (
            [i for i, t in enumerate(lasts) if None in t]
            if self._composite
            else ([lasts.index(None)] if None in lasts else [])
        )
        if nulls:
            raise SourceError(
                f"row {count + nulls[0] + 1:,} of {self._name} has a NULL in key column(s) "
                f"{', '.join(self._keys)}; the key must identify every row (filter NULLs out "
                "in the query, or choose another key)"
            )
        try:
            distinct = len(set(lasts))
        except TypeError:  # an unhashable key type: jsonable() refuses it soon enough
            return
        if distinct != len(lasts):
            seen: set[Any] = set()
            for i, value in enumerate(lasts):
                if value in seen:
                    raise SourceError(
                        f"rows of {self._name} share the key {jsonable_text(value)} (row "
                        f"{count + i + 1:,}); paging by key would skip some of them. Use a "
                        "unique key (a primary key), or add columns: key=(..., 'id')"
                    )
                seen.add(value)


def _shown(value: Any) -> JSONValue:
    """A parameter as the fingerprint records it."""
    if value is None or isinstance(value, bool | str | int | float):
        return value
    return str(value)


class SqlCursor:
    def __init__(self, source: SqlSource, conn: Any, owned: bool, after: Any, count: int) -> None:
        self._source = source
        self._conn = conn
        self._owned = owned
        self._after = after
        self._count = count

    def __iter__(self) -> Iterator[RowChunk]:
        return self._source.pages(self._conn, self._after, self._count)

    def close(self) -> None:
        if self._owned and self._conn is not None:
            self._conn.close()
            self._conn = None


def sql(
    connection_or_url: Any,
    table_or_query: str,
    key: str | Sequence[str],
    *,
    batch: int = 1000,
    version: JSONValue = None,
    count: bool = False,
    params: Sequence[Any] | Mapping[str, Any] | None = None,
) -> SqlSource:
    """The rows of a table or a SELECT, each a dict of column name to value, in key order.

    ``connection_or_url``: a ``sqlite3.Connection``, a psycopg 3 connection, or a URL
    (``sqlite:///data.db``, ``postgresql://user@host/db``; a URL is opened by midway, the
    SQLite file read-only, PostgreSQL in autocommit). ``key``: the column, or a tuple of
    columns, that orders the rows and identifies each one; it must be unique and never NULL
    (a primary key is ideal, and an index on it makes every page one index range scan).
    ``batch``: rows per query. ``params``: parameters of your query, in the driver's own
    style (``?`` or ``:name`` for SQLite, ``%s`` or ``%(name)s`` for PostgreSQL, where a
    literal ``%`` in the query is written ``%%``). ``count=True`` runs one ``COUNT(*)`` at
    the start, for progress and an ETA. ``version=``: change it to mark the data as another
    input (rows added or edited are not drift by themselves: paging by key handles them).

    Resuming runs one query, ``WHERE key > :last``, whatever the position. A connection you
    pass stays yours: midway neither commits nor closes it (give PostgreSQL connections
    autocommit, or a transaction stays open while the job runs)."""
    return SqlSource(
        connection_or_url,
        table_or_query,
        key,
        batch=batch,
        version=version,
        count=count,
        params=params,
    )


__all__ = ["SqlSource", "sql"]
