"""Where midway's own words go: the ``midway`` logger if logging is set up, else stderr."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger("midway")


def logging_configured() -> bool:
    return bool(log.handlers or logging.getLogger().handlers)


def say(message: str, *, level: int = logging.INFO, quiet: bool = False) -> None:
    """To the ``midway`` logger once logging is set up; else to stderr (unless ``quiet``)."""
    if logging_configured():
        log.log(level, message)
    elif not quiet:
        print(f"midway: {message}", file=sys.stderr, flush=True)


def say_from_signal_handler(message: str) -> None:
    """A raw write: safe inside a signal handler, where locks may be held."""
    with contextlib.suppress(OSError):
        os.write(2, f"\nmidway: {message}\n".encode())
