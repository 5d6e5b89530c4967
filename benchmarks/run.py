"""midway's reproducible benchmark: ratios measured on one machine in one run.

    .venv/bin/python benchmarks/run.py            # full run (a few minutes)
    .venv/bin/python benchmarks/run.py --quick    # short run (under a minute)
    .venv/bin/python benchmarks/run.py --markdown # print the README table instead
    .venv/bin/python benchmarks/run.py --json out.json --update-readme README.md

Every midway figure is put next to a baseline measured in the same run, in alternating rounds,
so that both see the same machine: a plain ``for`` loop calling the same handler, the raw
commit rate of the store (SQLite with midway's settings, or temp file + fsync + rename), and
the hand-written JSON checkpoint of the usual blog post. What counts is the ratio. See
benchmarks/README.md for what each row means.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import midway
from midway.stores import open_store

Handler = Callable[[Any, Any], object]
Thunk = Callable[[], float]

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
    rounds_cpu: int
    rounds_io: int

    @classmethod
    def make(cls, quick: bool, stat: str, rounds: int | None) -> Settings:
        if quick:
            return cls(quick, stat, 200_000, 20_000, 10.0, 1_000, 20_000, rounds or 3, rounds or 3)
        return cls(quick, stat, 1_000_000, 50_000, 10.0, 3_000, 100_000, rounds or 5, rounds or 5)


# -- measurements ---------------------------------------------------------------------------


@dataclass
class Measure:
    """One thing timed several times: ``items`` handled per timing, wall seconds per round."""

    key: str
    label: str
    items: int
    short: str = ""  # its name in the "compared with" column
    seconds: list[float] = field(default_factory=list)

    def rates(self) -> list[float]:
        return [self.items / s for s in self.seconds if s > 0]

    def rate(self, stat: str) -> float:
        rates = self.rates()
        if not rates:
            return 0.0
        return max(rates) if stat == "best" else statistics.median(rates)

    def time(self, stat: str) -> float:
        if not self.seconds:
            return 0.0
        return min(self.seconds) if stat == "best" else statistics.median(self.seconds)


@dataclass
class Row:
    """A line of the table: a measure, optionally against a baseline, optionally with a bar."""

    measure: Measure
    baseline: Measure | None = None
    bar: float | None = None
    note: str = ""
    shown: str | None = None  # replaces the items/s cell (e.g. a time in ms)

    def ratio(self, stat: str) -> float | None:
        if self.baseline is None:
            return None
        base = self.baseline.rate(stat)
        return self.measure.rate(stat) / base if base else None

    def extra_per_item(self, stat: str) -> float | None:
        """Seconds per item this costs more than its baseline (negative: less)."""
        if self.baseline is None:
            return None
        rate, base = self.measure.rate(stat), self.baseline.rate(stat)
        return 1 / rate - 1 / base if rate and base else None

    def passed(self, stat: str) -> bool | None:
        ratio = self.ratio(stat)
        if self.bar is None or ratio is None:
            return None
        return ratio >= self.bar


@dataclass
class Section:
    title: str
    rows: list[Row]


def run_rounds(group: Sequence[tuple[Measure, Thunk]], rounds: int, what: str) -> None:
    """Time every thunk once per round, rotating the order so all see the same conditions."""
    for r in range(rounds):
        shift = r % len(group)
        order = [*group[shift:], *group[:shift]]
        progress(f"{what}: round {r + 1}/{rounds}")
        for measure, thunk in order:
            gc.collect()
            measure.seconds.append(thunk())


def progress(text: str) -> None:
    print(f"bench: {text}", file=sys.stderr, flush=True)


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
    the handler and its measured cost per call in microseconds.
    """
    spins = [range(100)]

    def work(item: Any, ctx: Any) -> None:
        for _ in spins[0]:
            pass

    def per_call() -> float:
        ctx, calls, best = DummyContext(), 500, float("inf")
        for _ in range(20):
            t0 = time.perf_counter()
            for i in range(calls):
                work(i, ctx)
            best = min(best, time.perf_counter() - t0)
        return best / calls

    for _ in range(3):
        spins[0] = range(max(1, round(len(spins[0]) * target_us * 1e-6 / per_call())))
    return work, per_call() * 1e6


