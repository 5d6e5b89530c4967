"""Group commit: checkpoints are committed on a thread of their own.

A durable commit waits for the disk (a few hundred microseconds to milliseconds); a thousand
trivial items take less. So the engine hands each checkpoint to this writer and keeps going.
At most one commit is in flight; a checkpoint that falls due meanwhile waits in a one-place
slot, and a newer one replaces it. When items go faster than the store commits, midway
checkpoints as often as the store can, never more; when they go slower, every checkpoint is
committed before the next one falls due, exactly as if the engine waited for it.

The snapshot is taken on the engine's thread (the state already encoded as JSON, counters
copied, the position computed), so the writer never reads anything the handler can change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from midway.checkpoint import Checkpoint
from midway.errors import LeaseLost
from midway.stores import Lease, Store, open_store


class CheckpointWriter:
    def __init__(self, url: str, durable: bool, lease: Lease, on_error: Callable[[], None]) -> None:
        self._url = url
        self._durable = durable
        self._lease = lease
        self._on_error = on_error
        self._cond = threading.Condition()
        self._pending: Checkpoint | None = None
        self._busy = False
        self._closed = False
        self.error: BaseException | None = None
        self.committed: Checkpoint | None = None
        self._thread = threading.Thread(target=self._run, name="midway-writer", daemon=True)
        self._thread.start()

    @property
    def lease_lost(self) -> bool:
        return isinstance(self.error, LeaseLost)

    def submit(self, checkpoint: Checkpoint) -> None:
        """Queue ``checkpoint`` (replacing one not yet started); raise an earlier failure."""
        with self._cond:
            if self.error is not None:
                raise self.error
            self._pending = checkpoint
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

    def _run(self) -> None:
        store: Store | None = None
        try:
            store = open_store(self._url, durable=self._durable)
            while True:
                with self._cond:
                    while self._pending is None and not self._closed:
                        self._cond.wait()
                    checkpoint = self._pending
                    if checkpoint is None:
                        return
                    self._pending = None
                    self._busy = True
                store.write_checkpoint(self._lease, checkpoint)
                with self._cond:
                    self._busy = False
                    self.committed = checkpoint
                    self._cond.notify_all()
        except BaseException as exc:  # reported to the engine, which raises it
            with self._cond:
                self.error = exc
                self._busy = False
                self._pending = None
                self._cond.notify_all()
            self._on_error()
        finally:
            if store is not None:
                store.close()
