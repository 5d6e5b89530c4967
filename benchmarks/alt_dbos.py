"""Driver for DBOS Transact, run by benchmarks/run.py with the alternatives' own Python.

Not part of midway and never imported by it: it runs in ``benchmarks/.venv-alt`` (see
requirements-alt.txt) and prints one JSON object on stdout. The work is the same as midway's
benchmark: a list of integers, a trivial handler, one durable step per item, here as a DBOS
workflow that calls one ``@DBOS.step`` per item on a SQLite system database (no server, no
network).

    python alt_dbos.py throughput --db PATH --items N
    python alt_dbos.py crash --db PATH --items N --at P     # killed (SIGKILL) inside step P
    python alt_dbos.py resume --db PATH --items N --at P    # prints when the first new step runs

``resume`` measures what a user waits for after a crash: from process start (the parent's
clock, ``--t0``) to the first step that runs rather than being replayed from the database.
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
    from dbos import DBOS, SetWorkflowID
except ImportError as exc:  # the parent reports this as "not installed"
    print(json.dumps({"error": f"not installed: {exc}"}))
    sys.exit(0)

T_IMPORTED = time.time()
WORKFLOW_ID = "midway-bench"
SYNCHRONOUS = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}


def handle(item: Any, ctx: Any) -> None:
    """The same trivial handler as midway's benchmark."""


class Plan:
    """What the step does besides the handler: crash at one index, or report the first
    step that runs in this process (a replayed step does not run its body) and exit."""

    crash_at: int | None = None
    exit_on_first = False
    t_launched = 0.0


plan = Plan()


@DBOS.step()
def item_step(item: int) -> None:
    if item == plan.crash_at:
        os.kill(os.getpid(), signal.SIGKILL)
    if plan.exit_on_first:
        report({"first_index": item, "t_first_new": time.time(), "t_launched": plan.t_launched})
        os._exit(0)
    handle(item, None)


@DBOS.workflow()
def every_item(n: int) -> int:
    for item in range(n):
        item_step(item)
    return n


def report(extra: dict[str, Any]) -> None:
    print(
        json.dumps(
            {
                "version": package_version(),
                "t_start": T_START,
                "t_imported": T_IMPORTED,
                **extra,
            }
        ),
        flush=True,
    )


def package_version() -> str:
    from importlib.metadata import version

    return version("dbos")


def launch(db: str) -> float:
    """Configure DBOS on a SQLite system database and launch it; returns the launch time."""
    DBOS(
        config={
            "name": "midway-bench",
            "system_database_url": f"sqlite:///{db}",
            "application_version": "midway-bench",
            "log_level": "WARNING",
        }
    )
    t0 = time.time()
    DBOS.launch()
    return time.time() - t0


def pragmas(db: str) -> dict[str, Any]:
    """The journal mode and synchronous level a fresh connection to DBOS's database gets."""
    conn = sqlite3.connect(db)
    try:
        level = conn.execute("PRAGMA synchronous").fetchone()[0]
        return {
            "journal_mode": conn.execute("PRAGMA journal_mode").fetchone()[0],
            "synchronous": SYNCHRONOUS.get(level, str(level)),
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

    plan.crash_at = args.at if args.mode == "crash" else None
    plan.exit_on_first = args.mode == "resume"
    launch_seconds = launch(args.db)
    plan.t_launched = time.time()
    if args.mode == "resume":
        # DBOS.launch() recovers the pending workflow in the background; the step reports
        # and exits when the first new step runs. Wait for it, with a generous limit.
        time.sleep(600)
        report({"error": "no new step within 600 s"})
        os._exit(1)
    with SetWorkflowID(WORKFLOW_ID):
        t0 = time.perf_counter()
        every_item(args.items)
        seconds = time.perf_counter() - t0
    DBOS.destroy()
    report(
        {
            "items": args.items,
            "seconds": seconds,
            "launch_seconds": launch_seconds,
            "t_launched": plan.t_launched,
            **pragmas(args.db),
        }
    )


if __name__ == "__main__":
    main()