class Session:
    """Temporary folders for stores and raw files, all below one root removed at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def _next(self) -> int:
        self._count += 1
        return self._count

    @contextmanager
    def folder(self) -> Iterator[Path]:
        path = self.root / f"m{self._next()}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    @contextmanager
    def store(self, kind: str, durable: bool) -> Iterator[str]:
        """A fresh store, created (schema and all) before the clock starts."""
        with self.folder() as path:
            url = f"sqlite:///{path / 'state.db'}" if kind == "sqlite" else f"file://{path / 'fs'}"
            open_store(url, durable=durable).close()
            yield url

    def job_name(self) -> str:
        return f"bench-{self._next()}"


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
    with session.store(store, durable) as url:
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


# -- the three parts ------------------------------------------------------------------------


def overhead_sections(session: Session, s: Settings) -> tuple[list[Section], dict[str, Any]]:
    """1. The per-item cost of midway against a plain loop, trivial and ~10 us handlers."""
    work, work_us = busy_handler(s.work_us)
    sections = [
        overhead_case(
            session, "1a", "trivial", "trivial handler", handle, s.n_overhead, s.rounds_cpu
        ),
        overhead_case(
            session, "1b", "work", f"~{work_us:.0f} µs handler", work, s.n_work, s.rounds_cpu
        ),
    ]
    return sections, {"work_handler_us": round(work_us, 2)}


def overhead_case(
    session: Session, number: str, tag: str, what: str, handler: Handler, n: int, rounds: int
) -> Section:
    items = list(range(n))

    def m(name: str, label: str) -> Measure:
        return Measure(f"overhead.{tag}.{name}", label, n)

    run = partial(midway_run, session, items, handler)
    plain = m("plain", "plain `for` loop calling the handler")
    plain.short = "plain loop"
    every1000 = m("run_every_1000", "Job.run, every=1000")
    every100 = m("run_every_100", "Job.run, every=100")
    loop1000 = m("loop_every_1000", "job.loop, every=1000 (body calls the handler)")
    nondurable = m("run_every_1000_nondurable", "Job.run, every=1000, durable=False")
    timed = m("run_every_10s", "Job.run, every=None, every_seconds=10 (engine alone)")
    group: list[tuple[Measure, Thunk]] = [
        (plain, partial(plain_loop, items, handler)),
        (every1000, partial(run, every=1000)),
        (every100, partial(run, every=100)),
        (loop1000, partial(run, every=1000, loop=True)),
        (nondurable, partial(run, every=1000, durable=False)),
        (timed, partial(run, every=None, every_seconds=10.0)),
    ]
    run_rounds(group, rounds, f"overhead, {what}, {n:,} items")
    return Section(
        f"{number}. Overhead, {what}, {n:,} items (ratio = midway / plain loop; sqlite store, "
        "durable unless said)",
        [
            Row(plain),
            Row(every1000, plain, bar=0.5),
            Row(every100, plain),
            Row(loop1000, plain),
            Row(nondurable, plain),
            Row(timed, plain),
        ],
    )


def durability_sections(session: Session, s: Settings) -> list[Section]:
    """2. every=1 against the store's raw commit rate; 3. the hand-written JSON checkpoint."""
    n = s.n_durable
    items = list(range(n))

    def m(key: str, label: str, count: int = n) -> Measure:
        return Measure(key, label, count)

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
    hand1 = m("json.handwritten_every_1", "hand-written JSON checkpoint, every=1")
    hand1.short = "hand-written, every=1"
    group: list[tuple[Measure, Thunk]] = [
        (raw_full, lambda: raw_sqlite(session, n, "FULL")),
        (mw_full, lambda: midway_run(session, items, handle, every=1)),
        (raw_normal, lambda: raw_sqlite(session, n, "NORMAL")),
        (mw_normal, lambda: midway_run(session, items, handle, every=1, durable=False)),
        (raw_fs, lambda: raw_file(session, n)),
        (mw_fs, lambda: midway_run(session, items, handle, every=1, store="file")),
        (hand1, lambda: handwritten_json(session, items, handle, 1)),
    ]
    run_rounds(group, s.rounds_io, f"per-item durability, {n:,} items")

    n100 = s.n_every100
    items100 = list(range(n100))
    hand100 = m("json.handwritten_every_100", "hand-written JSON checkpoint, every=100", n100)
    hand100.short = "hand-written, every=100"
    mw100 = m("json.run_every_100_sqlite", "Job.run, every=100, sqlite, durable=True", n100)
    fixed = m(
        "fixed.run_one_item",
        "fixed cost of one Job.run: a 1-item list (store open, lease, run record, last commit)",
        1,
    )
    group100: list[tuple[Measure, Thunk]] = [
        (hand100, lambda: handwritten_json(session, items100, handle, 100)),
        (mw100, lambda: midway_run(session, items100, handle, every=100)),
        (fixed, lambda: midway_run(session, [0], handle, every=1000)),
    ]
    run_rounds(group100, s.rounds_io, f"hand-written JSON at every=100, {n100:,} items")
    fixed_ms = fixed.time(s.stat) * 1000
    return [
        Section(
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
        ),
        Section(
            "3. Against a hand-written JSON checkpoint (temp file + fsync + rename; "
            "ratio = midway / hand-written)",
            [
                Row(hand1),
                Row(mw_full, hand1, note=f"{n:,} items"),
                Row(hand100),
                Row(mw100, hand100, note=f"{n100:,} items"),
                Row(fixed, shown=f"{fixed_ms:.1f} ms"),
            ],
        ),
    ]


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


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


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


