"""midway's reproducible benchmark: ratios measured on one machine in one run.

    .venv/bin/python benchmarks/run.py            # full run (about 5 minutes)
    .venv/bin/python benchmarks/run.py --quick    # short run (under 2 minutes)
    .venv/bin/python benchmarks/run.py --markdown # print the README table instead
    .venv/bin/python benchmarks/run.py --json out.json --update-readme README.md

Every midway figure is put next to a baseline measured in the same run, in alternating rounds,
so that both see the same machine: a plain ``for`` loop calling the same handler, the raw
commit rate of the store (SQLite with midway's settings, or temp file + fsync + rename), the
hand-written JSON checkpoint of the usual blog post, and the alternatives (batchledger, DBOS
Transact), which run in their own virtual environment and process. Then the cost of resuming
after a kill -9, against the same alternatives, and the peak memory of a run as the item
count grows. What counts is the ratio. See benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import altenv
import alternatives
import midway
import otel
import resume_cost
import resume_hook
import scale
from children import Tool
from measure import (
    Grid,
    Measure,
    Row,
    Section,
    Session,
    Thunk,
    cpu_model,
    fmt_rate,
    progress,
    run_rounds,
)
from midway.stores import open_store

Handler = Callable[[Any, Any], object]
Table = Section | Grid

START_MARKER = "<!-- bench:start -->"
END_MARKER = "<!-- bench:end -->"
REPO = Path(__file__).resolve().parent.parent


# -- settings -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions; ``--quick`` shrinks them."""

    quick: bool
    stat: str  # "best" or "median"
    n_overhead: int  # items for the trivial-handler overhead rows
    n_work: int  # items for the ~10 us handler rows
    work_us: float  # the busy handler's target cost per item
    n_durable: int  # items for the every=1 rows
    n_every100: int  # items for the every=100 hand-written JSON comparison
    n_alt: int  # items for the alternatives' throughput (DBOS does a few hundred a second)
    n_resume: int  # items of the job that is killed and resumed
    n_scale: tuple[int, ...]  # item counts for the memory runs
    rounds_cpu: int
    rounds_io: int
    rounds_alt: int  # rounds for the alternatives and the resume cost

    @classmethod
    def make(cls, quick: bool, stat: str, rounds: int | None) -> Settings:
        if quick:
            return cls(
                quick, stat, 200_000, 20_000, 10.0, 1_000, 20_000, 300, 1_000,
                (100_000, 1_000_000), rounds or 3, rounds or 3, rounds or 2,
            )  # fmt: skip
        return cls(
            quick, stat, 1_000_000, 50_000, 10.0, 3_000, 100_000, 1_000, 10_000,
            (100_000, 10_000_000), rounds or 5, rounds or 5, rounds or 3,
        )  # fmt: skip


# -- what gets timed ------------------------------------------------------------------------


class DummyContext:
    """What the plain loop passes as ``ctx``: a few attributes, like midway's."""

    __slots__ = ("attempt", "key", "state")

    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.key: Any = None
        self.attempt = 1


def handle(item: Any, ctx: Any) -> None:
    """The trivial handler."""


def busy_handler(target_us: float) -> tuple[Handler, float]:
    """A handler that spins for about ``target_us`` microseconds (no sleep, no I/O).

    The spin count is calibrated by calling the handler itself, a few times over; returns
    the handler and its measured cost per call in microseconds. Each timing is short (50
    calls, well under a scheduler time slice) and the best of many is kept, so a busy
    machine that preempts the benchmark does not inflate the calibration.
    """
    spins = [range(100)]

    def work(item: Any, ctx: Any) -> None:
        for _ in spins[0]:
            pass

    def per_call() -> float:
        ctx, calls, best = DummyContext(), 50, float("inf")
        for _ in range(200):
            t0 = time.perf_counter()
            for i in range(calls):
                work(i, ctx)
            best = min(best, time.perf_counter() - t0)
        return best / calls

    for _ in range(8):  # until two timings in a row agree with the target within 5 %
        cost = per_call()
        spins[0] = range(max(1, round(len(spins[0]) * target_us * 1e-6 / cost)))
        if abs(cost * 1e6 / target_us - 1) < 0.05 and abs(per_call() * 1e6 / target_us - 1) < 0.05:
            break
    return work, per_call() * 1e6


