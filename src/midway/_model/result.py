"""What a run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    """How a run (and so its job) stands. The values are what the store keeps and what
    ``--json`` prints; a member compares equal to its string."""

    RUNNING = "running"
    COMPLETED = "completed"
    COMPLETED_WITH_FAILURES = "completed_with_failures"
    STOPPED = "stopped"
    FAILED = "failed"
    WAITING = "waiting"
    """The input was walked to its end, but items wait for a person (``ctx.approval``):
    ``midway approve`` decides them, and the next run hands them back."""
    CRASHED = "crashed"
    """A run whose process died without a word: found by the next run or by ``status``."""


FINISHED_OK = (RunStatus.COMPLETED, RunStatus.COMPLETED_WITH_FAILURES)
"""A run that reached the end of its input."""


def completed_status(failed: int, in_doubt: int, waiting: int = 0) -> RunStatus:
    """How a run that reached the end of its input completed."""
    if waiting:
        return RunStatus.WAITING
    return RunStatus.COMPLETED_WITH_FAILURES if failed or in_doubt else RunStatus.COMPLETED


@dataclass
class RunResult:
    """Counters are for the whole job (across resumed runs); ``*_this_run`` for this one."""

    job: str
    status: str
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    in_doubt: int = 0
    waiting: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    resumed_from: dict[str, Any] | None = None
    run_id: str = ""
    processed_this_run: int = 0
    elapsed: float = 0.0
    position: Any = None
    partition_errors: dict[str, str] = field(default_factory=dict)
    """A distributed run placed by Dask: each partition that failed for good, and why."""

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed + self.skipped + self.in_doubt + self.waiting

    @property
    def ok(self) -> bool:
        return self.status in FINISHED_OK
