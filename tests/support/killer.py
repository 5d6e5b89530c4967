"""Run a command again and again, SIGKILLing it at random moments, until it exits by itself.

The moments come from a seeded ``random.Random`` (``MIDWAY_TEST_SEED`` replays a failure, see
``crashjob.pick_seed``); every run's exit code and output come back for the assertions.
"""

from __future__ import annotations

import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Run:
    returncode: int
    killed: bool
    stdout: str
    stderr: str


@dataclass
class Killings:
    seed: int
    runs: list[Run] = field(default_factory=list)

    @property
    def kills(self) -> int:
        return sum(run.killed for run in self.runs)

    @property
    def last(self) -> Run:
        return self.runs[-1]

    def describe(self) -> str:
        codes = ", ".join("kill" if r.killed else str(r.returncode) for r in self.runs)
        tail = self.last.stderr[-2000:] if self.runs else ""
        return f"seed {self.seed} (MIDWAY_TEST_SEED={self.seed} replays it): runs [{codes}]\n{tail}"


class LineCounter:
    """Counts the lines of a file that another process appends to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.offset = 0
        self.lines = 0

    def count(self) -> int:
        try:
            with self.path.open("rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return self.lines
        self.offset += len(data)
        self.lines += data.count(b"\n")
        return self.lines


def kill_until_done(
    argv: Sequence[str],
    *,
    seed: int,
    cwd: Path,
    delays: tuple[float, float] = (0.2, 1.0),
    kills: int = 8,
    timeout: float = 120.0,
    log: Path | None = None,
    after: tuple[int, int] = (50, 2000),
    finished: Callable[[], bool] | None = None,
) -> Killings:
    """Kill the first ``kills`` runs, then let one run to its end; returns every run.

    With ``log`` (a file the job appends a line to per item handled) each kill lands once
    the run has added a random number of lines (``after``), whatever the machine's speed;
    without, after a random delay (``delays``). A run that ends before its kill is not
    killed, and ends the loop; so does a kill that landed after the job had completed
    (``finished`` says so: the kill came during the last commits)."""
    rng = random.Random(seed)
    report = Killings(seed)
    counter = LineCounter(log) if log is not None else None
    for attempt in range(kills + 1):
        proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        killed = False
        if attempt < kills:
            if counter is not None:
                target = counter.count() + rng.randint(*after)
                deadline = time.monotonic() + timeout
                while proc.poll() is None and time.monotonic() < deadline:
                    if counter.count() >= target:
                        proc.kill()
                        killed = True
                        break
                    time.sleep(0.002)
            else:
                try:
                    proc.wait(timeout=rng.uniform(*delays))
                except subprocess.TimeoutExpired:
                    proc.kill()
                    killed = True
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        killed = killed and proc.returncode == -9
        report.runs.append(Run(proc.returncode, killed, out.decode(), err.decode()))
        if not killed and attempt < kills:
            break  # it ended before its kill came
        if killed and finished is not None and finished():
            break  # the kill came after the job had completed
    return report
