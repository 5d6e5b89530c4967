"""One batch's handler calls: the retries of a raising batch, the halving that isolates the
records that make it raise, and the per-record outcomes ``ctx.fail`` / ``ctx.skip`` stage.

``retry=`` retries the batch as a whole. When the tries are spent and a failure policy
(``skip_on`` / ``max_failures``) says to record the failure, the batch is split in halves,
and the halves again, each tried once, until the records that raise are alone: those are
recorded (failed or skipped), the others succeed (Spring Batch's "scan"). At-most-once never
runs a record twice, so there the whole batch is recorded instead of split. Without a policy
the error stops the job at the batch, as an item's would.

Outcomes staged during a call take effect only when it returns: a handler that raises after
``ctx.fail`` leaves no trace of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midway._model import jsonutil
from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemStatus
from midway.errors import ConfigError, MidwayError, SourceError
from midway.run.batch import Batch, Outcome
from midway.run.failures import Action
from midway.run.guarantees import Guarantee
from midway.run.itemflow import NO_POLICY, ItemFlow
from midway.run.runstate import RunState

Handler = Callable[[Any, Any], Any]
OUTSIDE = (
    "ctx.{what} is for a batch handler, while its batch is in hand: "
    "job.run(source, handler, batch=N) or job.loop(source, batch=N)"
)


def ours(exc: BaseException) -> bool:
    """midway's own trouble (a lost lease, a store error): not the batch's."""
    return isinstance(exc, MidwayError) and not isinstance(exc, SourceError)


@dataclass(eq=False)
class BatchCalls:
    """See the module docstring."""

    run: RunState
    flow: ItemFlow
    guarantee: Guarantee
    ctx: Any
    current: Batch | None = field(default=None, init=False)
    """The batch (or part of it) the handler has in hand on the careful path."""
    staged: dict[str, Outcome] = field(default_factory=dict, init=False)

    def handle(self, batch: Batch, handler: Handler, raised: Exception | None = None) -> None:
        """Call the handler for the batch (``raised``: its first call, made by the fast
        path, raised that); its outcomes end in ``batch.outcomes``; ``batch.waited_out``
        when a stop came while it waited."""
        if not batch.items:
            return
        attempt, first_try = 1, time.time()
        while True:
            exc, raised = raised, None
            batch.attempts = attempt
            if exc is None:
                try:
                    batch.outcomes.update(self.call(batch, handler, attempt))
                    return
                except Exception as error:
                    exc = error
            policy = self.flow.policy
            if ours(exc) or (policy is None and not self.guarantee.in_doubt_on_failure):
                raise exc
            decision = (policy or NO_POLICY).decide(exc, attempt, first_try, time.time())
            if decision.action is not Action.RETRY:
                self.give_up(batch, handler, exc, decision.record)
                return
            if not self.flow.pause(decision.delay):
                batch.waited_out = True
                return
            attempt += 1

    def call(self, batch: Batch, handler: Handler, attempt: int) -> dict[str, Outcome]:
        """One call of the handler; the per-record outcomes it staged (none if it raised)."""
        ctx = self.ctx
        self.current, self.staged = batch, {}
        ctx.attempt = attempt
        try:
            self.guarantee.call(handler, batch.items, ctx)
            return self.staged
        finally:
            self.current, self.staged = None, {}
            ctx.attempt = 1

    def give_up(
        self, batch: Batch, handler: Handler, exc: Exception, status: ItemStatus | None
    ) -> None:
        """No more tries: record the batch's records, split it to find the ones that raise,
        or stop the job at it."""
        if status is None:
            if not self.guarantee.in_doubt_on_failure:
                raise exc
            status = ItemStatus.IN_DOUBT  # at-most-once: it ran and raised, took effect?
            batch.error = exc
        if status == ItemStatus.IN_DOUBT or self.guarantee.marks_started or len(batch.items) < 2:
            batch.fail_all(status, exc)
            return
        self.split(batch, handler, batch.outcomes)

    def split(self, batch: Batch, handler: Handler, outcomes: dict[str, Outcome]) -> None:
        """Halves, each tried once, until the records that raise are alone."""
        half = len(batch.items) // 2
        for part in (batch.sub(0, half), batch.sub(half, len(batch.items))):
            try:
                outcomes.update(self.call(part, handler, 1))
            except Exception as exc:
                if ours(exc):
                    raise
                if len(part.items) > 1:
                    self.split(part, handler, outcomes)
                    continue
                policy = self.flow.policy or NO_POLICY
                if policy.skips(exc):
                    status = ItemStatus.SKIPPED
                elif policy.tolerant:
                    status = ItemStatus.FAILED
                else:
                    raise
                outcome = part.outcome(0, status, exc)
                outcomes[jsonutil.dumps(outcome[0])] = outcome

    # -- what ctx asks ------------------------------------------------------------------

    def in_hand(self, what: str) -> tuple[Batch, dict[str, Outcome]]:
        """The batch the handler has in hand, and where its outcomes are staged."""
        if self.current is None:
            raise ConfigError(OUTSIDE.format(what=what))
        return self.current, self.staged

    def batch_keys(self) -> list[JSONValue]:
        return list(self.in_hand("keys")[0].keys())

    def batch_outcome(self, what: str, key: JSONValue, status: ItemStatus, error: Any) -> None:
        """``ctx.fail`` / ``ctx.skip``: staged until the handler returns."""
        stage(self.in_hand(what), what, key, status, error)


def stage(
    where: tuple[Batch, dict[str, Outcome]],
    what: str,
    key: JSONValue,
    status: ItemStatus,
    error: Any,
) -> None:
    """Stage record ``key``'s outcome for the batch in hand (``where``)."""
    batch, staged = where
    if error is not None and not isinstance(error, BaseException | str):
        raise ConfigError(f"ctx.{what}(key, error): give an exception or a text as error")
    outcome = batch.outcome(batch.index_of(key, what), status, error)
    staged[jsonutil.dumps(outcome[0])] = outcome
