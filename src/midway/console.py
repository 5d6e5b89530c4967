"""Where midway's own words go: the ``midway`` logger if logging is set up, else stderr."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import sys

log = logging.getLogger("midway")

# What a terminal may act on instead of showing: C0 and C1 controls, DEL, and the Unicode
# marks that reorder or break lines (bidi overrides, line / paragraph separators).
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]")
_CONTROLS_BUT_LINES = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]"
)


_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escaped(match: re.Match[str]) -> str:
    char = match.group(0)
    if char in _NAMED:
        return _NAMED[char]
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str, *, lines: bool = False) -> str:
    """``text`` fit for a terminal: each control character shown escaped (ESC as ``\\x1b``,
    CSI as ``\\x9b``), so that text from the store (keys, errors, notes, a command's stderr)
    cannot move the cursor, clear the screen, hide text or set the window title. ``lines``
    keeps newlines and tabs (multi-line text such as a report). JSON output keeps the exact text.
    """
    return (_CONTROLS_BUT_LINES if lines else _CONTROLS).sub(_escaped, text)


def logging_configured() -> bool:
    return bool(log.handlers or logging.getLogger().handlers)


def say(message: str, *, level: int = logging.INFO, quiet: bool = False) -> None:
    """To the ``midway`` logger once logging is set up; else to stderr (unless ``quiet``)."""
    if logging_configured():  # the exact text: the handlers decide how to show it
        log.log(level, message)
    elif not quiet:
        print(f"midway: {printable(message, lines=True)}", file=sys.stderr, flush=True)


def say_from_signal_handler(message: str) -> None:
    """A raw write: safe inside a signal handler, where locks may be held."""
    with contextlib.suppress(OSError):
        os.write(2, f"\nmidway: {message}\n".encode())
