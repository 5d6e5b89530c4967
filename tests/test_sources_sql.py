"""``sources.sql`` against real SQLite and a real PostgreSQL: rows in key order, resumable
at any row with one indexed query, identifiers quoted and values always parameters."""

from __future__ import annotations

import json
import sqlite3
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

import midway
from midway import ConfigError, SourceError, sources
from midway.sources import Source
from support.pg import PgServer
from test_sources import items_of, walk


@pytest.fixture
def pg_url(pg_server: PgServer) -> Iterator[str]:
    """A fresh database on the session's server (tests/support/pg.py)."""
    url = pg_server.create_database()
    try:
        yield url
    finally:
        pg_server.drop_database(url)


class Db:
    """One database for one test: SQLite in a temp file, or a schema of its own in
    PostgreSQL (dropped afterwards)."""

    def __init__(self, kind: str, url: str, schema: str = "") -> None:
        self.kind = kind
        self.url = url
        self.schema = schema
        self.mark = "?" if kind == "sqlite" else "%s"
        self._conns: list[Any] = []
        self.admin = self.connect()

    def connect(self) -> Any:
        if self.kind == "sqlite":
            conn: Any = sqlite3.connect(self.url.removeprefix("sqlite:///"), isolation_level=None)
        else:
            import psycopg

            conn = psycopg.connect(self.url, autocommit=True)
        self._conns.append(conn)
        return conn

    def t(self, name: str) -> str:
        """A table name as the source and queries should give it."""
        return f"{self.schema}.{name}" if self.schema else name

    def q(self, name: str) -> str:
        """A table name quoted for SQL written in the tests."""
        quoted = '"' + name.replace('"', '""') + '"'
        return f"{self.schema}.{quoted}" if self.schema else quoted

    def run(self, sql: str, params: Any = ()) -> list[Any]:
        cur = self.admin.cursor()
        try:
            cur.execute(sql, params)
            return list(cur.fetchall()) if cur.description else []
        finally:
            cur.close()

    def fill(self, table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        self.run(f"CREATE TABLE {self.q(table)} ({columns})")
        if not rows:
            return
        marks = ", ".join([self.mark] * len(rows[0]))
        cur = self.admin.cursor()
        if self.kind == "sqlite":
            cur.execute("BEGIN")  # one commit, not one per row
        cur.executemany(f"INSERT INTO {self.q(table)} VALUES ({marks})", rows)
        if self.kind == "sqlite":
            cur.execute("COMMIT")
        cur.close()

    def close(self) -> None:
        if self.schema:
            self.run(f"DROP SCHEMA {self.schema} CASCADE")
        for conn in self._conns:
            conn.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if request.param == "sqlite":
        made = Db("sqlite", f"sqlite:///{tmp_path / 'data.db'}")
    else:
        url = request.getfixturevalue("pg_url")
        schema = f"t_{uuid.uuid4().hex[:10]}"
        made = Db("postgresql", url, schema)
        made.run(f"CREATE SCHEMA {schema}")
    try:
        yield made
    finally:
        made.close()


def reopen_everywhere(src: Source) -> None:
    """Reopening at the position before row i, read back from JSON as a checkpoint is,
    yields rows[i:] with the same keys and positions."""
    walked, end, _ = walk(src)
    for i, (_, _, pos) in enumerate(walked):
        saved = json.loads(json.dumps(pos))
        rest, rest_end, _ = walk(src, saved)
        assert [w[:2] for w in rest] == [w[:2] for w in walked[i:]], f"reopened at {saved!r}"
        assert [w[2] for w in rest] == [w[2] for w in walked[i:]]
        assert rest_end == end
    assert items_of(src, json.loads(json.dumps(end))) == []


# -- rows, keys, positions ------------------------------------------------------------------


def test_table_rows_in_key_order(db: Db) -> None:
    rows = [(i * 3, f"name {i}", i / 4) for i in range(250)]
    db.fill("people", "id INTEGER PRIMARY KEY, name TEXT, score REAL", rows[::-1])
    src = sources.sql(db.url, db.t("people"), key="id", batch=40)
    assert src.seekable
    assert src.total() is None
    walked, end, sizes = walk(src)
    assert [w[0] for w in walked] == [{"id": a, "name": b, "score": c} for a, b, c in rows]
    assert [w[1] for w in walked] == [r[0] for r in rows]
    assert walked[0][2] is None
    assert walked[1][2] == {"last": 0, "count": 1}
    assert walked[100][2] == {"last": 297, "count": 100}
    assert end == {"last": 747, "count": 250}
    assert sizes == [40] * 6 + [10]
    reopen_everywhere(src)


def test_a_connection_you_pass_stays_open(db: Db) -> None:
    db.fill("n", "id INTEGER PRIMARY KEY", [(i,) for i in range(5)])
    conn = db.connect()
    src = sources.sql(conn, db.t("n"), "id", batch=2)
    assert [r["id"] for r in items_of(src)] == [0, 1, 2, 3, 4]
    assert [r["id"] for r in items_of(src, {"last": 2, "count": 3})] == [3, 4]
    cur = conn.cursor()
    cur.execute("SELECT 1")  # still usable: midway closes only connections it opened
    assert cur.fetchall() == [(1,)]
    cur.close()


def test_rows_are_dicts_whatever_the_row_factory(db: Db) -> None:
    db.fill("n", "id INTEGER PRIMARY KEY, v TEXT", [(1, "a"), (2, "b")])
    conn = db.connect()
    if db.kind == "sqlite":
        conn.row_factory = sqlite3.Row
    else:
        from psycopg.rows import dict_row

        conn.row_factory = dict_row
    src = sources.sql(conn, db.t("n"), key="id", batch=1)
    assert items_of(src) == [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}]


