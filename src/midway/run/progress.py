"""Progress: a rich bar on a terminal, a periodic plain line otherwise, or nothing.

The engine calls ``update`` at slice boundaries only (a few times a second at most), so the
per-item path never touches it.
"""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any, Protocol

from midway._model.printable import printable
from midway.console import log_format, say

if TYPE_CHECKING:
    from rich.progress import TaskID


class Reporter(Protocol):
    def start(self, processed: int, total: int | None, *, by_bytes: bool = False) -> None:
        """``by_bytes``: no item count is known, but ``update`` gets the share of the input
        read so far (a file's byte offset over its size), for the bar and the ETA."""
        ...

    def update(self, processed: int, failed: int, share: float | None = None) -> None: ...

    def close(self) -> None: ...


class Silent:
    def start(self, processed: int, total: int | None, *, by_bytes: bool = False) -> None:
        pass

    def update(self, processed: int, failed: int, share: float | None = None) -> None:
        pass

    def close(self) -> None:
        pass


def _rate_eta(done: int, elapsed: float, remaining: int | None) -> tuple[float, float | None]:
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = remaining / rate if (rate > 0 and remaining is not None) else None
    return rate, eta


class Lines:
    """One line every ``interval`` seconds: for logs, CI, and anything that is not a terminal."""

    def __init__(self, job: str, interval: float = 10.0, *, key: str | None = None) -> None:
        self._job = job
        self._key = key or job
        self._interval = interval
        self._total: int | None = None
        self._start_count = 0
        self._t0 = self._last = 0.0
        self._share0: float | None = None

    def start(self, processed: int, total: int | None, *, by_bytes: bool = False) -> None:
        self._total = total
        self._start_count = processed
        self._t0 = self._last = time.monotonic()

    def update(self, processed: int, failed: int, share: float | None = None) -> None:
        now = time.monotonic()
        if self._share0 is None:
            self._share0 = share
        if now - self._last < self._interval:
            return
        self._last = now
        remaining = None if self._total is None else max(0, self._total - processed)
        rate, eta = _rate_eta(processed - self._start_count, now - self._t0, remaining)
        of = f" / {self._total:,}" if self._total is not None else ""
        if self._total is None and share is not None and self._share0 is not None:
            of = f" ({100 * share:.1f}% of the input)"
            eta = _share_eta(self._share0, share, now - self._t0)
        eta_text = f", ETA {eta:,.0f} s" if eta is not None else ""
        failed_text = f", {failed:,} failed" if failed else ""
        say(
            f"{self._job}: {processed:,}{of} items{failed_text}, {rate:,.0f}/s{eta_text}",
            event="progress",
            job=self._key,
            processed=processed,
            total=self._total,
            failed=failed,
            rate_per_second=round(rate, 3),
            eta_seconds=None if eta is None else round(eta, 1),
        )

    def close(self) -> None:
        pass


def _share_eta(first: float, now: float, elapsed: float) -> float | None:
    """Seconds left, from the share of the input read since the run began."""
    if now <= first or elapsed <= 0:
        return None
    return elapsed * (1.0 - now) / (now - first)


class Bar:
    """A rich progress bar on stderr that starts at the resumed count."""

    def __init__(self, job: str) -> None:
        from rich.console import Console

        self._console = Console(stderr=True)
        self._progress: Any = None
        self._job = job
        self._by_bytes = False
        self._task: TaskID | None = None
        self._start_count = 0
        self._t0 = 0.0

    def start(self, processed: int, total: int | None, *, by_bytes: bool = False) -> None:
        from rich.markup import escape
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self._by_bytes = by_bytes and total is None
        count = TextColumn("{task.fields[count]} items") if self._by_bytes else MofNCompleteColumn()
        self._progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            count,
            *([TaskProgressColumn()] if self._by_bytes else []),
            TextColumn("{task.fields[rate]}"),
            TextColumn("{task.fields[failed]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self._console,
            transient=False,
        )
        self._start_count = processed
        self._t0 = time.monotonic()
        self._task = self._progress.add_task(
            escape(printable(self._job)),
            total=1.0 if self._by_bytes else total,
            completed=0.0 if self._by_bytes else processed,
            rate="",
            failed="",
            count=f"{processed:,}",
        )
        self._progress.start()

    def update(self, processed: int, failed: int, share: float | None = None) -> None:
        if self._task is None:
            return
        elapsed = time.monotonic() - self._t0
        rate = (processed - self._start_count) / elapsed if elapsed > 0 else 0.0
        self._progress.update(
            self._task,
            completed=share if (self._by_bytes and share is not None) else processed,
            rate=f"{rate:,.0f}/s",
            failed=f"[red]{failed:,} failed" if failed else "",
            count=f"{processed:,}",
        )

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()


def reporter(job: str, progress: bool | None, quiet: bool, key: str | None = None) -> Reporter:
    """``progress=None`` picks a bar on a terminal and plain lines elsewhere (also on a
    terminal when the log is JSON lines). ``key``: the job's key, for the JSON log."""
    if progress is False or (quiet and progress is None):
        return Silent()
    if progress or (sys.stderr.isatty() and log_format() != "json"):
        return Bar(job)
    return Lines(job, key=key or job)
