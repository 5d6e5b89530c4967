"""Parallel and distributed throughput with a handler that waits 20 ms (an API call).

    .venv/bin/python benchmarks/parallel.py                 # threads, then 4 workers on PostgreSQL
    .venv/bin/python benchmarks/parallel.py --url postgresql://u:pw@host/postgres
    .venv/bin/python benchmarks/parallel.py --json out.json

1. ``Job.run`` with one worker against ``workers=16`` threads on the SQLite store: items per
   second, and the ratio (the bar: 12x); and the same 16 threads with
   ``guarantee="at-most-once"``, each start marked on disk first.
2. ``job.run(..., distributed=True)``: one worker process against four, sharing a job of 16
   partitions through a PostgreSQL store (a throwaway server from pgserver unless ``--url``);
   the time runs from the start of the first process to the end of the last (the bar: 3.5x).
   Then ``job.run(..., distributed=client)`` on a Dask LocalCluster of one worker process
   against four (one thread each; the cluster's start not timed; the bar: 3.5x).

Each handler call sleeps 20 ms: the work is waiting, as for an HTTP API, so the ratios show
what midway's bookkeeping leaves of the parallelism.

3. What splitting costs: the first worker's plan of 16 partitions for a CSV file and for a
   SQLite table of ``--split-rows`` rows (made once per job and kept in the store; the other
   workers read it back), and the fixed cost of one partition on PostgreSQL (a worker alone
   on 32 partitions of one item each: claim, start, finish; the median of three such runs;
   the bar: under 5 ms).

4. PostgreSQL ``every=1`` (durable) against the same server's raw commit rate once running,
   best of three (what benchmarks/postgres_rate.py measures in full; the bar: 0.9).
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import midway

sys.path.insert(0, str(Path(__file__).resolve().parent))
from postgres_rate import fresh_database, midway_every_1, raw, server

WAIT = 0.020


def wait_20ms(item: Any, ctx: Any) -> None:
    time.sleep(WAIT)


def threads(folder: Path, workers: int, n: int, guarantee: str = "at-least-once") -> float:
    name = f"threads-{workers}-{guarantee}"
    job = midway.Job(
        name,
        store=f"sqlite:///{folder / f'{name}.db'}",
        workers=workers,
        every=100,
        guarantee=guarantee,  # type: ignore[arg-type]
        progress=False,
        quiet=True,
    )
    started = time.perf_counter()
    job.run(range(n), wait_20ms)
    return n / (time.perf_counter() - started)


WORKER = textwrap.dedent(
    """
    import sys, time
    import midway

    def handle(item, ctx):
        time.sleep(WAIT)

    job = midway.Job("spread", store=sys.argv[1], partitions=16, every=20,
                     progress=False, quiet=True)
    job.run(range(int(sys.argv[2])), handle, distributed=True)
    """
).replace("WAIT", repr(WAIT))


def processes(folder: Path, url: str, count: int, n: int) -> float:
    script = folder / "worker.py"
    script.write_text(WORKER, encoding="utf-8")
    started = time.perf_counter()
    procs = [subprocess.Popen([sys.executable, str(script), url, str(n)]) for _ in range(count)]
    for proc in procs:
        if proc.wait() != 0:
            raise SystemExit(f"a worker failed with exit code {proc.returncode}")
    return n / (time.perf_counter() - started)


def on_dask(url: str, count: int, n: int) -> float:
    """``job.run(..., distributed=client)`` on a LocalCluster of ``count`` worker processes
    (one thread each), 16 partitions; the cluster's start is not timed."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(
        n_workers=count,
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        host="127.0.0.1",
    )
    try:
        with Client(cluster) as client:
            job = midway.Job(
                f"dask-{count}", store=url, partitions=16, every=20, progress=False, quiet=True
            )
            started = time.perf_counter()
            result = job.run(range(n), wait_20ms, distributed=client)
            assert result.processed == n, result
            return n / (time.perf_counter() - started)
    finally:
        cluster.close()


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("id,name,note\n")
        for i in range(rows):
            f.write(f'{i},Person {i},"a note, with a comma"\n')


def write_table(path: Path, rows: int) -> None:
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE contacts (id INTEGER PRIMARY KEY, name TEXT)")
        conn.executemany(
            "INSERT INTO contacts VALUES (?, ?)", ((i, f"Person {i}") for i in range(rows))
        )
    conn.close()


def plan_seconds(source: Any, count: int = 16) -> float:
    started = time.perf_counter()
    parts = source.plan_parts(count)
    took = time.perf_counter() - started
    assert len(parts) == count
    return took


def partition_cost(url: str, count: int = 32) -> float:
    """Seconds per partition for one worker alone on ``count`` one-item partitions."""
    warm = midway.Job("warm", store=url, partitions=2, progress=False, quiet=True)
    warm.run(range(2), lambda item, ctx: None, distributed=True)
    job = midway.Job("fixed-cost", store=url, partitions=count, progress=False, quiet=True)
    started = time.perf_counter()
    job.run(range(count), lambda item, ctx: None, distributed=True)
    return (time.perf_counter() - started) / count


