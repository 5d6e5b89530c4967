"""What happens when a handler raises: retries, skips, the failure tolerance.

The happy path never comes here: the engine's loop calls the handler with no wrapper, and
only an exception leads into :class:`FailurePolicy`, whose :meth:`FailurePolicy.decide`
is the one place that says what happens next (a :class:`Decision`: retry after a wait, skip,
record as failed and go on, or stop the job). Every path asks it: the sequential one, and a
parallel run's workers (threads, processes, coroutines). What to *record* for the item when
the job stops is the guarantee's business (at-most-once: in doubt), not the policy's.

The wait before a retry is :func:`backoff_delay`, a pure function of the attempt. midway
keeps the attempt count itself durable, so a poison item is not retried for ever across
restarts.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from midway._model.jsonutil import escape_text
from midway._model.ledger import ItemStatus
from midway._model.redaction import redact_text
from midway.errors import ConfigError

TRACEBACK_LINES = 12
MAX_ERROR = 2000


class RetryAfter(Exception):
    """Raise it from a handler to ask for another try after ``seconds`` (an API's
    ``Retry-After``). It counts as a transient failure under any ``Retry`` policy."""

    def __init__(self, seconds: float, message: str = "") -> None:
        super().__init__(message or f"asked to retry after {seconds:g} s")
        self.retry_after = float(seconds)


@dataclass(frozen=True)
class Retry:
    """How to retry an item whose handler raised.

    ``attempts``: tries in all, the first included. ``on``: the exception types worth another
    try (transient: timeouts, connection errors); ``when``: a predicate for the rest. The
    wait before try *n* is ``backoff * 2 ** (n - 2)`` plus up to ``backoff`` of jitter,
    capped at ``max_backoff``; a ``retry_after`` the exception carries (``RetryAfter``, or an
    HTTP error whose response has a ``Retry-After`` header) is honoured instead, up to
    ``max_backoff``. ``max_time``: give up on the item once that many seconds have passed
    since its first try.
    """

    attempts: int = 3
    on: tuple[type[BaseException], ...] | type[BaseException] = (Exception,)
    backoff: float = 0.5
    max_backoff: float = 30.0
    when: Callable[[BaseException], bool] | None = None
    max_time: float | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or isinstance(self.attempts, bool):
            raise ConfigError(f"Retry(attempts={self.attempts!r}): give a whole number, 1 or more")
        if self.attempts < 1:
            raise ConfigError(f"Retry(attempts={self.attempts}): give 1 or more tries in all")
        for name in ("backoff", "max_backoff"):
            value = getattr(self, name)
            if not isinstance(value, int | float) or value < 0 or not math.isfinite(value):
                raise ConfigError(f"Retry({name}={value!r}): give a number of seconds, 0 or more")
        on = self.on if isinstance(self.on, tuple) else (self.on,)
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in on):
            raise ConfigError(f"Retry(on={self.on!r}): give exception types")
        object.__setattr__(self, "on", on)

    def transient(self, exc: BaseException) -> bool:
        if isinstance(exc, RetryAfter):
            return True
        assert isinstance(self.on, tuple)
        if isinstance(exc, self.on):
            return True
        return self.when is not None and bool(self.when(exc))

    def delay(self, failed_attempt: int, exc: BaseException) -> float:
        """Seconds to wait after try ``failed_attempt`` failed with ``exc``."""
        asked = retry_after(exc)
        if asked is not None:
            return min(max(asked, 0.0), self.max_backoff)
        import random  # here, as datetime and traceback below: what only failures need

        return backoff_delay(failed_attempt, self.backoff, self.max_backoff, random.random)


def backoff_delay(
    failed_attempt: int, backoff: float, max_backoff: float, jitter: Callable[[], float]
) -> float:
    """Seconds to wait after try ``failed_attempt`` (1 for the first) failed: ``backoff``
    doubled for each try after the first, plus ``backoff`` times ``jitter()`` (a number in
    [0, 1), so runners that failed together do not retry together), capped at
    ``max_backoff``."""
    doublings = min(max(failed_attempt - 1, 0), 64)  # past 2**64 the cap has long won
    return min(backoff * 2.0**doublings + backoff * jitter(), max_backoff)


def retry_after(exc: BaseException) -> float | None:
    """A wait the exception asks for: ``exc.retry_after`` (seconds or a datetime), or the
    ``Retry-After`` header of ``exc.response`` (requests, httpx), in seconds or as a date."""
    value: Any = getattr(exc, "retry_after", None)
    if value is None:
        headers = getattr(getattr(exc, "response", None), "headers", None)
        if headers is not None and hasattr(headers, "get"):
            value = headers.get("Retry-After")
    if value is None:
        return None
    import datetime as dt

    if isinstance(value, dt.datetime):
        when = value if value.tzinfo else value.replace(tzinfo=dt.UTC)
        return (when - dt.datetime.now(dt.UTC)).total_seconds()
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            import email.utils  # an HTTP date: rare, and email is slow to import

            try:
                date = email.utils.parsedate_to_datetime(value)
            except (TypeError, ValueError):
                return None
            return (date - dt.datetime.now(dt.UTC)).total_seconds()
    return None


class Action(StrEnum):
    """What to do with an item whose handler raised."""

    RETRY = "retry"
    """Wait ``Decision.delay`` seconds, then call the handler again (the next attempt)."""
    SKIP = "skip"
    """Record the item ``skipped`` and go on."""
    FAIL = "fail"
    """Record the item ``failed`` and go on (within ``max_failures``)."""
    STOP = "stop"
    """Stop the job: too many failures (``Decision.too_many``), or no failure tolerated."""


@dataclass(frozen=True)
class Decision:
    """:meth:`FailurePolicy.decide`'s answer for one failure of one item."""

    action: Action
    delay: float = 0.0
    """``RETRY``: seconds to wait before the next try."""
    too_many: bool = False
    """``STOP``: the item is recorded ``failed`` and crossed ``max_failures``
    (:class:`~midway.errors.TooManyFailures`); otherwise nothing tolerates the failure and the
    handler's exception stops the job, the item not done."""

    @property
    def record(self) -> ItemStatus | None:
        """The item's ledger status, or None: the job stops on the handler's error and the
        guarantee says what is left of the item (at-most-once: in doubt)."""
        if self.action is Action.SKIP:
            return ItemStatus.SKIPPED
        if self.action is Action.FAIL or self.too_many:
            return ItemStatus.FAILED
        return None


