"""Driver for batchledger, run by benchmarks/run.py with the alternatives' own Python.

Not part of midway and never imported by it: it runs in ``benchmarks/.venv-alt`` (see
requirements-alt.txt) and prints one JSON object on stdout. The work is the same as midway's
benchmark: a list of integers and a trivial handler. batchledger records every item in its
SQLite ledger (a "running" row before the call, "done" after it, each its own commit); it has
no setting for committing less often.

    python alt_batchledger.py throughput --db PATH --items N
    python alt_batchledger.py crash --db PATH --items N --at P     # SIGKILL inside item P
    python alt_batchledger.py resume --db PATH --items N --at P    # prints when item P runs

``resume`` reports the wall clock of the first handler call that is not a cached result, so
the parent can time process start to first new item.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sqlite3
import sys
import time
from typing import Any

T_START = time.time()

try:
    from batchledger import Ledger
except ImportError as exc:  # the parent reports this as "not installed"
    print(json.dumps({"error": f"not installed: {exc}"}))
    sys.exit(0)

T_IMPORTED = time.time()


def handle(item: Any, ctx: Any) -> None:
    """The same trivial handler as midway's benchmark."""


def version() -> str:
    from importlib.metadata import version as package_version

    return package_version("batchledger")


def report(extra: dict[str, Any]) -> None:
    print(
        json.dumps({"version": version(), "t_start": T_START, "t_imported": T_IMPORTED, **extra}),
        flush=True,
    )


def pragmas(db: str) -> dict[str, Any]:
    conn = sqlite3.connect(db)
    try:
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            # synchronous is a per-connection setting: batchledger sets FULL on its own.
            "synchronous_set_by_tool": "FULL",
        }
    finally:
        conn.close()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("throughput", "crash", "resume"))
    p.add_argument("--db", required=True)
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--at", type=int)
    args = p.parse_args()

    items = list(range(args.items))
    crash_at = args.at if args.mode == "crash" else None
    first_new: list[float] = []

    def fn(item: int) -> None:
        if item == crash_at:
            os.kill(os.getpid(), signal.SIGKILL)
        if args.mode == "resume" and not first_new:
            first_new.append(time.time())
            report({"first_index": item, "t_first_new": first_new[0]})
            os._exit(0)
        handle(item, None)

    with Ledger(args.db, namespace="midway-bench", version="1") as ledger:
        t0 = time.perf_counter()
        done = sum(1 for _ in ledger.run(fn, items, key=str))
        seconds = time.perf_counter() - t0
    if done != args.items:
        report({"error": f"{done} of {args.items} items came back"})
        sys.exit(1)
    if args.mode == "resume":
        report({"error": "every item was already done: nothing new ran"})
        sys.exit(1)
    report({"items": args.items, "seconds": seconds, **pragmas(args.db)})


if __name__ == "__main__":
    main()
