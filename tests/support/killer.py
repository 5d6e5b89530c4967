"""Run a command again and again, SIGKILLing it part-way, until it exits by itself.

The kills come after a number of items handled (see :func:`kill_until_done`); the numbers
come from a seeded ``random.Random`` (``MIDWAY_TEST_SEED`` replays a failure, see
``crashjob.pick_seed``); every run's exit code and output come back for the assertions.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol


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


HOLD_AHEAD = 40  # a run to be killed holds this many items past its planned kill point


class Gate(Protocol):
    """Holds a run meant to be killed at an item past its kill point, until it is killed:
    it cannot finish before the kill lands, however slowly the test is scheduled."""

    def hold(self, count: int) -> dict[str, str]:
        """Hold the next run at its ``count``-th item; returns variables for its environment."""
        ...

    def release(self) -> None:
        """Let go of the held item (the run holding it is dead)."""
        ...


class FileGate:
    """For a job script that reads ``MIDWAY_TEST_HOLD_AT`` and ``MIDWAY_TEST_HOLD_FILE``
    (tests/support/fatejob.py): the run waits at its ``count``-th item for as long as the
    file exists."""

    def __init__(self, folder: Path) -> None:
        self.file = folder / "hold"

    def hold(self, count: int) -> dict[str, str]:
        self.file.touch()
        return {"MIDWAY_TEST_HOLD_AT": str(count), "MIDWAY_TEST_HOLD_FILE": str(self.file)}

    def release(self) -> None:
        self.file.unlink(missing_ok=True)


def kill_until_done(
    argv: Sequence[str],
    *,
    seed: int,
    cwd: Path,
    kills: int = 8,
    timeout: float = 120.0,
    log: Path | None = None,
    progress: Callable[[], int] | None = None,
    after: tuple[int, int] = (50, 2000),
    finished: Callable[[], bool] | None = None,
    gate: Gate | None = None,
) -> Killings:
    """Kill the first ``kills`` runs, then let one run to its end; returns every run.

    Each kill lands once the run has handled a random number of items (``after``) plus a
    few milliseconds, whatever the machine's speed: counted as lines of ``log`` (a file
    the job appends a line to per item handled), or by ``progress()`` (items handled so
    far, by every run). With a ``gate`` the run holds ``HOLD_AHEAD`` items past its kill
    point until killed, so every planned kill lands; without one, a run that ends before
    its kill is not killed and ends the loop, and so does a kill that landed after the
    job had completed (``finished`` says so: the kill came during the last commits)."""
    if log is not None:
        progress = LineCounter(log).count
    if progress is None and kills:
        raise ValueError("kill_until_done kills after a number of items: pass log or progress")
    rng = random.Random(seed)
    report = Killings(seed)
    for attempt in range(kills + 1):
        env = None
        count = rng.randint(*after)
        jitter = rng.uniform(0, 0.02)
        if attempt < kills and gate is not None:
            env = {**os.environ, **gate.hold(count + HOLD_AHEAD)}
        proc = subprocess.Popen(
            list(argv), cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        killed = False
        if attempt < kills and progress is not None:
            target = progress() + count
            deadline = time.monotonic() + timeout
            while proc.poll() is None and time.monotonic() < deadline:
                if progress() >= target:
                    time.sleep(jitter)
                    proc.kill()
                    killed = True
                    break
                time.sleep(0.002)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        if env is not None and gate is not None:
            gate.release()
        killed = killed and proc.returncode == -9
        report.runs.append(Run(proc.returncode, killed, out.decode(), err.decode()))
        if not killed and attempt < kills:
            break  # it ended before its kill came
        if killed and finished is not None and finished():
            break  # the kill came after the job had completed
    return report
