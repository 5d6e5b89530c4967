"""The run's background thread: group commit of checkpoints, and the lease's heartbeat.

A durable commit waits for the disk (a few hundred microseconds to milliseconds); a thousand
trivial items take less. So the engine hands each checkpoint to this thread and keeps going.
At most one commit is in flight; a checkpoint that falls due meanwhile waits in a one-place
slot, and a newer one replaces it. When items go faster than the store commits, midway
checkpoints as often as the store can; when they go slower, every checkpoint is committed
before the next one falls due, exactly as if the engine waited. (The engine bounds how far
it may run ahead: see ``Engine._bound_lag``.)

The snapshot is taken on the engine's thread (state already encoded as JSON, counters
copied, position computed), so this thread never reads anything the handler can change.

Between commits the same thread renews the lease every ``ttl / 3`` seconds, with its own
connection to the store; if the lease was taken over it tells the engine, which stops.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from midway._model.checkpoint import Checkpoint
from midway.errors import LeaseLost, MidwayError
from midway.run.tracing import OFF, Tracing
from midway.stores import Lease, Store, open_store
from midway.stores.base import lost_message


class Keeper:
    def __init__(
        self,
        url: str,
        durable: bool,
        lease: Lease,
        *,
        on_error: Callable[[], None],
        on_lease_lost: Callable[[], None],
        tracing: Tracing = OFF,
        connect_now: bool = True,
    ) -> None:
        """``connect_now``: open the store as the thread starts; else at the first
        heartbeat or checkpoint (for runs that commit on their own thread)."""
        self._url = url
        self._connect_now = connect_now
        self._tracing = tracing  # a span per commit, child of the run's (run/tracing.py)
        self._durable = durable
        self._lease = lease
        self._on_error = on_error
        self._on_lease_lost = on_lease_lost
        self._beat = lease.ttl / 3
        self._cond = threading.Condition()
        self._pending: Checkpoint | None = None
        self._busy = False
        self._closed = False
        self.error: BaseException | None = None
        self.committed: Checkpoint | None = None
        self._thread = threading.Thread(target=self._run, name="midway-keeper", daemon=True)
        self._thread.start()

    @property
    def pending_or_busy(self) -> bool:
        """A checkpoint is waiting or being committed (read without the lock: a hint)."""
        return self._busy or self._pending is not None

    @property
    def has_pending(self) -> bool:
        """A checkpoint waits for the commit in flight (read without the lock: a hint)."""
        return self._pending is not None

    @property
    def lease_lost(self) -> bool:
        return isinstance(self.error, LeaseLost)

    def submit(self, checkpoint: Checkpoint) -> None:
        """Queue ``checkpoint`` (replacing one not yet started); raise an earlier failure."""
        with self._cond:
            if self.error is not None:
                raise self.error
            replaced = self._pending
            if replaced is not None:  # its ledger records and history point go along
                checkpoint.ledger[:0] = replaced.ledger
                checkpoint.sample = checkpoint.sample or replaced.sample
            self._pending = checkpoint
            if not self._busy:
                self._cond.notify_all()

    def flush(self) -> None:
        """Wait until everything submitted is committed; raise if a commit failed."""
        with self._cond:
            while (self._pending is not None or self._busy) and self.error is None:
                self._cond.wait()
            if self.error is not None:
                raise self.error

    def close(self) -> None:
        """Commit what is pending, then stop the thread (a failure stays in ``error``)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _next(self, next_beat: float) -> Checkpoint | None:
        """Wait for a checkpoint, the next heartbeat, or the end; None means beat or end."""
        with self._cond:
            while self._pending is None and not self._closed:
                timeout = next_beat - time.monotonic()
                if timeout <= 0:
                    return None
                self._cond.wait(timeout)
            checkpoint = self._pending
            self._pending = None
            self._busy = checkpoint is not None
            return checkpoint

    def _run(self) -> None:
        store: Store | None = None
        next_beat = time.monotonic() + self._beat
        try:
            if self._connect_now:
                store = self._opened(store)
            while True:
                checkpoint = self._next(next_beat)
                if checkpoint is not None:
                    store = self._opened(store)
                    with self._tracing.checkpoint(checkpoint):
                        store.write_checkpoint(self._lease, checkpoint)
                    with self._cond:
                        self._busy = False
                        self.committed = checkpoint
                        self._cond.notify_all()
                elif self._closed:
                    return
                if time.monotonic() >= next_beat:
                    next_beat = time.monotonic() + self._beat
                    store = self._opened(store)
                    if not self._renew(store):
                        return
        except BaseException as exc:  # reported to the engine, which raises it
            with self._cond:
                self.error = exc
                self._busy = False
                self._pending = None
                self._cond.notify_all()
            if isinstance(exc, LeaseLost):
                self._on_lease_lost()
            else:
                self._on_error()
        finally:
            if store is not None:
                store.close()

    def _opened(self, store: Store | None) -> Store:
        return store if store is not None else open_store(self._url, durable=self._durable)

    def _renew(self, store: Store) -> bool:
        try:
            if store.renew_lease(self._lease):
                return True
        except MidwayError:
            return True  # a busy or briefly unreachable store: try again at the next beat
        with self._cond:
            self.error = LeaseLost(lost_message(self._lease))
            self._cond.notify_all()
        self._on_lease_lost()
        return False