def test_composite_key(db: Db) -> None:
    days = ["2024-01-01", "2024-01-02", "2024-01-03"]
    rows = [(day, n, f"{day}/{n}") for day in days for n in range(30)]
    db.fill("events", "day TEXT, n INTEGER, label TEXT, PRIMARY KEY (day, n)", rows[::-1])
    src = sources.sql(db.url, db.t("events"), key=("day", "n"), batch=7)
    walked, end, _ = walk(src)
    assert [w[0]["label"] for w in walked] == [r[2] for r in rows]
    assert walked[31][1] == ["2024-01-02", 1]
    assert walked[31][2] == {"last": ["2024-01-02", 0], "count": 31}
    assert end == {"last": ["2024-01-03", 29], "count": 90}
    reopen_everywhere(src)
    assert src.describe_position(walked[31][2]) == "row 32 (after (day, n) = ('2024-01-02', 0))"


def test_a_query_with_parameters(db: Db) -> None:
    rows = [(i, "open" if i % 3 else "closed", i * 10) for i in range(60)]
    db.fill("orders", "id INTEGER PRIMARY KEY, status TEXT, amount INTEGER", rows)
    query = (
        f"-- open orders only\nSELECT id, amount * 2 AS doubled FROM {db.q('orders')} "
        f"WHERE status = {db.mark} AND amount >= {db.mark};"
    )
    src = sources.sql(db.url, query, key="id", batch=8, params=["open", 100])
    expected = [{"id": i, "doubled": i * 20} for i, s, a in rows if s == "open" and a >= 100]
    assert items_of(src) == expected
    reopen_everywhere(src)

    named = (
        f"SELECT * FROM {db.q('orders')} WHERE status = :s"
        if db.kind == "sqlite"
        else f"SELECT * FROM {db.q('orders')} WHERE status = %(s)s"
    )
    by_name = sources.sql(db.url, named, key="id", batch=5, params={"s": "closed"})
    assert [r["id"] for r in items_of(by_name)] == [i for i, s, _ in rows if s == "closed"]
    reopen_everywhere(by_name)


