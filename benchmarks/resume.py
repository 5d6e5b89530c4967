"""What a resume costs, near the start of the input and far into it: O(1) or not.

    .venv/bin/python benchmarks/resume.py                    # 1,000,000 rows, 5 rounds
    .venv/bin/python benchmarks/resume.py --rows 200000 --rounds 3
    .venv/bin/python benchmarks/resume.py --json             # the results as JSON on stdout
    .venv/bin/python benchmarks/resume.py --json out.json    # ... or into a file

It writes a CSV of ``--rows`` rows (and a gzip copy of it) in a temp folder, and for each
source leaves a checkpoint at 0.1 % and at 90 % of the rows: a child process runs
``job.loop`` over the source and breaks out at that row, and a loop that is left saves its
place. Then, in every round, a fresh copy of that store, a fresh ``python`` process that
runs the job (so it resumes), and the time from spawning it to the first newly handled item
(which the child reports and then exits at once). The child also reports the time from its
``job.run`` call to that item: the resume itself, without interpreter start-up and imports.

Sources: ``csv`` (seeks to the saved byte offset), ``csv.gz`` (one gzip member: decompresses
up to the offset, see ``midway/sources/_gzip.py``), ``gz-multi`` (the same rows as a gzip
member per MiB, like ``bgzip`` output: decompresses from the start of the member the offset is
in), and, for scale, ``replay``: the same file read through ``sources.iterable`` (a
``csv.DictReader``), which cannot seek and re-reads and skips.

The figure that matters is the ratio 90 % / 0.1 %: about 1.0 means the resume costs the
same wherever it lands.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

KINDS = ("csv", "csv.gz", "gz-multi", "replay")
MEMBER = 1 << 20  # gz-multi: a gzip member per MiB of input, as bgzip does per 64 KiB
FRACTIONS = (0.001, 0.9)
NEVER = 10**12  # every=: no checkpoint falls due while the benchmark runs


# -- the child ------------------------------------------------------------------------------


def child(mode: str, cfg: dict[str, Any]) -> None:
    """``prepare``: stop at row ``cfg["at"]`` and save; ``measure``: resume, report the
    first new item, exit at once."""
    import midway

    kind, path = cfg["kind"], cfg["path"]
    if kind == "csv":
        source: Any = midway.sources.csv(path, key="id")
    elif kind == "csv.gz":
        source = midway.sources.csv(path + ".gz", key="id")
    elif kind == "gz-multi":
        source = midway.sources.csv(path.removesuffix(".csv") + "-members.csv.gz", key="id")
    else:
        import csv

        rows = csv.DictReader(open(path, newline="", encoding="utf-8"))  # noqa: SIM115
        source = midway.sources.iterable(rows, key="id", version=path)
    job = midway.Job(cfg["name"], store=cfg["store"], every=NEVER, every_seconds=None, quiet=True)
    if mode == "prepare":
        for done, _ in enumerate(job.loop(source)):
            if done == cfg["at"]:
                break  # the loop saves its place: the next run starts at this row
        return

    called = time.time()

    def handle(item: Any, ctx: Any) -> None:
        first = time.time()
        out = {"first": first, "called": called, "key": ctx.key, "position": ctx.position}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
        os._exit(0)  # no checkpoint, no clean-up: the store stays as it was for the next round

    job.run(source, handle)
    raise SystemExit("the job had no item left to resume with")


# -- the parent -----------------------------------------------------------------------------


def say(text: str) -> None:
    print(f"resume-bench: {text}", file=sys.stderr, flush=True)


def write_input(folder: Path, rows: int) -> Path:
    path = folder / "contacts.csv"
    with path.open("w", encoding="utf-8", newline="") as f:
        f.write("id,name,email,city,amount\n")
        for i in range(1, rows + 1):
            f.write(
                f"{i},Person {i},person{i}@example.com,City {i % 997},{i % 10_000}.{i % 100:02d}\n"
            )
    with path.open("rb") as src, gzip.open(str(path) + ".gz", "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    with path.open("rb") as src, (folder / "contacts-members.csv.gz").open("wb") as dst:
        while block := src.read(MEMBER):
            block += src.readline()  # members end at line ends (they need not)
            dst.write(gzip.compress(block, compresslevel=6))
    return path


def run_child(mode: str, cfg: dict[str, Any]) -> tuple[float, str]:
    """Run the child; (wall seconds from spawn to its end, its stdout)."""
    argv = [sys.executable, __file__, "--child", mode, json.dumps(cfg)]
    start = time.time()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child {mode} {cfg['kind']} failed:\n{done.stderr[-3000:]}")
    return start, done.stdout


def measure(folder: Path, rows: int, rounds: int) -> dict[str, Any]:
    path = write_input(folder, rows)
    size, gz_size = path.stat().st_size, (folder / "contacts.csv.gz").stat().st_size
    say(f"{rows:,} rows, {size / 1e6:,.1f} MB ({gz_size / 1e6:,.1f} MB gzipped) in {folder}")
    cases = [(kind, fraction) for kind in KINDS for fraction in FRACTIONS]
    prepared: dict[tuple[str, float], dict[str, Any]] = {}
    for kind, fraction in cases:
        at = max(1, int(rows * fraction))
        store_dir = folder / "stores" / f"{kind}-{fraction}"
        store_dir.mkdir(parents=True)
        cfg = {
            "kind": kind,
            "path": str(path),
            "name": f"resume-{kind}",
            "store": f"sqlite:///{store_dir / 'state.db'}",
            "at": at,
        }
        say(f"checkpoint for {kind} at row {at:,}")
        run_child("prepare", cfg)
        prepared[(kind, fraction)] = {"cfg": cfg, "store_dir": store_dir, "at": at}

    seconds: dict[tuple[str, float], list[float]] = {case: [] for case in cases}
    inside: dict[tuple[str, float], list[float]] = {case: [] for case in cases}
    for r in range(rounds):
        say(f"round {r + 1}/{rounds}")
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            info = prepared[case]
            round_dir = folder / "rounds" / f"{case[0]}-{case[1]}-{r}"
            shutil.copytree(info["store_dir"], round_dir)
            cfg = dict(info["cfg"], store=f"sqlite:///{round_dir / 'state.db'}")
            start, out = run_child("measure", cfg)
            report = json.loads(out.strip().splitlines()[-1])
            if str(report["key"]) != str(info["at"] + 1):
                raise SystemExit(f"{case}: resumed at key {report['key']}, not {info['at'] + 1}")
            seconds[case].append(report["first"] - start)
            inside[case].append(report["first"] - report["called"])
            shutil.rmtree(round_dir)

    results = []
    for kind, fraction in cases:
        case = (kind, fraction)
        results.append(
            {
                "source": kind,
                "fraction": fraction,
                "row": prepared[case]["at"] + 1,
                "to_first_item_s": seconds[case],
                "resume_only_s": inside[case],
            }
        )
    return {
        "rows": rows,
        "bytes": size,
        "gzip_bytes": gz_size,
        "rounds": rounds,
        "python": platform.python_version(),
        "machine": platform.platform(),
        "load_average": list(os.getloadavg()),
        "results": results,
    }


def table(data: dict[str, Any]) -> str:
    """Best and median per case, and the 90 % / 0.1 % ratio per source."""
    lines = [
        f"Resume cost: time to the first newly handled item, {data['rows']:,} rows "
        f"({data['bytes'] / 1e6:,.0f} MB, {data['gzip_bytes'] / 1e6:,.0f} MB gzipped), "
        f"{data['rounds']} rounds, best / median (ms)",
        "",
        f"{'source':<9} {'resumes at row':>15} {'process start':>17} {'resume only':>17}",
    ]
    by_source: dict[str, dict[float, dict[str, Any]]] = {}
    for row in data["results"]:
        by_source.setdefault(row["source"], {})[row["fraction"]] = row
        t = [s * 1000 for s in row["to_first_item_s"]]
        inner = [s * 1000 for s in row["resume_only_s"]]
        lines.append(
            f"{row['source']:<9} {row['row']:>15,} "
            f"{min(t):>8,.0f} / {statistics.median(t):>6,.0f} "
            f"{min(inner):>8,.0f} / {statistics.median(inner):>6,.0f}"
        )
    lines += ["", "ratio 90 % / 0.1 % (best; median):"]
    for source, rows in by_source.items():
        early, late = rows[FRACTIONS[0]], rows[FRACTIONS[1]]
        parts = []
        for field, label in (("to_first_item_s", "process start"), ("resume_only_s", "resume")):
            best = min(late[field]) / min(early[field])
            median = statistics.median(late[field]) / statistics.median(early[field])
            parts.append(f"{label} {best:.2f}; {median:.2f}")
        lines.append(f"  {source:<9} " + "   ".join(parts))
    gz = by_source.get("csv.gz")
    if gz:
        early, late = gz[FRACTIONS[0]], gz[FRACTIONS[1]]
        extra = min(late["resume_only_s"]) - min(early["resume_only_s"])
        skipped = data["bytes"] * (FRACTIONS[1] - FRACTIONS[0])
        if extra > 0:
            lines.append(
                f"  csv.gz: {extra * 1000:,.0f} ms more at 90 %: decompressing "
                f"{skipped / 1e6:,.0f} MB to reach it, about {skipped / extra / 1e6:,.0f} MB/s"
            )
    return "\n".join(lines)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2], json.loads(sys.argv[3]))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the CSV")
    parser.add_argument("--rounds", type=int, default=5, help="repetitions of each case")
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        metavar="PATH",
        help="print the results as JSON (or write them to PATH) instead of a table",
    )
    parser.add_argument("--tmpdir", help="where the temporary files go (default: the system's)")
    args = parser.parse_args()
    if args.rows < 1000 or args.rounds < 1:
        parser.error("--rows must be at least 1000 and --rounds at least 1")
    folder = Path(tempfile.mkdtemp(prefix="midway-resume-", dir=args.tmpdir))
    try:
        data = measure(folder, args.rows, args.rounds)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json == "-":
        print(json.dumps(data, indent=2))
    else:
        if args.json:
            Path(args.json).write_text(json.dumps(data, indent=2), encoding="utf-8")
        print(table(data))


if __name__ == "__main__":
    main()
