"""What ``batch=100`` costs: midway against a plain loop over the same batches, in one run.

    .venv/bin/python benchmarks/batch.py               # 5,000,000 items, best of 5 rounds
    .venv/bin/python benchmarks/batch.py --items 1000000 --rounds 3

The handler loops over its batch and does nothing else (the least work any real batch
handler does), so what is left is midway's cost per batch and per run. The plain loop cuts
the same list into the same slices of 100 and calls the same handler; midway's time includes
the whole run (opening the SQLite store, the lease, the checkpoints, the end). Two rows: the
checkpoints by time only (``every=None``, ``every_seconds=10``), and the defaults
(``every=1000`` as well: a checkpoint due every 10 batches; at this speed the store commits
fewer, as fast as it can, and the loop does not stop where one would be skipped). They
alternate with the plain loop, round by round, so that all see the same machine; the ratio
(plain time / midway time, 1.0 = free) is what counts. The bar: 0.9.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import midway
from measure import cpu_model

BATCH = 100


def handler(items: list[Any], ctx: Any) -> None:
    for _item in items:
        pass


def plain(data: list[int]) -> float:
    began = time.perf_counter()
    for start in range(0, len(data), BATCH):
        handler(data[start : start + BATCH], None)
    return time.perf_counter() - began


def with_midway(data: list[int], folder: Path, name: str, every: int | None) -> float:
    job = midway.Job(name, store=f"sqlite:///{folder}/state.db", quiet=True, every=every)
    began = time.perf_counter()
    result = job.run(data, handler, batch=BATCH)
    took = time.perf_counter() - began
    assert result.processed == len(data), result
    return took


def hardware() -> str:
    model = cpu_model()
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    load = os.getloadavg()[0]
    return (
        f"{model}, {usable} of {os.cpu_count()} CPUs usable, load {load:.2f}; "
        f"{platform.platform()}; Python {platform.python_version()}; midway {midway.__version__}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=5_000_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    data = list(range(args.items))
    rows: dict[str, list[float]] = {"plain": [], "time": [], "default": []}
    with tempfile.TemporaryDirectory() as tmp:
        for n in range(args.rounds):
            rows["plain"].append(plain(data))
            rows["time"].append(with_midway(data, Path(tmp), f"by-time-{n}", None))
            rows["default"].append(with_midway(data, Path(tmp), f"default-{n}", 1000))
    best = {name: min(times) for name, times in rows.items()}
    print(f"batch={BATCH}, {args.items:,} items, best of {args.rounds} rounds")
    labels = {
        "plain": "plain loop over the same batches",
        "time": "midway, every=None (every_seconds=10)",
        "default": "midway, every=1000 (the default)",
    }
    for name, label in labels.items():
        ratio = "" if name == "plain" else f"  ratio {best['plain'] / best[name]:.2f}"
        print(f"  {label:<40} {best[name]:7.3f} s {args.items / best[name]:>13,.0f}/s{ratio}")
    print("  (ratio: plain time / midway time; the bar: 0.9)")
    print(f"  hardware: {hardware()}")


if __name__ == "__main__":
    main()
