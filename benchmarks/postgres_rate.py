"""midway's every=1 on PostgreSQL against PostgreSQL's raw commit rate, in one run.

    .venv/bin/python benchmarks/postgres_rate.py                # a throwaway server (pgserver)
    .venv/bin/python benchmarks/postgres_rate.py --url postgresql://u:pw@host/db
    .venv/bin/python benchmarks/postgres_rate.py --items 2000 --rounds 5 --json out.json

The raw rate is one UPSERT of a small JSON row per commit, autocommit, on one connection: a
round trip and a WAL flush each. midway's row is ``Job(every=1).run(range(n), handler)`` with
a trivial handler on a fresh database (its tables created before the clock starts), start
and finish included (two connections, the lease, the run record, the last commit). Both
with ``synchronous_commit`` on (durable) and off (``durable=False``). Rounds alternate the
variants so that each sees the same machine; the table shows the best round.

With ``--url`` the user must be allowed to create databases: each midway run gets its own,
dropped afterwards. The throwaway server keeps PostgreSQL's defaults (fsync on).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

import midway
from midway.stores import open_store


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


@contextmanager
def server(url: str | None) -> Iterator[str]:
    """``url``, or a throwaway server's admin URL while the block runs."""
    if url:
        yield url
        return
    folder = Path(tempfile.mkdtemp(prefix="midway-bench-pg-"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import pgserver

        handle = pgserver.get_server(folder / "pgdata", cleanup_mode="delete")
    try:
        yield handle.get_uri()
    finally:
        handle.cleanup()
        shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def fresh_database(admin_url: str) -> Iterator[str]:
    name = "midway_bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield with_database(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def small_json(i: int) -> str:
    """About the size of a checkpoint's moving parts: position, counters, an empty state."""
    return json.dumps({"position": i, "succeeded": i, "failed": 0, "state": {}})


def raw(admin_url: str, n: int, durable: bool) -> float:
    """Seconds for n commits of one UPSERT each."""
    with fresh_database(admin_url) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
        conn.execute("CREATE TABLE checkpoint (id integer PRIMARY KEY, body text NOT NULL)")
        query = (
            "INSERT INTO checkpoint (id, body) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body"
        )
        t0 = time.perf_counter()
        for i in range(n):
            conn.execute(query, (small_json(i),))
        return time.perf_counter() - t0


def handle(item: Any, ctx: Any) -> None:
    pass


def midway_every_1(admin_url: str, n: int, durable: bool) -> float:
    """Seconds for ``Job(every=1).run`` over n items on a fresh store (tables created
    before the clock starts, as benchmarks/run.py does for SQLite)."""
    with fresh_database(admin_url) as url:
        open_store(url, durable=durable).close()
        job = midway.Job("bench", store=url, every=1, durable=durable, progress=False, quiet=True)
        t0 = time.perf_counter()
        result = job.run(range(n), handle)
        seconds = time.perf_counter() - t0
        assert result.processed == n, result
        return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL server to use (default: a throwaway one)")
    parser.add_argument("--items", type=int, default=1000, help="commits per timing")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, help="also save every timing here")
    args = parser.parse_args(argv)
    n = args.items
    variants: dict[str, Callable[[str], float]] = {
        "raw, synchronous_commit=on": lambda u: raw(u, n, True),
        "midway every=1, durable=True": lambda u: midway_every_1(u, n, True),
        "raw, synchronous_commit=off": lambda u: raw(u, n, False),
        "midway every=1, durable=False": lambda u: midway_every_1(u, n, False),
    }
    timings: dict[str, list[float]] = {name: [] for name in variants}
    with server(args.url) as admin_url:
        with psycopg.connect(admin_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        version = row[0] if row else "?"
        names = list(variants)
        for r in range(args.rounds):
            order = names[r % len(names) :] + names[: r % len(names)]
            for name in order:
                timings[name].append(variants[name](admin_url))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    best = {name: n / min(times) for name, times in timings.items()}
    print(f"PostgreSQL {version}, {n:,} commits per timing, best of {args.rounds} rounds")
    print(f"{'':32} {'commits/s':>10} {'ratio':>7}")
    for durable, raw_name, mw_name in (
        (True, "raw, synchronous_commit=on", "midway every=1, durable=True"),
        (False, "raw, synchronous_commit=off", "midway every=1, durable=False"),
    ):
        ratio = best[mw_name] / best[raw_name]
        extra_ms = (1 / best[mw_name] - 1 / best[raw_name]) * 1000
        print(f"{raw_name:32} {best[raw_name]:10,.0f}")
        print(
            f"{mw_name:32} {best[mw_name]:10,.0f} {ratio:7.2f}  "
            f"(+{extra_ms:.3f} ms per item{'' if durable else ', not durable'})"
        )
    if args.json:
        args.json.write_text(
            json.dumps({"server_version": version, "items": n, "timings": timings}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
