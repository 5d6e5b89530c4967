"""What every part of the benchmark shares: timed measures, table rows, rounds, temp folders."""

from __future__ import annotations

import gc
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

Thunk = Callable[[], float]


class Unavailable(Exception):
    """A variant that cannot run here (a tool not installed, a driver that failed).

    ``short`` goes in the items/s cell ("not installed"), the message after the label.
    """

    def __init__(self, short: str, reason: str) -> None:
        super().__init__(reason)
        self.short = short
        self.reason = reason


@dataclass
class Measure:
    """One thing timed several times: ``items`` handled per timing, wall seconds per round."""

    key: str
    label: str
    items: int
    short: str = ""  # its name in the "compared with" column
    seconds: list[float] = field(default_factory=list)
    unavailable: Unavailable | None = None

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
    """A line of the table: a measure, optionally against a baseline, optionally with a bar.

    ``inverse`` rows show an alternative against midway: the ratio is still midway ÷ the
    other (baseline ÷ measure), and the extra per item is still what midway adds.
    """

    measure: Measure
    baseline: Measure | None = None
    bar: float | None = None
    note: str = ""
    shown: str | None = None  # replaces the items/s cell (e.g. a time in ms)
    inverse: bool = False

    def _pair(self, stat: str) -> tuple[float, float] | None:
        """(midway's rate, the other's rate), or None when there is nothing to compare."""
        if self.baseline is None:
            return None
        rate, base = self.measure.rate(stat), self.baseline.rate(stat)
        if not rate or not base:
            return None
        return (base, rate) if self.inverse else (rate, base)

    def ratio(self, stat: str) -> float | None:
        pair = self._pair(stat)
        return pair[0] / pair[1] if pair else None

    def extra_per_item(self, stat: str) -> float | None:
        """Seconds per item midway costs more than the other (negative: less)."""
        pair = self._pair(stat)
        return 1 / pair[0] - 1 / pair[1] if pair else None

    def passed(self, stat: str) -> bool | None:
        ratio = self.ratio(stat)
        if self.bar is None or ratio is None:
            return None
        return ratio >= self.bar


@dataclass
class Section:
    """A table of rows measured in items/s, with ratios."""

    title: str
    rows: list[Row]


@dataclass
class Grid:
    """A table of its own shape (times, megabytes): headers and ready-made cells."""

    title: str
    headers: tuple[str, ...]
    cells: list[tuple[str, ...]]
    right: tuple[str, ...] = ()  # right-aligned columns
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # the raw figures, for --json
    failed: list[str] = field(default_factory=list)  # bars not met, for --check


def run_rounds(group: Sequence[tuple[Measure, Thunk]], rounds: int, what: str) -> None:
    """Time every thunk once per round, rotating the order so all see the same conditions.

    A thunk that raises :class:`Unavailable` marks its measure and is not tried again.
    """
    for r in range(rounds):
        shift = r % len(group)
        order = [*group[shift:], *group[:shift]]
        progress(f"{what}: round {r + 1}/{rounds}")
        for measure, thunk in order:
            if measure.unavailable is not None:
                continue
            gc.collect()
            try:
                measure.seconds.append(thunk())
            except Unavailable as exc:
                measure.unavailable = exc
                progress(f"{measure.label}: {exc.reason}")


def fmt_rate(rate: float) -> str:
    """Three significant figures with thousands separators: 10,300,000 / 2,480 / 845."""
    if rate <= 0:
        return "-"
    digits = len(str(int(rate)))
    return f"{round(rate, 3 - digits):,.0f}" if digits >= 3 else f"{rate:,.1f}"


STARTED = time.monotonic()


def progress(text: str) -> None:
    print(f"bench [{time.monotonic() - STARTED:5.0f} s]: {text}", file=sys.stderr, flush=True)


class Session:
    """Temporary folders for stores and raw files, all below one root removed at the end."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._count = 0

    def next_number(self) -> int:
        self._count += 1
        return self._count

    @contextmanager
    def folder(self) -> Iterator[Path]:
        path = self.root / f"m{self.next_number()}"
        path.mkdir()
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def job_name(self) -> str:
        return f"bench-{self.next_number()}"


def cpu_model() -> str:
    """The processor's name, for the hardware line every benchmark prints."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