def test_a_with_query_and_count(db: Db) -> None:
    db.fill("n", "id INTEGER PRIMARY KEY", [(i,) for i in range(100)])
    src = sources.sql(
        db.url,
        f"WITH odd AS (SELECT id FROM {db.q('n')} WHERE id % 2 = 1) SELECT id FROM odd"
        if db.kind == "sqlite"
        else f"WITH odd AS (SELECT id FROM {db.q('n')} WHERE id %% 2 = 1) SELECT id FROM odd",
        key="id",
        count=True,
    )
    assert src.total() == 50
    assert [r["id"] for r in items_of(src)] == list(range(1, 100, 2))
    assert sources.sql(db.url, db.t("n"), key="id", count=True).total() == 100


def test_typed_keys_survive_a_json_checkpoint(db: Db) -> None:
    """Keys of date/time and UUID type go into the checkpoint as text; PostgreSQL casts the
    text back when it compares, so a resume from JSON lands on the right row."""
    start = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    ids = sorted(uuid.UUID(int=(i * 7919) << 64) for i in range(40))
    if db.kind == "sqlite":
        rows = [((start + timedelta(seconds=i)).isoformat(), str(ids[i])) for i in range(40)]
        db.fill("ts", "at TEXT PRIMARY KEY, ref TEXT", rows)
        db.fill("ids", "ref TEXT PRIMARY KEY", [(r[1],) for r in rows])
    else:
        rows = [(start + timedelta(seconds=i, microseconds=i), ids[i]) for i in range(40)]
        db.fill("ts", "at TIMESTAMPTZ PRIMARY KEY, ref UUID", rows)
        db.fill("ids", "ref UUID PRIMARY KEY", [(r[1],) for r in rows])
    for table, column in (("ts", "at"), ("ids", "ref")):
        src = sources.sql(db.url, db.t(table), key=column, batch=6)
        walked, _, _ = walk(src)
        assert len(walked) == 40
        assert all(isinstance(w[1], str) for w in walked)
        reopen_everywhere(src)


# -- what resuming costs --------------------------------------------------------------------


def test_resuming_runs_one_query_per_page_from_the_position(tmp_path: Path) -> None:
    path = tmp_path / "big.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    conn.executemany("INSERT INTO t VALUES (?, ?)", [(i, "x" * 20) for i in range(10_000)])
    conn.commit()
    statements: list[str] = []
    conn.set_trace_callback(statements.append)
    src = sources.sql(conn, "t", key="id", batch=1000)
    rest = items_of(src, {"last": 9_499, "count": 9_500})
    assert [r["id"] for r in rest] == list(range(9_500, 10_000))
    assert len(statements) == 1, statements
    assert 'WHERE "id" > 9499 ORDER BY "id" LIMIT 1000' in statements[0]


def test_pages_are_index_range_scans_in_sqlite(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "plan.db")
    conn.execute("CREATE TABLE t (day TEXT, n INTEGER, PRIMARY KEY (day, n))")
    conn.execute("CREATE TABLE u (id INTEGER PRIMARY KEY)")
    for table, key in (("t", ("day", "n")), ("u", "id")):
        src = sources.sql(conn, table, key=key)
        width = 2 if table == "t" else 1
        plan = conn.execute("EXPLAIN QUERY PLAN " + src.page_sql(True), [1] * width).fetchall()
        text = " ".join(str(row[-1]) for row in plan)
        assert "SEARCH" in text, text
        assert "TEMP B-TREE" not in text, text  # no sort: the index gives the order


def test_pages_can_use_the_index_in_postgresql(pg_url: str) -> None:
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        schema = f"p_{uuid.uuid4().hex[:10]}"
        conn.execute(f"CREATE SCHEMA {schema}")
        try:
            conn.execute(f"CREATE TABLE {schema}.t (day TEXT, n INT, PRIMARY KEY (day, n))")
            conn.execute(
                f"INSERT INTO {schema}.t SELECT 'day ' || (i / 100), i % 100 "
                "FROM generate_series(10000, 59999) AS i"
            )
            conn.execute(f"ANALYZE {schema}.t")
            src = sources.sql(conn, f"{schema}.t", key=("day", "n"))
            plan = conn.execute("EXPLAIN " + src.page_sql(True), ["day 300", 7]).fetchall()
            text = " ".join(row[0] for row in plan)
            assert "Index" in text, text
            assert "Sort" not in text, text
        finally:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


