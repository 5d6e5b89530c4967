"""Who a runner is (host, pid, process start time) and whether a recorded owner still lives."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from functools import cache

from midway._model.identity import WORKER_ENV


@cache
def hostname() -> str:
    import socket  # loaded when a run starts, not by ``import midway``

    return socket.gethostname()


INDEX_ENV = "JOB_COMPLETION_INDEX"
"""Set by Kubernetes in each pod of an Indexed Job: the pod's index."""


def runner_host() -> str:
    """The host a runner names itself by. Under ``midway worker`` in a Kubernetes Indexed
    Job (``JOB_COMPLETION_INDEX`` set), the pod's name (``HOSTNAME``) and its index,
    ``import-contacts-3-x7k2p#3``, so that ``midway status`` shows which pod holds which
    partition; anywhere else the machine's host name."""
    index = os.environ.get(INDEX_ENV, "").strip()
    if os.environ.get(WORKER_ENV) != "1" or not index:
        return hostname()
    pod = os.environ.get("HOSTNAME", "").strip() or hostname()
    return f"{pod[:200]}#{index[:20]}"


def process_start_ticks(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (Linux /proc); tells a reused pid from the original."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after its last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    pid_started: int | None

    @property
    def label(self) -> str:
        return f"{self.host}:{self.pid}"

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(runner_host(), pid, process_start_ticks(pid))

    def is_dead_here(self) -> bool:
        """True only when this owner ran on this host and its process is certainly gone."""
        if self.host != runner_host():
            return False
        if not pid_alive(self.pid):
            return True
        if self.pid_started is None:
            return False
        started = process_start_ticks(self.pid)
        return started is not None and started != self.pid_started


_AGE_UNITS = ((90, 1, "s", 0), (90 * 60, 60, "min", 0), (36 * 3600, 3600, "h", 1))
"""(below how many seconds, seconds in the unit, its name, decimals); past them, days."""


def describe_age(seconds: float) -> str:
    """``just now``, ``45 s ago``, ``12 min ago``, ``3.5 h ago``, ``2.0 days ago``."""
    seconds = max(0.0, seconds)
    if seconds < 1:
        return "just now"
    for below, unit, name, decimals in _AGE_UNITS:
        if seconds < below:
            return f"{seconds / unit:.{decimals}f} {name} ago"
    return f"{seconds / 86400:.1f} days ago"


def iso(ts: float | None) -> str | None:
    if not ts:
        return None
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))
    except (OverflowError, OSError, ValueError, TypeError):
        return f"{ts!r} (not a date: a damaged record)"
