"""``ctx``: what a handler may ask about the item in hand."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemStatus


class ItemView(Protocol):
    """What ``ctx`` asks of the run it belongs to (the engine provides it)."""

    @property
    def key(self) -> str:
        """The job's key."""
        ...

    @property
    def run_id(self) -> str: ...

    def current_key(self) -> JSONValue:
        """The key of the item in hand (None when no item is in hand)."""
        ...

    def current_position(self) -> JSONValue: ...

    def idempotency_key(self, key: JSONValue) -> str: ...

    def step(self, name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Any) -> Any:
        """``ctx.step`` for the item in hand."""
        ...

    def batch_keys(self) -> list[JSONValue]:
        """The keys of the batch in hand (a batch handler's)."""
        ...

    def batch_outcome(self, what: str, key: JSONValue, status: ItemStatus, error: Any) -> None:
        """One record of the batch in hand failed or was skipped."""
        ...

    def approval(self, question: Any, data: Any) -> bool:
        """``ctx.approval`` for the item in hand (see run/approvals.py)."""
        ...


class Context:
    """Passed to ``handler(item, ctx)``; also ``loop.ctx``.

    ``state`` is the job's accumulated results (a JSON dict saved with every checkpoint);
    ``key`` and ``position`` describe the item in hand and are worked out only when asked.
    """

    __slots__ = ("_run", "attempt", "state", "transaction")

    def __init__(self, run: ItemView, state: dict[str, Any]) -> None:
        self._run = run
        self.state: dict[str, Any] = state
        self.attempt = 1
        self.transaction: Any = None

    @property
    def job(self) -> str:
        return self._run.key

    @property
    def key(self) -> JSONValue:
        """The identity of the item in hand (``key=`` of the source, else its number)."""
        return self._run.current_key()

    @property
    def position(self) -> JSONValue:
        """Where the item in hand starts; resuming there would handle it again."""
        return self._run.current_position()

    @property
    def idempotency_key(self) -> str:
        """Stable for this job and item across runs and machines: hand it to APIs that
        deduplicate requests (an ``Idempotency-Key`` header). In a batch handler: the
        batch's, the same whenever the batch is handled again."""
        return self._run.idempotency_key(self.key)

    @property
    def run_id(self) -> str:
        return self._run.run_id

    def step(self, name: str, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        """Run ``fn(*args, **kwargs)`` once for this item, durably: its JSON result is
        stored, and when the item is retried or resumed after a crash, a step it already
        finished returns the stored result instead of running again. The records go when
        the item is done."""
        return self._run.step(name, fn, args, kwargs)

    @property
    def keys(self) -> list[JSONValue]:
        """Inside a batch handler (``batch=N``): the keys of its items, in order."""
        return self._run.batch_keys()

    def fail(self, key: JSONValue, error: BaseException | str) -> None:
        """Inside a batch handler: the record ``key`` failed (an API rejected it), with
        ``error`` (an exception or a text). It goes to the ledger as a failed item does
        (``midway failed``, ``midway retry``); the rest of the batch succeeds. Takes effect
        when the handler returns."""
        self._run.batch_outcome("fail", key, ItemStatus.FAILED, error)

    def skip(self, key: JSONValue, reason: str | None = None) -> None:
        """Inside a batch handler: the record ``key`` is skipped, for ``reason``."""
        self._run.batch_outcome("skip", key, ItemStatus.SKIPPED, reason)

    def approval(self, question: str, data: Any = None) -> bool:
        """A person's decision on the item in hand: True to go ahead, False rejected.

        The first time, nobody has answered: the item is recorded *waiting* (with
        ``question``, ``data`` as JSON and the time), the handler ends here, and the job goes
        on with the next items; a run that ends with items waiting ends ``waiting``. Once
        ``midway approve JOB KEY`` (or ``--reject``, or ``job.approve``) has answered, the
        next run hands the item to the handler again and this returns the answer at once.
        The handler runs again from its start: what it did before the question must be in
        ``ctx.step`` (not run again) or be harmless to repeat."""
        return self._run.approval(question, data)

    def __repr__(self) -> str:
        return f"<midway.Context job={self.job!r} key={self.key!r} attempt={self.attempt}>"
