"""Commands a dead ``midway each`` run left behind, found and stopped before its records run
again.

Each command is started with ``MIDWAY_EACH_RUNNER=<job tag>:<runner>`` in its environment,
which every process it starts inherits. The job tag is a hash of the store (without any
password) and the job's key; the runner part names the ``midway each`` process. Linux kills
a command when its ``midway each`` dies (see ``child.die_with_parent``), but not what the
command started (``sh -c 'a; b'``, ``make``, a pipeline). So a run, once it holds the job's
lease and before it starts its first command, looks through ``/proc`` for processes of the
same user carrying the job's tag from another runner, kills their process groups, and waits
until they are gone: the records they were running may now run again.

Elsewhere than Linux (no ``/proc``) there is nothing to look through, and nothing is done.
A command that empties its environment (``env -i``) cannot be found.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from midway.console import say
from midway.errors import RefusedError

TAG_ENV = "MIDWAY_EACH_RUNNER"
PROC = Path("/proc")
GONE_WITHIN = 10.0  # seconds a SIGKILLed process may take to go (a process in D state)


def job_tag(store_url: str, job_key: str) -> str:
    """The part of the tag all runners of one job in one store share."""
    parts = urlsplit(store_url)
    if parts.password is not None or parts.username is not None:
        store_url = urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))
    digest = hashlib.sha256(f"{store_url}\n{job_key}".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()[:24]


def runner_tag(job: str) -> str:
    """This runner's whole tag: the job's, this process, and a nonce (pids are reused)."""
    return f"{job}:{os.getpid()}.{os.urandom(4).hex()}"


def _tag_of(pid: int) -> str | None:
    try:
        data = (PROC / str(pid) / "environ").read_bytes()
    except OSError:  # gone, or not ours to read
        return None
    prefix = f"{TAG_ENV}=".encode()
    for entry in data.split(b"\0"):
        if entry.startswith(prefix):
            return entry[len(prefix) :].decode("ascii", "replace")
    return None


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for init to collect it."""
    try:
        stat = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def left_running(job: str, mine: str) -> list[int]:
    """Pids of this user's processes tagged with ``job`` by a runner other than ``mine``."""
    if not PROC.is_dir():
        return []
    uid, me = os.getuid(), os.getpid()
    found = []
    for entry in PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        try:
            if entry.stat().st_uid != uid:
                continue
        except OSError:
            continue
        tag = _tag_of(int(entry.name))
        if tag is not None and tag.startswith(f"{job}:") and tag != mine:
            found.append(int(entry.name))
    return sorted(found)


def stop_left_running(job: str, mine: str, job_name: str) -> list[int]:
    """Kill what another runner of ``job`` left running (process groups and all); return
    their pids once they are gone. RefusedError if one will not go."""
    pids = [pid for pid in left_running(job, mine) if _alive(pid)]
    if not pids:
        return []
    own_group = os.getpgrp()
    for pid in pids:
        with contextlib.suppress(OSError):
            group = os.getpgid(pid)
            if group not in (own_group, 0, 1):
                os.killpg(group, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + GONE_WITHIN
    while time.monotonic() < deadline:
        still = [pid for pid in pids if _alive(pid)]
        if not still:
            return pids
        time.sleep(0.02)
    raise RefusedError(
        f"commands that an earlier run of job {job_name!r} left running (pids "
        f"{', '.join(map(str, still))}) did not end on SIGKILL within {GONE_WITHIN:g} s, so "
        "midway does not start their records again beside them. Stop them, then run again"
    )


class Sweeper:
    """One runner's tag, and the sweep it makes once before its first command."""

    def __init__(self, store_url: str, job_key: str) -> None:
        self.job = job_tag(store_url, job_key)
        self.tag = runner_tag(self.job)
        self.job_key = job_key
        self._done = False
        self._lock = threading.Lock()

    def sweep(self) -> None:
        """Called before each command; the first call (the job's lease is ours by then)
        kills what another runner of the job left running, before a record runs again."""
        if self._done:
            return
        with self._lock:
            if self._done:
                return
            gone = stop_left_running(self.job, self.tag, self.job_key)
            if gone:
                say(
                    f"killed {len(gone)} process(es) that an earlier run of job "
                    f"{self.job_key!r} left running (pids {', '.join(map(str, gone))}) before "
                    "running any record again"
                )
            self._done = True
