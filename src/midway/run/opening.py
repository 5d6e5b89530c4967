"""How a run opens: the lease is ours; load the checkpoint (or not: a fresh start), check the
input did not drift, pick up what the last runs left in the ledger, record the run."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import sys
import time
from typing import Any

from midway._model import jsonutil
from midway._model.checkpoint import Checkpoint, Counters, describe_drift
from midway._model.identity import partition_of
from midway._model.ledger import ItemRecord, ItemStatus, drop
from midway._model.owner import describe_age, hostname, iso
from midway._model.redaction import redact_argv, redact_url
from midway._model.result import RunStatus
from midway.console import logging_configured
from midway.errors import InputDrift
from midway.run.approvals import same_position
from midway.run.guarantees import Guarantee
from midway.run.itemflow import ItemFlow
from midway.run.retrypass import RetryPass
from midway.run.runstate import Moment, RunState
from midway.stores import JobRecord, Lease, RunRecord, Store
from midway.stores.base import FINISHED

CARRIED_OVER = (ItemStatus.RETRYING, ItemStatus.STEPS)


class PartitionDone(Exception):
    """The partition was completed by another worker meanwhile."""


class Opening:
    """Fills the run's :class:`RunState` from the store; see the module docstring."""

    def __init__(
        self, run: RunState, flow: ItemFlow, retries: RetryPass, guarantee: Guarantee
    ) -> None:
        self.run = run
        self.flow = flow
        self.retries = retries
        self.guarantee = guarantee

    def open(self, store: Store, lease: Lease) -> None:
        run = self.run
        self._say_takeover(lease)
        run.fingerprint = run.source.fingerprint()
        checkpoint, records, record = store.load_for_run(run.key)
        restarted = False  # on_drift="restart": what the old input left is not this one's
        if checkpoint is not None:
            checkpoint = self._check_drift(checkpoint)
            restarted = checkpoint is None
        now = time.time()
        run.job_started_at = now
        run.total = run.source.total()
        if checkpoint is None and run.job.id.part:
            # A distributed job's partition runs once (then only for items put back by
            # `midway retry`): another worker may have completed it since this one looked
            # (read under the lease, now ours, this check is final).
            retried = any(r.status == ItemStatus.RETRY for r in records)
            if record is not None and record.status in FINISHED and not retried:
                raise PartitionDone(run.key)
        if checkpoint is not None:
            self._resume_from(checkpoint, now)
            run.combiner.resume(run.key, checkpoint.extra, run.state, run.counters.processed)
            run.main_done = bool(checkpoint.extra.get("main_done"))
        elif not self._after_completion(record, records):
            self.guarantee.refuse_fresh_start(store, run.key)
            records = self._carry_over(records, restarted)
            self._announce_fresh(store, records)
        self._load_ledger(records, resuming=checkpoint is not None or run.main_done)
        run.record = RunRecord(
            run_id=run.new_run_id,
            job=run.key,
            status=RunStatus.RUNNING,
            host=hostname(),
            pid=os.getpid(),
            started_at=now,
            resumed_from=run.resumed_from,
            start_processed=run.counters.processed,
            command=command_line(),
        )
        store.begin_run(lease, run.record)

    def _say_takeover(self, lease: Lease) -> None:
        prev = lease.took_over.owner if lease.took_over is not None else None
        if prev is not None and prev != lease.owner:
            why = "is gone" if prev.is_dead_here() else "stopped renewing its lease"
            self.run.tell(
                f"took job {self.run.key!r} over from pid {prev.pid} on {prev.host}, which {why}",
                "run.takeover",
                previous_pid=prev.pid,
                previous_host=prev.host,
            )

    def _check_drift(self, checkpoint: Checkpoint) -> Checkpoint | None:
        run = self.run
        drift = describe_drift(checkpoint.fingerprint, run.fingerprint)
        if not drift:
            return checkpoint
        policy = run.settings.on_drift
        details = "\n".join(f"    {line}" for line in drift)
        changed = f"the input of job {run.key!r} changed since its checkpoint"

        def option(value: str) -> str:
            return run.job.option_text("on_drift", value)

        if policy == "restart":
            run.tell(
                f"{changed}:\n{details}\n"
                f"starting again from the beginning, as {option('restart')} asks",
                "run.drift",
                policy=policy,
                changes=drift,
            )
            return None
        if policy == "continue":
            run.tell(
                f"{changed}:\n{details}\n"
                f"resuming at the saved position anyway, as {option('continue')} asks",
                "run.drift",
                policy=policy,
                changes=drift,
            )
            return checkpoint
        raise InputDrift(
            f"{changed} was saved "
            f"({describe_age(time.time() - checkpoint.updated_at)}):\n{details}\n"
            "Resuming could skip or repeat the wrong items, so midway refuses. Restore the "
            f"original input, or pass {option('restart')} to start over from the beginning, "
            f"or {option('continue')} to resume at the saved position anyway, or forget the "
            f"checkpoint with: midway reset {shlex.quote(run.key)} --yes",
            saved=checkpoint.fingerprint,
            current=run.fingerprint,
        )

    def _resume_from(self, checkpoint: Checkpoint, now: float) -> None:
        run, source = self.run, self.run.source
        processed = checkpoint.counters.processed
        run.counters = checkpoint.counters.copy()
        run.state = checkpoint.state
        run.version = checkpoint.version
        run.job_started_at = checkpoint.started_at or now
        run.start_position = checkpoint.position
        where = source.describe_position(checkpoint.position)
        run.resumed_from = {
            "version": checkpoint.version,
            "position": checkpoint.position,
            "processed": processed,
            "saved_at": iso(checkpoint.updated_at),
            "run_id": checkpoint.run_id,
        }
        replay = ""
        if not source.seekable and processed:
            replay = (
                f" ({source.describe()} cannot seek: re-reading and skipping {processed:,} items)"
            )
        run.tell(
            f"RESUMING job {run.key!r} from checkpoint #{checkpoint.version} saved "
            f"{describe_age(now - checkpoint.updated_at)}: {processed:,} "
            f"items done, continuing at {where} of {source.describe()}{replay}",
            "run.resumed",
            version=checkpoint.version,
            processed=processed,
            position=checkpoint.position,
            saved_at=iso(checkpoint.updated_at),
        )

    def _after_completion(self, record: JobRecord | None, records: list[ItemRecord]) -> bool:
        """A completed job with items put back by ``midway retry`` (or decided by
        ``midway approve``): the next run handles those and nothing else, from the counters
        and state the job completed with. A job that ended with items waiting for a person
        stays there too (its input is not handled again), whether or not any is decided."""
        run = self.run
        queued = sum(r.status in (ItemStatus.RETRY, ItemStatus.DECIDED) for r in records)
        waiting = sum(r.status == ItemStatus.WAITING for r in records)
        if not queued and not waiting:
            return False
        summary = record.summary if record is not None else None
        if not summary:
            return False
        run.counters = Counters.from_dict(summary.get("counters") or {})
        state = summary.get("state")
        run.state = state if isinstance(state, dict) else {}
        started = summary.get("started_at")
        run.job_started_at = float(started) if isinstance(started, int | float) else time.time()
        run.main_done = True
        run.tell(
            f"job {run.key!r} completed earlier; handling the {queued:,} item(s) put back "
            "by `midway retry` or decided by `midway approve`, and only those"
            + (f" ({waiting:,} still wait for a decision)" if waiting else ""),
            "run.started",
            source=run.source.describe(),
            retry_only=True,
        )
        return True

    def _announce_fresh(self, store: Store, records: list[ItemRecord]) -> None:
        run = self.run
        quiet = run.settings.quiet
        if quiet and not logging_configured():
            return  # nobody would hear it: spare the store its queries (list_jobs reads all)
        where = redact_url(store.url)
        never_ran = not records and not store.list_runs(run.key, limit=1)
        warning = self.guarantee.first_start_warning(run.key, where, run.source.describe())
        if never_ran and warning is not None:
            run.tell(warning, "run.started", source=run.source.describe(), fresh=True)
        else:
            run.tell(
                f"starting job {run.key!r} from the beginning of {run.source.describe()} "
                f"(no checkpoint in {where}{_last_run(store, run.key, records)})",
                "run.started",
                source=run.source.describe(),
                fresh=True,
            )
        if not run.job.id.part:  # a partition's siblings are the same job, not other params
            self._point_out_other_params(store)

    def _point_out_other_params(self, store: Store) -> None:
        """params are part of a job's identity: a changed param silently starts a new job,
        so point out unfinished work under the same name."""
        run = self.run
        job_id = run.job.id
        for other in store.list_jobs():
            if partition_of(other.job) == job_id.base_key:
                continue  # a partition of the same distributed job, not other params
            if other.name == job_id.name and other.job != run.key and other.checkpoint:
                run.tell(
                    f"note: job {other.job!r} (same name, params {jsonutil.dumps(other.params)}) "
                    f"has an unfinished checkpoint at {other.checkpoint.counters.processed:,} "
                    "items; these params make a different job. `midway show "
                    f"{other.job}` shows it, `midway reset {other.job} --yes` forgets it.",
                    "run.other_params",
                    level=logging.WARNING,
                    other_job=other.job,
                    processed=other.checkpoint.counters.processed,
                )

    def _carry_over(self, records: list[ItemRecord], restarted: bool) -> list[ItemRecord]:
        """A fresh start (no checkpoint) takes along what a run that died before its first
        checkpoint wrote on its own: attempt counts (``retrying``) and ``ctx.step`` results
        (``steps``), so a poison item early in the input is not given new attempts by every
        crash. (A completed run leaves neither; after ``on_drift="restart"`` they belong to
        the old input.) Returns the records the fresh start forgets; those it carries over
        are picked up as on a resume."""
        if restarted:
            return records
        self._load_ledger([r for r in records if r.status in CARRIED_OVER], resuming=True)
        return [r for r in records if r.status not in CARRIED_OVER]

    def _load_ledger(self, records: list[ItemRecord], resuming: bool) -> None:
        """Pick up the records a resumed run needs; a fresh run forgets the old ones."""
        if not resuming:
            self.run.pending.extend(drop(record.key) for record in records)
            return
        queue = self.retries.queue
        for record in records:
            name = jsonutil.dumps(record.key)
            if record.steps:
                self.flow.steps.load(name, record.steps)
            if self._in_hand_when_killed(record):
                self.flow.prior[name] = record  # met again in the input, at its position
            elif record.status in (ItemStatus.RETRY, ItemStatus.DECIDED):
                queue.append(record)
            elif record.status in (ItemStatus.STARTED, ItemStatus.RETRYING, ItemStatus.DONE):
                self.flow.prior[name] = record
        queue.sort(key=lambda r: r.updated_at)

    def _in_hand_when_killed(self, record: ItemRecord) -> bool:
        """An item marked before its handler (at-most-once) that asked ``ctx.approval``
        and was written waiting, the run killed before the checkpoint past it: the resumed
        run meets it again where it resumes."""
        return (
            record.status in (ItemStatus.WAITING, ItemStatus.DECIDED)
            and self.guarantee.marks_started
            and self.run.start_position is not None
            and same_position(record, self.run.start_position)
        )

    def began(self) -> None:
        """The run is recorded: the clocks start and the input opens."""
        run = self.run
        run.cursor = run.source.open(run.start_position)
        run.processed_at_start = run.counters.processed
        run.run_began = Moment(time.time(), time.monotonic())


def _last_run(store: Store, key: str, records: list[Any]) -> str:
    """What the job's last run did, for the line that says this one starts fresh."""
    record = store.get_job(key)
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
    return last


def command_line() -> str:
    """This process's command line, as kept in the run record: without any password, and
    after the folder it ran in (``cd /srv/app && python import.py``): its relative paths,
    and the default store, mean what they meant only there."""
    argv = getattr(sys, "orig_argv", None) or [sys.executable, *sys.argv]
    line = shlex.join(redact_argv(argv))
    with contextlib.suppress(OSError):  # the folder was removed: the command alone
        line = f"cd {shlex.quote(os.getcwd())} && {line}"
    return jsonutil.escape_text(line)
