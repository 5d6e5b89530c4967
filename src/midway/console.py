"""Where midway's own words go: the ``midway`` logger, and stderr unless logging is set up."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

log = logging.getLogger("midway")


def _logging_configured() -> bool:
    return bool(log.handlers or logging.getLogger().handlers)


def say(message: str, *, level: int = logging.INFO, quiet: bool = False) -> None:
    """Log ``message``; also print it to stderr when nobody configured logging."""
    log.log(level, message)
    if not quiet and not _logging_configured():
        print(f"midway: {message}", file=sys.stderr, flush=True)


def say_from_signal_handler(message: str) -> None:
    """A raw write: safe inside a signal handler, where locks may be held."""
    with contextlib.suppress(OSError):
        os.write(2, f"\nmidway: {message}\n".encode())
