"""The run loop shared by ``Job.run`` and ``Job.loop``.

How the per-item path stays free
--------------------------------
Items come from the source in chunks (lists). The engine cuts a chunk into *slices* that end
exactly where a checkpoint is due and walks each slice with a plain list iterator: the only
per-item work is the handler call. Counters, positions and the clock are touched once per
slice, and slices are sized so that the clock is read a few times a second.

A slice that is not a whole chunk is walked through a copy (``items[start:stop]``), which
costs a few nanoseconds per item, mostly in memory traffic. So an item is copied once at
most: on a fresh start ``sources.sequence`` hands over the caller's own list as a single
chunk marked ``shared`` rather than copies of it, and the engine walks copies of at most
``MAX_COPY`` items of it (never the list itself: a list that grows meanwhile is walked to
its old length).

A stop request (SIGINT / SIGTERM, or a lost lease) must not cost a flag test per item, so it
*exhausts the current slice iterator* instead (``list_iterator.__setstate__``): the item in
hand finishes, the iterator then ends, and the engine sees why. The iterator's own index
(``__reduce__``) tells which item is in hand, which is also how ``ctx.key`` is found lazily.

Checkpoints are snapshots taken here and committed by the run's keeper thread (group
commit, see ``writer.py``); ``every=1`` commits on this thread instead, so each item is on
disk before the next starts. ``_bound_lag`` makes the loop wait when the store falls behind.
"""

from __future__ import annotations

import logging
import math
import os
import shlex
import signal
import sys
import threading
import time
import uuid
from collections.abc import Callable, Generator, Iterable, Iterator
from types import FrameType
from typing import TYPE_CHECKING, Any

from midway import faults
from midway._model import jsonutil
from midway._model.checkpoint import Checkpoint, Counters, describe_drift
from midway._model.identity import partition_of
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ALL, RETRY, ItemRecord
from midway._model.owner import Owner, describe_age, hostname, iso
from midway._model.redaction import redact_argv, redact_text, redact_url, resume_note
from midway._model.result import RunResult
from midway.console import logging_configured, say, say_from_signal_handler
from midway.errors import InputDrift, LeaseLost, MidwayError, RefusedError, Stopped
from midway.run.context import Context
from midway.run.failures import FailurePolicy, describe
from midway.run.handlers import check_result
from midway.run.itemflow import ItemFlow
from midway.run.parallel import Parallel, RateLimit
from midway.run.progress import Silent, reporter
from midway.run.reducers import Combiner, split_state
from midway.run.transaction import TransactionConnection
from midway.run.writer import Keeper
from midway.sources.base import Chunk, Cursor, Source
from midway.stores import Lease, RunRecord, Store, open_store
from midway.stores.base import FINISHED, lost_message
from midway.stores.location import fresh_at_most_once

if TYPE_CHECKING:
    from midway.job import Job

MAX_SLICE = 1 << 16
MAX_COPY = 1 << 12  # a slice that is copied stays this small, so the copy stays in the cache
SLICE_SECONDS = 0.1
SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}
HISTORY_SECONDS = 5.0  # how often a checkpoint also adds a point to the job's history
log = logging.getLogger("midway")


class PartitionDone(Exception):
    """The partition was completed by another worker meanwhile."""