@contextmanager
def fresh_store(session: Session, kind: str, durable: bool) -> Iterator[str]:
    """A fresh store, created (schema and all) before the clock starts."""
    with session.folder() as path:
        url = f"sqlite:///{path / 'state.db'}" if kind == "sqlite" else f"file://{path / 'fs'}"
        open_store(url, durable=durable).close()
        yield url


def plain_loop(items: Sequence[Any], handler: Handler) -> float:
    ctx = DummyContext()
    t0 = time.perf_counter()
    for item in items:
        handler(item, ctx)
    return time.perf_counter() - t0


def midway_run(
    session: Session,
    items: Sequence[Any],
    handler: Handler,
    *,
    every: int | None,
    every_seconds: float | None = None,
    durable: bool = True,
    store: str = "sqlite",
    loop: bool = False,
) -> float:
    """Time ``job.run(items, handler)`` (or the same with ``job.loop``) on a fresh store."""
    with fresh_store(session, store, durable) as url:
        job = midway.Job(
            session.job_name(),
            store=url,
            every=every,
            every_seconds=every_seconds,
            durable=durable,
            progress=False,
            quiet=True,
        )
        t0 = time.perf_counter()
        if loop:
            walk = job.loop(items)
            ctx = walk.ctx
            for item in walk:
                handler(item, ctx)
            result = walk.result
        else:
            result = job.run(items, handler)
        elapsed = time.perf_counter() - t0
    if result is None or result.status != "completed" or result.processed != len(items):
        raise RuntimeError(f"benchmark run did not complete: {result!r}")
    return elapsed


def small_json(i: int) -> str:
    """About the size of a checkpoint's moving parts: position, counters, an empty state."""
    return json.dumps({"position": i, "succeeded": i, "failed": 0, "state": {}})


def raw_sqlite(session: Session, n: int, synchronous: str) -> float:
    """n commits of one UPDATE each, with midway's settings (WAL, autocommit)."""
    with session.folder() as path:
        conn = sqlite3.connect(path / "raw.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {synchronous}")
            conn.execute("CREATE TABLE checkpoint (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
            conn.execute("INSERT INTO checkpoint VALUES (1, ?)", (small_json(0),))
            t0 = time.perf_counter()
            for i in range(1, n + 1):
                conn.execute("UPDATE checkpoint SET body = ? WHERE id = 1", (small_json(i),))
            return time.perf_counter() - t0
        finally:
            conn.close()


def raw_file(session: Session, n: int) -> float:
    """n atomic, durable file replacements: write temp, fsync, rename, fsync the folder."""
    with session.folder() as path:
        target, tmp = path / "checkpoint.json", path / ".checkpoint.json.tmp"
        t0 = time.perf_counter()
        for i in range(1, n + 1):
            body = small_json(i).encode()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                os.write(fd, body)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, target)
            dfd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        return time.perf_counter() - t0


