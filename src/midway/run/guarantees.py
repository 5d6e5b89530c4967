"""The three guarantees, one class each: what happens before an item, around it, after it,
and when a run starts fresh.

The run picks one object with :func:`for_settings` and asks it; nothing else compares the
``guarantee=`` string. The interface, for every path that handles items (one by one here,
on a pool in ``parallel.py``):

* ``careful``: every item goes through the careful per-item path (never the bare loop);
* ``marks_started``: an item is marked *started* on disk before its handler runs (its mark
  is a checkpoint), so a crash leaves it *in doubt* rather than running it twice;
* ``group_commit``: checkpoints may be committed in the background while items go on;
* ``in_doubt_on_failure``: an item whose handler raised, with no tolerance left, is
  recorded in doubt and stops the job (it may have taken effect);
* :meth:`Guarantee.start_mark`, :meth:`Guarantee.attempt_mark`: the ledger records that must
  be on disk before the handler runs (or runs again);
* :meth:`Guarantee.call`: run the handler (exactly-once: inside a savepoint of the
  transaction the next checkpoint commits).
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

from midway._model.jsonutil import JSONValue
from midway._model.ledger import ItemRecord, ItemStatus
from midway._model.owner import iso
from midway._model.settings import Settings
from midway.errors import RefusedError
from midway.run.handlers import check_result
from midway.run.transaction import TransactionConnection
from midway.stores import Lease, Store
from midway.stores.base import FINISHED
from midway.stores.location import fresh_at_most_once

Handler = Callable[[Any, Any], Any]
SAVEPOINT = "midway_item"


class Guarantee:
    """At-least-once, the default: after a crash at most one interval is handled again."""

    name = "at-least-once"
    careful = False
    marks_started = False
    in_doubt_on_failure = False
    group_commit = True

    def refuse_fresh_start(self, store: Store, key: str) -> None:
        """Called when a run starts from the beginning (no checkpoint)."""

    def first_start_warning(self, key: str, where: str, source: str) -> str | None:
        """What to say instead of "starting from the beginning" when the job never ran."""
        return None

    def begin(self, store: Store, lease: Lease) -> TransactionConnection | None:
        """Before the first item; returns what ``ctx.transaction`` is."""
        return None

    def start_mark(self, key: JSONValue, position: JSONValue, attempt: int) -> ItemRecord | None:
        """A record to commit (with a checkpoint) before the handler runs, or None."""
        return None

    def attempt_mark(
        self, key: JSONValue, position: JSONValue, failed_attempt: int, *, waited: bool
    ) -> ItemStatus | None:
        """The status of the record that keeps a retry's attempt count durable, written
        before the wait (``waited=False``) or after it: here, before, so that a poison item
        is not retried for ever across crashes."""
        return None if waited else ItemStatus.RETRYING

    def forgets_after(self, attempt: int, has_steps: bool) -> bool:
        """Whether an item that succeeded leaves a record to drop with the next checkpoint."""
        return attempt > 1 or has_steps

    def call(self, handler: Handler, item: Any, ctx: Any) -> None:
        if (returned := handler(item, ctx)) is not None:
            check_result(returned)

    @property
    def records_ride_with_checkpoint(self) -> bool:
        """Ledger records wait for the next checkpoint's commit instead of their own."""
        return False

    def committed(self) -> None:
        """A checkpoint was committed (on this thread)."""

    @property
    def holds_writes(self) -> bool:
        """The handler's writes since the last checkpoint wait for the next one's commit:
        a run that completes must write a last checkpoint, or they are rolled back."""
        return False

    def discard_uncommitted(self, store: Store | None) -> None:
        """The run ends or rolls back: drop what was written since the last checkpoint."""


class AtMostOnce(Guarantee):
    """A handler never runs twice for an item; one whose fate a crash left unknown is
    reported *in doubt*."""

    name = "at-most-once"
    careful = True
    marks_started = True
    in_doubt_on_failure = True
    group_commit = False  # the marks are on disk before the handlers run

    def refuse_fresh_start(self, store: Store, key: str) -> None:
        """A job that completed does not start again by itself: running the same command
        twice must not send every e-mail twice."""
        record = store.get_job(key)
        if record is None or record.status not in FINISHED:
            return
        ended = iso((record.summary or {}).get("ended_at")) or "earlier"
        raise RefusedError(
            f"job {key!r} (guarantee='at-most-once') already completed at {ended}; "
            "running it again would handle every item a second time, so midway refuses. To "
            "handle failed or in-doubt items again: `midway retry` / `midway resolve`; to "
            f"start over on purpose: midway reset {shlex.quote(key)} --yes"
        )

    def first_start_warning(self, key: str, where: str, source: str) -> str | None:
        return fresh_at_most_once(key, where, source)

    def start_mark(self, key: JSONValue, position: JSONValue, attempt: int) -> ItemRecord | None:
        return ItemRecord(
            key, ItemStatus.STARTED, attempts=attempt, position=position, updated_at=time.time()
        )

    def attempt_mark(
        self, key: JSONValue, position: JSONValue, failed_attempt: int, *, waited: bool
    ) -> ItemStatus | None:
        """The next try is marked started once the wait is over, as the first was."""
        return ItemStatus.STARTED if waited else None

    def forgets_after(self, attempt: int, has_steps: bool) -> bool:
        return True  # its started mark goes


class ExactlyOnce(Guarantee):
    """``ctx.transaction`` writes into the store's database commit with the checkpoint."""

    name = "exactly-once"
    careful = True
    group_commit = False  # one transaction, committed by the checkpoint on this thread

    def __init__(self) -> None:
        self.connection: Any = None
        self.open = False
        self._store: Store | None = None
        self._lease: Lease | None = None

    def begin(self, store: Store, lease: Lease) -> TransactionConnection | None:
        self._store, self._lease = store, lease
        self.connection = store.begin_transaction(lease)
        self.open = True
        return TransactionConnection(self.connection)

    def call(self, handler: Handler, item: Any, ctx: Any) -> None:
        """Inside a savepoint of the open transaction, so a failing item's writes go and the
        finished items' stay."""
        conn = self.connection
        if not self.open:
            assert self._store is not None
            assert self._lease is not None
            self._store.begin_transaction(self._lease)
            self.open = True
        conn.execute(f"SAVEPOINT {SAVEPOINT}")
        try:
            super().call(handler, item, ctx)
        except BaseException:
            conn.execute(f"ROLLBACK TO SAVEPOINT {SAVEPOINT}")
            conn.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")
            raise
        conn.execute(f"RELEASE SAVEPOINT {SAVEPOINT}")

    @property
    def records_ride_with_checkpoint(self) -> bool:
        return self.connection is not None  # inside the open transaction anyway

    def committed(self) -> None:
        self.open = False  # write_checkpoint committed the handler's writes too

    @property
    def holds_writes(self) -> bool:
        return self.connection is not None and self.open

    def discard_uncommitted(self, store: Store | None) -> None:
        if self.connection is not None and self.open and store is not None:
            store.rollback_transaction()
            self.open = False


def for_settings(settings: Settings) -> Guarantee:
    """The strategy for ``settings.guarantee``."""
    if settings.guarantee == "at-most-once":
        return AtMostOnce()
    if settings.guarantee == "exactly-once":
        return ExactlyOnce()
    return Guarantee()
