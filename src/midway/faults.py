"""Fault injection for the fault suite: off (and free) unless ``MIDWAY_FAULTS`` is set.

``MIDWAY_FAULTS="checkpoint.before_commit@3"`` kills the process with SIGKILL the third time it
reaches that point; ``...@3:enospc`` raises ``OSError(ENOSPC)`` there instead, as a full disk
would; ``...@3:stop`` stops it with SIGSTOP there (a runner paused mid-write, until something
sends SIGCONT); ``...@3:stall`` blocks the thread that reached it for an hour (a write that
hangs on a stalled disk), while the process's other threads go on. Several faults are separated
by commas. The points sit on paths that run once per checkpoint or per run, never per item, and
each is guarded by the module flag ``ACTIVE``, so a run without the variable pays one global
lookup per checkpoint.

Points: ``checkpoint.before_commit`` / ``checkpoint.after_commit`` (SQLite; the file store's
``file.before_rename``), ``item.after_handler`` (at-most-once and exactly-once items, after the
handler returned, before anything records it), ``lease.after_acquire``, ``migrate.between``
(between a migration's statements), ``complete.before_commit``.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections import Counter

POINTS = (
    "checkpoint.before_commit",
    "checkpoint.after_commit",
    "file.before_rename",
    "item.after_handler",
    "lease.after_acquire",
    "migrate.between",
    "complete.before_commit",
)


def _parse(spec: str) -> dict[str, tuple[int, str]]:
    plan: dict[str, tuple[int, str]] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        point, _, rest = part.partition("@")
        count, _, action = rest.partition(":")
        if point not in POINTS:
            raise ValueError(f"MIDWAY_FAULTS: unknown point {point!r}; known: {', '.join(POINTS)}")
        plan[point] = (int(count or 1), action or "kill")
    return plan


PLAN = _parse(os.environ.get("MIDWAY_FAULTS", ""))
ACTIVE = bool(PLAN)
_hits: Counter[str] = Counter()


def hit(point: str) -> None:
    """Call only under ``if faults.ACTIVE:``."""
    planned = PLAN.get(point)
    if planned is None:
        return
    _hits[point] += 1
    count, action = planned
    if _hits[point] != count:
        return
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    if action == "stop":
        os.kill(os.getpid(), signal.SIGSTOP)
        return
    if action == "stall":
        time.sleep(3600)
        return
    os.kill(os.getpid(), signal.SIGKILL)
