"""The handler the Dask tests send to their workers: it travels by pickle, so it lives in a
module the Dask worker processes import (not in the test file).

Each call appends ``<item> <pid>`` to the log with one O_APPEND write, so a SIGKILL loses no
call that happened, and the test knows which process handled what; ``hold`` names an item
whose first call waits until the file ``hold_until`` exists (a copy of a task stalled
mid-partition, for the fence test).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any


class LoggingHandler:
    def __init__(self, log: Path, pause: float = 0.003) -> None:
        self.log = str(log)
        self.pause = pause

    def __call__(self, item: int, ctx: Any) -> None:
        fd = os.open(self.log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{item} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
        time.sleep(self.pause)
        ctx.state["count"] = ctx.state.get("count", 0) + 1
        ctx.state["sum"] = ctx.state.get("sum", 0) + item


class FailingHandler(LoggingHandler):
    """Raises on one item: its partition stops there for good."""

    def __init__(self, log: Path, bad: int) -> None:
        super().__init__(log, pause=0.0)
        self.bad = bad

    def __call__(self, item: int, ctx: Any) -> None:
        if item == self.bad:
            raise ValueError(f"item {item} is bad")
        super().__call__(item, ctx)
