"""``rate=``: how many items may start per unit of time, for one runner.

One clock for the sequential and the parallel paths: an item asks :meth:`RateLimit.wait`
before it starts, and a stop (a signal, a lost lease) ends the wait.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from midway._model.settings import rate_interval


class RateLimit:
    """``rate="50/s"``: at most that many items start per second (also ``/m``, ``/h``)."""

    def __init__(self, spec: str) -> None:
        self.interval = rate_interval(spec)
        self.next_at = 0.0
        self.spec = spec

    def wait(self, stopped: Callable[[], bool]) -> bool:
        """Sleep until the next item may start; False if a stop came meanwhile."""
        now = time.monotonic()
        if self.next_at <= now:
            self.next_at = max(self.next_at + self.interval, now - self.interval)
            return True
        while True:
            left = self.next_at - time.monotonic()
            if stopped():
                return False
            if left <= 0:
                self.next_at += self.interval
                return True
            time.sleep(min(left, 0.05))
