"""Run a command again and again, SIGKILLing it at random moments, until it exits by itself.

The delays come from a seeded ``random.Random`` (``MIDWAY_TEST_SEED`` replays a failure, see
``crashjob.pick_seed``); every run's exit code and output come back for the assertions.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Sequence
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


def kill_until_done(
    argv: Sequence[str],
    *,
    seed: int,
    cwd: Path,
    delays: tuple[float, float] = (0.2, 1.0),
    kills: int = 8,
    timeout: float = 120.0,
) -> Killings:
    """Kill the first ``kills`` runs after a random delay (a run that ends sooner is not
    killed); then let one run to its end. Returns every run."""
    rng = random.Random(seed)
    report = Killings(seed)
    for attempt in range(kills + 1):
        proc = subprocess.Popen(list(argv), cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        limit = rng.uniform(*delays) if attempt < kills else timeout
        try:
            out, err = proc.communicate(timeout=limit)
            killed = False
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
            killed = True
        report.runs.append(Run(proc.returncode, killed, out.decode(), err.decode()))
        if not killed and attempt < kills and proc.returncode == 0:
            break  # it finished before its kill came
    return report
