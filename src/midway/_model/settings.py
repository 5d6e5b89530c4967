"""Every option of a job, checked once: ``Settings`` is built by ``Job`` and read by the run.

A wrong option is a :class:`midway.ConfigError` when the job is made, never a surprise at the
first item. Building also settles the options that depend on each other (exactly-once
checkpoints within half the lease), so whoever reads a ``Settings`` reads final values.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from midway.errors import ConfigError

Guarantee = Literal["at-least-once", "at-most-once", "exactly-once"]
DriftPolicy = Literal["refuse", "restart", "continue"]
Executor = Literal["thread", "process", "async"]
GUARANTEES = ("at-least-once", "at-most-once", "exactly-once")
DRIFT_POLICIES = ("refuse", "restart", "continue")
EXECUTORS = ("thread", "process", "async")
RATE_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


@runtime_checkable
class RetryRule(Protocol):
    """What the run asks of ``retry=`` (a :class:`midway.Retry`)."""

    @property
    def attempts(self) -> int: ...

    @property
    def max_time(self) -> float | None: ...

    def transient(self, exc: BaseException) -> bool: ...

    def delay(self, failed_attempt: int, exc: BaseException) -> float: ...


@dataclass(frozen=True)
class Settings:
    """The options of ``midway.Job`` (see its docstring), validated when built."""

    every: int | None = 1000
    every_seconds: float | None = 10.0
    guarantee: Guarantee = "at-least-once"
    durable: bool = True
    on_drift: DriftPolicy = "refuse"
    lease_ttl: float = 5.0
    max_lag: float = 0.05
    progress: bool | None = None
    quiet: bool = False
    retry: RetryRule | None = None
    skip_on: tuple[type[BaseException], ...] = ()
    max_failures: int | float | None = None
    record_items: bool = True
    on_item_failed: Callable[..., Any] | None = None
    on_checkpoint: Callable[[dict[str, Any]], Any] | None = None
    on_finish: Callable[..., Any] | None = None
    workers: int = 1
    executor: Executor = "thread"
    window: int | None = None
    merge: Callable[[dict[str, Any], dict[str, Any]], Any] | None = None
    rate: str | None = None
    partitions: int = 1
    batch: int | None = None
    """``job.run(..., batch=N)``: the handler gets lists of up to N items."""
    batch_seconds: float | None = None
    """Hand over a partial batch when the source took this long to fill one."""
    on_waiting: Callable[..., Any] | None = None
    """Called with the ledger record of each item that starts to wait (``ctx.approval``)."""

    def __post_init__(self) -> None:
        every = _positive_int("every", self.every)
        every_seconds = _positive_float("every_seconds", self.every_seconds)
        if every is None and every_seconds is None:
            raise ConfigError(
                "every and every_seconds are both None, so the job would never checkpoint; "
                "set at least one (e.g. every=1000)"
            )
        _choice("guarantee", self.guarantee, GUARANTEES)
        _choice("on_drift", self.on_drift, DRIFT_POLICIES)
        lease_ttl = _positive_float("lease_ttl", self.lease_ttl) or 5.0
        self._set(
            every=every,
            every_seconds=every_seconds,
            durable=bool(self.durable),
            lease_ttl=lease_ttl,
            max_lag=_seconds("max_lag", self.max_lag),
        )
        if self.retry is not None and not isinstance(self.retry, RetryRule):
            raise ConfigError(f"retry={self.retry!r}: give a midway.Retry(...), or None")
        self._set(
            skip_on=check_skip_on(self.skip_on),
            max_failures=check_max_failures(self.max_failures),
            record_items=bool(self.record_items),
        )
        for name in ("on_item_failed", "on_checkpoint", "on_finish", "on_waiting"):
            hook = getattr(self, name)
            if hook is not None and not callable(hook):
                raise ConfigError(f"{name}= must be a function, not {type(hook).__name__}")
        self._set(
            workers=_positive_int("workers", self.workers) or 1,
            partitions=_positive_int("partitions", self.partitions) or 1,
        )
        _choice("executor", self.executor, EXECUTORS)
        self._set(window=_positive_int("window", self.window))
        if self.merge is not None and not callable(self.merge):
            raise ConfigError("merge= must be a function merge(state, contribution)")
        if self.rate is not None:
            rate_interval(self.rate)  # checked now, not at the first item
        self._settle_guarantee()
        self._settle_batch()

    def _settle_batch(self) -> None:
        """``batch=``: checkpoints fall between batches only, so ``every`` is rounded up to
        whole batches."""
        batch = self.batch
        if batch is None:
            if self.batch_seconds is not None:
                raise ConfigError(
                    f"batch_seconds={self.batch_seconds!r} needs batch=N: it says when to "
                    "hand over a partial batch"
                )
            return
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            raise ConfigError(f"batch={batch!r}: give a whole number of items, 1 or more")
        self._set(batch_seconds=_positive_float("batch_seconds", self.batch_seconds))
        if self.workers > 1 and self.executor != "thread":
            raise ConfigError(
                f"batch= with executor={self.executor!r} is not supported: batches run in "
                "parallel on threads (executor='thread', the default); a batch handler that "
                "waits on an API gains nothing from processes, and an async one can run its "
                "calls concurrently inside the batch"
            )
        if self.every is not None:
            self._set(every=-(-self.every // batch) * batch)

    def _settle_guarantee(self) -> None:
        if self.guarantee != "exactly-once":
            return
        if self.workers > 1:
            raise ConfigError(
                "guarantee='exactly-once' runs items one at a time: the items' writes share "
                "one transaction with the checkpoint; use workers=1 with it (or at-least-once "
                "with idempotent writes for parallel work)"
            )
        # The handler's transaction holds the store's write lock until the checkpoint
        # commits it: checkpoint well within the lease, so the heartbeat gets through.
        cap = self.lease_ttl / 2
        self._set(every_seconds=min(self.every_seconds or cap, cap))

    def _set(self, **values: Any) -> None:
        for name, value in values.items():
            object.__setattr__(self, name, value)

    def check_for_loop(self) -> None:
        """``job.loop``: the options a plain ``for`` loop cannot honour."""
        if self.guarantee != "at-least-once":
            raise ConfigError(
                f"guarantee={self.guarantee!r} needs job.run(source, handler): midway must "
                "see where each item's work begins and ends"
            )
        if self.workers > 1:
            raise ConfigError(
                "workers= needs job.run(source, handler): a loop body runs on your thread"
            )
        if self.retry is not None:
            raise ConfigError(
                "retry= needs job.run(source, handler): a loop body cannot be run again for "
                "a retry; use a handler function (skip_on= and max_failures= do work with a "
                "loop: they let it pass records the source cannot read)"
            )

    @property
    def fails_fast(self) -> bool:
        """No retry, skip or tolerance asked for: the first failure stops the job."""
        return self.retry is None and not self.skip_on and self.max_failures is None


def rate_interval(spec: str) -> float:
    """``rate="50/s"``: seconds between item starts (also ``/m``, ``/h``)."""
    count, _, per = str(spec).partition("/")
    seconds = RATE_UNITS.get(per.strip())
    try:
        rate = float(count)
    except ValueError:
        rate = 0.0
    if seconds is None or rate <= 0:
        raise ConfigError(f"rate={spec!r}: give items per time, e.g. '50/s', '600/m', '1000/h'")
    return seconds / rate


def check_max_failures(value: int | float | None) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(
            f"max_failures={value!r}: give a count (e.g. 10), a fraction below 1 (0.05 for "
            "5%), or None to stop at the first failure"
        )
    if isinstance(value, int):
        if value < 0:
            raise ConfigError(f"max_failures={value}: give a count of 0 or more")
        return value
    if not 0 < value < 1:
        raise ConfigError(
            f"max_failures={value!r}: a fraction is above 0 and below 1 (0.05 for 5%); for a "
            "count give a whole number"
        )
    return value


def check_skip_on(value: Any) -> tuple[type[BaseException], ...]:
    if value is None:
        return ()
    types = value if isinstance(value, tuple | list) else (value,)
    if not all(isinstance(t, type) and issubclass(t, BaseException) for t in types):
        raise ConfigError(f"skip_on={value!r}: give exception types, e.g. (ValueError,)")
    return tuple(types)


def _choice(name: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name}={value!r}: choose one of {', '.join(choices)}")


def _positive_int(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"{name}={value!r}: give a whole number of items, 1 or more, or None")
    return value


def _positive_float(name: str, value: float | None) -> float | None:
    if value is None:
        return None
    if not _finite_number(value) or value <= 0:
        raise ConfigError(f"{name}={value!r}: give a number of seconds above 0, or None")
    return float(value)


def _seconds(name: str, value: float) -> float:
    if not _finite_number(value) or value < 0:
        raise ConfigError(f"{name}={value!r}: give a number of seconds, 0 or more")
    return float(value)


def _finite_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
