"""What the parts of one run share: who the job is, where the run stands, why it stops.

``RunState`` is plain data with a few helpers; the parts that act on it (the opening, the
slice loop, the commits, the careful per-item path, the ending) each hold the same one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from midway._model.checkpoint import Counters
from midway._model.identity import JobId
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord
from midway._model.settings import Settings
from midway.run.progress import Reporter, Silent
from midway.run.reducers import Combiner, split_state
from midway.sources.base import Chunk, Cursor, Source
from midway.stores import Lease, RunRecord, Store


class JobSpec(Protocol):
    """What a run needs of its job (``midway.Job`` is one); the options are in
    ``settings``."""

    @property
    def id(self) -> JobId: ...

    @property
    def store_url(self) -> str: ...

    @property
    def settings(self) -> Settings: ...

    def option_text(self, name: str, value: str) -> str:
        """How a message tells the user to set an option (``on_drift='restart'``)."""
        ...


@dataclass(frozen=True)
class Moment:
    """One instant on both clocks: the wall clock (stored, compared with other
    processes') and the monotonic one (for durations)."""

    wall: float
    monotonic: float


class RunState:
    """Where one run stands; see the module docstring."""

    def __init__(self, job: JobSpec, source: Source, initial_state: dict[str, Any] | None):
        self.job = job
        self.settings = job.settings
        self.key = job.id.key
        self.source = source
        self.counters = Counters()
        self.state, reducers = split_state(initial_state)
        self.combiner = Combiner(reducers)
        self.version = 0
        """The number of the last checkpoint saved (0: none yet)."""
        self.resumed_from: dict[str, JSONValue] | None = None
        self.fingerprint: dict[str, JSONValue] = {}
        self.total: int | None = None
        self.job_started_at = 0.0
        """Wall clock: when the job's first run began (kept across resumed runs)."""
        self.run_began = Moment(0.0, 0.0)
        """When this run's first item could start."""
        self.processed_at_start = 0
        self.main_done = False
        """The input was walked to its end earlier: only items put back are left."""
        self.start_position: JSONValue = None
        # The point just after the last finished item: a chunk and an index into it.
        self.mark_chunk: Chunk | None = None
        self.mark_index = 0
        self.pending: list[ItemRecord] = []
        """Ledger records that commit with the next checkpoint."""
        self.store: Store | None = None
        self.lease: Lease | None = None
        self.record: RunRecord | None = None
        self.cursor: Cursor | None = None
        self.stop_signal: int | None = None
        self.lease_lost = False
        self.stop_error: BaseException | None = None
        """Too many failures, or an at-most-once item raised: the run ends failed."""
        self.finished = False
        """Every item of the input has an outcome."""
        self.progress: Reporter = Silent()
        self.share: Callable[[JSONValue], float | None] | None = None
        """How far through the input a position is, when the source can say (in bytes)."""

    @property
    def stopping(self) -> bool:
        """A signal came or the lease was lost (the item in hand finishes, then the run ends)."""
        return self.stop_signal is not None or self.lease_lost

    @property
    def stop_requested(self) -> bool:
        return self.stop_signal is not None or self.lease_lost or self.stop_error is not None

    def mark(self, chunk: Chunk, index: int) -> None:
        """Every item before ``chunk[index]`` is finished."""
        self.mark_chunk, self.mark_index = chunk, index

    def position(self) -> JSONValue:
        """Where a resume would start: just after the last finished item."""
        if self.mark_chunk is None:
            return self.start_position
        return self.mark_chunk.position_before(self.mark_index)

    def show_progress(self) -> None:
        """Tell the progress display where the run stands."""
        share, counters = self.share, self.counters
        self.progress.update(
            counters.processed, counters.failed, share(self.position()) if share else None
        )

    def parts(self) -> tuple[Store, Lease, RunRecord]:
        if self.store is None or self.lease is None or self.record is None:
            raise RuntimeError("midway: the engine was used outside a run")
        return self.store, self.lease, self.record

    @property
    def run_id(self) -> str:
        return self.record.run_id if self.record is not None else ""
