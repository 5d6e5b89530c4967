"""A stop signal while commands run: the one in hand finishes, a second stop reaches it."""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Any

from midway.each import child

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class SignalRelay:
    """Sits in front of the engine's SIGINT / SIGTERM handler while a run is on.

    It notes that a stop was asked for (so a command that then fails is *interrupted*, not
    failed), and passes a second signal on to the running commands before the engine exits
    at once. Installed from the handler on the main thread (the engine installs its own
    handler when the run starts, and restores the previous one when it ends, which also
    removes this one); elsewhere it stays out of the way."""

    def __init__(self, children: child.Children) -> None:
        self._children = children
        self._inner: dict[int, Any] = {}
        self.received: int | None = None
        self.count = 0

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in STOP_SIGNALS:
            current = signal.getsignal(signum)
            if current != self._on_signal:
                self._inner[signum] = current
                signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1
        self.received = signum
        if self.count > 1:
            self._children.signal_all(signum)
        inner = self._inner.get(signum)
        if callable(inner):
            inner(signum, frame)
        elif inner != signal.SIG_IGN:  # the default action: do what the signal would do
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
