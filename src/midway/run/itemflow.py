"""Per-item outcomes: failures and retries, the item ledger, guarantees, ``ctx.step``.

The engine's fast loop calls the handler bare; an item comes here only when it needs more:

* its handler raised (:meth:`ItemFlow.item_failed`): retries with backoff, ``skip_on``,
  the failure tolerance, the ledger record;
* the job promises more than at-least-once, the chunk holds a malformed record, or a run
  before this one left a record for the item (:meth:`ItemFlow.one_item`): an at-most-once
  item is marked *started* on disk before its handler runs, an exactly-once item runs inside
  a savepoint of the checkpoint's transaction;
* ``midway retry`` put it back (:meth:`ItemFlow.retry_pass`).

Ledger changes wait in ``self.ledger_pending`` and commit with the next checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from midway import faults
from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import (
    DONE,
    FAILED,
    IN_DOUBT,
    RETRY,
    RETRYING,
    SKIPPED,
    STARTED,
    STEPS,
    ItemRecord,
    drop,
)
from midway.console import logging_configured, say
from midway.errors import ConfigError, MidwayError, SourceError
from midway.run.failures import TooManyFailures, describe, short_traceback
from midway.run.handlers import check_result

if TYPE_CHECKING:
    from midway._model.checkpoint import Counters
    from midway.job import Job
    from midway.run.context import Context
    from midway.run.failures import FailurePolicy
    from midway.run.parallel import RateLimit
    from midway.sources.base import Chunk, Source
    from midway.stores import Lease, RunRecord, Store

log = logging.getLogger("midway")
SAY_FAILURES = 5
MAX_ITEM_BYTES = 64 * 1024
WAIT_TICK = 0.05


class ItemFlow:
    """Mixed into :class:`midway.run.engine.Engine`; see the module docstring. What it uses of
    the engine is declared here."""

    job: Job
    key: str
    source: Source
    ctx: Context
    counters: Counters
    policy: FailurePolicy | None
    rate: RateLimit | None
    total: int | None
    _slice_chunk: Chunk | None
    _slice_start: int
    _stop_index: int | None
    _stop_signal: int | None
    _lease_lost: bool

    def current_index(self) -> int | None:
        raise NotImplementedError

    def _interrupt(self) -> None:
        raise NotImplementedError

    def _parts(self) -> tuple[Store, Lease, RunRecord]:
        raise NotImplementedError

    def checkpoint(self, *, wait: bool = False) -> None:
        raise NotImplementedError

    def _init_itemflow(self) -> None:
        self.ledger_pending: list[ItemRecord] = []
        self.prior: dict[str, ItemRecord] = {}
        self.retry_queue: list[ItemRecord] = []
        self.steps: dict[str, dict[str, JSONValue]] = {}
        self.steps_touched: set[str] = set()
        self.stop_error: BaseException | None = None
        self.main_done = False
        self.transaction: Any = None
        self.failures_said = 0
        self.retry_key: JSONValue = None
        self.paused_item = False
        self.tx_open = False

    # -- what the last runs left --------------------------------------------------------

    def carry_over(self, records: list[ItemRecord], restarted: bool) -> list[ItemRecord]:
        """A fresh start (no checkpoint) takes along what a run that died before its first
        checkpoint wrote on its own: attempt counts (``retrying``) and ``ctx.step`` results
        (``steps``), so a poison item early in the input is not given new attempts by every
        crash. (A completed run leaves neither; after ``on_drift="restart"`` they belong to
        the old input.) Returns the records the fresh start forgets; those it carries over
        are picked up as on a resume."""
        if restarted:
            return records
        self.load_ledger([r for r in records if r.status in (RETRYING, STEPS)], resuming=True)
        return [r for r in records if r.status not in (RETRYING, STEPS)]

    def load_ledger(self, records: list[ItemRecord], resuming: bool) -> None:
        """Pick up the records a resumed run needs; a fresh run forgets the old ones."""
        if not resuming:
            self.ledger_pending.extend(drop(record.key) for record in records)
            return
        for record in records:
            name = jsonutil.dumps(record.key)
            if record.steps:
                self.steps[name] = dict(record.steps)
            if record.status == RETRY:
                self.retry_queue.append(record)
            elif record.status in (STARTED, RETRYING, DONE):
                self.prior[name] = record
        self.retry_queue.sort(key=lambda r: r.updated_at)

    @property
    def per_item(self) -> bool:
        """Items go one by one through :meth:`one_item` rather than the bare loop."""
        return self.job.guarantee != "at-least-once" or bool(self.prior) or self.rate is not None

    # -- one item, the careful way ------------------------------------------------------

    def one_item(self, item: Any, handler: Callable[[Any, Any], Any]) -> None:
        """Handle the item in hand (in the current slice) with every check."""
        chunk, index = self._slice_chunk, self.current_index()
        assert chunk is not None
        assert index is not None
        i = self._slice_start + index
        errors: dict[int, str] | None = getattr(chunk, "errors", None)
        position = chunk.position_before(i)
        if errors and i in errors:
            self.malformed(chunk.key(i), errors[i], position, getattr(item, "text", None))
            return
        if self.rate is not None and not self.rate.wait(self.stopping):
            self.unconsume()
            return
        self.run_one(item, chunk.key(i), position, handler)

    def malformed(
        self, key: JSONValue, message: str, position: JSONValue, text: str | None
    ) -> None:
        """A record the source could not read: a failing item, handled by the policy (its
        raw text is kept with it, as far as it could be decoded)."""
        exc = SourceError(message)
        policy = self.policy
        if policy is not None and policy.tolerant:
            self.settle(key, FAILED, exc, 1, position, text)
            return
        raise exc

    def check_loop_item(self, item: Any) -> bool:
        """``job.loop``: False when the item in hand is a record the source could not read.
        With ``skip_on`` / ``max_failures`` it is recorded (skipped, or failed) and the loop
        goes on without it; without a failure policy it stops the loop (fail fast)."""
        chunk, index = self._slice_chunk, self.current_index()
        errors = getattr(chunk, "errors", None)
        if not errors or chunk is None or index is None:
            return True
        i = self._slice_start + index
        message = errors.get(i)
        if message is None:
            return True
        exc = SourceError(message)
        policy = self.policy
        skip = policy is not None and policy.skips(exc)
        if policy is None or not (skip or policy.tolerant):
            raise exc
        text = getattr(item, "text", None)
        self.settle(
            chunk.key(i), SKIPPED if skip else FAILED, exc, 1, chunk.position_before(i), text
        )
        if not skip and policy.exceeded(self.counters.failed, self.processed_now(), self.total):
            self.stop_error = TooManyFailures(self.too_many_message())
            self._interrupt()
        return False

    def run_one(
        self,
        item: Any,
        key: JSONValue,
        position: JSONValue,
        handler: Callable[[Any, Any], Any],
    ) -> None:
        name = jsonutil.dumps(key)
        prior = self.prior.pop(name, None) if self.prior else None
        attempt = 1
        if prior is not None:
            if prior.status == DONE:  # finished by a parallel run, above its watermark
                self.counters.succeeded -= 1  # counted already, in the checkpoint
                self.ledger_pending.append(drop(key))
                return
            if prior.status == STARTED:
                self.settle(
                    key,
                    IN_DOUBT,
                    None,
                    prior.attempts or 1,
                    position,
                    item,
                    why="its handler started in a run that ended before it finished "
                    "(killed or crashed): it may or may not have taken effect",
                )
                return
            attempt = prior.attempts + 1
            policy = self.policy
            if policy is not None and attempt > policy.attempts:
                self.settle(
                    key,
                    FAILED if policy.tolerant else IN_DOUBT,
                    None,
                    prior.attempts,
                    position,
                    item,
                    why=f"gave up after {prior.attempts} attempts (the last in an earlier "
                    f"run): {prior.error}",
                )
                return
        if self.job.guarantee == "at-most-once":
            self.mark_started(key, position, attempt)
        first_try = time.time()
        self.ctx.attempt = attempt
        try:
            self.call(handler, item)
        except Exception as exc:
            self.ctx.attempt = 1
            if not self.item_failed(item, exc, handler, key, position, attempt, first_try):
                raise
            return
        self.ctx.attempt = 1
        if faults.ACTIVE:
            faults.hit("item.after_handler")
        if attempt > 1 or self.job.guarantee == "at-most-once" or name in self.steps:
            self.item_done(key)

    def call(self, handler: Callable[[Any, Any], Any], item: Any) -> None:
        """Run the handler; with exactly-once, inside a savepoint of the open transaction,
        so a failing item's writes go and the finished items' stay."""
        conn = self.transaction
        if conn is None:
            if (returned := handler(item, self.ctx)) is not None:
                check_result(returned)
            return
        if not self.tx_open:
            store, lease, _ = self._parts()
            store.begin_transaction(lease)
            self.tx_open = True
        conn.execute("SAVEPOINT midway_item")
        try:
            if (returned := handler(item, self.ctx)) is not None:
                check_result(returned)
        except BaseException:
            conn.execute("ROLLBACK TO SAVEPOINT midway_item")
            conn.execute("RELEASE SAVEPOINT midway_item")
            raise
        conn.execute("RELEASE SAVEPOINT midway_item")

    def mark_started(self, key: JSONValue, position: JSONValue, attempt: int) -> None:
        """At-most-once: on disk before the handler runs. The checkpoint that says the
        previous items are done rides in the same commit."""
        record = ItemRecord(key, STARTED, attempts=attempt, position=position)
        record.updated_at = time.time()
        self.ledger_pending.append(record)
        self.checkpoint(wait=True)

    # -- failures -----------------------------------------------------------------------

    def item_failed(
        self,
        item: Any,
        exc: Exception,
        handler: Callable[[Any, Any], Any],
        key: JSONValue | None = None,
        position: JSONValue = None,
        attempt: int = 1,
        first_try: float | None = None,
    ) -> bool:
        """The handler raised. Retry, skip or record the item and return True to go on;
        False: the job stops on this error (no tolerance), the item not done."""
        if isinstance(exc, MidwayError) and not isinstance(exc, SourceError):
            return False  # midway's own trouble (a lost lease, a store error): not the item's
        policy = self.policy
        at_most_once = self.job.guarantee == "at-most-once"
        if policy is None and not at_most_once:
            return False
        if key is None:  # from the bare loop: the item in hand
            chunk, index = self._slice_chunk, self.current_index()
            assert chunk is not None
            assert index is not None
            key = chunk.key(self._slice_start + index)
            position = chunk.position_before(self._slice_start + index)
        first_try = time.time() if first_try is None else first_try
        while policy is not None and not policy.skips(exc):
            if not policy.retries(exc, attempt, first_try, time.time()):
                break
            assert policy.retry is not None
            delay = policy.retry.delay(attempt, exc)
            if not at_most_once:  # the count survives a crash: no poison item for ever
                self.store_items([self.attempt_record(key, RETRYING, attempt, position, exc)])
            log.debug(
                "item %s failed (attempt %d of %d), retrying in %.2f s: %s",
                jsonutil.dumps(key),
                attempt,
                policy.attempts,
                delay,
                describe(exc),
            )
            if not self.pause(delay):
                self.unconsume()
                return True
            attempt += 1
            if at_most_once:
                self.store_items([self.attempt_record(key, STARTED, attempt, position, exc)])
            self.ctx.attempt = attempt
            try:
                self.call(handler, item)
            except Exception as again:
                exc = again
                continue
            finally:
                self.ctx.attempt = 1
            self.item_done(key)
            return True
        if policy is not None and policy.skips(exc):
            self.settle(key, SKIPPED, exc, attempt, position, item)
            return True
        if policy is not None and policy.tolerant:
            self.settle(key, FAILED, exc, attempt, position, item)
            if policy.exceeded(self.counters.failed, self.processed_now(), self.total):
                self.stop_error = TooManyFailures(self.too_many_message())
                self._interrupt()
            return True
        if at_most_once:  # it ran and raised: whether it took effect is unknown
            self.settle(key, IN_DOUBT, exc, attempt, position, item)
            self.stop_error = exc
            self._interrupt()
            return True
        if attempt > 1:
            self.ledger_pending.append(drop(key))  # a fixed handler starts afresh
        return False

    def attempt_record(
        self,
        key: JSONValue,
        status: str,
        attempt: int,
        position: JSONValue,
        exc: BaseException,
    ) -> ItemRecord:
        record = ItemRecord(key, status, describe(exc), None, attempt, position)
        record.updated_at = time.time()
        record.steps = self.steps.get(jsonutil.dumps(key), {})
        return record

    def settle(
        self,
        key: JSONValue,
        status: str,
        exc: BaseException | None,
        attempts: int,
        position: JSONValue,
        item: Any,
        why: str | None = None,
    ) -> None:
        """Record the item's outcome in the ledger and count it (the slice counted it as
        succeeded; this moves it)."""
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
            steps=self.steps.pop(name, {}),
        )
        self.steps_touched.discard(name)
        self.ledger_pending.append(record)
        counters = self.counters
        counters.succeeded -= 1
        setattr(counters, status, getattr(counters, status) + 1)
        if self.policy is not None and status == FAILED:
            self.policy.note(record.error_type or status, name)
        if logging_configured():
            log.warning(
                "item %s %s after %d attempt(s): %s",
                name,
                status.replace("_", " "),
                attempts,
                record.error,
                extra={"midway_job": self.key, "midway_item": record.to_json()},
            )
        elif self.failures_said < SAY_FAILURES and not self.job.quiet:
            self.failures_said += 1
            more = " (further ones are counted, not shown: `midway show`)" * (
                self.failures_said == SAY_FAILURES
            )
            say(f"item {name} {status.replace('_', ' ')}: {record.error}{more}")
        hook = self.job.on_item_failed
        if hook is not None:
            self.call_hook("on_item_failed", hook, record, exc)

    def item_json(self, item: Any) -> JSONValue:
        if not self.job.record_items:
            return None
        try:
            text = jsonutil.dumps(item)
        except (TypeError, ValueError, RecursionError):
            return None
        return item if len(text) <= MAX_ITEM_BYTES else None

    def item_done(self, key: JSONValue) -> None:
        """Forget the item's bookkeeping (started mark, attempts, steps) with the next
        checkpoint."""
        name = jsonutil.dumps(key)
        self.steps.pop(name, None)
        self.steps_touched.discard(name)
        self.ledger_pending.append(drop(key))

    def too_many_message(self) -> str:
        policy = self.policy
        assert policy is not None
        return (
            f"job {self.key!r} stopped: {self.counters.failed:,} of {self.processed_now():,} items "
            f"failed, {policy.describe_limit()} that max_failures={policy.max_failures!r} "
            f"tolerates. Most common error: {policy.most_common()}. The checkpoint is saved; "
            f"`midway show {self.key}` lists the failed items. Fix the cause, run the job "
            f"again to go on, and `midway retry {self.key}` to redo the failed ones."
        )

    def processed_now(self) -> int:
        """Items with an outcome, counting the current slice's up to the one in hand (the
        slice is counted in one go when it ends)."""
        index = self.current_index()
        return self.counters.processed + (0 if index is None else index + 1)

    def stopping(self) -> bool:
        return self._stop_signal is not None or self._lease_lost

    def pause(self, seconds: float) -> bool:
        """Wait before a retry; False if a stop (signal, lost lease) came meanwhile."""
        deadline = time.monotonic() + seconds
        while True:
            if self._stop_signal is not None or self._lease_lost:
                return False
            left = deadline - time.monotonic()
            if left <= 0:
                return True
            time.sleep(min(left, WAIT_TICK))

    def unconsume(self) -> None:
        """A stop came while the item in hand waited for a retry: it is not done."""
        self.paused_item = True
        if self._stop_index is not None and self._stop_index > 0:
            self._stop_index -= 1

    def store_items(self, records: list[ItemRecord]) -> None:
        store, lease, _ = self._parts()
        if self.transaction is not None:
            self.ledger_pending.extend(records)  # inside the open transaction anyway
            return
        store.write_items(lease, records)

    # -- ctx.step -----------------------------------------------------------------------

    def step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        if not isinstance(name, str) or not name:
            raise ConfigError("ctx.step(name, fn, ...): name must be a non-empty string")
        chunk, index = self._slice_chunk, self.current_index()
        key, position = self.retry_key, None
        if key is None and chunk is not None and index is not None:
            key = chunk.key(self._slice_start + index)
            position = chunk.position_before(self._slice_start + index)
        if key is None:
            raise ConfigError("ctx.step() is for use inside a handler, while an item is in hand")
        item_name = jsonutil.dumps(key)
        done = self.steps.get(item_name)
        if done is not None and name in done:
            self.steps_touched.add(item_name)
            return done[name]
        result = fn(*args, **kwargs)
        try:
            jsonutil.dumps(result)
        except (TypeError, ValueError, RecursionError):
            raise ConfigError(
                f"ctx.step({name!r}) returned a {type(result).__name__}, which is not JSON; "
                "a step's result is stored so that a retry can reuse it: return JSON "
                "(dict, list, str, number, bool or None)"
            ) from None
        steps = self.steps.setdefault(item_name, {})
        steps[name] = result
        self.steps_touched.add(item_name)
        record = ItemRecord(key, STEPS, attempts=self.ctx.attempt, position=position)
        record.updated_at = time.time()
        record.steps = dict(steps)
        self.store_items([record])
        return result

    def finished_steps(self) -> list[ItemRecord]:
        """Between slices no item is in hand: the steps of items touched since the last
        checkpoint belong to finished items, and go."""
        if not self.steps_touched:
            return []
        gone = [drop(json_key(name)) for name in self.steps_touched]
        for name in self.steps_touched:
            self.steps.pop(name, None)
        self.steps_touched.clear()
        return gone

    # -- the retry pass -----------------------------------------------------------------

    def retry_pass(self, handler: Callable[[Any, Any], Any]) -> None:
        """Handle the items ``midway retry`` put back, one by one, before anything else."""
        queue, self.retry_queue = self.retry_queue, []
        if not queue:
            return
        self.say_item(f"retrying {len(queue):,} item(s) put back by `midway retry`")
        found = self.find_items(queue)
        for record in queue:
            if self._stop_signal is not None or self._lease_lost or self.stop_error:
                return
            hit = found.get(jsonutil.dumps(record.key))
            if hit is None:
                self.say_item(
                    f"item {jsonutil.dumps(record.key)} is not in {self.source.describe()} any "
                    "more: left in the ledger as it was"
                )
                continue
            item, position = hit
            counters = self.counters
            counters.failed = max(counters.failed - 1, 0)  # counted as failed until now
            counters.succeeded += 1  # as the bare loop counts; settle() moves it if need be
            self.retry_key, self.paused_item = record.key, False
            try:
                self.run_one(item, record.key, position, handler)
            except BaseException:
                counters.failed, counters.succeeded = counters.failed + 1, counters.succeeded - 1
                raise
            finally:
                self.retry_key = None
            if self.paused_item:  # stopped while waiting to retry: still put back
                counters.failed, counters.succeeded = counters.failed + 1, counters.succeeded - 1
                return
            self.item_done_if_succeeded(record.key)
            self.checkpoint(wait=True)

    def item_done_if_succeeded(self, key: JSONValue) -> None:
        if not any(r.key == key and r.status != "-" for r in self.ledger_pending):
            self.ledger_pending.append(drop(key))

    def find_items(self, queue: list[ItemRecord]) -> dict[str, tuple[Any, JSONValue]]:
        """The items to retry, by key: straight at their position where the source can
        seek, else by one pass over the input."""
        found: dict[str, tuple[Any, JSONValue]] = {}
        wanted = {jsonutil.dumps(r.key): r for r in queue}
        if self.source.seekable:
            for name, record in wanted.items():
                hit = self.item_at(record.position)
                if hit is not None and jsonutil.dumps(hit[0]) == name:
                    found[name] = (hit[1], record.position)
            if len(found) == len(wanted):
                return found
        cursor = self.source.open(None)
        try:
            for chunk in cursor:
                for i, item in enumerate(chunk.items):
                    name = jsonutil.dumps(chunk.key(i))
                    if name in wanted and name not in found:
                        found[name] = (item, chunk.position_before(i))
                if len(found) == len(wanted):
                    break
        finally:
            cursor.close()
        return found

    def item_at(self, position: JSONValue) -> tuple[JSONValue, Any] | None:
        try:
            cursor = self.source.open(position)
        except MidwayError:
            return None
        try:
            for chunk in cursor:
                if chunk.items:
                    return chunk.key(0), chunk.items[0]
        finally:
            cursor.close()
        return None

    # -- hooks --------------------------------------------------------------------------

    def call_hook(self, name: str, hook: Callable[..., Any], *args: Any) -> None:
        """A failing hook is logged, never allowed to break the job it reports on."""
        try:
            hook(*args)
        except Exception as exc:
            log.warning("the %s hook raised %s; the job goes on", name, describe(exc))

    def say_item(self, message: str) -> None:
        say(message, quiet=self.job.quiet, level=logging.WARNING)


def json_key(name: str) -> JSONValue:
    import json

    value: JSONValue = json.loads(name)
    return value