def every_1_ratio(admin: str, n: int, rounds: int = 3) -> dict[str, float]:
    """Best of ``rounds``: the server's raw commit rate and midway's every=1 (durable)."""
    raws, mine = [], []
    for _ in range(rounds):
        raws.append(n / raw(admin, n, True).steady)
        mine.append(n / midway_every_1(admin, n, True).steady)
    return {"raw": max(raws), "midway": max(mine)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a PostgreSQL server (default: a throwaway one)")
    parser.add_argument("--items", type=int, default=800, help="items for the parallel runs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    parser.add_argument(
        "--split-rows", type=int, default=1_000_000, help="rows of the file and table to split"
    )
    parser.add_argument(
        "--commits", type=int, default=1000, help="commits per timing of the every=1 ratio"
    )
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        one = threads(folder, 1, max(50, args.items // 16))
        many = threads(folder, 16, args.items)
        once = threads(folder, 16, args.items, "at-most-once")
        rows.append({"what": "Job.run, 1 worker (SQLite)", "items_per_s": one})
        rows.append(
            {
                "what": "Job.run, workers=16 threads",
                "items_per_s": many,
                "ratio": many / one,
                "bar": 12.0,
            }
        )
        rows.append(
            {
                "what": "the same, at-most-once (a mark per start)",
                "items_per_s": once,
                "ratio": once / one,
            }
        )
        with server(args.url) as admin:
            with fresh_database(admin) as url:
                single = processes(folder, url, 1, args.items // 2)
            with fresh_database(admin) as url:
                four = processes(folder, url, 4, args.items * 2)
            fixed_costs = []
            for _ in range(3):  # the median of three: one run is a few hundred commits
                with fresh_database(admin) as url:
                    fixed_costs.append(partition_cost(url))
            fixed = statistics.median(fixed_costs)
            with fresh_database(admin) as url:
                dask_one = on_dask(url, 1, args.items // 2)
            with fresh_database(admin) as url:
                dask_four = on_dask(url, 4, args.items * 2)
            pg_rate = every_1_ratio(admin, args.commits)
        rows.append({"what": "distributed, 1 worker process (PostgreSQL)", "items_per_s": single})
        rows.append(
            {
                "what": "distributed, 4 worker processes",
                "items_per_s": four,
                "ratio": four / single,
                "bar": 3.5,
            }
        )
        rows.append({"what": "Dask, 1 worker process (PostgreSQL)", "items_per_s": dask_one})
        rows.append(
            {
                "what": "Dask, 4 worker processes",
                "items_per_s": dask_four,
                "ratio": dask_four / dask_one,
                "bar": 3.5,
            }
        )
        rows_n = args.split_rows
        csv_path, db_path = folder / "contacts.csv", folder / "contacts.db"
        write_csv(csv_path, rows_n)
        write_table(db_path, rows_n)
        csv_s = plan_seconds(midway.sources.csv(csv_path, key="id"))
        sql_s = plan_seconds(midway.sources.sql(f"sqlite:///{db_path}", "contacts", key="id"))
    splits = [
        {"what": f"plan 16 partitions of a {rows_n:,}-row CSV", "seconds": csv_s},
        {"what": f"plan 16 partitions of a {rows_n:,}-row SQLite table", "seconds": sql_s},
        {"what": "fixed cost of one partition (PostgreSQL; bar: 5 ms)", "seconds": fixed},
    ]
    rates = [
        {"what": "raw commits/s (synchronous_commit=on)", "value": pg_rate["raw"]},
        {"what": "midway every=1, durable=True, items/s", "value": pg_rate["midway"]},
        {"what": "ratio (bar: 0.9)", "value": pg_rate["midway"] / pg_rate["raw"]},
    ]
    print(f"handler: sleeps {WAIT * 1000:.0f} ms per item\n")
    print(f"{'measurement':<45} {'items/s':>9} {'ratio':>7}  bar")
    for row in rows:
        ratio = f"{row['ratio']:.1f}x" if "ratio" in row else ""
        bar = ""
        if "bar" in row:
            bar = f">= {row['bar']}x: " + ("pass" if row["ratio"] >= row["bar"] else "FAIL")
        print(f"{row['what']:<45} {row['items_per_s']:>9,.0f} {ratio:>7}  {bar}")
    print(f"\n{'splitting':<45} {'ms':>9}")
    for row in splits:
        print(f"{row['what']:<45} {row['seconds'] * 1000:>9,.1f}")
    print(f"\n{'PostgreSQL every=1, best of 3, ' + str(args.commits) + ' commits':<45} {'':>9}")
    for row in rates:
        print(f"{row['what']:<45} {row['value']:>9,.2f}")
    if args.json:
        data = {"throughput": rows, "splitting": splits, "postgres_every_1": rates}
        Path(args.json).write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
