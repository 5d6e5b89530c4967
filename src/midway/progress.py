"""Progress: a rich bar on a terminal, a periodic plain line otherwise, or nothing.

The engine calls ``update`` at slice boundaries only (a few times a second at most), so the
per-item path never touches it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Protocol

from midway.console import say

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter(Protocol):
    def start(self, processed: int, total: int | None) -> None: ...

    def update(self, processed: int, failed: int) -> None: ...

    def close(self) -> None: ...


class Silent:
    def start(self, processed: int, total: int | None) -> None:
        pass

    def update(self, processed: int, failed: int) -> None:
        pass

    def close(self) -> None:
        pass


def _rate_eta(done: int, elapsed: float, remaining: int | None) -> tuple[float, float | None]:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = remaining / rate if (rate > 0 and remaining is not None) else None
    return rate, eta


class Lines:
    """One line every ``interval`` seconds: for logs, CI, and anything that is not a terminal."""

    def __init__(self, job: str, interval: float = 10.0) -> None:
        self._job = job
        self._interval = interval
        self._total: int | None = None
        self._start_count = 0
        self._t0 = self._last = 0.0

    def start(self, processed: int, total: int | None) -> None:
        self._total = total
        self._start_count = processed
        self._t0 = self._last = time.monotonic()

    def update(self, processed: int, failed: int) -> None:
        now = time.monotonic()
        if now - self._last < self._interval:
            return
        self._last = now
        remaining = None if self._total is None else max(0, self._total - processed)
        rate, eta = _rate_eta(processed - self._start_count, now - self._t0, remaining)
        of = f" / {self._total:,}" if self._total is not None else ""
        eta_text = f", ETA {eta:,.0f} s" if eta is not None else ""
        failed_text = f", {failed:,} failed" if failed else ""
        say(f"{self._job}: {processed:,}{of} items{failed_text}, {rate:,.0f}/s{eta_text}")

    def close(self) -> None:
        pass


class Bar:
    """A rich progress bar on stderr that starts at the resumed count."""

    def __init__(self, job: str) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self._job = job
        self._task: TaskID | None = None
        self._start_count = 0
        self._t0 = 0.0

    def start(self, processed: int, total: int | None) -> None:
        self._start_count = processed
        self._t0 = time.monotonic()
        self._task = self._progress.add_task(
            self._job, total=total, completed=processed, rate="", failed=""
        )
        self._progress.start()

    def update(self, processed: int, failed: int) -> None:
        if self._task is None:
            return
        elapsed = time.monotonic() - self._t0
        rate = (processed - self._start_count) / elapsed if elapsed > 0 else 0.0
        self._progress.update(
            self._task,
            completed=processed,
            rate=f"{rate:,.0f}/s",
            failed=f"[red]{failed:,} failed" if failed else "",
        )

    def close(self) -> None:
        self._progress.stop()


def reporter(job: str, progress: bool | None, quiet: bool) -> Reporter:
    """``progress=None`` picks a bar on a terminal and plain lines elsewhere."""
    if progress is False or (quiet and progress is None):
        return Silent()
    if progress or sys.stderr.isatty():
        return Bar(job)
    return Lines(job)