def handwritten_json(session: Session, items: Sequence[Any], handler: Handler, every: int) -> float:
    """The blog-post approach: resume from a JSON file; every ``every`` items write it to a
    temp file, fsync, rename (no folder fsync, no lease, no fingerprint)."""

    def save(path: Path, data: dict[str, Any]) -> None:
        tmp = path.with_suffix(".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    with session.folder() as folder:
        path = folder / "progress.json"
        t0 = time.perf_counter()
        data: dict[str, Any] = {"position": 0, "state": {}}
        if path.exists():
            data = json.loads(path.read_text(encoding="utf-8"))
        ctx = DummyContext()
        ctx.state = data["state"]
        start = data["position"]
        for i, item in enumerate(items[start:], start):
            handler(item, ctx)
            if (i + 1) % every == 0:
                data["position"] = i + 1
                save(path, data)
        data["position"] = len(items)
        save(path, data)
        return time.perf_counter() - t0


# -- the parts ------------------------------------------------------------------------------


def overhead_sections(session: Session, s: Settings) -> tuple[list[Section], dict[str, Any]]:
    """1. The per-item cost of midway against a plain loop, trivial and ~10 us handlers."""
    work, work_us = busy_handler(s.work_us)
    sections = [
        overhead_case(session, s, "1a", "trivial", "trivial handler", handle, s.n_overhead),
        overhead_case(session, s, "1b", "work", f"~{work_us:.0f} µs handler", work, s.n_work),
    ]
    return sections, {"work_handler_us": round(work_us, 2)}


def overhead_case(
    session: Session, s: Settings, number: str, tag: str, what: str, handler: Handler, n: int
) -> Section:
    items = list(range(n))
    n1 = min(n, s.n_durable)  # every=1 commits per item: a few thousand items are enough

    def m(name: str, label: str, count: int = n) -> Measure:
        return Measure(f"overhead.{tag}.{name}", label, count)

    run = partial(midway_run, session, items, handler)
    plain = m("plain", "plain `for` loop calling the handler")
    plain.short = "plain loop"
    every1000 = m("run_every_1000", "Job.run, every=1000")
    every100 = m("run_every_100", "Job.run, every=100")
    every1 = m("run_every_1", f"Job.run, every=1 (a durable commit per item; {n1:,} items)", n1)
    loop1000 = m("loop_every_1000", "job.loop, every=1000 (body calls the handler)")
    nondurable = m("run_every_1000_nondurable", "Job.run, every=1000, durable=False")
    timed = m("run_every_10s", "Job.run, every=None, every_seconds=10 (engine alone)")
    traced = m("run_every_1000_otel", "Job.run, every=1000, OpenTelemetry tracer provider set")
    group: list[tuple[Measure, Thunk]] = [
        (plain, partial(plain_loop, items, handler)),
        (every1000, partial(run, every=1000)),
        (every100, partial(run, every=100)),
        (every1, partial(midway_run, session, items[:n1], handler, every=1)),
        (loop1000, partial(run, every=1000, loop=True)),
        (nondurable, partial(run, every=1000, durable=False)),
        (timed, partial(run, every=None, every_seconds=10.0)),
    ]
    if otel.available():
        group.append((traced, otel.traced_thunk(partial(run, every=1000))))
    run_rounds(group, s.rounds_cpu, f"overhead, {what}, {n:,} items")
    return Section(
        f"{number}. Overhead, {what}, {n:,} items (ratio = midway / plain loop; sqlite store, "
        "durable unless said)",
        [
            Row(plain),
            Row(every1000, plain, bar=0.5),
            Row(every100, plain),
            Row(every1, plain),
            Row(loop1000, plain),
            Row(nondurable, plain),
            Row(timed, plain),
            *(
                [Row(traced, every1000, note="ratio against every=1000 without a provider")]
                if otel.available()
                else []
            ),
        ],
    )


def durability_section(session: Session, s: Settings) -> Section:
    """2. The physical limit: every=1 against the store's raw commit rate."""
    n = s.n_durable
    items = list(range(n))

    def m(key: str, label: str) -> Measure:
        return Measure(key, label, n)

    raw_full = m("durable.raw_sqlite_full", "raw SQLite: UPDATE per commit, WAL, synchronous=FULL")
    raw_full.short = "raw SQLite FULL"
    mw_full = m("durable.run_every_1_sqlite", "Job.run, every=1, sqlite, durable=True")
    raw_normal = m("durable.raw_sqlite_normal", "raw SQLite, WAL, synchronous=NORMAL")
    raw_normal.short = "raw SQLite NORMAL"
    mw_normal = m(
        "durable.run_every_1_sqlite_nondurable", "Job.run, every=1, sqlite, durable=False"
    )
    raw_fs = m("durable.raw_file", "raw file: write temp, fsync, rename, fsync folder")
    raw_fs.short = "raw file"
    mw_fs = m("durable.run_every_1_file", "Job.run, every=1, file:// store, durable=True")
    group: list[tuple[Measure, Thunk]] = [
        (raw_full, lambda: raw_sqlite(session, n, "FULL")),
        (mw_full, lambda: midway_run(session, items, handle, every=1)),
        (raw_normal, lambda: raw_sqlite(session, n, "NORMAL")),
        (mw_normal, lambda: midway_run(session, items, handle, every=1, durable=False)),
        (raw_fs, lambda: raw_file(session, n)),
        (mw_fs, lambda: midway_run(session, items, handle, every=1, store="file")),
    ]
    run_rounds(group, s.rounds_io, f"per-item durability, {n:,} items")
    return Section(
        f"2. Per-item durability (every=1, trivial handler, {n:,} items; "
        "ratio = midway / raw commit rate)",
        [
            Row(raw_full),
            Row(mw_full, raw_full, bar=0.5),
            Row(raw_normal),
            Row(mw_normal, raw_normal),
            Row(raw_fs),
            Row(mw_fs, raw_fs),
        ],
    )


def alternatives_section(session: Session, s: Settings, tools: dict[str, Tool]) -> Section:
    """3. The same items and handler through the alternatives, each with the durability it
    offers, against midway measured in the same rounds."""
    n = s.n_alt
    items = list(range(n))
    mw1 = Measure("alternatives.midway_every_1", "Job.run, every=1, sqlite, durable=True", n)
    mw1.short = "midway, every=1"
    hand1 = Measure(
        "alternatives.handwritten_every_1",
        "hand-written JSON checkpoint, every=1 (temp file, fsync, rename; no folder fsync)",
        n,
    )
    alts = alternatives.alternatives(tools, n)
    group: list[tuple[Measure, Thunk]] = [
        (mw1, lambda: midway_run(session, items, handle, every=1)),
        (hand1, lambda: handwritten_json(session, items, handle, 1)),
        *((a.measure, partial(a.thunk, session)) for a in alts),
    ]
    run_rounds(group, s.rounds_alt, f"alternatives, {n:,} items")
    for a in alts:
        a.finish()

    n100 = s.n_every100
    items100 = list(range(n100))
    mw100 = Measure("alternatives.midway_every_100", "Job.run, every=100, sqlite, durable", n100)
    mw100.short = "midway, every=100"
    hand100 = Measure(
        "alternatives.handwritten_every_100", "hand-written JSON checkpoint, every=100", n100
    )
    fixed = Measure(
        "fixed.run_one_item",
        "fixed cost of one Job.run: a 1-item list (store open, lease, run record, last commit)",
        1,
    )
    group100: list[tuple[Measure, Thunk]] = [
        (mw100, lambda: midway_run(session, items100, handle, every=100)),
        (hand100, lambda: handwritten_json(session, items100, handle, 100)),
        (fixed, lambda: midway_run(session, [0], handle, every=1000)),
    ]
    run_rounds(group100, s.rounds_io, f"hand-written JSON at every=100, {n100:,} items")
    fixed_ms = fixed.time(s.stat) * 1000
    return Section(
        f"3. Against the alternatives (trivial handler, {n:,} items, a durable record per "
        "item unless said; ratio = midway ÷ the alternative, above 1: midway is faster)",
        [
            Row(mw1),
            Row(hand1, mw1, inverse=True),
            *(Row(a.measure, mw1, inverse=True) for a in alts),
            Row(mw100, note=f"{n100:,} items"),
            Row(hand100, mw100, inverse=True, note=f"{n100:,} items"),
            Row(fixed, shown=f"{fixed_ms:.1f} ms"),
        ],
    )


# -- machine --------------------------------------------------------------------------------


def filesystem_of(path: Path) -> str:
    """The mount type of ``path`` (ext4, tmpfs, ...) from /proc/self/mounts, if readable."""
    try:
        lines = Path("/proc/self/mounts").read_text().splitlines()
    except OSError:
        return "unknown"
    best, kind = "", "unknown"
    target = str(path.resolve())
    for line in lines:
        parts = line.split()
        if len(parts) >= 3:
            mount = parts[1].replace("\\040", " ")
            inside = target == mount or target.startswith(mount.rstrip("/") + "/")
            if inside and len(mount) > len(best):
                best, kind = mount, parts[2]
    return kind


def git_revision() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def machine_info(tmp: Path) -> dict[str, Any]:
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    return {
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": usable,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "sqlite": sqlite3.sqlite_version,
        "midway": midway.__version__,
        "git": git_revision(),
        "temp_filesystem": filesystem_of(tmp),
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
    }


# -- output ---------------------------------------------------------------------------------


def fmt_bar(row: Row, stat: str) -> str:
    passed = row.passed(stat)
    if passed is None or row.bar is None:
        return ""
    return f"≥ {row.bar:g}: {'pass' if passed else 'FAIL'}"


def fmt_seconds(seconds: float | None) -> str:
    """A signed duration in ns, µs or ms."""
    if seconds is None:
        return ""
    size = abs(seconds)
    if size < 1e-6:
        return f"{seconds * 1e9:+.0f} ns"
    if size < 1e-3:
        return f"{seconds * 1e6:+.1f} µs"
    return f"{seconds * 1e3:+.2f} ms"


def table_rows(section: Section, stat: str) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []
    for row in section.rows:
        m = row.measure
        ratio = row.ratio(stat)
        label = m.label + (f" ({row.note})" if row.note else "")
        rate = row.shown if row.shown is not None else fmt_rate(m.rate(stat))
        if m.unavailable is not None and not m.seconds:
            label, rate = f"{label}: {m.unavailable.reason}", m.unavailable.short
        base = row.baseline
        out.append(
            (
                label,
                rate,
                (base.short or base.label) if base else "",
                f"{ratio:.2f}" if ratio is not None else "",
                fmt_seconds(row.extra_per_item(stat)),
                fmt_bar(row, stat),
            )
        )
    return out


HEADERS = ("measurement", "items/s", "compared with", "ratio", "extra per item", "bar")
RIGHT = ("items/s", "ratio", "extra per item")


def shape(
    table: Table, stat: str
) -> tuple[tuple[str, ...], tuple[str, ...], list[tuple[str, ...]], list[str]]:
    """Headers, right-aligned headers, cells and notes of either kind of table."""
    if isinstance(table, Grid):
        return table.headers, table.right, table.cells, table.notes
    return HEADERS, RIGHT, table_rows(table, stat), []


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu']}, {info['cpus_usable']} of {info['cpu_count']} CPUs usable, "
        f"load {info['load_average'][0]}; {info['platform']}; Python {info['python']}; "
        f"SQLite {info['sqlite']}; temp folder on {info['temp_filesystem']}; "
        f"midway {info['midway']}{' (' + info['git'] + ')' if info['git'] else ''}"
    )