def fmt_rate(rate: float) -> str:
    """Three significant figures with thousands separators: 10,300,000 / 2,480 / 845."""
    if rate <= 0:
        return "-"
    digits = len(str(int(rate)))
    return f"{round(rate, 3 - digits):,.0f}" if digits >= 3 else f"{rate:,.1f}"


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
        ratio = row.ratio(stat)
        label = row.measure.label + (f" ({row.note})" if row.note else "")
        base = row.baseline
        out.append(
            (
                label,
                row.shown if row.shown is not None else fmt_rate(row.measure.rate(stat)),
                (base.short or base.label) if base else "",
                f"{ratio:.2f}" if ratio is not None else "",
                fmt_seconds(row.extra_per_item(stat)),
                fmt_bar(row, stat),
            )
        )
    return out


HEADERS = ("measurement", "items/s", "compared with", "ratio", "extra per item", "bar")
RIGHT = ("items/s", "ratio", "extra per item")


def describe_machine(info: dict[str, Any]) -> str:
    return (
        f"{info['cpu']}, {info['cpus_usable']} of {info['cpu_count']} CPUs usable, "
        f"load {info['load_average'][0]}; {info['platform']}; Python {info['python']}; "
        f"SQLite {info['sqlite']}; temp folder on {info['temp_filesystem']}; "
        f"midway {info['midway']}{' (' + info['git'] + ')' if info['git'] else ''}"
    )


def describe_method(s: Settings, extra: dict[str, Any]) -> str:
    rounds = (
        f"{s.rounds_cpu} rounds"
        if s.rounds_cpu == s.rounds_io
        else f"{s.rounds_cpu} rounds (overhead) / {s.rounds_io} rounds (durability)"
    )
    return (
        f"{s.stat} of {rounds}, baselines and midway alternating within each round; "
        f"busy handler calibrated to {extra['work_handler_us']} µs per call; "
        f"{'--quick' if s.quick else 'full'} run, {extra.get('wall_seconds', '?')} s"
    )


