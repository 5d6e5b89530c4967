"""Stop requests: SIGINT / SIGTERM, a lost lease, a failed background commit. Each ends the
slice in hand after the item in hand (:meth:`InHand.interrupt`), so the loop itself never
tests a flag per item."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

from midway.console import say_from_signal_handler
from midway.run.runstate import RunState
from midway.run.slices import InHand
from midway.run.writer import Keeper

SIGNAL_NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


def signal_name(signum: int) -> str:
    return SIGNAL_NAMES.get(signal.Signals(signum), "signal")


class Stops:
    """Turns stop requests into the run's flags and an interrupted slice."""

    def __init__(self, run: RunState, in_hand: InHand, keeper: Callable[[], Keeper | None]) -> None:
        self.run = run
        self.in_hand = in_hand
        self._keeper = keeper
        self._saved_handlers: dict[int, Any] = {}

    def on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = SIGNAL_NAMES.get(signal.Signals(signum), str(signum))
        if self.run.stop_signal is not None:
            say_from_signal_handler(f"second {name}: exiting at once; the last checkpoint stands")
            os._exit(128 + signum)
        self.run.stop_signal = signum
        self.in_hand.interrupt()
        say_from_signal_handler(
            f"{name}: stopping after the current item and saving a checkpoint "
            "(send it again to exit at once)"
        )

    def on_lease_lost(self) -> None:
        self.run.lease_lost = True
        self.in_hand.interrupt()

    def on_writer_error(self) -> None:
        """Called on the writer's thread: end the slice so the run sees the failure."""
        writer = self._keeper()
        if writer is not None and writer.lease_lost:
            self.on_lease_lost()
        else:
            self.in_hand.interrupt()

    def install(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            return  # Python only delivers signals to the main thread
        for signum in SIGNAL_NAMES:
            self._saved_handlers[signum] = signal.signal(signum, self.on_signal)

    def restore(self) -> None:
        for signum, handler in self._saved_handlers.items():
            signal.signal(signum, handler)
        self._saved_handlers.clear()
