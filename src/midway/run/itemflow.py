"""The careful per-item path: failures and retries, the item ledger, the guarantee's marks.

The fast loop calls the handler bare; an item comes here only when it needs more:

* its handler raised (:meth:`ItemFlow.item_failed`): :meth:`FailurePolicy.decide` says
  retry, skip, record it failed, or stop, and this carries it out;
* the guarantee is more than at-least-once, the chunk holds a malformed record, a run before
  this one left a record for the item, or ``rate=`` paces the items
  (:meth:`ItemFlow.one_item`);
* ``midway retry`` put it back (:mod:`midway.run.retrypass`).

Ledger changes wait in ``run.pending`` and commit with the next checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from midway import faults
from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord, ItemStatus, drop
from midway.console import log_format, logging_configured, say
from midway.errors import ConfigError, MidwayError, SourceError, TooManyFailures
from midway.run.approvals import ApprovalPending, ask, mark_handed_back, waiting_record
from midway.run.commits import Commits, call_hook
from midway.run.failures import Action, FailurePolicy, describe, short_traceback
from midway.run.guarantees import Guarantee
from midway.run.ratelimit import RateLimit
from midway.run.runstate import RunState
from midway.run.slices import InHand
from midway.run.steps import StepRecords
from midway.sources.base import chunk_errors

SAY_FAILURES = 5
MAX_ITEM_BYTES = 64 * 1024
WAIT_TICK = 0.05
Handler = Callable[[Any, Any], Any]
NO_POLICY = FailurePolicy(retry=None, skip_on=(), max_failures=None)
"""What ``decide`` answers without retry, skip_on or max_failures: stop at the failure."""
IN_DOUBT_AFTER_CRASH = (
    "its handler started in a run that ended before it finished (killed or crashed): it "
    "may or may not have taken effect"
)


@dataclass(eq=False)
class ItemFlow:
    """One item at a time, with every check; see the module docstring."""

    run: RunState
    in_hand: InHand
    commits: Commits
    guarantee: Guarantee
    steps: StepRecords
    ctx: Any
    policy: FailurePolicy | None = field(init=False)
    """None when nothing was asked for: the first failure stops the job (fail fast)."""
    rate: RateLimit | None = field(init=False)
    prior: dict[str, ItemRecord] = field(default_factory=dict, init=False)
    """Records a run before this one left, by item key: started, retrying or done."""
    failures_said: int = field(default=0, init=False)
    retry_key: JSONValue = field(default=None, init=False)
    """The key of the item the retry pass has in hand (no slice is walked then)."""
    paused_item: bool = field(default=False, init=False)
    retry_status: ItemStatus | None = field(default=None, init=False)
    """The ledger status of the item the retry pass has in hand (retry, or decided)."""
    retry_position: JSONValue = field(default=None, init=False)
    asks: bool = field(default=False, init=False)
    """``ctx.approval`` may be asked: ``job.run`` calls the handler (a ``job.loop`` body
    is the caller's code, which the pending approval could not leave cleanly)."""

    def __post_init__(self) -> None:
        settings = self.run.settings
        retry: Any = settings.retry  # a midway.Retry (Settings checked it)
        self.policy = (
            None
            if settings.fails_fast
            else FailurePolicy(retry, settings.skip_on, settings.max_failures)
        )
        self.rate = RateLimit(settings.rate) if settings.rate else None

    @property
    def careful(self) -> bool:
        """Items go one by one through :meth:`one_item` rather than the bare loop."""
        return self.guarantee.careful or bool(self.prior) or self.rate is not None

    def one_item(self, item: Any, handler: Handler) -> None:
        """Handle the item in hand (in the current slice) with every check."""
        place = self.in_hand.place()
        assert place is not None
        chunk, i = place
        errors = chunk_errors(chunk)
        position = chunk.position_before(i)
        if errors and i in errors:
            self.malformed(chunk.key(i), errors[i], position, getattr(item, "text", None))
            return
        if self.rate is not None and not self.rate.wait(lambda: self.run.stopping):
            self.unconsume()
            return
        self.run_one(item, chunk.key(i), position, handler)

    def malformed(
        self, key: JSONValue, message: str, position: JSONValue, text: str | None
    ) -> None:
        """A record the source could not read: a failing item, recorded when failures are
        tolerated (its raw text kept with it, as far as it could be decoded), else raised."""
        exc = SourceError(message)
        if self.policy is not None and self.policy.tolerant:
            self.record_outcome(key, ItemStatus.FAILED, exc, 1, position, text)
            return
        raise exc

    def check_loop_item(self, item: Any) -> bool:
        """``job.loop``: False when the item in hand is a record the source could not read.
        With ``skip_on`` / ``max_failures`` it is recorded (skipped, or failed) and the loop
        goes on without it; without a failure policy it stops the loop (fail fast)."""
        place = self.in_hand.place()
        errors = None if place is None else chunk_errors(place[0])
        if not errors or place is None:
            return True
        chunk, i = place
        message = errors.get(i)
        if message is None:
            return True
        exc = SourceError(message)
        now = time.time()
        decision = (self.policy or NO_POLICY).decide(exc, 1, now, now, **self.counts())
        status = decision.record
        if status is None:
            raise exc
        text = getattr(item, "text", None)
        self.record_outcome(chunk.key(i), status, exc, 1, chunk.position_before(i), text)
        if decision.too_many:
            self.stop(TooManyFailures(self.too_many_message()))
        return False

    def run_one(self, item: Any, key: JSONValue, position: JSONValue, handler: Handler) -> None:
        """The item, after what an earlier run left for it (done, started, attempts)."""
        name = jsonutil.dumps(key)
        prior = self.prior.pop(name, None) if self.prior else None
        attempt = 1
        if prior is not None:
            if self.resolved_by_prior(prior, key, position, item):
                return
            attempt = prior.attempts + 1
        mark = self.guarantee.start_mark(key, position, attempt)
        if mark is not None:  # on disk before the handler runs, with the checkpoint
            mark = replace(
                mark, steps=self.steps.get(name)
            )  # a handed-back item keeps its decision
            if self.retry_status == ItemStatus.DECIDED:
                mark = mark_handed_back(mark, self.steps, key)
            self.run.pending.append(mark)
            self.commits.checkpoint(wait=True)
        first_try = time.time()
        self.ctx.attempt = attempt
        try:
            self.guarantee.call(handler, item, self.ctx)
        except Exception as exc:
            self.ctx.attempt = 1
            if not self.item_failed(item, exc, handler, (key, position, attempt, first_try)):
                raise
            return
        except ApprovalPending as pending:
            self.ctx.attempt = 1
            self.item_waiting(pending, item, (key, position, attempt))
            return
        self.ctx.attempt = 1
        if faults.ACTIVE:
            faults.hit("item.after_handler")
        if self.guarantee.forgets_after(attempt, name in self.steps):
            self.item_done(key)

    def resolved_by_prior(
        self, prior: ItemRecord, key: JSONValue, position: JSONValue, item: Any
    ) -> bool:
        """True when the record an earlier run left settles the item without running it."""
        if prior.status == ItemStatus.DONE:  # finished by a parallel run, above its watermark
            self.run.counters.succeeded -= 1  # counted already, in the checkpoint
            self.run.pending.append(drop(key))
            return True
        if prior.status == ItemStatus.WAITING:  # asked just before a kill: still waits
            self.run.counters.succeeded -= 1
            self.run.counters.waiting += 1
            return True
        if prior.status == ItemStatus.STARTED:
            attempts = prior.attempts or 1
            self.record_outcome(
                key, ItemStatus.IN_DOUBT, None, attempts, position, item, IN_DOUBT_AFTER_CRASH
            )
            return True
        policy = self.policy
        if policy is not None and prior.attempts + 1 > policy.attempts:
            self.record_outcome(
                key,
                ItemStatus.FAILED if policy.tolerant else ItemStatus.IN_DOUBT,
                None,
                prior.attempts,
                position,
                item,
                why=f"gave up after {prior.attempts} attempts (the last in an earlier "
                f"run): {prior.error}",
            )
            return True
        return False

    # -- failures -----------------------------------------------------------------------

    def item_failed(
        self,
        item: Any,
        exc: BaseException,
        handler: Handler,
        where: tuple[JSONValue, JSONValue, int, float] | None = None,
    ) -> bool:
        """The handler raised on the item (``where``: its key, position, attempt and first
        try; None from the bare loop: the item in hand, first attempt). Retry, skip or
        record it and return True to go on; False: the job stops on this error, the item
        not done."""
        if isinstance(exc, MidwayError) and not isinstance(exc, SourceError):
            return False  # midway's own trouble (a lost lease, a store error): not the item's
        if self.policy is None and not self.guarantee.in_doubt_on_failure:
            return False
        if where is None:
            place = self.in_hand.place()
            assert place is not None
            chunk, i = place
            where = (chunk.key(i), chunk.position_before(i), 1, time.time())
        key, position, attempt, first_try = where
        policy = self.policy or NO_POLICY
        while True:
            decision = policy.decide(
                exc,
                attempt,
                first_try,
                time.time(),
                **self.counts(),
            )
            if decision.action is not Action.RETRY:
                break
            outcome = self.retry(item, handler, key, position, attempt, exc, decision.delay)
            if isinstance(outcome, BaseException):
                exc, attempt = outcome, attempt + 1
                continue
            return True
        return self.give_up(item, exc, decision.record, decision.too_many, where[:2], attempt)

    def retry(
        self,
        item: Any,
        handler: Handler,
        key: JSONValue,
        position: JSONValue,
        attempt: int,
        exc: BaseException,
        delay: float,
    ) -> BaseException | None:
        """Wait, then try the item again: None when it is settled (it succeeded, or a stop
        came during the wait), else the next try's exception."""
        self.attempt_mark(key, position, attempt, exc, waited=False)
        attempts = (self.policy or NO_POLICY).attempts
        self.run.tell(
            f"item {jsonutil.dumps(key)} failed (attempt {attempt} of {attempts}), retrying "
            f"in {delay:.2f} s: {describe(exc)}",
            "item.retry",
            level=logging.DEBUG,
            quiet=True,
            key=key,
            attempt=attempt,
            attempts=attempts,
            delay_seconds=delay,
            error=describe(exc),
        )
        if not self.pause(delay):
            self.unconsume()
            return None
        self.attempt_mark(key, position, attempt + 1, exc, waited=True)
        self.ctx.attempt = attempt + 1
        try:
            self.guarantee.call(handler, item, self.ctx)
        except Exception as again:
            return again
        except ApprovalPending as pending:
            self.item_waiting(pending, item, (key, position, attempt + 1))
            return None
        finally:
            self.ctx.attempt = 1
        self.item_done(key)
        return None

    def attempt_mark(
        self, key: JSONValue, position: JSONValue, attempt: int, exc: BaseException, waited: bool
    ) -> None:
        """The record that keeps the attempt count durable, if the guarantee wants one."""
        status = self.guarantee.attempt_mark(key, position, attempt, waited=waited)
        if status is None:
            return
        steps = self.steps.get(jsonutil.dumps(key)) or {}
        record = ItemRecord(
            key, status, describe(exc), None, attempt, position, updated_at=time.time(), steps=steps
        )
        self.store_items([record])

    def give_up(
        self,
        item: Any,
        exc: BaseException,
        status: ItemStatus | None,
        too_many: bool,
        where: tuple[JSONValue, JSONValue],
        attempt: int,
    ) -> bool:
        """No more tries: record the item (``status``) and go on, or stop the job."""
        key, position = where
        if status is not None:
            self.record_outcome(key, status, exc, attempt, position, item)
            if too_many:
                self.stop(TooManyFailures(self.too_many_message()))
            return True
        if self.guarantee.in_doubt_on_failure:  # it ran and raised: took effect or not?
            self.record_outcome(key, ItemStatus.IN_DOUBT, exc, attempt, position, item)
            self.stop(exc)
            return True
        if attempt > 1:
            self.run.pending.append(drop(key))  # a fixed handler starts afresh
        return False

    def item_waiting(
        self,
        pending: ApprovalPending,
        item: Any,
        where: tuple[JSONValue, JSONValue, int] | None = None,
    ) -> None:
        """The handler asked ``ctx.approval`` and no one has answered: the item waits (its
        record, with the steps before the question, goes to the ledger) and the job goes on.
        Where items are marked before their handler (at-most-once), the record replaces the
        mark on disk now, so that a kill cannot turn a waiting item into one in doubt."""
        if where is None:
            place = self.in_hand.place()
            assert place is not None
            where = (place[0].key(place[1]), place[0].position_before(place[1]), 1)
        name = jsonutil.dumps(where[0])
        record = waiting_record(pending, where, self.item_json(item), self.steps.pop(name))
        if self.guarantee.marks_started:
            self.store_items([record])
        else:
            self.run.pending.append(record)
        counters = self.run.counters
        counters.succeeded -= 1  # the slice (or the retry pass) counted it as succeeded
        counters.waiting += 1
        hook = self.run.settings.on_waiting
        if hook is not None:
            call_hook("on_waiting", hook, record)

    def approval(self, question: Any, data: Any) -> bool:
        """``ctx.approval`` for the item in hand."""
        if not self.asks:
            raise ConfigError(
                "ctx.approval() is for handlers that job.run() calls: a job.loop() body "
                "cannot be left waiting for a person"
            )
        if self.run.job.id.part:
            raise ConfigError(
                "ctx.approval() is not available in a distributed run in this version: run "
                "the job without distributed= to ask a person"
            )
        key = self.retry_key
        place = self.in_hand.place()
        if key is None and place is not None:
            key = place[0].key(place[1])
        if key is None:
            raise ConfigError(
                "ctx.approval() is for use inside a handler, while an item is in hand"
            )
        return ask(self.steps, key, question, data)

    def stop(self, error: BaseException) -> None:
        """End the run with ``error`` after the item in hand."""
        self.run.stop_error = error
        self.in_hand.interrupt()

    def record_outcome(
        self,
        key: JSONValue,
        status: ItemStatus,
        exc: BaseException | None,
        attempts: int,
        position: JSONValue,
        item: Any,
        why: str | None = None,
    ) -> None:
        """Record the item's outcome (failed, skipped, in doubt) in the ledger and count it
        (the slice counted it as succeeded; this moves it)."""
        name = jsonutil.dumps(key)
        record = ItemRecord(
            key=key,
            status=status,
            error=describe(exc) if exc is not None else why,
            traceback=short_traceback(exc) if exc is not None else None,
            attempts=attempts,
            position=position,
            item=self.item_json(item),
            updated_at=time.time(),
            steps=self.steps.pop(name),
        )
        self.run.pending.append(record)
        counters = self.run.counters
        counters.succeeded -= 1
        setattr(counters, status, getattr(counters, status) + 1)
        if self.policy is not None and status == ItemStatus.FAILED:
            self.policy.note(record.error_type or status, name)
        self.tell(record, name, attempts)
        hook = self.run.settings.on_item_failed
        if hook is not None:
            call_hook("on_item_failed", hook, record, exc)

    def tell(self, record: ItemRecord, name: str, attempts: int) -> None:
        """An item that did not succeed goes to the log, or (the first few) to the screen."""
        self.run.tell_item(record, attempts)  # the log, if set up, and the trace
        if logging_configured() or log_format() == "json":
            return
        what = record.status.replace("_", " ")
        if self.failures_said < SAY_FAILURES and not self.run.settings.quiet:
            self.failures_said += 1
            more = " (further ones are counted, not shown: `midway show`)" * (
                self.failures_said == SAY_FAILURES
            )
            say(f"item {name} {what}: {record.error}{more}")

    def item_json(self, item: Any) -> JSONValue:
        if not self.run.settings.record_items:
            return None
        try:
            text = jsonutil.dumps(item)
        except (TypeError, ValueError, RecursionError):
            return None
        return item if len(text) <= MAX_ITEM_BYTES else None

    def item_done(self, key: JSONValue) -> None:
        """Forget the item's bookkeeping (started mark, attempts, steps) with the next
        checkpoint."""
        self.steps.pop(jsonutil.dumps(key))
        self.run.pending.append(drop(key))

    def too_many_message(self) -> str:
        policy = self.policy
        assert policy is not None
        key, failed = self.run.key, self.run.counters.failed
        return (
            f"job {key!r} stopped: {failed:,} of {self.processed_now():,} items "
            f"failed, {policy.describe_limit()} that max_failures={policy.max_failures!r} "
            f"tolerates. Most common error: {policy.most_common()}. The checkpoint is saved; "
            f"`midway show {key}` lists the failed items. Fix the cause, run the job "
            f"again to go on, and `midway retry {key}` to redo the failed ones."
        )

    def counts(self) -> dict[str, Any]:
        """The counts ``FailurePolicy.decide`` judges ``max_failures`` by, before this item."""
        return {
            "failed": self.run.counters.failed,
            "processed": self.processed_now() - 1,
            "total": self.run.total,
        }

    def processed_now(self) -> int:
        """Items with an outcome, counting the current slice's up to the one in hand (the
        slice is counted in one go when it ends)."""
        index = self.in_hand.index()
        return self.run.counters.processed + (0 if index is None else index + 1)

    def pause(self, seconds: float) -> bool:
        """Wait before a retry; False if a stop (signal, lost lease) came meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if self.run.stopping:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, WAIT_TICK))

    def unconsume(self) -> None:
        """A stop came while the item in hand waited (a retry, the rate): it is not done."""
        self.paused_item = True
        stop_index = self.in_hand.stop_index
        if stop_index is not None and stop_index > 0:
            self.in_hand.stop_index = stop_index - 1

    def store_items(self, records: list[ItemRecord]) -> None:
        """Records that must be on disk now (or ride in the open transaction)."""
        store, lease, _ = self.run.parts()
        if self.guarantee.records_ride_with_checkpoint:
            self.run.pending.extend(records)
            return
        store.write_items(lease, records)

    def step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        """``ctx.step`` for the item in hand."""
        if not isinstance(name, str) or not name:
            raise ConfigError("ctx.step(name, fn, ...): name must be a non-empty string")
        key, position = self.retry_key, self.retry_position
        place = self.in_hand.place()
        if key is None and place is not None:
            key, position = place[0].key(place[1]), place[0].position_before(place[1])
        if key is None:
            raise ConfigError("ctx.step() is for use inside a handler, while an item is in hand")
        item = (key, position, self.ctx.attempt)
        return self.steps.run(name, fn, (args, kwargs), item, self.step_writer())

    def step_writer(self) -> Callable[[list[ItemRecord]], None]:
        """How a step's record is written: for an item handed back by the retry pass, under
        the status it has on disk (decided or retry; started where items are marked), so
        that a kill after the step leaves it queued (or in doubt), never forgotten."""
        keep = self.retry_status
        if keep is None:
            return self.store_items
        if self.guarantee.marks_started and keep != ItemStatus.DECIDED:
            keep = ItemStatus.STARTED

        def write(records: list[ItemRecord]) -> None:
            self.store_items([replace(record, status=keep) for record in records])

        return write

    def say_item(self, message: str) -> None:
        self.run.tell(message, "run.retry_queue", level=logging.WARNING)
