"""midway in a fresh process, for what cannot be measured in the benchmark's own: peak
memory, and the time from process start to the first new item after a crash.

Run by benchmarks/run.py with midway's Python; prints one JSON object on stdout. Its
command line matches the alternatives' drivers (alt_*.py), so all are driven alike:

    python midway_child.py memory --db PATH --items N [--plain]
    python midway_child.py crash  --db PATH --items N --at P [--source generator]
    python midway_child.py resume --db PATH --items N --at P [--source generator]
"""

from __future__ import annotations

import time

T_START = time.time()

import argparse  # noqa: E402  (the clock starts before anything is imported)
import json  # noqa: E402
import os  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import sys  # noqa: E402
from collections.abc import Iterable  # noqa: E402
from typing import Any  # noqa: E402

import midway  # noqa: E402

T_IMPORTED = time.time()


def handle(item: Any, ctx: Any) -> None:
    """The same trivial handler as the rest of the benchmark."""


def report(extra: dict[str, Any]) -> None:
    print(
        json.dumps(
            {"version": midway.__version__, "t_start": T_START, "t_imported": T_IMPORTED, **extra}
        ),
        flush=True,
    )


def peak_rss_kb() -> int:
    """This process's peak resident set size in KiB.

    Linux's VmHWM where there is one: ru_maxrss of a process started by fork and exec keeps
    the high-water mark of the process it was forked from (the benchmark, tens of MB), which
    would hide this one's own peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return ru_maxrss_kb()


def ru_maxrss_kb() -> int:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak


def items_of(kind: str, n: int) -> Iterable[int]:
    """A list (midway seeks in it) or a generator (midway can only replay and skip)."""
    return list(range(n)) if kind == "list" else (i for i in range(n))


def job(db: str, every: int) -> midway.Job:
    return midway.Job(
        "midway-bench",
        store=f"sqlite:///{db}",
        every=every,
        every_seconds=None,
        progress=False,
        quiet=True,
    )


def memory(db: str, n: int, plain: bool) -> None:
    """Run over a generator of n items, every=1000; or, ``plain``, a bare loop over it."""
    t0 = time.perf_counter()
    if plain:
        for item in (i for i in range(n)):
            handle(item, None)
        processed = n
    else:
        result = job(db, 1000).run((i for i in range(n)), handle)
        if result.status != "completed":
            report({"error": f"the run ended {result.status}"})
            sys.exit(1)
        processed = result.processed
    seconds = time.perf_counter() - t0
    report(
        {
            "items": processed,
            "seconds": seconds,
            "peak_rss_kb": peak_rss_kb(),
            "ru_maxrss_kb": ru_maxrss_kb(),
        }
    )


def crash(db: str, n: int, at: int, source: str) -> None:
    """every=1, like the alternatives' per-item records; SIGKILL inside item ``at``."""

    def handler(item: int, ctx: Any) -> None:
        if item == at:
            os.kill(os.getpid(), signal.SIGKILL)

    job(db, 1).run(items_of(source, n), handler)
    report({"error": f"item {at} never came"})
    sys.exit(1)


def resume(db: str, n: int, at: int, source: str) -> None:
    """Resume the crashed job and report the wall clock of the first handler call."""

    def handler(item: int, ctx: Any) -> None:
        report({"first_index": item, "t_first_new": time.time()})
        os._exit(0)

    job(db, 1).run(items_of(source, n), handler)
    report({"error": "the resumed run handled no item"})
    sys.exit(1)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=("memory", "crash", "resume"))
    p.add_argument("--db", required=True)
    p.add_argument("--items", type=int, required=True)
    p.add_argument("--at", type=int, default=0)
    p.add_argument("--plain", action="store_true")
    p.add_argument("--source", choices=("list", "generator"), default="list")
    args = p.parse_args()
    if args.mode == "memory":
        memory(args.db, args.items, args.plain)
    elif args.mode == "crash":
        crash(args.db, args.items, args.at, args.source)
    else:
        resume(args.db, args.items, args.at, args.source)


if __name__ == "__main__":
    main()