def describe_method(s: Settings, extra: dict[str, Any]) -> str:
    return (
        f"{s.stat} of {s.rounds_cpu} rounds (overhead), {s.rounds_io} (durability), "
        f"{s.rounds_alt} (alternatives, resume), baselines and midway alternating within each "
        f"round; busy handler calibrated to {extra['work_handler_us']} µs per call; "
        f"{'--quick' if s.quick else 'full'} run, {extra.get('wall_seconds', '?')} s"
    )


def print_text(
    tables: list[Table], info: dict[str, Any], s: Settings, extra: dict[str, Any]
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table as RichTable

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 130))
    console.print(f"[bold]midway benchmark[/bold]  {describe_machine(info)}")
    console.print(describe_method(s, extra))
    for table in tables:
        headers, right, cells, notes = shape(table, s.stat)
        out = RichTable(title=table.title, title_justify="left", box=box.SIMPLE_HEAD)
        for name in headers:
            out.add_column(name, justify="right" if name in right else "left")
        for row in cells:
            style = "bold red" if row[-1].endswith("FAIL") else None
            out.add_row(*row, style=style)
        console.print(out)
        for note in notes:
            console.print(f"  {note}", highlight=False)
        if notes:
            console.print()


def markdown(tables: list[Table], info: dict[str, Any], s: Settings, extra: dict[str, Any]) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = []
    for table in tables:
        headers, right, cells, notes = shape(table, s.stat)
        lines += [f"**{esc(table.title)}**", ""]
        lines.append("| " + " | ".join(esc(h) for h in headers) + " |")
        lines.append("|" + "|".join("---:" if h in right else "---" for h in headers) + "|")
        for row in cells:
            lines.append("| " + " | ".join(esc(c) for c in row) + " |")
        lines.append("")
        if notes:
            lines += [" ".join(notes), ""]
    lines.append(
        f"Measured with `python benchmarks/run.py{' --quick' if s.quick else ''}` on "
        f"{esc(describe_machine(info))}, {info['date']}; {esc(describe_method(s, extra))}."
    )
    return "\n".join(lines)