def print_text(
    sections: list[Section], info: dict[str, Any], s: Settings, extra: dict[str, Any]
) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 130))
    console.print(f"[bold]midway benchmark[/bold]  {describe_machine(info)}")
    console.print(describe_method(s, extra))
    for section in sections:
        table = Table(title=section.title, title_justify="left", box=box.SIMPLE_HEAD)
        for name in HEADERS:
            table.add_column(name, justify="right" if name in RIGHT else "left")
        for cells in table_rows(section, s.stat):
            style = "bold red" if cells[-1].endswith("FAIL") else None
            table.add_row(*cells, style=style)
        console.print(table)


def markdown(
    sections: list[Section], info: dict[str, Any], s: Settings, extra: dict[str, Any]
) -> str:
    def esc(text: str) -> str:
        return text.replace("|", "\\|")

    lines = []
    for section in sections:
        lines += [f"**{esc(section.title)}**", ""]
        lines.append("| " + " | ".join(HEADERS) + " |")
        lines.append("|" + "|".join("---:" if h in RIGHT else "---" for h in HEADERS) + "|")
        for cells in table_rows(section, s.stat):
            lines.append("| " + " | ".join(esc(c) for c in cells) + " |")
        lines.append("")
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
    sections: list[Section], info: dict[str, Any], s: Settings, extra: dict[str, Any]
) -> dict[str, Any]:
    measures: dict[str, Any] = {}
    rows = []
    for section in sections:
        for row in section.rows:
            m = row.measure
            measures[m.key] = {
                "label": m.label,
                "items": m.items,
                "seconds": [round(x, 6) for x in m.seconds],
                "rate_best": m.rate("best"),
                "rate_median": m.rate("median"),
            }
            rows.append(
                {
                    "section": section.title,
                    "measure": m.key,
                    "baseline": row.baseline.key if row.baseline else None,
                    "ratio": row.ratio(s.stat),
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
    }


# -- main -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="midway benchmark: ratios against a plain loop and the store's raw commit "
        "rate, measured in one run on this machine."
    )
    p.add_argument("--quick", action="store_true", help="short run (under a minute)")
    p.add_argument("--markdown", action="store_true", help="print the README's markdown table")
    p.add_argument("--json", metavar="FILE", type=Path, help="save the raw numbers as JSON")
    p.add_argument(
        "--update-readme",
        metavar="PATH",
        type=Path,
        help=f"replace the block between {START_MARKER} and {END_MARKER} in PATH",
    )
    p.add_argument("--rounds", type=int, help="rounds per measurement (default 5, quick 3)")
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
    p.add_argument("--check", action="store_true", help="exit 1 when a ratio is below its bar")
    args = p.parse_args(argv)
    if args.rounds is not None and args.rounds < 1:
        p.error("--rounds must be 1 or more")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    settings = Settings.make(args.quick, args.stat, args.rounds)
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="midway-bench-", dir=args.tmpdir) as tmp:
        root = Path(tmp)
        info = machine_info(root)
        session = Session(root)
        sections, extra = overhead_sections(session, settings)
        sections += durability_sections(session, settings)
    extra["wall_seconds"] = round(time.monotonic() - t0, 1)
    progress(f"done in {extra['wall_seconds']} s")

    block = markdown(sections, info, settings, extra)
    if args.markdown:
        print(block)
    else:
        print_text(sections, info, settings, extra)
    if args.json:
        args.json.write_text(
            json.dumps(to_json(sections, info, settings, extra), indent=2) + "\n",
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
        failed = [
            row.measure.label
            for section in sections
            for row in section.rows
            if row.passed(settings.stat) is False
        ]
        if failed:
            progress("below the bar: " + "; ".join(failed))
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
