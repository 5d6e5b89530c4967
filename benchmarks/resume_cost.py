"""What a user waits for after a crash: process start to the first new item, per tool.

Each tool runs a job of N items with a durable record per item (midway every=1, batchledger,
a DBOS workflow with one step per item) and is killed (SIGKILL, by itself) inside item P. Its
database is kept as the crash left it; each round copies it and starts a fresh process that
resumes, and the clock runs from just before that process is spawned to the first handler
call that is not a replay. P is 0.1 % and 90 % of N: the difference is what the position
costs.
"""

from __future__ import annotations

import shutil
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from children import Tool
from measure import Grid, Session, Unavailable, progress


@dataclass
class Resumer:
    key: str
    how: str  # how the tool finds its place, for the table
    tool: Tool
    extra: tuple[str, ...] = ()
    seconds: dict[int, list[float]] = field(default_factory=dict)
    startup: dict[int, list[float]] = field(default_factory=dict)
    first: dict[int, int] = field(default_factory=dict)
    version: str = ""
    unavailable: Unavailable | None = None

    def label(self) -> str:
        name = "DBOS Transact" if self.tool.name == "dbos" else self.tool.name
        return f"{name} {self.version}" if self.version else name


def resumers(tools: dict[str, Tool]) -> list[Resumer]:
    return [
        Resumer("midway.list", "every=1, a list: seeks to the checkpoint", tools["midway"]),
        Resumer(
            "midway.generator",
            "every=1, a generator: cannot seek, replays and skips",
            tools["midway"],
            ("--source", "generator"),
        ),
        Resumer(
            "batchledger",
            "walks the input again, one ledger lookup per done item",
            tools["batchledger"],
        ),
        Resumer(
            "dbos",
            "recovers the workflow, replaying each recorded step from the database",
            tools["dbos"],
        ),
    ]


def pick(values: list[float], stat: str) -> float | None:
    if not values:
        return None
    return min(values) if stat == "best" else statistics.median(values)


def startup_of(r: Resumer, p: int, stat: str) -> float | None:
    """Start-up and imports in the round whose total is shown (best), or their median."""
    totals, startups = r.seconds.get(p, []), r.startup.get(p, [])
    if not totals:
        return None
    if stat == "best":
        return startups[totals.index(min(totals))]
    return statistics.median(startups)


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 1 else f"{seconds:.2f} s"


def measure(session: Session, tools: dict[str, Tool], n: int, rounds: int, stat: str) -> Grid:
    positions = (max(1, n // 1000), n * 9 // 10)
    todo = resumers(tools)
    with session.folder() as root:
        crashed: list[tuple[Resumer, int, Path]] = []
        for r in todo:
            for p in positions:
                folder = root / f"{r.key}-{p}"
                folder.mkdir()
                progress(f"resume cost: {r.key} runs {p:,} items of {n:,} and is killed")
                try:
                    r.tool.run(
                        "crash", folder / "state.db", n, "--at", str(p), *r.extra, killed=True
                    )
                except Unavailable as exc:
                    r.unavailable = exc
                    progress(f"resume cost: {r.key}: {exc.reason}")
                    break
                crashed.append((r, p, folder))
        for k in range(rounds):
            progress(f"resume cost: round {k + 1}/{rounds}")
            shift = k % max(1, len(crashed))
            for r, p, folder in [*crashed[shift:], *crashed[:shift]]:
                if r.unavailable is not None:
                    continue
                work = root / "work"
                shutil.copytree(folder, work)
                try:
                    t0 = time.time()
                    report = r.tool.run("resume", work / "state.db", n, "--at", str(p), *r.extra)
                except Unavailable as exc:
                    r.unavailable = exc
                    continue
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                r.seconds.setdefault(p, []).append(report["t_first_new"] - t0)
                r.startup.setdefault(p, []).append(report["t_imported"] - t0)
                r.first[p] = int(report["first_index"])
                r.version = str(report.get("version", ""))
    return grid(todo, n, positions, rounds, stat)


def grid(todo: list[Resumer], n: int, positions: tuple[int, int], rounds: int, stat: str) -> Grid:
    low, high = positions
    dbos = next((r for r in todo if r.key == "dbos"), None)
    dbos_high = pick(dbos.seconds.get(high, []), stat) if dbos else None
    cells: list[tuple[str, ...]] = []
    notes: list[str] = []
    data: dict[str, Any] = {"items": n, "positions": list(positions), "tools": {}}
    for r in todo:
        at_low, at_high = pick(r.seconds.get(low, []), stat), pick(r.seconds.get(high, []), stat)
        if r.unavailable is not None and at_high is None:
            cells.append((r.label(), r.unavailable.short, "", "", "", "", r.how))
            notes.append(f"{r.label()}: {r.unavailable.reason}")
            continue
        startup = startup_of(r, high, stat)
        first = " / ".join(f"{r.first[p]:,}" if p in r.first else "-" for p in positions)
        versus = f"{dbos_high / at_high:.1f}" if dbos_high and at_high else ""
        cells.append(
            (r.label(), fmt_s(at_low), fmt_s(at_high), fmt_s(startup), first, versus, r.how)
        )
        data["tools"][r.key] = {
            "label": r.label(),
            "seconds": {str(p): r.seconds.get(p, []) for p in positions},
            "startup_seconds": {str(p): r.startup.get(p, []) for p in positions},
            "first_new_item": {str(p): r.first.get(p) for p in positions},
        }
    headers = (
        "tool",
        f"killed at item {low:,}",
        f"killed at item {high:,}",
        "of which start-up + imports",
        "first new item",
        f"DBOS ÷ this, at {high:,}",
        "how it finds its place",
    )
    notes.insert(
        0,
        f"Process start to the first new item after a SIGKILL, {n:,} items with a durable "
        f"record each; {stat} of {rounds} rounds, each resuming a copy of the database as the "
        "crash left it.",
    )
    title = (
        f"4. Resume cost: process start to the first new item ({n:,} items, killed at 0.1 % "
        "and 90 %)"
    )
    right = headers[1:-1]
    return Grid(title, headers, cells, right, notes, data)
