"""What a run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class RunResult:
    """Counters are for the whole job (across resumed runs); ``*_this_run`` for this one."""

    job: str
    status: str
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    in_doubt: int = 0
    state: dict[str, Any] = field(default_factory=dict)
    resumed_from: dict[str, Any] | None = None
    run_id: str = ""
    processed_this_run: int = 0
    elapsed: float = 0.0
    position: Any = None

    @property
    def processed(self) -> int:
        return self.succeeded + self.failed + self.skipped + self.in_doubt

    @property
    def ok(self) -> bool:
        return self.status in ("completed", "completed_with_failures")