# -- identifiers and values -----------------------------------------------------------------


def test_identifiers_are_quoted(db: Db) -> None:
    weird = db.q('we"ird')
    db.run(f'CREATE TABLE {weird} ("the id" INTEGER PRIMARY KEY, "x""y" TEXT)')
    db.run(f"INSERT INTO {weird} VALUES (1, {db.mark}), (2, {db.mark})", ["a", "b"])
    src = sources.sql(db.url, db.t('we"ird'), key="the id", batch=1)
    assert items_of(src) == [{"the id": 1, 'x"y': "a"}, {"the id": 2, 'x"y': "b"}]
    assert items_of(src, {"last": 1, "count": 1}) == [{"the id": 2, 'x"y': "b"}]


def test_a_table_name_cannot_inject_sql(db: Db) -> None:
    db.fill("keep", "id INTEGER PRIMARY KEY", [(1,)])
    evil = sources.sql(db.url, f"keep; DROP TABLE {db.t('keep')}", key="id")
    with pytest.raises(SourceError, match="cannot read the rows of table"):
        items_of(evil)
    assert db.run(f"SELECT count(*) FROM {db.q('keep')}") == [(1,)]
    key_evil = sources.sql(db.url, db.t("keep"), key='id" > 0; DROP TABLE keep; --')
    with pytest.raises(ConfigError, match="is not a column of"):
        items_of(key_evil)
    assert db.run(f"SELECT count(*) FROM {db.q('keep')}") == [(1,)]


def test_key_values_are_parameters(db: Db) -> None:
    db.fill("s", "name TEXT PRIMARY KEY", [("a'b",), ("c'; DROP TABLE s; --",), ("z",)])
    src = sources.sql(db.url, db.t("s"), key="name", batch=1)
    walked, _, _ = walk(src)
    assert [w[1] for w in walked] == ["a'b", "c'; DROP TABLE s; --", "z"]
    reopen_everywhere(src)


# -- what is refused --------------------------------------------------------------------------


def test_null_and_repeated_keys_are_refused(db: Db) -> None:
    db.fill("nulls", "id INTEGER, v TEXT", [(1, "a"), (None, "b"), (3, "c")])
    with pytest.raises(SourceError, match=r"has a NULL in key column\(s\) id"):
        items_of(sources.sql(db.url, db.t("nulls"), key="id"))
    db.fill("dups", "grp INTEGER, id INTEGER", [(1, 1), (1, 2), (2, 3)])
    with pytest.raises(SourceError, match=r"share the key 1 .*unique key"):
        items_of(sources.sql(db.url, db.t("dups"), key="grp"))
    assert len(items_of(sources.sql(db.url, db.t("dups"), key=("grp", "id")))) == 3


def test_missing_table_column_and_file(db: Db, tmp_path: Path) -> None:
    db.fill("n", "id INTEGER PRIMARY KEY, v TEXT", [(1, "a")])
    with pytest.raises(SourceError, match=r"cannot read the rows of table \S*nope"):
        items_of(sources.sql(db.url, db.t("nope"), key="id"))
    query = f"SELECT v FROM {db.q('n')}"
    # SQLite reads an unknown "id" as a string, PostgreSQL refuses the query: either way
    # midway names the columns there are.
    with pytest.raises(ConfigError, match=r"key='id' is not a column of .*whose columns are: 'v'"):
        items_of(sources.sql(db.url, query, key="id"))
    missing = tmp_path / "missing.db"
    with pytest.raises(SourceError, match="does not exist"):
        items_of(sources.sql(f"sqlite:///{missing}", "n", key="id"))
    assert not missing.exists(), "a source only reads: it never creates the database"


