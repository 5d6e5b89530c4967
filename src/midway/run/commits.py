"""Checkpoints: when one is due, the snapshot, its commit (here or by the keeper thread), and
the lag bound that makes the loop wait when the store falls behind.

Checkpoints are snapshots taken on the run's thread and committed by the run's keeper thread
(group commit, see ``writer.py``); ``every=1``, ``max_lag=0`` and the stronger guarantees
commit on this thread instead, so each checkpoint is on disk before the next item starts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from midway._model import jsonutil
from midway._model.checkpoint import Checkpoint, Counters
from midway._model.jsonutil import JSONValue
from midway._model.owner import iso
from midway._model.settings import Settings
from midway.console import heard, say
from midway.errors import LeaseLost
from midway.run.failures import describe
from midway.run.guarantees import Guarantee
from midway.run.runstate import RunState
from midway.run.steps import StepRecords
from midway.run.tracing import OFF
from midway.run.writer import Keeper
from midway.stores.base import lost_message

HISTORY_SECONDS = 5.0  # how often a checkpoint also adds a point to the job's history
SKIP_HORIZON = 0.001
"""Seconds: a durable commit rarely ends sooner (see ``Commits.items_until_due``)."""


class Saved(NamedTuple):
    """What the last checkpoint holds, to fall back on when the item in hand raises."""

    position: JSONValue
    counters: Counters
    state_json: str | None


class Commits:
    """The run's checkpoints; see the module docstring."""

    def __init__(
        self,
        run: RunState,
        guarantee: Guarantee,
        steps: StepRecords,
        in_hand_index: Callable[[], int | None],
    ) -> None:
        self.run = run
        self.guarantee = guarantee
        self.steps = steps
        self._in_hand_index = in_hand_index
        self.keeper: Keeper | None = None
        self.group_commit = False
        self.next_due = 0
        """``counters.processed`` at which the next checkpoint is due (with ``every``)."""
        self.processed_at_checkpoint = 0
        self.last_checkpoint = 0.0
        """Monotonic clock: when the last checkpoint was taken."""
        self.last_history_point = 0.0
        """Wall clock: when a checkpoint last added a point to the job's history."""
        self.saved = Saved(None, Counters(), None)
        self.initial_saved = self.saved
        self.failure: BaseException | None = None
        """The run's own failure (a checkpoint that could not be written), as opposed to
        the handler's: recorded as the run's end, never retried."""

    def begin(self) -> None:
        """The run opened: what is saved now is the fallback, and the intervals start."""
        run, settings = self.run, self.run.settings
        self.saved = Saved(run.start_position, run.counters.copy(), try_dumps(run.state))
        self.initial_saved = self.saved
        self.processed_at_checkpoint = run.counters.processed
        self.last_checkpoint = time.monotonic()
        self.next_due = self.processed_at_checkpoint + (settings.every or 0)
        self.group_commit = in_background(settings, self.guarantee)

    def due(self, processed: int, now: float) -> bool:
        """A checkpoint is due: ``every`` items or ``every_seconds`` since the last one."""
        settings = self.run.settings
        every, every_seconds = settings.every, settings.every_seconds
        return bool(
            (every and processed >= self.next_due)
            or (every_seconds and now - self.last_checkpoint >= every_seconds)
        )

    def items_until_due(self, processed: int, most: int, item_seconds: float) -> int | None:
        """How many items the next slice (of ``most`` at the most) may take: up to where the
        next checkpoint is due, or None when ``every`` counts no items.

        When the store is behind (a checkpoint already waits for the commit in flight) and
        items are so fast that the due point comes sooner than a commit could end
        (``SKIP_HORIZON``), the checkpoint due there would be skipped (see
        :meth:`checkpoint_or_skip`), and so would the next ones within that horizon: the
        slice runs on to the last of them instead of stopping at each for nothing. It still
        ends at a due point, and the lag bound holds as ever."""
        every = self.run.settings.every
        if not every:
            return None
        until = self.next_due - processed
        keeper = self.keeper
        if item_seconds > 0 and until < most and self.group_commit and keeper is not None:
            horizon = min(most, int(SKIP_HORIZON / item_seconds))
            if until < horizon and keeper.has_pending:
                until += (horizon - until) // every * every
        return until

    def checkpoint_or_skip(self, processed: int) -> None:
        """A checkpoint fell due in the slice loop. When the store is behind (one already
        waits for the commit in flight), skip it rather than snapshot in vain: the lag bound
        keeps the loop from running too far ahead."""
        keeper = self.keeper
        if keeper is not None and self.group_commit and keeper.has_pending:
            self.next_due = processed + (self.run.settings.every or 0)
            return
        try:
            self.checkpoint()
        except BaseException as exc:
            self.failure = exc
            raise

    def checkpoint(self, *, wait: bool = False) -> None:
        """Snapshot progress and state; commit it now (``wait``, or no group commit) or hand
        it to the keeper thread."""
        run = self.run
        store, lease, record = run.parts()
        if run.lease_lost:
            raise LeaseLost(lost_message(lease))
        cp = self._snapshot(record.run_id)
        keeper = self.keeper
        try:
            if keeper is not None and self.group_commit and not wait:
                keeper.submit(cp)
            else:
                # Checkpoints in flight land first (asked under the keeper's lock: a hint
                # read without it could miss one being taken). Without group commit the
                # keeper never holds one, and this is the per-item path of every=1.
                if keeper is not None and (self.group_commit or keeper.error is not None):
                    keeper.flush()
                if run.tracing is OFF:  # at every=1 this is per item: no context to enter
                    store.write_checkpoint(lease, cp)
                else:
                    with run.tracing.checkpoint(cp):
                        store.write_checkpoint(lease, cp)
                self.guarantee.committed()
        except BaseException:
            run.pending[:0] = cp.ledger  # not written: keep them for the next try
            raise
        self.saved = Saved(cp.position, cp.counters, cp.state_json)
        run.version = cp.version
        self.processed_at_checkpoint = run.counters.processed
        self.last_checkpoint = time.monotonic()
        self.next_due = self.processed_at_checkpoint + (run.settings.every or 0)
        hook = run.settings.on_checkpoint
        if hook is not None:
            call_hook("on_checkpoint", hook, checkpoint_info(cp))
        if heard(logging.DEBUG):  # at every=1 the message alone costs a few per cent
            run.tell(
                f"checkpoint #{cp.version} of job {run.key!r} at {cp.position}",
                "checkpoint",
                level=logging.DEBUG,
                quiet=True,
                version=cp.version,
                position=cp.position,
            )

    def _snapshot(self, run_id: str) -> Checkpoint:
        run = self.run
        extra = run.combiner.extra(run.state, run.settings.workers > 1)
        state_json = jsonutil.dumps_state(run.state)
        now = time.time()
        ledger = run.pending
        if self.steps.touched and self._in_hand_index() is None:
            ledger.extend(self.steps.finished())
        run.pending = []
        sample = now - self.last_history_point >= HISTORY_SECONDS
        if sample:
            self.last_history_point = now
        return Checkpoint(
            job=run.key,
            version=run.version + 1,
            run_id=run_id,
            position=run.position(),
            counters=run.counters.copy(),
            state=run.state,
            fingerprint=run.fingerprint,
            total=run.total,
            started_at=run.job_started_at,
            updated_at=now,
            state_json=state_json,
            ledger=ledger,
            sample=sample,
            extra={"main_done": True, **extra} if run.main_done else extra,
        )

    @property
    def unsaved(self) -> bool:
        """Something happened since the last checkpoint (or there is none yet)."""
        run = self.run
        return (
            run.counters.processed != self.processed_at_checkpoint
            or run.version == 0
            or bool(run.pending)
        )

    def bound_lag(self, processed: int, item_seconds: float = 0.0) -> None:
        """Keep unsaved work within one interval plus ``max_lag`` seconds' worth of items
        (``item_seconds`` each, as measured).

        With group commit the loop runs on while the store writes; when the store falls
        behind (a slow disk, a lock held elsewhere), this is where the loop waits for it.
        """
        writer = self.keeper
        if writer is None:
            return
        run, settings = self.run, self.run.settings
        committed = writer.committed
        if committed is not None:
            durable, durable_at = committed.counters.processed, committed.updated_at
        else:
            durable, durable_at = run.processed_at_start, run.run_began.wall
        over = False
        if settings.every is not None:
            slack = int(settings.max_lag / item_seconds) if item_seconds > 0 else 0
            over = processed - durable > settings.every + slack
        if settings.every_seconds is not None and not over:
            over = time.time() - durable_at > settings.every_seconds + settings.max_lag
        if over:
            try:
                writer.flush()
            except BaseException as exc:
                self.failure = exc
                raise

    def wait_for_writer(self) -> bool:
        """Wait for the checkpoints in flight. If one failed, fall back to what was committed
        and say so (False)."""
        writer = self.keeper
        if writer is None:
            return True
        try:
            writer.flush()
        except BaseException:
            done = writer.committed
            self.saved = (
                self.initial_saved
                if done is None
                else Saved(done.position, done.counters.copy(), done.state_json)
            )
            return False
        return True

    def raise_writer_error(self) -> None:
        writer = self.keeper
        if writer is not None and writer.error is not None and not writer.lease_lost:
            self.failure = writer.error
            raise writer.error

    def roll_back_if_state_changed(self) -> bool:
        """When the handler raised (or a loop body left), the item in hand may have changed
        ``state`` half-way, and those changes cannot be told apart from the finished items'.
        A checkpoint at the last finished item would then save them with a position saying
        the item is not done, and the resumed run would count it twice. So if ``state``
        changed since the last checkpoint, keep that checkpoint: the items after it are
        handled again (at most one interval), and state and position stay in step."""
        run, saved = self.run, self.saved
        if run.settings.workers > 1:  # each finished item's contribution is merged whole
            return False
        if saved.state_json is not None and try_dumps(run.state) == saved.state_json:
            return False
        run.pending = []  # about items after that checkpoint: they are redone
        self.guarantee.discard_uncommitted(run.store)
        run.counters = saved.counters.copy()
        run.mark_chunk, run.start_position = None, saved.position
        self.processed_at_checkpoint = run.counters.processed
        return True


def in_background(settings: Settings, guarantee: Guarantee) -> bool:
    """Checkpoints go to the keeper thread (group commit). Not with every=1 or max_lag=0
    (no item runs past a checkpoint not on disk), nor when the guarantee commits on the
    run's thread."""
    return settings.every != 1 and guarantee.group_commit and settings.max_lag > 0


def call_hook(name: str, hook: Callable[..., Any], *args: Any) -> None:
    """A failing hook is logged, never allowed to break the job it reports on."""
    try:
        hook(*args)
    except Exception as exc:
        say(
            f"the {name} hook raised {describe(exc)}; the job goes on",
            level=logging.WARNING,
            event="hook.failed",
            hook=name,
            error=describe(exc),
        )


def checkpoint_info(cp: Checkpoint) -> dict[str, JSONValue]:
    return {
        "job": cp.job,
        "version": cp.version,
        "position": cp.position,
        "processed": cp.counters.processed,
        **cp.counters.as_dict(),
        "at": iso(cp.updated_at),
    }


def try_dumps(state: dict[str, Any]) -> str | None:
    try:
        return jsonutil.dumps(state)
    except (TypeError, ValueError, RecursionError):
        return None
