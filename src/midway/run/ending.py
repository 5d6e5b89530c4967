"""How a run ends: completed, stopped (a signal, a loop left early), failed (the handler
raised, too many failures), or cut short (the lease was lost).

Every end goes through :meth:`Ending.close`: wait for the checkpoints in flight, save a last
checkpoint unless told not to, record the run's end (which gives the lease back in the same
transaction), then :meth:`Ending.release` everything the run holds. Completion is the same
path with the job's summary instead of a checkpoint.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from midway._model import jsonutil
from midway._model.checkpoint import Counters
from midway._model.redaction import redact_text, resume_note
from midway._model.result import RunResult, RunStatus, completed_status
from midway.errors import LeaseLost, MidwayError, Stopped
from midway.run.commits import Commits, call_hook
from midway.run.failures import describe
from midway.run.guarantees import Guarantee
from midway.run.opening import command_line
from midway.run.progress import Silent
from midway.run.runstate import RunState
from midway.run.steps import StepRecords
from midway.run.stops import Stops, signal_name
from midway.stores.base import lost_message

log = logging.getLogger("midway")
LEFT_EARLY = "the loop was left before the end of the input"
FINISHED_FIELDS = (
    "status", "processed", "succeeded", "failed", "skipped", "in_doubt", "processed_this_run"
)  # fmt: skip
"""What the ``run.finished`` event carries of the result (and ``elapsed_seconds``)."""


@dataclass(eq=False)
class Ending:
    """The one way out of a run; see the module docstring."""

    run: RunState
    commits: Commits
    guarantee: Guarantee
    steps: StepRecords
    stops: Stops
    borrowed_store: bool
    """The store's connection is a distributed worker's: left open."""
    lease_released: bool = field(default=False, init=False)
    """The run's end gave the lease back in its own transaction."""
    result: RunResult | None = field(default=None, init=False)

    def finish(self) -> RunResult:
        """The slices ran out or stopped: complete, stop, fail, or report the lost lease."""
        run = self.run
        if run.lease_lost:
            _, lease, _ = run.parts()
            self.release(release_lease=False)
            raise LeaseLost(lost_message(lease))
        if run.stop_error is not None:  # too many failures, or an at-most-once item raised
            exc = run.stop_error
            run.tracing.error(exc)
            self.close(RunStatus.FAILED, describe(exc)[:500])
            self.tell_finish(str(exc) if isinstance(exc, MidwayError) else None)
            raise exc
        if run.finished:  # all items done: complete, even if a stop came at the last one
            return self.complete()
        if run.stop_signal is not None:
            name = signal_name(run.stop_signal)
            result = self.close(RunStatus.STOPPED, f"stopped by {name}")
            message = self.stop_message(name)
            self.tell_finish(message)
            raise Stopped(message, signal_number=run.stop_signal, result=result)
        result = self.close(RunStatus.STOPPED, LEFT_EARLY)
        self.tell_finish(self.left_message(rolled_back=False))
        return result

    def leave(self) -> None:
        """``job.loop``'s body broke out or raised: save where it was, never raise."""
        run = self.run
        if run.lease_lost:
            self.release(release_lease=False)
            run.tell(lost_message(run.lease) if run.lease else "lease lost", "run.lease_lost")
            return
        self.commits.wait_for_writer()
        rolled_back = self.commits.roll_back_if_state_changed()
        try:
            self.close(RunStatus.STOPPED, LEFT_EARLY, save=not rolled_back)
        except MidwayError as exc:
            run.tell(
                f"could not save a checkpoint when the loop was left: {exc}",
                "run.warning",
                quiet=False,
            )
            return
        run.tell(self.left_message(rolled_back), "run.left", processed=run.counters.processed)

    def fail(self, exc: BaseException) -> None:
        """The handler raised: keep every finished item, note where, and let it propagate."""
        run = self.run
        run.tracing.error(exc)
        if run.lease_lost or isinstance(exc, LeaseLost):
            self.release(release_lease=False)
            return
        if exc is self.commits.failure:  # the checkpoint itself failed: record, no retry
            self.close(RunStatus.FAILED, f"{type(exc).__name__}: {exc}", save=False, quiet=True)
            return
        self.commits.wait_for_writer()
        rolled_back = self.commits.roll_back_if_state_changed()
        try:
            result = self.close(
                RunStatus.FAILED, f"{type(exc).__name__}: {exc}", save=not rolled_back
            )
        except Exception as store_error:
            exc.add_note(f"midway could not save a checkpoint after this error: {store_error}")
            return
        where = run.source.describe_position(result.position)
        why = (
            " (its last checkpoint: ctx.state changed since then, so the items after it are "
            "handled again)"
            if rolled_back
            else ""
        )
        exc.add_note(
            f"midway: job {run.key!r} stopped on this error; {result.processed:,} items are "
            f"done and saved, it resumes at {where} when run again{why}."
        )

    def close(
        self, status: RunStatus, message: str, *, save: bool = True, quiet: bool = False
    ) -> RunResult:
        """Save a last checkpoint (unless ``save`` is False), record the run's end without
        completing the job, and release everything. ``quiet``: a store error while recording
        is swallowed (the error that ended the run is the one to report)."""
        self.close_progress()
        settled = True
        try:
            settled = self.commits.wait_for_writer()
            try:
                if save and settled and self.commits.unsaved:
                    self.commits.checkpoint(wait=True)
            finally:  # a run that ends is recorded as ended, even when its last save failed
                self.record_end(status, message)
        except MidwayError:
            if not quiet:
                raise
        finally:
            self.release()
        if quiet:
            return self.make_result(status)
        keeper = self.commits.keeper
        if not settled and keeper is not None and keeper.error is not None:
            raise keeper.error
        self.result = self.make_result(status)
        return self.result

    def record_end(self, status: RunStatus, message: str) -> None:
        store, lease, record = self.run.parts()
        self.guarantee.discard_uncommitted(store)  # nothing since the last checkpoint stays
        self.commits.wait_for_writer()  # end_run releases the lease: checkpoints in flight first
        record.status, record.ended_at = status, time.time()
        record.message = jsonutil.escape_text(redact_text(message[:500]))
        record.processed = self.run.counters.processed
        store.end_run(lease, record, completed=False, summary=None)
        self.lease_released = True

    def complete(self) -> RunResult:
        run, commits = self.run, self.commits
        if run.pending or self.steps.touched or self.guarantee.holds_writes:
            # the last records (and, exactly-once, the handler's last writes) commit before
            # the completion
            commits.checkpoint(wait=True)
        self.guarantee.discard_uncommitted(run.store)
        counters = run.counters
        result = self.make_result(
            completed_status(counters.failed, counters.in_doubt, counters.waiting)
        )
        store, lease, record = run.parts()
        self.close_progress()
        record.status, record.ended_at = result.status, time.time()
        record.processed = counters.processed
        try:
            jsonutil.dumps_state(run.state)  # named now, not as a TypeError from the store
        except MidwayError as exc:
            commits.failure = exc
            self.fail(exc)
            raise
        try:
            if commits.keeper is not None:
                commits.keeper.flush()  # nothing may land after the checkpoint is dropped
            store.end_run(lease, record, completed=True, summary=self.summary(result))
            self.lease_released = True
        finally:
            self.release()
        self.result = result
        self.tell_finish(
            f"job {run.key!r} {'reached its end' if counters.waiting else 'completed'}: "
            f"{counters.processed:,} items "
            f"({counters.succeeded:,} succeeded{_failures(counters)}) in "
            f"{result.elapsed:,.1f} s; "
            + (
                waiting_note(run.key, counters.waiting)
                if counters.waiting
                else "checkpoint removed, the next run starts fresh"
            )
        )
        return result

    def summary(self, result: RunResult) -> dict[str, object]:
        run = self.run
        assert run.record is not None
        return {
            "run_id": run.record.run_id,
            "status": result.status,
            "ended_at": run.record.ended_at,
            "counters": run.counters.as_dict(),
            "state": run.state,
            "started_at": run.job_started_at,
            "total": run.total,
        }

    def tell_finish(self, message: str | None = None) -> None:
        """Say how the run ended, once (``message``, else the counters), then call the
        ``on_finish`` hook."""
        result = self.result
        if result is None:
            if message is not None:
                self.run.tell(message, "run.warning")
            return
        self.run.tell(
            message
            or (
                f"job {self.run.key!r} {result.status}: {result.processed:,} items "
                f"({result.succeeded:,} succeeded, {result.failed:,} failed, "
                f"{result.skipped:,} skipped, {result.in_doubt:,} in doubt)"
            ),
            "run.finished",
            quiet=True if message is None else None,  # the error itself is what is shown
            **{name: getattr(result, name) for name in FINISHED_FIELDS},
            elapsed_seconds=round(result.elapsed, 3),
        )
        hook = self.run.settings.on_finish
        if hook is not None:
            call_hook("on_finish", hook, result)

    def make_result(self, status: RunStatus) -> RunResult:
        run = self.run
        return RunResult(
            job=run.key,
            status=status,
            succeeded=run.counters.succeeded,
            failed=run.counters.failed,
            skipped=run.counters.skipped,
            in_doubt=run.counters.in_doubt,
            waiting=run.counters.waiting,
            state=run.state,
            resumed_from=run.resumed_from,
            run_id=run.run_id,
            processed_this_run=run.counters.processed - run.processed_at_start,
            elapsed=time.monotonic() - run.run_began.monotonic,
            position=run.position(),
        )

    def stop_message(self, name: str) -> str:
        run = self.run
        where = run.source.describe_position(run.position())
        note = resume_note(command_line())
        return (
            f"job {run.key!r} stopped by {name} at {where}: {run.counters.processed:,} "
            f"items done, checkpoint #{run.version} saved. Resume with: {command_line()}"
            + (f" ({note})" if note else "")
        )

    def left_message(self, rolled_back: bool) -> str:
        run = self.run
        where = run.source.describe_position(run.position())
        if not rolled_back:
            return (
                f"job {run.key!r} left at {where} ({run.counters.processed:,} items done); "
                "checkpoint saved, the next run resumes there"
            )
        if run.version == 0:
            return (
                f"job {run.key!r} left before its first checkpoint, and its state had changed: "
                "nothing was saved, the next run starts from the beginning"
            )
        return (
            f"job {run.key!r} left; its state had changed since checkpoint #{run.version}, "
            f"which stands: the next run resumes at {where} "
            f"({run.counters.processed:,} items done)"
        )

    def close_progress(self) -> None:
        self.run.progress.close()
        self.run.progress = Silent()

    def release(self, *, release_lease: bool = True) -> None:
        """Give everything back: progress line, signal handlers, keeper thread, cursor,
        lease, store. Safe to call twice."""
        run = self.run
        status = "lease_lost" if run.lease_lost else run.record.status if run.record else None
        run.tracing.end(status, run.counters, run.processed_at_start)
        self.close_progress()
        self.stops.restore()
        if self.commits.keeper is not None:
            self.commits.keeper.close()
        if run.cursor is not None:
            run.cursor.close()
            run.cursor = None
        if run.store is None:
            return
        try:
            held = run.lease is not None and not run.lease_lost and not self.lease_released
            if release_lease and held and run.lease is not None:
                run.store.release_lease(run.lease)
        except MidwayError as exc:
            # Only an error path gets here (a run that ends records its end and gives
            # the lease back in one transaction): the error that ended the run is the one
            # to report, and a lease left behind expires or is taken over from a dead pid.
            run.tell(
                f"could not give the lease on job {run.key!r} back ({exc}); the next run "
                "takes it over once it expires",
                "run.warning",
                quiet=False,
            )
        finally:
            if not self.borrowed_store:
                run.store.close()
            run.store = None


def _failures(counters: Counters) -> str:
    parts = [
        f"{count:,} {name}"
        for name, count in (
            ("failed", counters.failed),
            ("skipped", counters.skipped),
            ("in doubt", counters.in_doubt),
            ("waiting", counters.waiting),
        )
        if count
    ]
    return ", " + ", ".join(parts) if parts else ""


def waiting_note(key: str, waiting: int) -> str:
    """What a run that ended ``waiting`` tells the user to do next."""
    return (
        f"{waiting:,} item(s) wait for a person: `midway show {key}` lists the questions, "
        f"`midway approve {key} KEY...` (or --reject, or --all) decides, and the next run "
        "hands the decided items back (and handles nothing else)"
    )
