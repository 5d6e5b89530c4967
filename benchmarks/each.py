"""What ``midway each`` costs per record, next to the ways people run a command per line.

    .venv/bin/python benchmarks/each.py            # 2,000 records, 3 rounds
    .venv/bin/python benchmarks/each.py --records 500 --rounds 2

Each round runs, in turn and over the same file of records, the command ``true {}``:

- ``python loop``: ``subprocess.run([...])`` per line in a plain Python loop (no resume);
- ``xargs -n 1``: one ``true`` per line (no resume);
- ``midway each``: the default (a checkpoint every 100 records, group commit);
- ``midway each --every 1``: a durable checkpoint after every record;
- ``parallel -j 1 --resume``: GNU parallel with a joblog, when it is installed.

The best round of each is reported, with the ratio to the Python loop. The midway rows
include starting the interpreter and opening the store (the others start nothing).
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path


def python_loop(records: Path) -> None:
    with records.open(encoding="utf-8") as f:
        for line in f:
            subprocess.run(["true", line.rstrip("\n")], check=True)


def shell(args: list[str], stdin: Path | None = None) -> Callable[[Path], None]:
    def run(records: Path) -> None:
        with open(stdin or "/dev/null", "rb") as f:
            subprocess.run(args, stdin=f, check=True, stdout=subprocess.DEVNULL)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    options = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="midway-each-bench-") as tmp:
        folder = Path(tmp)
        records = folder / "records.txt"
        records.write_text("".join(f"record-{i}\n" for i in range(options.records)))
        store = f"sqlite:///{folder / 'state.db'}"
        each = [sys.executable, "-m", "midway", "each"]
        tail = ["--input", str(records), "--store", store]
        rows: dict[str, Callable[[Path], None]] = {
            "python loop": python_loop,
            "xargs -n 1": shell(["xargs", "-n", "1", "true"], stdin=records),
            "midway each": shell([*each, "bench", *tail, "--", "true", "{}"]),
            "midway each --every 1": shell(
                [*each, "bench1", *tail, "--every", "1", "--", "true", "{}"]
            ),
        }
        if shutil.which("parallel"):
            joblog = folder / "joblog"
            rows["parallel -j 1 --resume"] = shell(
                ["parallel", "-j", "1", "--joblog", str(joblog), "--resume", "true", "{}"],
                stdin=records,
            )
        best = {name: float("inf") for name in rows}
        for round_ in range(options.rounds):
            for name, run in rows.items():
                for stale in folder.glob("joblog*"):
                    stale.unlink()
                t0 = time.perf_counter()
                run(records)
                best[name] = min(best[name], time.perf_counter() - t0)
            print(f"round {round_ + 1} of {options.rounds} done", file=sys.stderr)

    n = options.records
    base = best["python loop"]
    print(f"{n:,} records, `true {{}}` per record, best of {options.rounds} rounds")
    print(f"{'how':<26} {'seconds':>8} {'ms/record':>10} {'vs python loop':>15}")
    for name, seconds in best.items():
        print(f"{name:<26} {seconds:8.2f} {1000 * seconds / n:10.2f} {seconds / base:15.2f}")


if __name__ == "__main__":
    main()