class Engine(ItemFlow):
    """One run of one job: lease, resume, slices, checkpoints, and how the run ends."""

    def __init__(
        self,
        job: Job,
        source: Source,
        initial_state: dict[str, Any] | None,
        *,
        lease: Lease | None = None,
        store: Store | None = None,
    ) -> None:
        self.job = job
        # A distributed worker's: the lease it claimed, and its connection to the store,
        # which this run uses on this thread and leaves open. Else both are opened here.
        self._claimed = lease
        self._borrowed = store
        self.source = source
        self.key = job.id.key
        self.counters = Counters()
        self.state, reducers = split_state(initial_state)
        self.combiner = Combiner(reducers)
        self.version = 0
        self.resumed_from: dict[str, JSONValue] | None = None
        self.ctx = Context(self)
        self.result: RunResult | None = None
        # The point just after the last finished item: a chunk and an index into it.
        self._mark_chunk: Chunk | None = None
        self._mark_index = 0
        self._start_position: JSONValue = None
        # The slice being walked, and what a stop request learnt about it.
        self._it: Iterator[Any] | None = None
        self._slice_chunk: Chunk | None = None
        self._slice_start = 0
        self._slice_len = 0
        self._stop_index: int | None = None
        self._stride = 1  # grows x4 per slice: slow items are checkpointed on time
        self._stop_signal: int | None = None
        self._lease_lost = False
        self._saved_handlers: dict[int, Any] = {}
        self._keeper: Keeper | None = None
        self._lease_released = False  # end_run gives the lease back in its transaction
        self._store: Store | None = None
        self._lease: Lease | None = None
        self._cursor: Cursor | None = None
        self._run: RunRecord | None = None
        self._finished = False
        self._engine_error: BaseException | None = None
        self.policy = (
            None
            if job.settings.fails_fast
            else FailurePolicy(job.retry, job.skip_on, job.max_failures)
        )
        self.rate = RateLimit(job.rate) if job.rate else None
        self.parallel = job.workers > 1
        self.slow = False
        self.total: int | None = None
        self._last_sample = 0.0
        self._init_itemflow()

    # -- start ---------------------------------------------------------------------------

    def start(self) -> None:
        job = self.job
        self._store = self._borrowed or open_store(job.store_url, durable=job.durable)
        try:
            self._lease = self._claimed or self._store.acquire_lease(
                job.id, Owner.current(), job.lease_ttl
            )
        except BaseException:
            if self._borrowed is None:
                self._store.close()
            raise
        if faults.ACTIVE:
            faults.hit("lease.after_acquire")
        try:
            # The keeper opens its own connection while this thread prepares the run. Were
            # it started last, it would open it while the loop runs, and each of its steps
            # would wait for the loop to give up the GIL (5 ms each: some 40 ms in all).
            self._keeper = Keeper(
                job.store_url,
                job.durable,
                self._lease,
                on_error=self._on_writer_error,
                on_lease_lost=self._on_lease_lost,
            )
            self._prepare(self._store, self._lease)
        except BaseException:
            self._release()
            raise

    def _prepare(self, store: Store, lease: Lease) -> None:
        job = self.job
        quiet = job.quiet
        prev = lease.took_over.owner if lease.took_over is not None else None
        if prev is not None and prev != lease.owner:
            why = "is gone" if prev.is_dead_here() else "stopped renewing its lease"
            say(
                f"took job {self.key!r} over from pid {prev.pid} on {prev.host}, which {why}",
                quiet=quiet,
            )
        self.fingerprint = self.source.fingerprint()
        checkpoint = store.load_checkpoint(self.key)
        restarted = False  # on_drift="restart": what the old input left is not this one's
        if checkpoint is not None:
            checkpoint = self._check_drift(checkpoint)
            restarted = checkpoint is None
        now = time.time()
        self.started_at = now
        self.total = self.source.total()
        if checkpoint is None and job.id.part:
            # A distributed job's partition runs once: another worker may have completed
            # it since this one looked (the lease, now ours, makes this check final).
            record = store.get_job(self.key)
            if record is not None and record.status in FINISHED:
                raise PartitionDone(self.key)
        records = store.list_items(self.key, ALL)
        if checkpoint is not None:
            self._resume_from(checkpoint, now)
            self.combiner.resume(self.key, checkpoint.extra, self.state, self.counters.processed)
            self.main_done = bool(checkpoint.extra.get("main_done"))
        elif not self._after_completion(store, records):
            if job.guarantee == "at-most-once":
                self._refuse_to_repeat(store)
            records = self.carry_over(records, restarted)
            self._announce_fresh(store, records)
        self.load_ledger(records, resuming=checkpoint is not None or self.main_done)
        self._run = RunRecord(
            run_id=uuid.uuid4().hex,
            job=self.key,
            status="running",
            host=hostname(),
            pid=os.getpid(),
            started_at=now,
            resumed_from=self.resumed_from,
            start_processed=self.counters.processed,
            command=_command(),
        )
        store.begin_run(lease, self._run)
        self._remember_saved(self._start_position, self.counters.copy(), _try_dumps(self.state))
        self._initial_saved = self._saved
        self._cursor = self.source.open(self._start_position)
        self._cp_processed = self.counters.processed
        self._cp_time = time.monotonic()
        self._next_due = self._cp_processed + (job.every or 0)
        self._run_start_processed = self.counters.processed
        self.started_wall = time.time()
        # How long a slice should last: the clock is read between slices only.
        self._slice_seconds = min(
            SLICE_SECONDS,
            (job.every_seconds or math.inf) / 4,
            (job.max_lag or math.inf) / 2,
        )
        self._item_seconds = 0.0
        self._t0 = time.monotonic()
        self.ctx.state = self.state
        # No group commit with every=1 or max_lag=0 (no item runs past a checkpoint not on
        # disk), exactly-once (one transaction) or at-most-once (marks on disk first).
        self._group_commit = job.every != 1 and job.guarantee == "at-least-once" and job.max_lag > 0
        self._marks = job.guarantee == "at-most-once"
        if job.guarantee == "exactly-once":
            self.transaction = store.begin_transaction(lease)
            self.tx_open = True
            self.ctx.transaction = TransactionConnection(self.transaction)
        self._install_signal_handlers()
        self._progress = reporter(job.name, job.progress, quiet)
        share = getattr(self.source, "progress", None) if self.total is None else None
        self.share: Callable[[JSONValue], float | None] | None = share
        self._progress.start(self.counters.processed, self.total, by_bytes=share is not None)

    def _check_drift(self, checkpoint: Checkpoint) -> Checkpoint | None:
        drift = describe_drift(checkpoint.fingerprint, self.fingerprint)
        if not drift:
            return checkpoint
        policy = self.job.on_drift
        details = "\n".join(f"    {line}" for line in drift)

        def option(value: str) -> str:
            return self.job.option_text("on_drift", value)

        if policy == "restart":
            say(
                f"the input of job {self.key!r} changed since its checkpoint:\n{details}\n"
                f"starting again from the beginning, as {option('restart')} asks",
                quiet=self.job.quiet,
            )
            return None
        if policy == "continue":
            say(
                f"the input of job {self.key!r} changed since its checkpoint:\n{details}\n"
                f"resuming at the saved position anyway, as {option('continue')} asks",
                quiet=self.job.quiet,
            )
            return checkpoint
        raise InputDrift(
            f"the input of job {self.key!r} changed since its checkpoint was saved "
            f"({describe_age(time.time() - checkpoint.updated_at)}):\n{details}\n"
            "Resuming could skip or repeat the wrong items, so midway refuses. Restore the "
            f"original input, or pass {option('restart')} to start over from the beginning, "
            f"or {option('continue')} to resume at the saved position anyway, or forget the "
            f"checkpoint with: midway reset {shlex.quote(self.key)} --yes",
            saved=checkpoint.fingerprint,
            current=self.fingerprint,
        )

    def _resume_from(self, checkpoint: Checkpoint, now: float) -> None:
        self.counters = checkpoint.counters.copy()
        self.state = checkpoint.state
        self.version = checkpoint.version
        self.started_at = checkpoint.started_at or now
        self._start_position = checkpoint.position
        where = self.source.describe_position(checkpoint.position)
        self.resumed_from = {
            "version": checkpoint.version,
            "position": checkpoint.position,
            "processed": checkpoint.counters.processed,
            "saved_at": iso(checkpoint.updated_at),
            "run_id": checkpoint.run_id,
        }
        replay = ""
        if not self.source.seekable and checkpoint.counters.processed:
            replay = (
                f" ({self.source.describe()} cannot seek: re-reading and skipping "
                f"{checkpoint.counters.processed:,} items)"
            )
        say(
            f"RESUMING job {self.key!r} from checkpoint #{checkpoint.version} saved "
            f"{describe_age(now - checkpoint.updated_at)}: {checkpoint.counters.processed:,} "
            f"items done, continuing at {where} of {self.source.describe()}{replay}",
            quiet=self.job.quiet,
        )

    def _after_completion(self, store: Store, records: list[Any]) -> bool:
        """A completed job with items put back by ``midway retry``: the next run handles
        those and nothing else, from the counters and state the job completed with."""
        if not any(r.status == RETRY for r in records):
            return False
        record = store.get_job(self.key)
        summary = record.summary if record is not None else None
        if not summary:
            return False
        self.counters = Counters.from_dict(summary.get("counters") or {})
        state = summary.get("state")
        self.state = state if isinstance(state, dict) else {}
        started = summary.get("started_at")
        self.started_at = float(started) if isinstance(started, int | float) else time.time()
        self.main_done = True
        queued = sum(r.status == RETRY for r in records)
        say(
            f"job {self.key!r} completed earlier; handling the {queued:,} item(s) put back "
            "by `midway retry`, and only those",
            quiet=self.job.quiet,
        )
        return True

    def _refuse_to_repeat(self, store: Store) -> None:
        """An at-most-once job that completed does not start again by itself: running the
        same command twice must not send every e-mail twice."""
        record = store.get_job(self.key)
        if record is None or record.status not in FINISHED:
            return
        ended = iso((record.summary or {}).get("ended_at")) or "earlier"
        raise RefusedError(
            f"job {self.key!r} (guarantee='at-most-once') already completed at {ended}; "
            "running it again would handle every item a second time, so midway refuses. To "
            "handle failed or in-doubt items again: `midway retry` / `midway resolve`; to "
            f"start over on purpose: midway reset {shlex.quote(self.key)} --yes"
        )

    def _announce_fresh(self, store: Store, records: list[Any]) -> None:
        if self.job.quiet and not logging_configured():
            return  # nobody would hear it: spare the store its queries (list_jobs reads all)
        record = store.get_job(self.key)
        last = ""
        if record is not None and record.summary:
            counters = record.summary.get("counters") or {}
            done = sum(v for v in counters.values() if isinstance(v, int))
            last = (
                f"; its last run {record.summary.get('status')} at "
                f"{iso(record.summary.get('ended_at'))} after {done:,} items"
            )
        if records:
            last += (
                f"; the {len(records):,} item record(s) it kept (failed, skipped, in doubt) are "
                "forgotten as every item is handled again"
            )
        never_ran = not records and not store.list_runs(self.key, limit=1)
        where = redact_url(store.url)
        if never_ran and self.job.guarantee == "at-most-once":
            message = fresh_at_most_once(self.key, where, self.source.describe())
            say(message, quiet=self.job.quiet)
        else:
            say(
                f"starting job {self.key!r} from the beginning of {self.source.describe()} "
                f"(no checkpoint in {where}{last})",
                quiet=self.job.quiet,
            )
        # params are part of a job's identity: a changed param silently starts a new job,
        # so point out unfinished work under the same name.
        base = self.job.id.base_key
        if self.job.id.part:
            return  # a partition: its siblings are the same job, not other params
        for other in store.list_jobs():
            if partition_of(other.job) == base:
                continue  # a partition of the same distributed job, not other params
            if other.name == self.job.name and other.job != self.key and other.checkpoint:
                say(
                    f"note: job {other.job!r} (same name, params {jsonutil.dumps(other.params)}) "
                    f"has an unfinished checkpoint at {other.checkpoint.counters.processed:,} "
                    "items; these params make a different job. `midway show "
                    f"{other.job}` shows it, `midway reset {other.job} --yes` forgets it.",
                    level=logging.WARNING,
                    quiet=self.job.quiet,
                )

    # -- the slices ----------------------------------------------------------------------

    def slices(self) -> Generator[Iterator[Any], None, None]:
        """Yield list iterators over consecutive items; checkpoint between them.

        The consumer walks each iterator to its end (or until a stop exhausts it). If the
        consumer raises instead, it calls :meth:`abandon_slice` before closing this generator.
        Everything here runs once per slice, not per item; with trivial items and every=1000
        a slice is some 40 microseconds of work, so this reads locals, compares rather than
        calls min() and max(), and reads ``counters.processed`` (a sum) once per slice.
        """
        every, every_seconds = self.job.every, self.job.every_seconds
        slice_seconds = self._slice_seconds
        counters = self.counters
        keeper = self._keeper
        progress = None if isinstance(self._progress, Silent) else self._progress
        monotonic = time.monotonic
        processed = counters.processed
        timed, timed_items, window = 0.0, 0, (0.0, 0)
        assert self._cursor is not None
        per_item, marks = self.per_item, self._marks
        for chunk in self._cursor:
            items = chunk.items
            n = len(items)
            shared = chunk.shared  # the caller's own list: walk copies of it
            self.slow = per_item or bool(getattr(chunk, "errors", None))
            start = 0
            while start < n:
                if self._stop_signal is not None or self._lease_lost or self.stop_error:
                    return
                size = n - start if n - start < self._stride else self._stride
                if marks:  # at-most-once: each item's mark is a checkpoint
                    size = 1
                if every:  # end the slice where the next checkpoint is due
                    until = self._next_due - processed
                    if size > until:
                        size = until if until > 1 else 1
                if shared or size < n:
                    sub = items[start : start + (size if size < MAX_COPY else MAX_COPY)]
                    size = len(sub)  # can only be 0 if the caller's list shrank meanwhile
                    if not size:
                        break
                else:
                    sub = items  # the whole chunk: no copy
                self._slice_chunk, self._slice_start, self._slice_len = chunk, start, size
                self._stop_index = None
                it = iter(sub)
                self._it = it
                t0 = monotonic()
                if self._stop_signal is None and not self._lease_lost and not self.stop_error:
                    yield it
                else:
                    self._stop_index = 0
                now = monotonic()
                done = size if self._stop_index is None else self._stop_index
                self._it = None
                self._advance(chunk, start, done)
                start += done
                if keeper is not None and keeper.error is not None:
                    self._raise_writer_error()
                if done < size:
                    return
                stride = self._stride * 4  # x4 at most: slow items are checkpointed on time
                if now > t0:
                    rate = (now - t0) / done
                    fits = int(slice_seconds / rate)  # the next slice lasts slice_seconds
                    if fits < stride:
                        stride = fits if fits > 1 else 1
                self._stride = stride if stride < MAX_SLICE else MAX_SLICE
                # What an item costs, for _bound_lag: the slices timed since the last window
                # of slice_seconds / 2 began, and that window. One short slice that the keeper
                # thread or the scheduler held up says nothing about the items.
                timed, timed_items = timed + (now - t0), timed_items + done
                if timed + window[0] > 0:  # (a coarse clock may not have moved yet)
                    self._item_seconds = (timed + window[0]) / (timed_items + window[1])
                if timed >= slice_seconds / 2:
                    window, timed, timed_items = (timed, timed_items), 0.0, 0
                processed = counters.processed
                if keeper is not None and keeper.pending_or_busy:
                    self._bound_lag(processed)
                if not marks and (
                    (every and processed >= self._next_due)
                    or (every_seconds and now - self._cp_time >= every_seconds)
                ):
                    if keeper is not None and self._group_commit and keeper.has_pending:
                        # The store is behind: one checkpoint already waits for the commit
                        # in flight. Skip this one rather than snapshot in vain; _bound_lag
                        # keeps the loop from running too far ahead.
                        self._next_due = processed + (every or 0)
                    else:
                        try:
                            self.checkpoint()
                        except BaseException as exc:
                            self._engine_error = exc
                            raise
                if progress is not None:
                    share = self.share
                    progress.update(
                        processed, counters.failed, share(self.position()) if share else None
                    )
        self._finished = True

    def _advance(self, chunk: Chunk, start: int, done: int) -> None:
        if done:
            self.counters.succeeded += done
            self._mark_chunk, self._mark_index = chunk, start + done

    def _bound_lag(self, processed: int) -> None:
        """Keep unsaved work within one interval plus ``max_lag`` seconds' worth of items.

        With group commit the loop runs on while the store writes; when the store falls
        behind (a slow disk, a lock held elsewhere), this is where the loop waits for it.
        """
        writer = self._keeper
        if writer is None:
            return
        job = self.job
        committed = writer.committed
        if committed is not None:
            durable, durable_at = committed.counters.processed, committed.updated_at
        else:
            durable, durable_at = self._run_start_processed, self.started_wall
        over = False
        if job.every is not None:
            per_item = self._item_seconds
            slack = int(job.max_lag / per_item) if per_item > 0 else 0
            over = processed - durable > job.every + slack
        if job.every_seconds is not None and not over:
            over = time.time() - durable_at > job.every_seconds + job.max_lag
        if over:
            try:
                writer.flush()
            except BaseException as exc:
                self._engine_error = exc
                raise

    def current_index(self) -> int | None:
        """Index, in the slice, of the item in hand (None when no item is in hand)."""
        it = self._it
        if it is None:
            return None
        if self._stop_index is not None:
            return self._stop_index - 1
        reduced = it.__reduce__()
        if len(reduced) < 3:  # exhausted: the last item is in hand
            return self._slice_len - 1
        return int(reduced[2]) - 1

    def abandon_slice(self) -> None:
        """The consumer raised on the item in hand: count only the items before it."""
        index = self.current_index()
        chunk = self._slice_chunk
        if index is not None and chunk is not None:
            self._advance(chunk, self._slice_start, max(index, 0))
        self._it = None

    def current_key(self) -> JSONValue:
        index = self.current_index()
        if index is None or self._slice_chunk is None:
            return None
        return self._slice_chunk.key(self._slice_start + index)

    def current_position(self) -> JSONValue:
        index = self.current_index()
        if index is None or self._slice_chunk is None:
            return None
        return self._slice_chunk.position_before(self._slice_start + index)

    def position(self) -> JSONValue:
        """Where a resume would start: just after the last finished item."""
        if self._mark_chunk is None:
            return self._start_position
        return self._mark_chunk.position_before(self._mark_index)

    # -- checkpoints ---------------------------------------------------------------------

    def checkpoint(self, *, wait: bool = False) -> None:
        """Snapshot progress and state; commit it now (``wait``, or ``every=1``) or hand it
        to the group-commit writer."""
        store, lease, run = self._parts()
        if self._lease_lost:
            raise LeaseLost(lost_message(lease))
        extra = self.combiner.extra(self.state, self.parallel)
        state_json = jsonutil.dumps_state(self.state)
        now = time.time()
        ledger = self.ledger_pending
        if self.steps_touched and self.current_index() is None:
            ledger.extend(self.finished_steps())
        self.ledger_pending = []
        sample = now - self._last_sample >= HISTORY_SECONDS
        if sample:
            self._last_sample = now
        cp = Checkpoint(
            job=self.key,
            version=self.version + 1,
            run_id=run.run_id,
            position=self.position(),
            counters=self.counters.copy(),
            state=self.state,
            fingerprint=self.fingerprint,
            total=self.total,
            started_at=self.started_at,
            updated_at=now,
            state_json=state_json,
            ledger=ledger,
            sample=sample,
            extra={"main_done": True, **extra} if self.main_done else extra,
        )
        keeper = self._keeper
        try:
            if keeper is not None and self._group_commit and not wait:
                keeper.submit(cp)
            else:
                if keeper is not None:
                    keeper.flush()
                store.write_checkpoint(lease, cp)
                self.tx_open = False  # write_checkpoint committed the handler's writes too
        except BaseException:
            self.ledger_pending[:0] = ledger  # not written: keep them for the next try
            raise
        self._remember_saved(cp.position, cp.counters, state_json)
        self.version = cp.version
        self._cp_processed = self.counters.processed
        self._cp_time = time.monotonic()
        self._next_due = self._cp_processed + (self.job.every or 0)
        hook = self.job.on_checkpoint
        if hook is not None:
            self.call_hook("on_checkpoint", hook, _checkpoint_info(cp))
        log.debug("checkpoint #%d of job %r at %s", cp.version, self.key, cp.position)

    def _remember_saved(
        self, position: JSONValue, counters: Counters, state_json: str | None
    ) -> None:
        """What the last checkpoint holds, to fall back on when the item in hand raises."""
        self._saved = (position, counters, state_json)

    def _settle(self) -> bool:
        """Wait for the checkpoints in flight. If one failed, fall back to what was committed
        and say so (False)."""
        writer = self._keeper
        if writer is None:
            return True
        try:
            writer.flush()
        except BaseException:
            done = writer.committed
            self._saved = (
                self._initial_saved
                if done is None
                else (done.position, done.counters.copy(), done.state_json)
            )
            return False
        return True

    def _raise_writer_error(self) -> None:
        writer = self._keeper
        if writer is not None and writer.error is not None and not writer.lease_lost:
            self._engine_error = writer.error
            raise writer.error

    def _on_writer_error(self) -> None:
        """Called on the writer's thread: end the slice so the engine sees the failure."""
        writer = self._keeper
        if writer is not None and writer.lease_lost:
            self._on_lease_lost()
        else:
            self._interrupt()

    def _roll_back_if_state_changed(self) -> bool:
        """When the handler raised (or a loop body left), the item in hand may have changed
        ``state`` half-way, and those changes cannot be told apart from the finished items'.
        A checkpoint at the last finished item would then save them with a position saying
        the item is not done, and the resumed run would count it twice. So if ``state``
        changed since the last checkpoint, keep that checkpoint: the items after it are
        handled again (at most one interval), and state and position stay in step."""
        position, counters, state_json = self._saved
        if self.parallel:  # each finished item's contribution is merged whole: no half-done
            return False
        if state_json is not None and _try_dumps(self.state) == state_json:
            return False
        self.ledger_pending = []  # about items after that checkpoint: they are redone
        self._drop_transaction()
        self.counters = counters.copy()
        self._mark_chunk, self._start_position = None, position
        self._cp_processed = self.counters.processed
        return True

    # -- stop requests -------------------------------------------------------------------

    def _interrupt(self) -> None:
        """End the current slice after the item in hand (see the module docstring)."""
        it = self._it
        if it is None or self._stop_index is not None:
            return
        reduced = it.__reduce__()
        self._stop_index = int(reduced[2]) if len(reduced) >= 3 else self._slice_len
        it.__setstate__(self._slice_len)  # type: ignore[attr-defined]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = SIGNAL_NAMES.get(signal.Signals(signum), str(signum))
        if self._stop_signal is not None:
            say_from_signal_handler(f"second {name}: exiting at once; the last checkpoint stands")
            os._exit(128 + signum)
        self._stop_signal = signum
        self._interrupt()
        say_from_signal_handler(
            f"{name}: stopping after the current item and saving a checkpoint "
            "(send it again to exit at once)"
        )

    def _on_lease_lost(self) -> None:
        self._lease_lost = True
        self._interrupt()

    def _install_signal_handlers(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread
        for signum in SIGNAL_NAMES:
            self._saved_handlers[signum] = signal.signal(signum, self._on_signal)

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()

    # -- how a run ends ------------------------------------------------------------------

    def finish(self) -> RunResult:
        """Called once the slices ran out or stopped: complete, stop, or report lease loss."""
        if self._lease_lost:
            return self._fail_lease()
        if self.stop_error is not None:  # too many failures, or an at-most-once item raised
            exc = self.stop_error
            self._end("failed", describe(exc)[:500])
            if isinstance(exc, MidwayError):
                say(str(exc), quiet=self.job.quiet)
            self._on_finish()
            raise exc
        if self._finished:  # all items done: complete, even if a stop came at the last one
            return self._complete()
        if self._stop_signal is not None:
            name = SIGNAL_NAMES.get(signal.Signals(self._stop_signal), "signal")
            result = self._end("stopped", f"stopped by {name}")
            message = self._stop_message(name)
            say(message, quiet=self.job.quiet)
            self._on_finish()
            raise Stopped(message, signal_number=self._stop_signal, result=result)
        result = self._end("stopped", "the loop was left before the end of the input")
        say(self._left_message(rolled_back=False), quiet=self.job.quiet)
        self._on_finish()
        return result

    def leave(self) -> None:
        """``job.loop``'s body broke out or raised: save where it was, never raise."""
        if self._lease_lost:
            self._close_progress()
            self._release(release_lease=False)
            say(lost_message(self._lease) if self._lease else "lease lost", quiet=self.job.quiet)
            return
        self._settle()
        rolled_back = self._roll_back_if_state_changed()
        try:
            self._end(
                "stopped", "the loop was left before the end of the input", save=not rolled_back
            )
        except MidwayError as exc:
            say(f"could not save a checkpoint when the loop was left: {exc}", quiet=False)
            return
        say(self._left_message(rolled_back), quiet=self.job.quiet)

    def _complete(self) -> RunResult:
        if self.ledger_pending or self.steps_touched:
            self.checkpoint(wait=True)  # the last records commit before the completion
        self._drop_transaction()
        counters = self.counters
        status = "completed_with_failures" if counters.failed or counters.in_doubt else "completed"
        result = self._result(status)
        store, lease, run = self._parts()
        self._close_progress()
        run.status, run.ended_at = result.status, time.time()
        run.processed = self.counters.processed
        try:
            jsonutil.dumps_state(self.state)  # named now, not as a TypeError from the store
        except MidwayError as exc:
            self._engine_error = exc
            self.fail(exc)
            raise
        summary = {
            "run_id": run.run_id,
            "status": result.status,
            "ended_at": run.ended_at,
            "counters": self.counters.as_dict(),
            "state": self.state,
            "started_at": self.started_at,
            "total": self.total,
        }
        try:
            if self._keeper is not None:
                self._keeper.flush()  # nothing may land after the checkpoint is dropped
            store.end_run(lease, run, completed=True, summary=summary)
            self._lease_released = True
        finally:
            self._release()
        say(
            f"job {self.key!r} completed: {self.counters.processed:,} items "
            f"({self.counters.succeeded:,} succeeded{_failures(self.counters)}) in "
            f"{result.elapsed:,.1f} s; checkpoint removed, the next run starts fresh",
            quiet=self.job.quiet,
        )
        self.result = result
        self._on_finish()
        return result

    def _on_finish(self) -> None:
        result = self.result
        if result is None:
            return
        log.info(
            "job %r %s: %d items (%d succeeded, %d failed, %d skipped, %d in doubt)",
            self.key,
            result.status,
            result.processed,
            result.succeeded,
            result.failed,
            result.skipped,
            result.in_doubt,
        )
        hook = self.job.on_finish
        if hook is not None:
            self.call_hook("on_finish", hook, result)

    def _drop_transaction(self) -> None:
        """Exactly-once: roll back what the handler wrote since the last checkpoint."""
        if self.transaction is not None and self.tx_open and self._store is not None:
            self._store.rollback_transaction()
            self.tx_open = False

    def fail(self, exc: BaseException) -> None:
        """The handler raised: keep every finished item, note where, and let it propagate."""
        if self._lease_lost or isinstance(exc, LeaseLost):
            self._close_progress()
            self._release(release_lease=False)
            return
        if exc is self._engine_error:  # the checkpoint itself failed: record, do not retry
            self._close_progress()
            try:
                self._record_end("failed", f"{type(exc).__name__}: {exc}"[:500])
            except MidwayError:
                pass
            finally:
                self._release()
            return
        self._settle()
        rolled_back = self._roll_back_if_state_changed()
        try:
            result = self._end("failed", f"{type(exc).__name__}: {exc}"[:500], save=not rolled_back)
        except Exception as store_error:
            exc.add_note(f"midway could not save a checkpoint after this error: {store_error}")
            return
        where = self.source.describe_position(result.position)
        why = (
            " (its last checkpoint: ctx.state changed since then, so the items after it are "
            "handled again)"
            if rolled_back
            else ""
        )
        exc.add_note(
            f"midway: job {self.key!r} stopped on this error; {result.processed:,} items are "
            f"done and saved, it resumes at {where} when run again{why}."
        )

    def _end(self, status: str, message: str, *, save: bool = True) -> RunResult:
        """Save a last checkpoint (unless told not to) and record the run's end, without
        completing the job."""
        self._close_progress()
        try:
            settled = self._settle()
            due = (
                self.counters.processed != self._cp_processed
                or self.version == 0
                or bool(self.ledger_pending)
            )
            try:
                if save and settled and due:
                    self.checkpoint(wait=True)
            finally:  # a run that ends is recorded as ended, even when its last save failed
                self._record_end(status, message)
        finally:
            self._release()
        if not settled and self._keeper is not None and self._keeper.error is not None:
            raise self._keeper.error
        self.result = self._result(status)
        return self.result

    def _record_end(self, status: str, message: str) -> None:
        store, lease, run = self._parts()
        self._drop_transaction()  # nothing in it since the last checkpoint is kept
        self._settle()  # end_run releases the lease: checkpoints in flight go first
        run.status, run.ended_at = status, time.time()
        run.message = jsonutil.escape_text(redact_text(message))
        run.processed = self.counters.processed
        store.end_run(lease, run, completed=False, summary=None)
        self._lease_released = True

    def _fail_lease(self) -> RunResult:
        _, lease, _ = self._parts()
        self._close_progress()
        self._release(release_lease=False)
        raise LeaseLost(lost_message(lease))

    def _parts(self) -> tuple[Store, Lease, RunRecord]:
        if self._store is None or self._lease is None or self._run is None:
            raise RuntimeError("midway: the engine was used outside a run")
        return self._store, self._lease, self._run

    def _result(self, status: str) -> RunResult:
        run_id = self._run.run_id if self._run else ""
        return RunResult(
            job=self.key,
            status=status,
            succeeded=self.counters.succeeded,
            failed=self.counters.failed,
            skipped=self.counters.skipped,
            in_doubt=self.counters.in_doubt,
            state=self.state,
            resumed_from=self.resumed_from,
            run_id=run_id,
            processed_this_run=self.counters.processed - self._run_start_processed,
            elapsed=time.monotonic() - self._t0,
            position=self.position(),
        )

    def _stop_message(self, name: str) -> str:
        where = self.source.describe_position(self.position())
        return (
            f"job {self.key!r} stopped by {name} at {where}: {self.counters.processed:,} "
            f"items done, checkpoint #{self.version} saved. Resume with: {_command()}"
            + _resume_note(_command())
        )

    def _left_message(self, rolled_back: bool) -> str:
        where = self.source.describe_position(self.position())
        if not rolled_back:
            return (
                f"job {self.key!r} left at {where} ({self.counters.processed:,} items done); "
                "checkpoint saved, the next run resumes there"
            )
        if self.version == 0:
            return (
                f"job {self.key!r} left before its first checkpoint, and its state had changed: "
                "nothing was saved, the next run starts from the beginning"
            )
        return (
            f"job {self.key!r} left; its state had changed since checkpoint #{self.version}, "
            f"which stands: the next run resumes at {where} "
            f"({self.counters.processed:,} items done)"
        )

    def _close_progress(self) -> None:
        progress = getattr(self, "_progress", None)
        if progress is not None:
            progress.close()
            self._progress = Silent()

    def _release(self, *, release_lease: bool = True) -> None:
        """Give everything back: signal handlers, keeper thread, cursor, lease, store."""
        self._restore_signal_handlers()
        if self._keeper is not None:
            self._keeper.close()
        if self._cursor is not None:
            self._cursor.close()
            self._cursor = None
        if self._store is not None:
            try:
                if (
                    release_lease
                    and self._lease is not None
                    and not self._lease_lost
                    and not self._lease_released
                ):
                    self._store.release_lease(self._lease)
            except MidwayError as exc:
                # Only an error path gets here (a run that ends records its end and gives
                # the lease back in one transaction): the error that ended the run is the one
                # to report, and a lease left behind expires or is taken over from a dead pid.
                say(
                    f"could not give the lease on job {self.key!r} back ({exc}); the next run "
                    "takes it over once it expires",
                    quiet=False,
                )
            finally:
                if self._borrowed is None:
                    self._store.close()
                self._store = None

    def run_handler(self, handler: Callable[[Any, Context], Any]) -> RunResult:
        """``Job.run``: the tight loop. The only per-item work is the handler call; a failing
        item leaves the loop through the exception and re-enters it after the next item."""
        slices = self.slices()
        try:
            self.retry_pass(handler)
            if self.main_done:
                self._finished = self.stop_error is None and self._stop_signal is None
                slices.close()
            elif self.parallel:
                slices.close()
                Parallel(self, handler).run()
            else:
                self._walk(slices, handler)
        except BaseException as exc:
            self.abandon_slice()
            slices.close()
            self.fail(exc)
            raise
        return self.finish()

    def _walk(
        self,
        slices: Generator[Iterator[Any], None, None],
        handler: Callable[[Any, Context], Any],
    ) -> None:
        ctx = self.ctx
        item = None
        first = True  # the first slice (one item) looks at what the handler returns
        for it in slices:
            if self.slow or first:
                first = False
                for item in it:
                    if self.slow:
                        self.one_item(item, handler)
                        continue
                    try:
                        returned = handler(item, ctx)
                    except Exception as exc:
                        if not self.item_failed(item, exc, handler):
                            raise
                        continue
                    if returned is not None:
                        check_result(returned)  # an awaitable: its work never ran
                continue
            while True:
                try:
                    for item in it:
                        handler(item, ctx)
                except Exception as exc:
                    if not self.item_failed(item, exc, handler):
                        raise
                    continue
                break

    # -- what a parallel run uses (run/parallel.py ParallelHost) -------------------------

    def chunks(self) -> Iterator[Chunk]:
        """The input, from where this run resumes."""
        assert self._cursor is not None
        return iter(self._cursor)

    def stop_requested(self) -> bool:
        """A signal, a lost lease or a stop error: start no more items."""
        return self._stop_signal is not None or self._lease_lost or self.stop_error is not None

    def stop_with(self, error: BaseException) -> None:
        """End the run with ``error`` once the items in hand are in."""
        self.stop_error = error

    def idempotency_key(self, key: JSONValue) -> str:
        return self.job.id.idempotency_key(key)

    def add_records(self, records: Iterable[ItemRecord]) -> None:
        """Ledger records to commit with the next checkpoint."""
        self.ledger_pending.extend(records)

    def advance_to(self, chunk: Chunk, end: int) -> None:
        """The watermark: every item before ``chunk.items[end]`` has an outcome."""
        self._mark_chunk, self._mark_index = chunk, end

    def checkpoint_due(self) -> bool:
        """``every=`` items or ``every_seconds=`` have passed since the last checkpoint."""
        job = self.job
        return bool(
            (job.every and self.counters.processed >= self._next_due)
            or (job.every_seconds and time.monotonic() - self._cp_time >= job.every_seconds)
        )

    def keep_up(self) -> None:
        """If the store is behind, wait until the unsaved work is within the lag bound."""
        keeper = self._keeper
        if keeper is not None and keeper.pending_or_busy:
            self._bound_lag(self.counters.processed)

    def show_progress(self) -> None:
        share = self.share
        counters = self.counters
        self._progress.update(
            counters.processed, counters.failed, share(self.position()) if share else None
        )

    def report_item_failed(self, record: ItemRecord) -> None:
        """Call the job's ``on_item_failed``, if any."""
        hook = self.job.on_item_failed
        if hook is not None:
            self.call_hook("on_item_failed", hook, record, None)

    def input_finished(self) -> None:
        """Every item of the input has an outcome: the run completes."""
        self._finished = True


def _failures(counters: Counters) -> str:
    parts = [
        f"{count:,} {name}"
        for name, count in (
            ("failed", counters.failed),
            ("skipped", counters.skipped),
            ("in doubt", counters.in_doubt),
        )
        if count
    ]
    return ", " + ", ".join(parts) if parts else ""


def _checkpoint_info(cp: Checkpoint) -> dict[str, JSONValue]:
    return {
        "job": cp.job,
        "version": cp.version,
        "position": cp.position,
        "processed": cp.counters.processed,
        **cp.counters.as_dict(),
        "at": iso(cp.updated_at),
    }


def _try_dumps(state: dict[str, Any]) -> str | None:
    try:
        return jsonutil.dumps(state)
    except (TypeError, ValueError, RecursionError):
        return None


def _command() -> str:
    """This process's command line, as kept in the run record: without any password."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    return jsonutil.escape_text(shlex.join(redact_argv(argv)))


def _resume_note(command: str) -> str:
    note = resume_note(command)
    return f" ({note})" if note else ""