SKIP = Decision(Action.SKIP)
FAIL = Decision(Action.FAIL)
STOP = Decision(Action.STOP)
TOO_MANY = Decision(Action.STOP, too_many=True)


@dataclass
class FailurePolicy:
    """The job's answer to a failing item, from ``retry``, ``skip_on`` and ``max_failures``."""

    retry: Retry | None
    skip_on: tuple[type[BaseException], ...]
    max_failures: int | float | None
    errors: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def attempts(self) -> int:
        return self.retry.attempts if self.retry is not None else 1

    @property
    def tolerant(self) -> bool:
        """Failed items are recorded and the job goes on (``max_failures`` was given)."""
        return self.max_failures is not None

    def skips(self, exc: BaseException) -> bool:
        return bool(self.skip_on) and isinstance(exc, self.skip_on)

    def retries(self, exc: BaseException, attempt: int, first_try_at: float, now: float) -> bool:
        retry = self.retry
        if retry is None or attempt >= retry.attempts or not retry.transient(exc):
            return False
        return retry.max_time is None or now - first_try_at < retry.max_time

    def decide(
        self,
        exc: BaseException,
        attempt: int,
        first_try_at: float,
        now: float,
        *,
        failed: int | None = None,
        processed: int = 0,
        total: int | None = None,
    ) -> Decision:
        """What to do now that try ``attempt`` (1 for the first) of an item raised ``exc``.

        ``first_try_at`` and ``now`` are wall-clock seconds (``Retry.max_time``). ``failed``
        and ``processed`` are the run's counts *before* this item; given, a failure that
        would cross ``max_failures`` stops the job (``TOO_MANY``). A parallel run's worker
        does not know them (the counts are its runner's): it decides without, and the runner
        asks :meth:`exceeded` once it has counted the failure. midway's own errors (a lost
        lease, a store error) are not the item's and never come here.
        """
        if self.skips(exc):
            return SKIP
        if self.retries(exc, attempt, first_try_at, now):
            assert self.retry is not None
            return Decision(Action.RETRY, delay=self.retry.delay(attempt, exc))
        if not self.tolerant:
            return STOP
        if failed is not None and self.exceeded(failed + 1, processed + 1, total):
            return TOO_MANY
        return FAIL

    def note(self, error_type: str, key: str) -> None:
        self.errors[error_type] += 1
        examples = self.examples.setdefault(error_type, [])
        if len(examples) < 3:
            examples.append(key)

    def exceeded(self, failed: int, processed: int, total: int | None) -> bool:
        limit = self.max_failures
        if limit is None:
            return False
        if isinstance(limit, int):
            return failed > limit
        if total:
            return failed > limit * total
        # No total: judge the fraction once enough items were seen for it to mean something.
        return processed >= math.ceil(1 / limit) and failed > limit * processed

    def describe_limit(self) -> str:
        limit = self.max_failures
        if isinstance(limit, float):
            return f"more than {limit:.1%} of the items"
        return f"more than {limit} items"

    def most_common(self) -> str:
        if not self.errors:
            return "no error recorded in this run"
        error_type, count = self.errors.most_common(1)[0]
        keys = ", ".join(self.examples.get(error_type, []))
        return f"{error_type} ({count:,} times in this run, e.g. items {keys})"


def describe(exc: BaseException) -> str:
    """``ValueError: bad date`` (bounded), as the ledger keeps it."""
    text = escape_text(redact_text(f"{type(exc).__name__}: {exc}"))
    return text if len(text) <= MAX_ERROR else text[: MAX_ERROR - 1] + "…"


def short_traceback(exc: BaseException) -> str:
    """The last frames of the traceback: enough to find the line, small enough to keep."""
    import traceback

    lines = traceback.format_exception(exc)
    text = escape_text(redact_text("".join(lines[-TRACEBACK_LINES:])))
    return text[-4000:]
