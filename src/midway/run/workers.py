"""The worker side of ``workers=N``: one item with its retries, in a thread, a process of
the pool, or a coroutine, and what it sends back.

What runs here must pickle (a process pool): the handler, the item, the :class:`WorkerContext`
and the :class:`FailurePolicy`; it never touches the store or the run. What to do when the
handler raises is :meth:`FailurePolicy.decide`'s answer, as on the sequential path.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from midway._model.jsonutil import JSONValue
from midway.errors import ConfigError
from midway.run.failures import Action, Decision, FailurePolicy, describe, short_traceback
from midway.run.handlers import check_result

PARENT_CHECK_SECONDS = 0.1
"""How often a process worker checks that the run that started it is still there."""


class WorkerContext:
    """``ctx`` inside a parallel handler: about this item only."""

    __slots__ = (
        "attempt",
        "idempotency_key",
        "job",
        "key",
        "position",
        "seed",
        "state",
        "transaction",
    )

    def __init__(
        self,
        job: str,
        key: JSONValue,
        position: JSONValue,
        idem: str,
        seed: dict[str, Any] | None = None,
    ) -> None:
        self.job = job
        self.seed = seed or {}
        self.key = key
        self.position = position
        self.idempotency_key = idem
        self.attempt = 1
        self.state: dict[str, Any] = self.fresh()
        self.transaction = None

    def fresh(self) -> dict[str, Any]:
        """A new contribution: each declared reducer's key at its start (lists new)."""
        return {k: list(v) if isinstance(v, list) else v for k, v in self.seed.items()}

    def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        raise ConfigError("ctx.step() is not available with workers= in this version")

    def approval(self, question: str, data: Any = None) -> bool:
        raise ConfigError("ctx.approval() is not available with workers= in this version")


@dataclass
class Outcome:
    """What a worker sends back: the item's contribution to merge, or the policy's decision
    on its last failure and what to record of it."""

    state: dict[str, Any] = field(default_factory=dict)
    attempts: int = 1
    decision: Decision | None = None
    """None: the handler succeeded."""
    error: str | None = None
    traceback: str | None = None
    exception: BaseException | None = None
    """The handler's error, when it stops the job (``decision.record`` is None)."""


def attempt_item(
    handler: Callable[[Any, Any], Any],
    item: Any,
    ctx: WorkerContext,
    policy: FailurePolicy,
) -> Outcome:
    """One item, with its retries, in a worker (a thread, or a process of the pool)."""
    first = time.time()
    while True:
        ctx.state = ctx.fresh()
        try:
            returned = handler(item, ctx)
        except Exception as exc:
            decision = policy.decide(exc, ctx.attempt, first, time.time())
            if decision.action is not Action.RETRY:
                return gave_up(decision, exc, ctx.attempt)
            time.sleep(decision.delay)
            ctx.attempt += 1
            continue
        if returned is not None:
            check_result(returned)  # raises: the job stops, this item not done
        return Outcome(ctx.state, ctx.attempt)


async def attempt_item_async(
    handler: Callable[[Any, Any], Any],
    item: Any,
    ctx: WorkerContext,
    policy: FailurePolicy,
    limit: asyncio.Semaphore,
) -> Outcome:
    """One item, with its retries, as a coroutine on the run's event loop."""
    async with limit:
        first = time.time()
        while True:
            ctx.state = ctx.fresh()
            try:
                await handler(item, ctx)
                return Outcome(ctx.state, ctx.attempt)
            except Exception as exc:
                decision = policy.decide(exc, ctx.attempt, first, time.time())
                if decision.action is not Action.RETRY:
                    return gave_up(decision, exc, ctx.attempt)
                await asyncio.sleep(decision.delay)
                ctx.attempt += 1


def gave_up(decision: Decision, exc: BaseException, attempts: int) -> Outcome:
    """The outcome of an item that will not be tried again: recorded (skipped, failed) and
    the run goes on, or the job stops on ``exc``."""
    outcome = Outcome({}, attempts, decision, describe(exc), short_traceback(exc))
    if decision.record is None:
        outcome.exception = exc
    return outcome


def merge_state(state: dict[str, Any], part: dict[str, Any]) -> None:
    """The default merge: numbers add up, lists extend, dicts merge, the rest replaces."""
    for name, value in part.items():
        old = state.get(name)
        if isinstance(value, bool) or old is None:
            state[name] = value
        elif isinstance(value, int | float) and isinstance(old, int | float):
            state[name] = old + value
        elif isinstance(value, list) and isinstance(old, list):
            old.extend(value)
        elif isinstance(value, dict) and isinstance(old, dict):
            merge_state(old, value)
        else:
            state[name] = value


def end_with_parent() -> None:
    """A process pool's initializer: the worker exits as soon as the run's process is gone.

    A run killed with SIGKILL cannot shut its pool down. Its workers would finish the item
    in hand, then wait for work forever: a process per worker left behind, each able to act
    on an item while a new run, which took the job over from the dead one, handles it too.
    So each worker watches for being re-parented (its parent died) and then exits at once,
    within ``PARENT_CHECK_SECONDS``, leaving the item in hand to the next run."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_SECONDS)
        os._exit(1)

    threading.Thread(target=watch, name="midway-parent-watch", daemon=True).start()