def update_readme(path: Path, block: str) -> bool:
    text = path.read_text(encoding="utf-8")
    start = text.find(START_MARKER)
    end = text.find(END_MARKER, start + len(START_MARKER)) if start >= 0 else -1
    if start < 0 or end < 0:
        return False
    new = text[: start + len(START_MARKER)] + "\n" + block + "\n" + text[end:]
    if new != text:
        path.write_text(new, encoding="utf-8")
    return True


def to_json(
    tables: list[Table], info: dict[str, Any], s: Settings, extra: dict[str, Any]
) -> dict[str, Any]:
    measures: dict[str, Any] = {}
    rows = []
    grids: dict[str, Any] = {}
    for table in tables:
        if isinstance(table, Grid):
            grids[table.title] = {
                "headers": table.headers,
                "cells": table.cells,
                "notes": table.notes,
                "data": table.data,
            }
            continue
        for row in table.rows:
            m = row.measure
            measures[m.key] = {
                "label": m.label,
                "items": m.items,
                "seconds": [round(x, 6) for x in m.seconds],
                "rate_best": m.rate("best"),
                "rate_median": m.rate("median"),
                "unavailable": m.unavailable.reason if m.unavailable else None,
            }
            rows.append(
                {
                    "section": table.title,
                    "measure": m.key,
                    "baseline": row.baseline.key if row.baseline else None,
                    "ratio": row.ratio(s.stat),
                    "ratio_is_midway_over": "measure" if not row.inverse else "baseline",
                    "bar": row.bar,
                    "passed": row.passed(s.stat),
                }
            )
    return {
        "machine": info,
        "settings": {k: getattr(s, k) for k in s.__dataclass_fields__},
        "extra": extra,
        "measures": measures,
        "rows": rows,
        "tables": grids,
    }


