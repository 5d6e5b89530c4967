"""midway's every=1 on PostgreSQL against PostgreSQL's raw commit rate, in one run.

    .venv/bin/python benchmarks/postgres_rate.py                # a throwaway server (pgserver)
    .venv/bin/python benchmarks/postgres_rate.py --url postgresql://u:pw@host/db
    .venv/bin/python benchmarks/postgres_rate.py --items 2000 --rounds 5 --json out.json

The raw rate is one UPSERT of a small JSON row per commit, autocommit, on one connection: a
round trip and a WAL flush each. midway's row is ``Job(every=1).run(range(n), handler)`` with
a trivial handler on a fresh database (its tables created before the clock starts). Both
with ``synchronous_commit`` on (durable) and off (``durable=False``). Rounds alternate the
variants so that each sees the same machine; the table shows medians, and each ratio is
the median of the rounds' own (midway against the raw loop of the same round, so that a
round the machine was slower in counts against both), with its range.

Two figures per row. The rate: n commits timed after the first 100 on each side (for
midway from the handler's call for one item to its call n items later, so each of the n
turns includes its checkpoint's commit). The whole run: every commit, and for midway the
run's start and end too (the store's connection, the lease, the run record, the end),
which the line also gives in milliseconds: what a run pays once, whatever its length.

With ``--url`` the user must be allowed to create databases: each midway run gets its own,
dropped afterwards. The throwaway server keeps PostgreSQL's defaults (fsync on).
"""

from __future__ import annotations

import argparse
import functools
import json
import shutil
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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


WARM = 100
"""Commits before the clock starts for the steady rate, on both sides: the connection and
the server have settled (psycopg prepares a statement after five uses)."""


@dataclass
class Timing:
    whole: float
    """Seconds for all ``WARM + n + 1`` commits: for midway the whole ``Job.run``, the
    store's connection, the lease, the run record and the end included."""
    steady: float
    """Seconds for the n commits after the first ``WARM``: the rate once running."""


def raw(admin_url: str, n: int, durable: bool) -> Timing:
    """``WARM + n + 1`` commits of one UPSERT each, on a connection opened beforehand."""
    with fresh_database(admin_url) as url, psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"SET synchronous_commit = {'on' if durable else 'off'}")
        conn.execute("CREATE TABLE checkpoint (id integer PRIMARY KEY, body text NOT NULL)")
        query = (
            "INSERT INTO checkpoint (id, body) VALUES (1, %s) "
            "ON CONFLICT (id) DO UPDATE SET body = excluded.body"
        )
        marks = [0.0, 0.0, 0.0]
        t0 = time.perf_counter()
        for i in range(WARM + n + 1):
            if i == WARM:
                marks[0] = time.perf_counter()
            elif i == WARM + n:
                marks[1] = time.perf_counter()
            conn.execute(query, (small_json(i),))
        marks[2] = time.perf_counter()
        return Timing(whole=marks[2] - t0, steady=marks[1] - marks[0])


def midway_every_1(admin_url: str, n: int, durable: bool) -> Timing:
    """``Job(every=1).run`` over ``WARM + n + 1`` items on a fresh store (its tables created
    before the clock starts, as benchmarks/run.py does for SQLite). The steady part is
    timed from the handler's call for item ``WARM`` to its call for item ``WARM + n``: n
    whole turns of the loop, each with its checkpoint's commit."""
    marks: dict[int, float] = {}

    def handle(item: int, ctx: Any) -> None:
        if item == WARM or item == WARM + n:
            marks[item] = time.perf_counter()

    with fresh_database(admin_url) as url:
        open_store(url, durable=durable).close()
        job = midway.Job("bench", store=url, every=1, durable=durable, progress=False, quiet=True)
        t0 = time.perf_counter()
        result = job.run(range(WARM + n + 1), handle)
        whole = time.perf_counter() - t0
        assert result.processed == WARM + n + 1, result
        return Timing(whole=whole, steady=marks[WARM + n] - marks[WARM])


VARIANTS = (
    (True, "raw, synchronous_commit=on", "midway every=1, durable=True"),
    (False, "raw, synchronous_commit=off", "midway every=1, durable=False"),
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="a PostgreSQL server to use (default: a throwaway one)")
    parser.add_argument("--items", type=int, default=1000, help="commits per timing")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", type=Path, help="also save every timing here")
    args = parser.parse_args(argv)
    n = args.items
    variants: dict[str, Callable[[str], Timing]] = {}
    for durable, raw_name, mw_name in VARIANTS:
        variants[raw_name] = functools.partial(raw, n=n, durable=durable)
        variants[mw_name] = functools.partial(midway_every_1, n=n, durable=durable)
    timings: dict[str, list[Timing]] = {name: [] for name in variants}
    with server(args.url) as admin_url:
        with psycopg.connect(admin_url) as conn:
            row = conn.execute("SHOW server_version").fetchone()
        version = row[0] if row else "?"
        names = list(variants)
        for r in range(args.rounds):
            # A pair (raw, midway) runs back to back, and which goes first alternates.
            order = names if r % 2 == 0 else names[::-1]
            for name in order:
                timings[name].append(variants[name](admin_url))
            print(f"round {r + 1}/{args.rounds} done", file=sys.stderr)
    print(
        f"PostgreSQL {version}, medians of {args.rounds} rounds; the rate: {n:,} commits "
        f"timed after {WARM};\nthe whole run: all {WARM + n + 1:,}, midway's start and end "
        "included; a ratio is midway's against the raw loop of the same round"
    )
    print(f"{'':32} {'commits/s':>10} {'ratio':>6} {'(range)':>11}   {'whole run':>9} {'ratio':>6}")
    for durable, raw_name, mw_name in VARIANTS:
        raws, mine = timings[raw_name], timings[mw_name]
        rate = {
            name: n / statistics.median(t.steady for t in timings[name])
            for name in (raw_name, mw_name)
        }
        whole = {
            name: (WARM + n + 1) / statistics.median(t.whole for t in timings[name])
            for name in (raw_name, mw_name)
        }
        ratios = sorted(r.steady / m.steady for r, m in zip(raws, mine, strict=True))
        whole_ratio = statistics.median(r.whole / m.whole for r, m in zip(raws, mine, strict=True))
        extra_us = (1 / rate[mw_name] - 1 / rate[raw_name]) * 1e6
        fixed_ms = statistics.median(m.whole - m.steady * (WARM + n + 1) / n for m in mine) * 1000
        spread = f"({ratios[0]:.2f}-{ratios[-1]:.2f})"
        print(f"{raw_name:32} {rate[raw_name]:10,.0f} {'':18}   {whole[raw_name]:9,.0f}")
        print(
            f"{mw_name:32} {rate[mw_name]:10,.0f} {statistics.median(ratios):6.2f} {spread:>11}"
            f"   {whole[mw_name]:9,.0f} {whole_ratio:6.2f}  (+{extra_us:.1f} µs per item, "
            f"start and end {fixed_ms:.1f} ms{'' if durable else '; not durable'})"
        )
    if args.json:
        data = {name: [vars(t) for t in times] for name, times in timings.items()}
        args.json.write_text(
            json.dumps({"server_version": version, "items": n, "timings": data}, indent=2)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