def test_foreign_position_and_bad_options(db: Db) -> None:
    db.fill("n", "a INTEGER, b INTEGER, PRIMARY KEY (a, b)", [(1, 1)])
    src = sources.sql(db.url, db.t("n"), key=("a", "b"))
    for position in ({"last": 1, "count": 0}, {"offset": 3, "record": 1}, 7):
        with pytest.raises(SourceError, match="is not a key of table"):
            items_of(src, position)
    with pytest.raises(ConfigError, match="key="):
        sources.sql(db.url, "n", key=[])
    with pytest.raises(ConfigError, match="batch="):
        sources.sql(db.url, "n", key="a", batch=0)
    with pytest.raises(ConfigError, match="params="):
        sources.sql(db.url, "n", key="a", params="a")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="not a usable SQL identifier"):
        sources.sql(db.url, "n", key="a\0")
    with pytest.raises(ConfigError, match="cannot read 'mysql://u@h/d'"):
        sources.sql("mysql://u:secret@h/d", "n", key="a")
    with pytest.raises(ConfigError, match="cannot use a dict"):
        sources.sql({}, "n", key="a")


def test_missing_psycopg_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # what `import psycopg` sees without it
    with pytest.raises(ConfigError, match=r"pip install 'midway\[postgres\]'"):
        sources.sql("postgresql://u@localhost/db", "t", key="id")


# -- fingerprint ------------------------------------------------------------------------------


def test_fingerprint_names_query_and_database_without_password(db: Db) -> None:
    db.fill("n", "id INTEGER PRIMARY KEY", [(1,)])
    fp = sources.sql(db.url, db.t("n"), key="id").fingerprint()
    assert fp["query"] == db.t("n")
    assert fp["key"] == ["id"]
    assert sources.sql(db.url, db.t("n"), key="id").fingerprint() == fp
    db.run(f"INSERT INTO {db.q('n')} VALUES (2)")
    assert sources.sql(db.url, db.t("n"), key="id").fingerprint() == fp, "new rows: no drift"
    assert sources.sql(db.url, db.t("n"), key="id", version=2).fingerprint() != fp
    assert sources.sql(db.url, f"SELECT * FROM {db.q('n')}", key="id").fingerprint() != fp
    assert json.loads(json.dumps(fp)) == fp  # it survives the checkpoint unchanged
    by_conn = sources.sql(db.connect(), db.t("n"), key="id").fingerprint()
    if db.kind == "sqlite":
        assert by_conn == fp, "a URL and a connection to the same file are the same input"
    params = sources.sql(db.url, "n", key="id", params=(1, "x")).fingerprint()["params"]
    assert params == [1, "x"]


def test_fingerprint_hides_the_password() -> None:
    url = "postgresql://ann:s3cret@db.example:5433/crm?sslmode=require&password=other"
    fp = sources.sql(url, "contacts", key="id").fingerprint()
    text = json.dumps(fp)
    assert "s3cret" not in text
    assert "other" not in text
    assert fp["database"] == "postgresql://ann@db.example:5433/crm?sslmode=require"


# -- in a job -------------------------------------------------------------------------------


def test_a_job_over_a_table_resumes_where_it_left(db: Db, tmp_path: Path) -> None:
    db.fill("c", "id INTEGER PRIMARY KEY, email TEXT", [(i, f"u{i}@x") for i in range(3000)])
    job = midway.Job("sql-job", store=f"sqlite:///{tmp_path / 'state.db'}", every=50, quiet=True)
    seen: list[int] = []
    loop = job.loop(sources.sql(db.url, db.t("c"), key="id", batch=128))
    for row in loop:
        if len(seen) == 1234:
            break
        seen.append(row["id"])
    # Rows added meanwhile after the position are read; keyset paging is not thrown by them.
    db.run(f"INSERT INTO {db.q('c')} VALUES (5000, 'late@x')")
    result = job.run(
        sources.sql(db.url, db.t("c"), key="id", batch=128),
        lambda row, ctx: seen.append(row["id"]),
    )
    assert result.status == "completed"
    assert result.resumed_from is not None
    assert result.resumed_from["position"] == {"last": 1233, "count": 1234}
    assert seen == [*range(3000), 5000]