def below_bar(tables: list[Table], stat: str) -> list[str]:
    failed: list[str] = []
    for table in tables:
        if isinstance(table, Grid):
            failed += table.failed
        else:
            failed += [r.measure.label for r in table.rows if r.passed(stat) is False]
    return failed


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="midway benchmark: ratios against a plain loop, the store's raw commit "
        "rate and the alternatives, resume cost and memory, measured in one run on this machine."
    )
    p.add_argument("--quick", action="store_true", help="short run (under 2 minutes)")
    p.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    p.add_argument("--json", metavar="FILE", type=Path, help="save the raw numbers as JSON")
    p.add_argument(
        "--update-readme",
        metavar="PATH",
        type=Path,
        help=f"replace the block between {START_MARKER} and {END_MARKER} in PATH",
    )
    p.add_argument(
        "--rounds", type=int, help="rounds per measurement (default 5, alternatives 3; quick 3, 2)"
    )
    p.add_argument(
        "--stat",
        choices=("best", "median"),
        default="best",
        help="how rounds are combined (default: best)",
    )
    p.add_argument(
        "--tmpdir",
        type=Path,
        help="where the temporary stores go (default: the system temp folder); its disk "
        "decides the durable rows",
    )
    p.add_argument(
        "--no-install",
        action="store_true",
        help="do not create or fill benchmarks/.venv-alt; alternatives not already there are "
        "shown as not installed",
    )
    p.add_argument(
        "--alt-python",
        type=Path,
        metavar="PYTHON",
        help="run the alternatives with this interpreter instead of benchmarks/.venv-alt's",
    )
    p.add_argument("--check", action="store_true", help="exit 1 when a figure is below its bar")
    p.add_argument(
        "--overhead-only", action="store_true", help="only the per-item overhead tables (1a, 1b)"
    )
    args = p.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be 1 or more")
    return args


def measure_all(
    root: Path, s: Settings, args: argparse.Namespace
) -> tuple[list[Table], dict[str, Any]]:
    session = Session(root)
    if args.overhead_only:
        overhead, extra = overhead_sections(session, s)
        return [*overhead], extra
    env = altenv.python_for(args.alt_python, install=not args.no_install)
    tools = {
        "midway": Tool.midway(),
        **{name: Tool.alternative(name, env) for name in altenv.TOOLS},
    }
    overhead, extra = overhead_sections(session, s)
    tables: list[Table] = [*overhead]
    tables.append(durability_section(session, s))
    tables.append(alternatives_section(session, s, tools))
    tables.append(resume_cost.measure(session, tools, s.n_resume, s.rounds_alt, s.stat))
    tables.append(scale.measure(session, tools["midway"], s.n_scale))
    hook = resume_hook.measure(s.quick, root)
    if hook is not None:
        tables.append(hook)
    return tables, extra


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.make(args.quick, args.stat, args.rounds)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="midway-bench-", dir=args.tmpdir) as tmp:
        root = Path(tmp)
        info = machine_info(root)
        tables, extra = measure_all(root, settings, args)
    extra["wall_seconds"] = round(time.monotonic() - t0, 1)
    progress(f"done in {extra['wall_seconds']} s")

    block = markdown(tables, info, settings, extra)
    if args.markdown:
        print(block)
    else:
        print_text(tables, info, settings, extra)
    if args.json:
        args.json.write_text(
            json.dumps(to_json(tables, info, settings, extra), indent=2) + "\n",
            encoding="utf-8",
        )
        progress(f"raw numbers saved to {args.json}")
    status = 0
    if args.update_readme:
        if update_readme(args.update_readme, block):
            progress(f"updated the benchmark block in {args.update_readme}")
        else:
            progress(
                f"{args.update_readme} has no {START_MARKER} ... {END_MARKER} block; "
                "nothing changed"
            )
            status = 1
    if args.check:
        failed = below_bar(tables, settings.stat)
        if failed:
            progress("below the bar: " + "; ".join(failed))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
